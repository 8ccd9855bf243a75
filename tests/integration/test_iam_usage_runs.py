"""The static call analysis (``iam_usage``) and the template's roles against real runs: while the handler scenarios of
``test_sagemaker_handlers.py`` run against moto, every AWS operation a handler calls is one the analysis found for
that handler (so the IAM checks, which rely on it, miss no call those runs make), and every S3 object it reads or
writes is granted to its function's role in the packaged template (the key prefixes the roles were narrowed to).

Each botocore API call is attributed to the handler whose ``functions/<name>.py`` frame is on the stack (a task's
shell: the frame of the handler ``task_handler`` made for it, which runs that task's step); calls the scenarios make
themselves (to inspect moto's state) are not a handler's and are left out.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import botocore.client
import pytest
import test_sagemaker_handlers as scenarios
from iam_usage import iam_action, usage_of
from osls_package import package, requires_osls
from test_iam_policies import Resolver, covered, grants, lambda_roles, role_policies

from autobert.workflow import tasks

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
TASK_HANDLER = (tasks.__file__, "lambda_handler")  # the Lambda handler task_handler() makes for a task's shell
# The scenarios that call the Lambda handlers (some call the steps' functions directly).
SCENARIOS = [fn for name, fn in inspect.getmembers(scenarios, inspect.isfunction)
             if name.startswith("test_") and "handlers" in inspect.signature(fn).parameters
             and ".lambda_handler(" in inspect.getsource(fn)]


def handler_on_stack() -> str | None:
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.parent == FUNCTIONS:
            return f"functions.{path.stem}"
        if (frame.f_code.co_filename, frame.f_code.co_name) == TASK_HANDLER:  # the task whose step it calls
            step = frame.f_locals["step"]
            [task] = [t for t in tasks.TASKS.values() if (t.module, t.function) == (step.__module__, step.__name__)]
            return f"functions.{task.handler}"
        frame = frame.f_back
    return None


@pytest.fixture
def recorded(monkeypatch) -> dict[str, set[tuple[str, str]]]:
    """handler -> {(service, operation)}; S3 object calls also under ``handler + "#keys"`` as (action, key)."""
    calls: dict[str, set[tuple[str, str]]] = {}
    original = botocore.client.BaseClient._make_api_call

    def record(self, operation_name, api_params):
        handler = handler_on_stack()
        if handler:
            service = self.meta.service_model.service_name
            calls.setdefault(handler, set()).add((service, operation_name))
            if service == "s3" and "Key" in api_params:
                calls.setdefault(f"{handler}#keys", set()).add((iam_action(service, operation_name),
                                                                api_params["Key"]))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    return calls


@pytest.fixture(scope="module")
def template() -> dict:
    return package().template


def test_there_are_scenarios_to_replay():
    assert len(SCENARIOS) >= 8


@requires_osls
@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[fn.__name__ for fn in SCENARIOS])
def test_every_call_a_handler_makes_in_a_run_is_found_and_granted(scenario, recorded, request, template):
    scenario(**{name: request.getfixturevalue(name) for name in inspect.signature(scenario).parameters})
    assert recorded, "the scenario called no handler"
    resolve = Resolver(template)
    bucket = resolve.name_of("Bucket")
    roles, policies = lambda_roles(template), role_policies(template, resolve)
    for handler, calls in recorded.items():
        if handler.endswith("#keys"):
            statements = policies[roles[handler.removesuffix("#keys")][0]]
            for action, key in calls:
                arn = f"arn:aws:s3:::{bucket}/{key}"
                assert any(covered(arn, g) for g in grants(statements, action)), f"{handler}: {action} {key}"
        else:
            assert calls - usage_of(handler).calls == set(), handler
