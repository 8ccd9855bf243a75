"""The task registry (``autobert.workflow.tasks``) against everything else that names the state machine's tasks: the
ASL file's Task states, ``serverless.yml`` (what AWS reads: each task's function, role, DefinitionSubstitution,
InvokeFunction grant, log group, checkov notes) and the Lambda shells in ``functions/``. Each check is also shown to
name the omission when one of those is missing."""

from __future__ import annotations

import ast
import copy
import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autobert.serverless_yml import load
from autobert.workflow.tasks import TASKS, Task

REPO = Path(__file__).resolve().parents[2]
ASL = REPO / "statemachines" / "retrain.asl.json"
FUNCTIONS = REPO / "functions"


def task_resources(states: dict) -> dict[str, str]:
    """Task state name -> its Resource, nested states included (as ``statemachines/local/run.mjs`` walks them)."""
    out = {}
    for name, state in states.items():
        if state["Type"] == "Task":
            out[name] = state["Resource"]
        for inner in [*(b["States"] for b in state.get("Branches", [])),
                      *(state[k]["States"] for k in ("Iterator", "ItemProcessor") if k in state)]:
            out |= task_resources(inner)
    return out


def shell_task(path: Path) -> str | None:
    """The task a handler file is the shell of: the constant first argument of its ``task_handler(...)`` call."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "task_handler" and \
                node.args and isinstance(node.args[0], ast.Constant):
            return node.args[0].value
    return None


def arn_of(task: Task) -> dict:
    return {"Fn::GetAtt": [task.logical_id(), "Arn"]}


def mismatches(config: dict, definition: dict, functions: Path = FUNCTIONS) -> list[str]:
    """Everything in the ASL, serverless.yml and the handler files that disagrees with the registry, one line each
    (all of them at once: a task being added gets the whole list of what it still lacks)."""
    problems = []
    resources = task_resources(definition["States"])
    for state, resource in resources.items():
        if resource not in {t.resource for t in TASKS.values()}:
            problems.append(f"ASL state {state}: Resource {resource} is no task of the registry")
    for task in TASKS.values():
        if task.resource not in resources.values():
            problems.append(f"{task.name}: no Task state of the ASL has Resource {task.resource}")

    declared = config["functions"]
    cfn = config["resources"]["Resources"]
    extensions = config["resources"]["extensions"]
    substitutions = extensions["RetrainStateMachine"]["Properties"]["DefinitionSubstitutions"]
    machine = config["stepFunctions"]["stateMachines"]["retrain"]
    invokable = [arn for st in machine["iamRoleStatements"] if st["Action"] == "lambda:InvokeFunction"
                 for arn in st["Resource"]]
    registered = [arn_of(t) for t in TASKS.values()]
    problems += [f"DefinitionSubstitutions: {key} is no task's" for key in substitutions
                 if key not in {t.placeholder for t in TASKS.values()}]
    problems += [f"lambda:InvokeFunction: {arn} is no task's function" for arn in invokable if arn not in registered]
    for task in TASKS.values():
        role, log_group = task.logical_id("Role"), task.logical_id("LogGroup")
        fn = declared.get(task.function_key)
        if fn is None:
            problems.append(f"{task.name}: serverless.yml has no function {task.function_key}")
        elif fn["handler"] != task.handler_path:
            problems.append(f"{task.name}: function {task.function_key} has handler {fn['handler']}, "
                            f"not {task.handler_path}")
        if fn and fn.get("role") != role:
            problems.append(f"{task.name}: function {task.function_key} has role {fn.get('role')}, not its own "
                            f"{role}")
        elif cfn.get(role, {}).get("Type") != "AWS::IAM::Role":
            problems.append(f"{task.name}: resources.Resources.{role} (an AWS::IAM::Role) is missing")
        if [f.get("role") for f in declared.values()].count(role) > 1:
            problems.append(f"{task.name}: role {role} is shared with another function")
        if substitutions.get(task.placeholder) != arn_of(task):
            problems.append(f"{task.name}: DefinitionSubstitutions.{task.placeholder} must be {arn_of(task)}")
        if arn_of(task) not in invokable:
            problems.append(f"{task.name}: the state machine's lambda:InvokeFunction does not name {task.logical_id()}")
        if "KmsKeyId" not in (extensions.get(log_group) or {}).get("Properties", {}):
            problems.append(f"{task.name}: resources.extensions.{log_group} (the encrypted log group) is missing")
        if "checkov" not in (extensions.get(task.logical_id()) or {}).get("Metadata", {}):
            problems.append(f"{task.name}: resources.extensions.{task.logical_id()} (its checkov notes) is missing")
        shell = functions / f"{task.handler}.py"
        found = shell_task(shell) if shell.is_file() else None
        if found != task.name:
            problems.append(f"{task.name}: {shell.relative_to(shell.parents[1])} must be "
                            f'`lambda_handler = task_handler("{task.name}", services)`, names {found}')
    return problems


@pytest.fixture(scope="module")
def config() -> dict:
    return load()


@pytest.fixture(scope="module")
def definition() -> dict:
    return json.loads(ASL.read_text())


def test_the_asl_serverless_yml_and_the_handlers_agree_with_the_registry(config, definition):
    assert mismatches(config, definition) == []


def test_every_step_is_a_function_of_services_and_the_execution_state():
    for task in TASKS.values():
        assert list(inspect.signature(task.step()).parameters) == ["services", "event"], task.name


def test_the_registry_imports_no_step_module():
    """A Lambda imports only its own step's module (merge_data's pandas stays out of the others)."""
    code = "import sys, autobert.workflow.tasks; print(sorted(m for m in sys.modules if 'steps' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# -------------------------------------------------------------------------- each omission is named, on a copy
def without(path: str):
    """A change to a copy of serverless.yml: drop the key at ``path`` (dotted)."""
    def change(config: dict, definition: dict) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        del node[last]
    return change


def drop_invoke_grant(config: dict, definition: dict) -> None:
    [statement] = config["stepFunctions"]["stateMachines"]["retrain"]["iamRoleStatements"]
    statement["Resource"].remove({"Fn::GetAtt": ["EvaluateLambdaFunction", "Arn"]})


def share_role(config: dict, definition: dict) -> None:
    config["functions"]["checkEndpoint"]["role"] = "UpdateEndpointRole"


def wrong_handler(config: dict, definition: dict) -> None:
    config["functions"]["startTraining"]["handler"] = "functions/start_tuning.lambda_handler"


def extra_state(config: dict, definition: dict) -> None:
    definition["States"]["Unregistered"] = {"Type": "Task", "Resource": "${UnregisteredFunctionArn}", "End": True}


def misspell_resource(config: dict, definition: dict) -> None:
    definition["States"]["RecordFailure"]["Resource"] = "${RecordFailuresFunctionArn}"


OMISSIONS = {  # a change -> the problems named (their beginnings)
    "function": (without("functions.mergeData"), ["MergeData: serverless.yml has no function mergeData"]),
    "handler": (wrong_handler, ["StartTraining: function startTraining has handler functions/start_tuning"]),
    "role": (without("resources.Resources.StartTuningRole"),
             ["StartTuning: resources.Resources.StartTuningRole (an AWS::IAM::Role) is missing"]),
    "shared role": (share_role, ["UpdateEndpoint: role UpdateEndpointRole is shared with another function",
                                 "CheckEndpoint: function checkEndpoint has role UpdateEndpointRole, not its own"]),
    "substitution": (without("resources.extensions.RetrainStateMachine.Properties.DefinitionSubstitutions"
                             ".CheckTrainingFunctionArn"),
                     ["CheckTraining: DefinitionSubstitutions.CheckTrainingFunctionArn must be"]),
    "invoke grant": (drop_invoke_grant,
                     ["Evaluate: the state machine's lambda:InvokeFunction does not name EvaluateLambdaFunction"]),
    "log group": (without("resources.extensions.UpdateEndpointLogGroup"),
                  ["UpdateEndpoint: resources.extensions.UpdateEndpointLogGroup (the encrypted log group)"]),
    "checkov notes": (without("resources.extensions.RecordFailureLambdaFunction"),
                      ["RecordFailure: resources.extensions.RecordFailureLambdaFunction (its checkov notes)"]),
    "ASL state without a task": (extra_state,
                                 ["ASL state Unregistered: Resource ${UnregisteredFunctionArn} is no task of"]),
    "task without an ASL state": (misspell_resource,
                                  ["ASL state RecordFailure: Resource ${RecordFailuresFunctionArn} is no task",
                                   "RecordFailure: no Task state of the ASL has Resource ${RecordFailureFunctionArn}"]),
}


@pytest.mark.parametrize("omission", OMISSIONS)
def test_a_copy_lacking_one_piece_is_named(config, definition, omission):
    change, expected = OMISSIONS[omission]
    config, definition = copy.deepcopy(config), copy.deepcopy(definition)
    change(config, definition)
    problems = mismatches(config, definition)
    assert len(problems) == len(expected) and all(p.startswith(e) for p, e in zip(problems, expected, strict=True)), \
        problems


def test_a_shell_calling_another_tasks_step_is_named(tmp_path, config, definition):
    shutil.copytree(FUNCTIONS, tmp_path / "functions", ignore=shutil.ignore_patterns("__pycache__"))
    shell = tmp_path / "functions" / "evaluate.py"
    shell.write_text(shell.read_text().replace('task_handler("Evaluate"', 'task_handler("CheckEndpoint"'))
    assert mismatches(config, definition, tmp_path / "functions") == [
        'Evaluate: functions/evaluate.py must be `lambda_handler = task_handler("Evaluate", services)`, '
        "names CheckEndpoint"]
