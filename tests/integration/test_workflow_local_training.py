"""The local training-job adapter: train.py as a detached process with SageMaker's SM_* contract."""

from __future__ import annotations

import json
import math
import time

import pytest

from autobert.adapters.local_training import LocalTrainingJobs
from autobert.bootstrap import bootstrap
from autobert.config import REPO_ROOT, Settings
from autobert.contracts import TRAINING_PROGRESS
from autobert.ports import TrainingJobSpec
from autobert.workflow.errors import TrainingStartError
from autobert.workflow.runs import RunStore
from autobert.workflow.steps import check_training


def wait_done(jobs: LocalTrainingJobs, name: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = jobs.describe(name)
        if state.status != "InProgress":
            return state
        time.sleep(0.5)
    raise AssertionError(f"job {name} still running")


@pytest.fixture
def jobs(tmp_path) -> LocalTrainingJobs:
    return LocalTrainingJobs(tmp_path / "jobs", REPO_ROOT / "training" / "train.py")


def spec(name, tiny_bert, small_dataset, out, **hp) -> TrainingJobSpec:
    return TrainingJobSpec(job_name=name, channels={"train": str(small_dataset)}, output_uri=str(out),
                           hyperparameters={"model-name": str(tiny_bert), "epochs": "1", "max-length": "32",
                                            "progress": "false", "fusion": "false", **hp})


def test_a_job_runs_in_the_background_and_a_fresh_adapter_describes_it(jobs, tiny_bert, small_dataset, tmp_path):
    jobs.start(spec("job-ok", tiny_bert, small_dataset, tmp_path / "models"))
    assert jobs.describe("job-ok").status == "InProgress"
    other = LocalTrainingJobs(jobs.root, jobs.train_script)  # another process's view: state lives on disk
    state = wait_done(other, "job-ok")
    assert state.status == "Completed", state.failure_reason
    assert (tmp_path / "models" / "job-ok" / "model" / "model.safetensors").is_file()
    assert state.model_uri == str(tmp_path / "models" / "job-ok" / "model")
    assert (tmp_path / "models" / "job-ok" / "output" / "metrics.json").is_file()


def test_a_failing_job_reports_the_scripts_own_reason_and_its_name_is_not_reused(jobs, tiny_bert, small_dataset,
                                                                                 tmp_path):
    jobs.start(spec("job-bad", tiny_bert, small_dataset, tmp_path / "models", **{"max-length": "4"}))
    with pytest.raises(TrainingStartError, match="already exists"):
        jobs.start(spec("job-bad", tiny_bert, small_dataset, tmp_path / "models"))
    state = wait_done(jobs, "job-bad")
    assert state.status == "Failed"
    assert "--max-length must be in [8, 512]" in state.failure_reason
    assert state.model_uri is None


def test_channels_must_exist_and_unknown_jobs_are_an_error(jobs, tmp_path):
    with pytest.raises(TrainingStartError, match="does not exist"):
        jobs.start(TrainingJobSpec("job-x", {}, {"train": str(tmp_path / "missing")}, str(tmp_path)))
    assert not (jobs.root / "job-x").exists()  # nothing left behind: the name stays usable
    with pytest.raises(TrainingStartError):
        jobs.describe("never-started")


def test_a_jobs_progress_is_read_from_train_pys_own_log_and_check_training_records_it(jobs, tiny_bert, small_dataset,
                                                                                      tmp_path, monkeypatch):
    # The progress interval lowered to 0: train.py logs a progress line after every step.
    monkeypatch.setenv("AUTOBERT_PROGRESS_SECONDS", "0")
    assert jobs.progress("job-progress") is None  # no such job (yet): no progress, no error
    jobs.start(spec("job-progress", tiny_bert, small_dataset, tmp_path / "models", epochs="2", **{"batch-size": "16"}))
    assert wait_done(jobs, "job-progress").status == "Completed"
    progress = jobs.progress("job-progress")
    metrics = json.loads((tmp_path / "models" / "job-progress" / "output" / "metrics.json").read_text())
    assert progress["epoch"] == progress["epochs"] == 2
    assert progress["step"] == progress["steps"] == metrics["training"]["steps"]
    assert progress["eta_seconds"] == 0 and progress["samples_per_second"] > 0 and progress["loss"] > 0
    # Each finished epoch with the validation scores train.py measured (as it logs them: 4 decimals).
    assert [(e["epoch"], e["val_accuracy"], e["val_macro_f1"]) for e in progress["history"]] == [
        (h["epoch"], round(h["val_accuracy"], 4), round(h["val_macro_f1"], 4)) for h in metrics["history"]]

    # CheckTraining keeps it in the run record (not in the execution state), rewritten only when it changes.
    services = bootstrap(Settings(home=tmp_path / "home"), training_jobs=jobs)
    runs = RunStore(services.store)
    runs.create("r-progress", executor="local")
    event = {"run_id": "r-progress", "training": {"job_name": "job-progress", "deadline": math.inf}}
    result = check_training(services, event)
    assert result["status"] == "Completed" and TRAINING_PROGRESS not in result
    recorded = runs.get("r-progress")[TRAINING_PROGRESS]
    assert {k: v for k, v in recorded.items() if k != "observed_at"} == {**progress, "job_name": "job-progress"}
    check_training(services, event)
    assert runs.get("r-progress")[TRAINING_PROGRESS]["observed_at"] == recorded["observed_at"]
    log = jobs.root / "job-progress" / "train.log"
    log.write_text(log.read_text() + log.read_text().splitlines()[0] + "\n"
                   "x INFO autobert.train: progress: epoch=1/2 step=1/9 loss=1.0 samples_per_second=2.00 "
                   "eta_seconds=40\n")
    check_training(services, event)
    assert runs.get("r-progress")[TRAINING_PROGRESS]["step"] == 1
