"""The state machine definition: valid ASL (asl-validator), the states the design names, a Catch on every task, and
the train-or-tune choice executed by aws-local-stepfunctions (the local runner) with canned task results standing in
for the Lambdas."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ASL = REPO / "statemachines" / "retrain.asl.json"
VALIDATOR = REPO / "node_modules" / ".bin" / "asl-validator"
RUNNER = REPO / "statemachines" / "local" / "run.mjs"


@pytest.fixture(scope="module")
def definition() -> dict:
    return json.loads(ASL.read_text())


def substituted(text: str) -> str:
    return re.sub(r"\$\{(\w+)FunctionArn\}", r"arn:aws:lambda:us-east-1:123456789012:function:autobert-\1", text)


@pytest.mark.skipif(not VALIDATOR.exists() or shutil.which("node") is None, reason="npm dependencies not installed")
def test_the_definition_passes_asl_validator(tmp_path):
    path = tmp_path / "retrain.asl.json"
    path.write_text(substituted(ASL.read_text()))
    result = subprocess.run([str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_happy_path_visits_the_designed_states_in_order(definition):
    states = definition["States"]
    assert definition["StartAt"] == "MergeData"
    assert states["MergeData"]["Next"] == "TrainOrTune"
    assert states["TrainOrTune"]["Type"] == "Choice" and states["TrainOrTune"]["Default"] == "StartTraining"
    assert states["StartTraining"]["Next"] == "WaitForTraining"
    assert states["WaitForTraining"]["Type"] == "Wait"
    assert states["WaitForTraining"]["Next"] == "CheckTraining"
    choices = {c.get("StringEquals"): c["Next"] for c in states["TrainingStatus"]["Choices"]}
    assert choices["Completed"] == "Evaluate"
    assert choices["Failed"] == choices["Stopped"] == "TrainingFailed"
    assert states["TrainingStatus"]["Default"] == "WaitForTraining"
    assert any(c.get("Variable") == "$.training_status.timed_out" for c in states["TrainingStatus"]["Choices"])
    assert states["PromoteOrReject"]["Choices"][0]["Next"] == "UpdateEndpoint"
    assert states["UpdateEndpoint"]["Next"] == "WaitForEndpoint"
    endpoint = {c.get("StringEquals"): c["Next"] for c in states["EndpointStatus"]["Choices"]}
    assert endpoint["InService"] == "Succeeded"
    assert states["Succeeded"]["Type"] == "Succeed"


def test_every_task_catches_everything_into_record_failure_and_the_run_ends_failed(definition):
    states = definition["States"]
    for name, state in states.items():
        if state["Type"] != "Task":
            continue
        last = state["Catch"][-1]
        assert last["ErrorEquals"] == ["States.ALL"], name
        assert last["Next"] == ("RunFailed" if name == "RecordFailure" else "RecordFailure"), name
        assert last["ResultPath"].startswith("$."), name
    assert states["RecordFailure"]["Next"] == "RunFailed"
    assert states["RunFailed"]["Type"] == "Fail"


def test_every_task_retries_transient_errors_with_backoff(definition):
    for name, state in definition["States"].items():
        if state["Type"] == "Task":
            retrier = next(r for r in state["Retry"] if "TransientError" in r["ErrorEquals"])
            assert retrier["BackoffRate"] > 1 and retrier["MaxAttempts"] >= 2, name


def test_error_names_in_the_definition_are_real_exception_classes(definition):
    from autobert import errors as base_errors
    from autobert import ports
    from autobert.tuning import errors as tuning_errors
    from autobert.workflow import errors as workflow_errors

    known = {n for n in dir(workflow_errors) + dir(base_errors) + dir(ports) + dir(tuning_errors) if n[0].isupper()}
    for state in definition["States"].values():
        for rule in state.get("Retry", []) + state.get("Catch", []):
            for name in rule["ErrorEquals"]:
                assert name in known or name.startswith(("States.", "Lambda.")), name


# ------------------------------------------------------------------------------------------------ the tuning path
def test_start_tuning_is_start_training_with_a_tuning_job_and_its_config_error(definition):
    states = definition["States"]
    train, tune = states["StartTraining"], states["StartTuning"]
    assert tune["Resource"] == "${StartTuningFunctionArn}"
    # Same slot in the execution state and the same wait loop: CheckTraining polls whichever job was started.
    assert tune["ResultPath"] == train["ResultPath"] == "$.training"
    assert tune["Next"] == train["Next"] == "WaitForTraining"
    assert tune["Retry"] == train["Retry"]
    assert tune["Catch"][0]["ErrorEquals"][0] == "TuningConfigError"
    assert set(train["Catch"][0]["ErrorEquals"]) < set(tune["Catch"][0]["ErrorEquals"])
    assert tune["Catch"][1:] == train["Catch"][1:]
    assert {c["Next"] for c in states["TrainOrTune"]["Choices"]} == {"StartTuning"}


CANNED = {  # what each task returns, the shapes of autobert.workflow.steps / autobert.workflow.tuning_steps
    "MergeData": {"dataset_version": "d-1", "warm": False},
    "StartTraining": {"job_name": "ab-1", "model_version": "ab-1"},
    "StartTuning": {"job_name": "abt-1", "tuning_job": "abt-1", "model_version": None},
    "CheckTraining": {"status": "Completed", "timed_out": False},
    "Evaluate": {"promote": False, "model_version": "ab-1"},
    "RecordFailure": {"error": "x"},
}


def execute(execution_input: dict, fail: dict[str, str] | None = None) -> tuple[list[str], dict, dict]:
    """Run the ASL file with aws-local-stepfunctions: states entered, the end message, each task's last input."""
    fail = fail or {}
    cmd = ["node", str(RUNNER), "--definition", str(ASL), "--input", json.dumps(execution_input),
           "--time-scale", "0"]
    entered, inputs, end = [], {}, {}
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=REPO) as proc:
        for line in proc.stdout:
            message = json.loads(line)
            if message["type"] == "task":
                resource = message["resource"]
                inputs[resource] = message["input"]
                reply = ({"error": fail[resource], "cause": "canned failure"} if resource in fail
                         else {"output": CANNED[resource]})
                proc.stdin.write(json.dumps({"id": message["id"], **reply}) + "\n")
                proc.stdin.flush()
            elif message["type"] == "event" and message["event"]["type"] == "StateEntered":
                entered.append(message["event"]["state"]["name"])
            elif message["type"] == "end":
                end = message
        proc.stdin.close()
        proc.wait(timeout=60)
    return entered, end, inputs


