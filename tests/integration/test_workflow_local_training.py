"""The local training-job adapter: train.py as a detached process with SageMaker's SM_* contract."""

from __future__ import annotations

import time

import pytest

from autobert.adapters.local_training import LocalTrainingJobs
from autobert.config import REPO_ROOT
from autobert.ports import TrainingJobSpec
from autobert.workflow.errors import TrainingStartError


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
