"""The state machine's tasks, one registry: the ASL task name (``${<Name>FunctionArn}`` in
``statemachines/retrain.asl.json``) → the step function that does its work (``autobert.workflow.steps``,
``autobert.workflow.tuning_steps``).

Everything else about a task is named after it by convention, never typed again: its Lambda handler file
``functions/<snake_name>.py`` (a two-line shell over :func:`task_handler`), its ``serverless.yml`` function key
(``mergeData``), role (``MergeDataRole``), the framework's logical ids (``MergeDataLambdaFunction``,
``MergeDataLogGroup``) and the DefinitionSubstitution that puts the function's ARN into the ASL. The local runner
(``autobert.workflow.local``) calls the same steps in-process. ``serverless.yml`` stays what AWS reads;
``tests/unit/test_tasks.py`` checks that it agrees with this registry.

Adding a task: its step function, an entry here, the Task state in the ASL, ``functions/<snake_name>.py`` and in
``serverless.yml`` the function, its role, the DefinitionSubstitution, the InvokeFunction grant, its log group and
its checkov notes (the test names whichever is missing).

A step module is imported only by the handler (or runner) that calls it: this module imports none, so a Lambda loads
only what its own step needs.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autobert.bootstrap import Services

Step = Callable[["Services", dict], dict]


@dataclass(frozen=True)
class Task:
    name: str  # the ASL task name: the placeholder ``${<name>FunctionArn}`` of its Task state
    module: str  # where its step function is
    function: str  # the step function: (services, execution state) -> its result

    def step(self) -> Step:
        """The step function (importing its module)."""
        return getattr(importlib.import_module(self.module), self.function)

    # Names derived from the task's, the way the deployment spells them ---------------------------------------
    @property
    def handler(self) -> str:
        """The handler module's name: ``functions/<handler>.py`` (``MergeData`` → ``merge_data``)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()

    @property
    def handler_path(self) -> str:
        """``serverless.yml``'s ``handler:`` of the task's function."""
        return f"functions/{self.handler}.lambda_handler"

    @property
    def function_key(self) -> str:
        """The function's key under ``functions:`` in ``serverless.yml`` (``mergeData``)."""
        return self.name[0].lower() + self.name[1:]

    @property
    def placeholder(self) -> str:
        """The DefinitionSubstitutions key, written ``${<placeholder>}`` as the Task state's Resource."""
        return f"{self.name}FunctionArn"

    @property
    def resource(self) -> str:
        """The Task state's ``Resource`` in the ASL file."""
        return f"${{{self.placeholder}}}"

    def logical_id(self, kind: str = "LambdaFunction") -> str:
        """A CloudFormation logical id of the task's: ``LambdaFunction`` (the framework's function), ``LogGroup``
        (the framework's log group of it), ``Role`` (its own IAM role)."""
        return f"{self.name}{kind}"


TASKS: dict[str, Task] = {task.name: task for task in (
    Task("MergeData", "autobert.workflow.steps", "merge_data"),
    Task("StartTraining", "autobert.workflow.steps", "start_training"),
    # Local runs never set "tune"; if one does, the step refuses it (TuningConfigError) and the run fails clearly.
    Task("StartTuning", "autobert.workflow.tuning_steps", "start_tuning"),
    Task("CheckTraining", "autobert.workflow.steps", "check_training"),
    Task("Evaluate", "autobert.workflow.steps", "evaluate"),
    Task("UpdateEndpoint", "autobert.workflow.steps", "update_endpoint"),
    Task("CheckEndpoint", "autobert.workflow.steps", "check_endpoint"),
    Task("RecordFailure", "autobert.workflow.steps", "record_failure"),
)}


def task_handler(name: str, services: Services) -> Callable[[dict, Any], dict]:
    """The Lambda handler of task ``name``: its step over ``services``, with powertools' structured logging of the
    invocation (event included). The step's module is imported now, at the Lambda's init. An exception's class name
    is the errorType the state machine's Retry/Catch match."""
    from aws_lambda_powertools import Logger

    task = TASKS[name]
    step = task.step()
    logger = Logger(service="retrain")

    @logger.inject_lambda_context(log_event=True)
    def lambda_handler(event: dict, context: Any) -> dict:
        return step(services, event)

    return lambda_handler