needs_runner = pytest.mark.skipif(
    shutil.which("node") is None or not (REPO / "node_modules" / "aws-local-stepfunctions").exists(),
    reason="node or aws-local-stepfunctions not installed")


@needs_runner
def test_an_execution_with_tune_true_tunes_and_polls_the_tuning_job_in_the_training_loop():
    entered, end, inputs = execute({"run_id": "r-1", "triggers": [], "full": True, "tune": True})
    assert entered[:6] == ["MergeData", "TrainOrTune", "StartTuning", "WaitForTraining", "CheckTraining",
                           "TrainingStatus"]
    assert "StartTraining" not in entered
    assert inputs["CheckTraining"]["training"]["tuning_job"] == "abt-1"
    assert entered[-1] == "CandidateRejected" and end["status"] == "SUCCEEDED"


@needs_runner
@pytest.mark.parametrize("execution_input", [{}, {"tune": False}], ids=["tune missing", "tune false"])
def test_an_execution_without_tune_true_trains_as_before(execution_input):
    entered, end, _ = execute({"run_id": "r-2", "triggers": [], "full": True, **execution_input})
    assert entered[:3] == ["MergeData", "TrainOrTune", "StartTraining"] and "StartTuning" not in entered
    assert end["status"] == "SUCCEEDED"


@needs_runner
def test_a_tuning_config_error_is_recorded_and_fails_the_run():
    entered, end, inputs = execute({"run_id": "r-3", "triggers": [], "full": True, "tune": True},
                                   fail={"StartTuning": "TuningConfigError"})
    assert entered[-3:] == ["StartTuning", "RecordFailure", "RunFailed"]
    assert inputs["RecordFailure"]["error"]["Error"] == "TuningConfigError"
    assert end["status"] == "FAILED" and end["error"] == "TuningConfigError"


def runner_overrides(scale: str) -> dict:
    """The Wait and Retry overrides the local runner gives aws-local-stepfunctions for the ASL file at ``scale``."""
    out = subprocess.run(["node", str(RUNNER), "--definition", str(ASL), "--input", "{}", "--time-scale", scale,
                          "--print-overrides"], capture_output=True, text=True, cwd=REPO, timeout=60, check=True)
    return json.loads(out.stdout)


def test_local_waits_and_retry_pauses_follow_the_asl_seconds_times_the_scale(definition):
    states = definition["States"]
    # At scale 1 nothing is overridden: the interpreter waits the ASL's Seconds and backs off as its Retry says.
    assert runner_overrides("1.0") == {"waitTimeOverrides": {}, "retryIntervalOverrides": {}}
    scaled = runner_overrides("0.01")
    assert scaled["waitTimeOverrides"] == {"WaitForTraining": states["WaitForTraining"]["Seconds"] * 10,
                                           "WaitForEndpoint": states["WaitForEndpoint"]["Seconds"] * 10}
    assert scaled["waitTimeOverrides"]["WaitForTraining"] == 300  # 30 s in the ASL, not a fixed local interval
    retried = {name: [r["IntervalSeconds"] * 10 for r in state["Retry"]] for name, state in states.items()
               if "Retry" in state}
    assert scaled["retryIntervalOverrides"] == retried and retried["UpdateEndpoint"] == [300, 50, 20]


# Events Step Functions records per round of a wait loop: Wait entered/exited, Task entered, Lambda scheduled/started/
# succeeded, Task exited, Choice entered/exited.
EVENTS_PER_POLL_ROUND = 9
HISTORY_EVENT_LIMIT = 25_000  # a standard execution fails once its history reaches this (Step Functions quotas)


def test_the_poll_loops_stay_within_the_execution_history_limit_for_the_whole_execution_timeout(definition):
    """Shorter polls answer sooner (the first model goes live a poll after its seconds of training) but every round
    adds events: even a run that spends its whole TimeoutSeconds polling at the shortest Wait stays under the quota."""
    waits = [s["Seconds"] for s in definition["States"].values() if s["Type"] == "Wait"]
    rounds = definition["TimeoutSeconds"] / min(waits)
    assert rounds * EVENTS_PER_POLL_ROUND < HISTORY_EVENT_LIMIT
    assert max(waits) <= 30  # the first (linear) model is live within a minute or so of starting
