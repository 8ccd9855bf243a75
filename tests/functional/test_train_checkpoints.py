"""Spot training: train.py checkpoints every epoch and a job killed mid-run resumes where it stopped.

A SIGKILL stands in for the spot interruption; running train.py again over the same checkpoint folder stands in for
SageMaker restarting the job with /opt/ml/checkpoints restored from the CheckpointConfig's S3 prefix."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_train import TRAIN, run_train, train  # the same script runner and module as test_train.py

pytestmark = pytest.mark.slow

EPOCHS = 4


def job_args(tiny_bert: Path, data: Path, out: Path, checkpoints: Path) -> list[str]:
    # fp32: the same numbers whatever the CPU (bf16 autocast depends on AVX512-BF16/AMX).
    return ["--model-name", str(tiny_bert), "--train", str(data), "--model-dir", str(out / "model"),
            "--output-data-dir", str(out / "output"), "--checkpoint-dir", str(checkpoints),
            "--epochs", str(EPOCHS), "--batch-size", "8", "--max-length", "32", "--learning-rate", "1e-3",
            "--fusion", "false", "--progress", "false", "--precision", "fp32", "--model-version", "v-ckpt"]


def epochs_logged(log: str) -> list[int]:
    return [int(n) for n in re.findall(r"^\S+ \S+ INFO autobert\.train: epoch=(\d+) ", log, re.MULTILINE)]


@pytest.fixture(scope="module")
def uninterrupted(tiny_bert, small_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    assert train.main(job_args(tiny_bert, small_dataset, out, out / "checkpoints")) == 0  # in-process: faster
    return out


@pytest.fixture(scope="module")
def interrupted(tiny_bert, small_dataset, tmp_path_factory) -> tuple[Path, int, subprocess.CompletedProcess]:
    """Start the job, SIGKILL it as soon as it reports epoch 1's checkpoint, run it again with the same arguments."""
    out = tmp_path_factory.mktemp("interrupted")
    checkpoints = out / "checkpoints"
    args = job_args(tiny_bert, small_dataset, out, checkpoints)
    proc = subprocess.Popen([sys.executable, str(TRAIN), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    lines = []
    watchdog = threading.Timer(300, proc.kill)  # a job that hangs ends the wait (and fails the test), never pytest
    watchdog.start()
    try:
        for line in proc.stderr:  # blocks on the job's own log: no sleeping
            lines.append(line)
            if "checkpoint saved: epoch=1 " in line:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(lines)
    assert not (out / "model" / "metrics.json").exists()  # killed before it finished
    # The latest complete checkpoint on disk when it died (epoch 1, or a later one had the job raced ahead).
    latest = train.complete_checkpoints(checkpoints)[0]
    killed_at = json.loads((latest / "state.json").read_text())["epoch"]
    assert 1 <= killed_at < EPOCHS
    resumed = run_train(args)
    assert resumed.returncode == 0, resumed.stderr
    return out, killed_at, resumed


def test_the_rerun_resumes_after_the_last_checkpoint_and_does_not_redo_its_epochs(interrupted):
    out, killed_at, resumed = interrupted
    assert f"resumed from checkpoint epoch={killed_at} " in resumed.stderr
    assert epochs_logged(resumed.stderr) == list(range(killed_at + 1, EPOCHS + 1))
    metrics = json.loads((out / "output" / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, EPOCHS + 1))
    assert metrics["training"]["resumed_from_epoch"] == killed_at
    assert metrics["training"]["epochs_run"] == EPOCHS
    assert (out / "model" / "model.safetensors").is_file()


def test_the_resumed_job_trains_exactly_as_an_uninterrupted_one(interrupted, uninterrupted):
    """Weights, optimizer, schedule and RNG states (dropout, shuffling) all come back: same losses, same model."""
    out, _, _ = interrupted
    metrics = json.loads((out / "output" / "metrics.json").read_text())
    reference = json.loads((uninterrupted / "output" / "metrics.json").read_text())
    assert metrics["training"]["steps"] == reference["training"]["steps"]
    assert metrics["training"]["samples"] == reference["training"]["samples"]
    assert metrics["training"]["best_epoch"] == reference["training"]["best_epoch"]
    for got, want in zip(metrics["history"], reference["history"], strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5, abs=1e-7)
        assert got["val_macro_f1"] == pytest.approx(want["val_macro_f1"])
    assert metrics["test"]["confusion_matrix"] == reference["test"]["confusion_matrix"]
    weights, expected = load_file(out / "model" / "model.safetensors"), load_file(
        uninterrupted / "model" / "model.safetensors")
    assert weights.keys() == expected.keys()
    for name, tensor in expected.items():
        assert (weights[name] - tensor).abs().max().item() < 1e-5, name


def test_a_checkpoint_is_one_complete_folder_of_safetensors_and_json(uninterrupted):
    folders = sorted(p.name for p in (uninterrupted / "checkpoints").iterdir())
    # The two newest stay (the newest may reach S3 incompletely on a spot interruption); older and temporary go.
    assert folders == [f"epoch-{EPOCHS - 1:04d}", f"epoch-{EPOCHS:04d}"]
    latest = uninterrupted / "checkpoints" / folders[-1]
    state = json.loads((latest / "state.json").read_text())
    assert state["epoch"] == EPOCHS and state["finished"] is True
    assert {"model.safetensors", "training_state.pt", "state.json"} <= {p.name for p in latest.iterdir()}


def test_a_finished_job_run_again_only_rewrites_its_outputs(uninterrupted, tiny_bert, small_dataset, caplog):
    caplog.set_level(logging.INFO, logger="autobert.train")
    assert train.main(job_args(tiny_bert, small_dataset, uninterrupted, uninterrupted / "checkpoints")) == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "autobert.train"]
    assert any(m.startswith(f"resumed from checkpoint epoch={EPOCHS} ") for m in messages)
    assert not [m for m in messages if m.startswith("epoch=")]  # no epoch trained again
    metrics = json.loads((uninterrupted / "output" / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, EPOCHS + 1))


def test_an_incomplete_checkpoint_is_ignored(tmp_path):
    (tmp_path / "epoch-0002").mkdir()
    (tmp_path / "epoch-0002" / "state.json").write_text("{}")
    (tmp_path / "epoch-0003").mkdir()  # renamed into place without its state.json: never written so by train.py
    (tmp_path / ".tmp-epoch-0004-x").mkdir()  # a write the kill interrupted
    (tmp_path / ".tmp-epoch-0004-x" / "state.json").write_text("{}")
    assert train.complete_checkpoints(tmp_path) == [tmp_path / "epoch-0002"]
    assert train.complete_checkpoints(tmp_path / "none") == []


def test_a_checkpoint_of_another_run_is_a_clear_error(uninterrupted, tiny_bert, small_dataset, tmp_path, capsys):
    args = job_args(tiny_bert, small_dataset, tmp_path, uninterrupted / "checkpoints")
    args[args.index("--batch-size") + 1] = "4"
    assert train.main(args) == 2
    err = capsys.readouterr().err
    assert "checkpoint of a different training run" in err and "Traceback" not in err


def test_the_checkpoint_folder_is_sm_checkpoint_dir_else_sagemakers_local_path_where_it_exists(tmp_path,
                                                                                              monkeypatch):
    def folder() -> str | None:
        return train.parse_args(["--train", "d", "--model-dir", "m"]).checkpoint_dir

    monkeypatch.setenv("SM_CHECKPOINT_DIR", str(tmp_path / "ck"))
    assert folder() == str(tmp_path / "ck")
    monkeypatch.delenv("SM_CHECKPOINT_DIR")
    monkeypatch.setattr(train, "SAGEMAKER_CHECKPOINT_DIR", str(tmp_path / "opt-ml-checkpoints"))
    assert folder() is None  # a local run outside SageMaker: no checkpoints unless asked for
    (tmp_path / "opt-ml-checkpoints").mkdir()
    assert folder() == str(tmp_path / "opt-ml-checkpoints")


@pytest.mark.parametrize("damaged", ["model.safetensors", "training_state.pt", "state.json"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(damaged, uninterrupted, tiny_bert, small_dataset,
                                                                   tmp_path, caplog):
    import shutil

    caplog.set_level(logging.INFO, logger="autobert.train")
    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(uninterrupted / "checkpoints", checkpoints)
    target = checkpoints / f"epoch-{EPOCHS:04d}" / damaged
    target.write_bytes(target.read_bytes()[:100])  # what a partial sync back from S3 leaves
    assert train.main(job_args(tiny_bert, small_dataset, tmp_path, checkpoints)) == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "autobert.train"]
    assert any(f"epoch-{EPOCHS:04d}: unreadable checkpoint" in m for m in messages)
    assert any(m.startswith(f"resumed from checkpoint epoch={EPOCHS - 1} ") for m in messages)
    assert [int(m.split()[0].split("=")[1]) for m in messages if m.startswith("epoch=")] == [EPOCHS]


def test_with_no_readable_checkpoint_the_job_starts_from_the_beginning(uninterrupted, tiny_bert, small_dataset,
                                                                       tmp_path, caplog):
    import shutil

    caplog.set_level(logging.INFO, logger="autobert.train")
    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(uninterrupted / "checkpoints", checkpoints)
    for folder in checkpoints.iterdir():
        (folder / "model.safetensors").write_bytes(b"not safetensors")
    assert train.main(job_args(tiny_bert, small_dataset, tmp_path, checkpoints)) == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "autobert.train"]
    assert any(m.startswith("no readable checkpoint in ") for m in messages)
    assert [int(m.split()[0].split("=")[1]) for m in messages if m.startswith("epoch=")] == list(range(1, EPOCHS + 1))
