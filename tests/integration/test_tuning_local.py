"""The local tuner against the real training job: the metric regexes on train.py's real log lines, a 3-trial study
on the tiny model that prunes a trial after its first epoch, the wall-time budget, and `autobert tune show/apply`."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from autobert import layout
from autobert.adapters.local_store import LocalObjectStore
from autobert.cli import main
from autobert.config import REPO_ROOT, get_settings, reset_settings
from autobert.tuning import SearchSpace, TuningError, load_defaults, load_study, parse_epoch, parse_metrics
from autobert.tuning.local import LocalTuner
from autobert.tuning.service import current_defaults
from autobert.tuning.space import TUNABLE

TRAIN = REPO_ROOT / "training" / "train.py"
# The tiny BERT's word embeddings are most of its weights: frozen (train.py's default), the good learning rate learns
# too little in 2 epochs for the absurd one to fall behind and be pruned.
FAST = {"epochs": "2", "max-length": "32", "batch-size": "4", "warmup-ratio": "0", "fusion": "false",
        "precision": "fp32", "test-fraction": "0", "freeze-embeddings": "false"}
GOOD_LR, ABSURD_LR = 1e-2, 1e-7


@pytest.fixture(scope="module")
def separable_channel(tmp_path_factory) -> Path:
    """Three classes told apart by their words: the tiny model learns them within one epoch at a sane learning
    rate, so a trial that cannot learn (absurd learning rate) is clearly worse after its first evaluation."""
    rng = random.Random(0)
    vocab = {"autos": ["car", "engine", "wheel", "brake", "tire", "driver", "motor", "highway"],
             "space": ["rocket", "orbit", "nasa", "planet", "moon", "launch", "shuttle", "satellite"],
             "guns": ["gun", "rifle", "firearm", "pistol", "ammunition", "holster", "trigger", "shotgun"]}
    filler = ["the", "a", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with", "as", "this"]
    rows = []
    for label, words in vocab.items():
        for _ in range(40):
            tokens = [rng.choice(words) for _ in range(8)] + [rng.choice(filler) for _ in range(6)]
            rng.shuffle(tokens)
            rows.append({"text": " ".join(tokens), "label": label})
    folder = tmp_path_factory.mktemp("separable")
    pd.DataFrame(rows).to_parquet(folder / "data.parquet")
    return folder


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(autouse=True)
def settings_env(monkeypatch, home):
    monkeypatch.setenv("AUTOBERT_HOME", str(home))
    reset_settings()
    yield
    reset_settings()


def tuner(home: Path, channel: Path, tiny_bert: Path, **kwargs) -> LocalTuner:
    return LocalTuner(store=LocalObjectStore(home / "bucket"),
                      space=SearchSpace.from_dict({"learning-rate": {"low": 1e-7, "high": 5e-2, "log": True}}),
                      train_channel=channel, work_dir=home / "tuning",
                      static={"model-name": str(tiny_bert), **FAST}, seed=0, threads=1, **kwargs)


# ------------------------------------------------------------------------------------------- real log lines
def test_the_metric_regexes_parse_the_training_scripts_real_epoch_lines(tiny_bert, small_dataset, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a shared CPU: one thread is many times faster than two
    run = subprocess.run([sys.executable, str(TRAIN), "--train", str(small_dataset), "--model-dir",
                          str(tmp_path / "m"), "--model-name", str(tiny_bert), "--progress", "false",
                          "--max-train-samples", "48", *[x for k, v in FAST.items() for x in (f"--{k}", v)]],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    history = json.loads((tmp_path / "m" / "metrics.json").read_text())["history"]
    lines = run.stderr.splitlines()
    parsed = [parse_metrics(line) for line in lines]
    reports = [p for p in parsed if p]
    # Exactly the epoch lines, then the kept (best) epoch's line again; nothing else (e.g. not the done: line).
    best = json.loads((tmp_path / "m" / "metrics.json").read_text())["training"]["best_epoch"]
    assert len(history) == 2
    assert len(reports) == 3 and lines[[i for i, p in enumerate(parsed) if p][-1]].count("kept: epoch=") == 1
    for report, epoch in zip(reports, [*history, history[best - 1]], strict=True):
        assert report["epoch"] == epoch["epoch"]
        assert report["validation:macro_f1"] == pytest.approx(epoch["val_macro_f1"], abs=5e-5)
        assert report["validation:accuracy"] == pytest.approx(epoch["val_accuracy"], abs=5e-5)
        assert report["train:loss"] == pytest.approx(epoch["train_loss"], abs=5e-5)
    assert [parse_epoch(line) for line in lines if parse_epoch(line)] == [
        (h["epoch"], pytest.approx(h["val_macro_f1"], abs=5e-5)) for h in history]


def test_the_tunable_defaults_are_the_training_scripts_defaults():
    sys.path.insert(0, str(TRAIN.parent))
    try:
        import train
    finally:
        sys.path.remove(str(TRAIN.parent))
    args = train.parse_args(["--train", "x", "--model-dir", "y"])
    for name, bounds in TUNABLE.items():
        assert getattr(args, name.replace("-", "_")) == bounds.default, name


# ------------------------------------------------------------------------------------------- a real study
@pytest.fixture(scope="module")
def study(tiny_bert, separable_channel, home):
    finished = []
    started = time.monotonic()
    record = tuner(home, separable_channel, tiny_bert, startup_trials=1, on_trial=finished.append).run(
        3, 300, enqueue=[{"learning-rate": GOOD_LR}, {"learning-rate": ABSURD_LR}])
    return record, finished, time.monotonic() - started


def test_a_three_trial_study_on_the_tiny_model_completes_prunes_and_records_the_best_trial(study, home):
    record, finished, seconds = study
    trials = record["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2] and [t["number"] for t in finished] == [0, 1, 2]
    good, absurd = trials[0], trials[1]
    assert good["state"] == "COMPLETE" and good["params"] == {"learning-rate": "0.01"}
    assert set(good["intermediate"]) == {"1", "2"} and good["value"] == pytest.approx(max(good["intermediate"]
                                                                                           .values()), abs=5e-5)
    # The absurd learning rate cannot learn: pruned after its first evaluation, below the good trial's epoch 1.
    assert absurd["state"] == "PRUNED" and absurd["params"] == {"learning-rate": "1e-07"}
    assert list(absurd["intermediate"]) == ["1"] and absurd["intermediate"]["1"] < good["intermediate"]["1"]
    assert "pruned after epoch 1" in absurd["reason"]
    # ...and its process really was stopped: it never logged a second epoch.
    assert not any(parse_epoch(line) for line in Path(absurd["log"]).read_text().splitlines()
                   if "epoch=2" in line)
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(complete, key=lambda t: t["value"])
    assert record["best"] == {"number": best["number"], "value": best["value"], "params": best["params"]}
    assert record["status"] == "completed" and record["stopped_by"] == "trials"
    assert load_study(LocalObjectStore(home / "bucket"), record["study_id"]) == record
    assert not any(p.is_dir() for p in (home / "tuning" / record["study_id"]).iterdir())  # trial models removed
    assert seconds < 120, f"the 3-trial study took {seconds:.0f} s"


def test_tune_show_prints_every_trial_and_the_best(study, capsys):
    record, _, _ = study
    assert main(["tune", "show"]) == 0
    out = capsys.readouterr().out
    assert f"study {record['study_id']}" in out and "PRUNED" in out and "pruned after epoch 1" in out
    assert f"best: trial {record['best']['number']}" in out
    assert main(["tune", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["study"] == record


def test_tune_apply_saves_the_best_params_as_the_next_training_defaults(study, home, capsys):
    record, _, _ = study
    store = LocalObjectStore(home / "bucket")
    assert main(["tune", "apply"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["hyperparameters"] == record["best"]["params"] == load_defaults(store)
    assert saved["source"]["study_id"] == record["study_id"] and saved["source"]["trial"] == record["best"]["number"]
    assert current_defaults(get_settings(), store)["learning-rate"] == record["best"]["params"]["learning-rate"]
    assert main(["tune", "apply", "--trial", "1"]) == 2  # the pruned trial
    assert "PRUNED, not COMPLETE" in capsys.readouterr().err
    assert load_defaults(store) == record["best"]["params"]
    assert main(["tune", "apply", "--clear"]) == 0 and load_defaults(store) == {}


def test_show_and_apply_name_an_unknown_study(capsys):
    assert main(["tune", "show", "--study", "nope"]) == 2
    assert "no tuning study 'nope'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- budgets, errors
def test_the_wall_time_budget_stops_a_running_trial(tiny_bert, separable_channel, home):
    started = time.monotonic()
    # One second cannot even import torch: the first trial is stopped mid-run and no trial completes.
    with pytest.raises(TuningError, match="no trial completed.*wall-time budget ran out"):
        tuner(home, separable_channel, tiny_bert).run(5, 1.0)
    assert time.monotonic() - started < 30
    record = max((load_study(LocalObjectStore(home / "bucket"), i) for i in
                  [k.split("/")[1] for k in LocalObjectStore(home / "bucket").list_keys(layout.TUNING)
                   if k.endswith("study.json")]), key=lambda r: r["created_at"])
    assert record["status"] == "failed" and record["stopped_by"] == "timeout"
    assert [t["state"] for t in record["trials"]] == ["FAIL"]


def test_a_broken_training_setup_stops_the_study_with_the_scripts_error(separable_channel, home, tmp_path):
    with pytest.raises(TuningError, match="training setup error.*cannot load model"):
        tuner(home, separable_channel, tmp_path / "no-such-model").run(3, 300)


def test_a_local_study_trains_on_the_local_buckets_current_dataset(tmp_path):
    from autobert.bootstrap import Services
    from autobert.config import Settings
    from autobert.tuning.service import resolve_train_channel
    from autobert.workflow.merge import import_initial_dataset

    services = Services(Settings(mode="local", home=tmp_path))
    rows = [(f"{lbl}/{i}", f"text {i} on {lbl}", lbl) for lbl in ("autos", "space") for i in range(10)]
    import_initial_dataset(services.store, pd.DataFrame(rows, columns=["id", "text", "label"]), ["autos", "space"],
                           holdout_fraction=0.2, seed=0)
    version = services.store.get_json(layout.CURRENT_DATASET)["version"]
    assert resolve_train_channel(services).resolve() == (tmp_path / "bucket" / "datasets" / version).resolve()
