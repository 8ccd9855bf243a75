"""The retraining workflow run locally: the ASL file executed by aws-local-stepfunctions, the step handlers with the
local adapters (training-job processes, the local endpoint's swap), on a tiny model. One stack per module: the first
model is trained once; each test sets the gate margins its outcome needs and starts the runs it asserts on, so it
passes alone and in any order."""

from __future__ import annotations

import pytest
from serving_helpers import EndpointThread, OnLog

from autobert.bootstrap import Services
from autobert.config import Settings
from autobert.feedback import FeedbackStore
from autobert.workflow.datasets import current_dataset, unmerged_feedback_count
from autobert.workflow.local import LocalWorkflow, run_first_model, run_lock
from autobert.workflow.merge import read_version
from autobert.workflow.registry import ModelRegistry
from autobert.workflow.rollback import rollback
from autobert.workflow.runs import RunStore
from autobert.workflow.triggers import pending_triggers, record_trigger

HAPPY_PATH = ["MergeData", "TrainOrTune", "StartTraining", "WaitForTraining", "CheckTraining", "TrainingStatus",
              "Evaluate", "PromoteOrReject", "UpdateEndpoint", "WaitForEndpoint", "CheckEndpoint", "EndpointStatus",
              "Succeeded"]
# A candidate may be worse than live by up to 100 points on every metric: the gate promotes whatever trained.
PROMOTE_ANY = {"gate_accuracy_margin": 1, "gate_macro_f1_margin": 1, "gate_class_f1_margin": 1}


def visited(run: dict) -> list[str]:
    """State names in visiting order, wait-loop repeats collapsed."""
    names: list[str] = []
    for state in run["states"]:
        if names[-3:] == ["WaitForTraining", "CheckTraining", "TrainingStatus"] and state["name"] == "WaitForTraining":
            del names[-3:]
        if names[-3:] == ["WaitForEndpoint", "CheckEndpoint", "EndpointStatus"] and state["name"] == "WaitForEndpoint":
            del names[-3:]
        names.append(state["name"])
    return names


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_bert, small_dataset):
    home = tmp_path_factory.mktemp("home")
    base = Settings(home=home, seed_dataset=small_dataset, holdout_fraction=0.2, model_name=str(tiny_bert),
                    train_epochs=2, warm_epochs=2, train_learning_rate=3e-3, warm_learning_rate=3e-3,
                    train_hyperparameters={"max-length": "32", "batch-size": "8"}, replay_per_class=20,
                    replay_validation_per_class=5, feedback_threshold=5, local_wait_scale=0.005,
                    first_model="bert")  # one bootstrap run; the linear first model: test_first_model.py
    endpoint = EndpointThread(base)
    settings = base.model_copy(update={"endpoint_url": endpoint.url})
    services = Services(settings)
    first = run_first_model(services)
    yield services, endpoint, first
    endpoint.close()


def with_settings(services: Services, **update) -> Services:
    return Services(services.settings.model_copy(update=update))


def serving(endpoint: EndpointThread) -> str:
    return endpoint.server.host.status()["version"]


def test_the_first_model_comes_from_a_bootstrap_run_of_the_same_workflow(stack):
    services, endpoint, first = stack
    registry = ModelRegistry(services.store)
    record = registry.get(first["version"])
    assert record["status"] == "live" and record["version"] == first["version"]
    assert record["gate"]["live"] is None  # nothing to compare with: the gate passed trivially
    run = RunStore(services.store).get(record["run_id"])
    assert run["status"] == "succeeded" and run["trigger"] == "bootstrap" and run["full"] is True
    assert run["model_version"] == first["version"]  # the training job, named by its model version
    assert visited(run) == HAPPY_PATH
    assert serving(endpoint) == first["version"]
    history = RunStore(services.store).history(run["run_id"])
    assert history[0]["type"] == "ExecutionStarted" and history[-1]["type"] == "ExecutionSucceeded"


def test_a_failing_training_job_fails_the_run_with_its_cause_and_the_old_model_keeps_serving(stack):
    services, endpoint, _ = stack
    live = ModelRegistry(services.store).live()["version"]
    broken = with_settings(services, train_hyperparameters={"max-length": "4"})
    result = LocalWorkflow(broken).request("manual", wait=True)
    run = result["run"]
    assert run["status"] == "failed"
    assert run["error"] == "TrainingJobFailed"
    assert "--max-length must be in [8, 512]" in run["cause"]
    assert visited(run)[-3:] == ["TrainingFailed", "RecordFailure", "RunFailed"]
    assert ModelRegistry(services.store).live()["version"] == live
    assert serving(endpoint) == live


def test_a_missing_node_fails_the_run_once_with_a_clear_cause(tmp_path):
    services = Services(Settings(home=tmp_path, node=str(tmp_path / "no-node-here")))
    runs = LocalWorkflow(services, prepare_dataset=False).request("manual", wait=True)
    assert runs["run"]["status"] == "failed" and runs["run"]["error"] == "LocalRunnerError"
    assert "no-node-here" in runs["run"]["cause"]
    assert pending_triggers(services.store) == []  # served (by the failed run), not retried forever


