"""The state machine definition: valid ASL (asl-validator), the states the design names, a Catch on every task."""

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
PLACEHOLDERS = {"MergeData", "StartTraining", "CheckTraining", "Evaluate", "UpdateEndpoint", "CheckEndpoint",
                "RecordFailure"}


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


def test_task_resources_are_the_cloudformation_placeholders_serverless_substitutes(definition):
    resources = {s["Resource"] for s in definition["States"].values() if s["Type"] == "Task"}
    assert resources == {f"${{{name}FunctionArn}}" for name in PLACEHOLDERS}


def test_the_happy_path_visits_the_designed_states_in_order(definition):
    states = definition["States"]
    assert definition["StartAt"] == "MergeData"
    assert states["MergeData"]["Next"] == "StartTraining"
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
    from autobert.workflow import errors as workflow_errors

    known = {n for n in dir(workflow_errors) + dir(base_errors) + dir(ports) if n[0].isupper()}
    for state in definition["States"].values():
        for rule in state.get("Retry", []) + state.get("Catch", []):
            for name in rule["ErrorEquals"]:
                assert name in known or name.startswith(("States.", "Lambda.")), name