def test_a_step_error_keeps_its_exception_name_through_catch_to_the_failed_run(tmp_path):
    services = Services(Settings(home=tmp_path, local_wait_scale=0))  # no dataset at all
    run = LocalWorkflow(services, prepare_dataset=False).request("manual", wait=True)["run"]
    assert run["status"] == "failed"
    assert run["error"] == "NoDatasetError" and "no current dataset" in run["cause"]
    assert [s["name"] for s in run["states"]] == ["MergeData", "RecordFailure", "RunFailed"]
    assert run["execution_status"] == "FAILED"


def test_a_candidate_worse_than_live_is_rejected_and_the_old_model_stays_live(stack):
    services, endpoint, _ = stack
    live = ModelRegistry(services.store).live()["version"]
    # A learning rate this high wrecks the network, and without the linear model nothing rescues it.
    strict = with_settings(services, gate_accuracy_margin=0.0, gate_macro_f1_margin=0.0, gate_class_f1_margin=0.0,
                           warm_learning_rate=0.5, train_hyperparameters={"max-length": "32", "fusion": "false"})
    run = LocalWorkflow(strict).request("manual", wait=True)["run"]
    assert run["status"] == "rejected", run
    assert visited(run)[-3:] == ["Evaluate", "PromoteOrReject", "CandidateRejected"]
    record = ModelRegistry(services.store).get(run["model_version"])
    assert record["status"] == "rejected"
    assert record["gate"]["live"] is not None and record["gate"]["reasons"]
    assert ModelRegistry(services.store).live()["version"] == live
    assert serving(endpoint) == live


def test_feedback_arriving_during_a_run_is_not_lost_and_a_trigger_during_a_run_is_served_next(stack):
    services, _, _ = stack
    feedback = FeedbackStore(services.store, allow_new_labels=True)
    texts = [f"engine oil and spark plugs number {i}" for i in range(6)]
    feedback.submit(texts[0], "rec.autos")
    during: list[str] = []

    def arrive_during_the_run(message: str) -> None:
        """The run's UpdateEndpoint has the endpoint load its candidate: MergeData is long past, the run not over."""
        if not during:
            during.append(message)
            for text in texts[1:]:
                feedback.submit(text, "rec.autos")
            record_trigger(services.store, "manual")

    with OnLog("autobert.endpoint", "loading model ", arrive_during_the_run):
        first = LocalWorkflow(with_settings(services, **PROMOTE_ANY)).request("manual", wait=True)["run"]
    assert during and first["status"] == "succeeded", first
    assert first["merge"]["merged"] == 1  # the one item acknowledged before the run
    # The trigger recorded during the run was served by a later run of the same serve loop, which merged the rest.
    assert pending_triggers(services.store) == []
    runs = RunStore(services.store).list()
    assert runs[0]["run_id"] != first["run_id"] and runs[0]["started_at"] >= first["started_at"]
    assert runs[0]["status"] == "succeeded" and runs[0]["merge"]["merged"] == len(texts) - 1
    df, _ = read_version(services.store, current_dataset(services.store)["version"])
    assert set(texts) <= set(df["text"]) and unmerged_feedback_count(services.store) == 0


def test_only_one_run_at_a_time_a_trigger_waits_for_the_lock_holder(stack):
    services, _, _ = stack
    with run_lock(services.settings.home) as held:
        assert held
        record_trigger(services.store, "manual")
        assert LocalWorkflow(services).serve_pending() == []  # another holder: nothing runs here
        assert len(pending_triggers(services.store)) == 1
    runs = LocalWorkflow(with_settings(services, **PROMOTE_ANY)).serve_pending()
    assert len(runs) == 1 and runs[0]["status"] == "succeeded" and pending_triggers(services.store) == []


def test_rollback_puts_a_previous_version_back_live_through_the_same_update_path(stack):
    services, endpoint, _ = stack
    registry = ModelRegistry(services.store)
    previous = registry.live()["version"]
    newer = LocalWorkflow(with_settings(services, **PROMOTE_ANY)).request("manual", wait=True)["run"]
    assert newer["status"] == "succeeded", newer  # a newer version went live: the one to roll back from
    current = registry.live()["version"]
    assert current == newer["model_version"] != previous and serving(endpoint) == current
    rollback(services, previous, poll_seconds=0.2)
    assert registry.live()["version"] == previous
    assert registry.get(previous)["status"] == "live"
    assert registry.get(current)["status"] == "retired"
    assert serving(endpoint) == previous
    runs = [r for r in RunStore(services.store).list() if r.get("trigger") == "rollback"]
    assert runs and runs[0]["status"] == "succeeded"
