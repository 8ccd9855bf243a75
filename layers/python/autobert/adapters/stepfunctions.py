"""Starting and listing retraining runs on AWS: executions of the retraining state machine."""

from __future__ import annotations

import json

from autobert.adapters.aws_errors import aws_errors, error_code
from autobert.workflow.errors import RunInProgress, WorkflowError


class StepFunctionsRuns:
    def __init__(self, client, state_machine_arn: str | None):
        self.client = client
        self.arn = state_machine_arn

    def _arn(self) -> str:
        if not self.arn:
            raise WorkflowError("AUTOBERT_STATE_MACHINE_ARN must be set in aws mode")
        return self.arn

    def running(self) -> list[dict]:
        with aws_errors(WorkflowError, "ListExecutions"):
            pages = self.client.get_paginator("list_executions").paginate(stateMachineArn=self._arn(),
                                                                         statusFilter="RUNNING")
            return [e for page in pages for e in page["executions"]]

    def start(self, run_id: str, payload: dict) -> str:
        try:
            with aws_errors(WorkflowError, "StartExecution"):
                response = self.client.start_execution(stateMachineArn=self._arn(), name=run_id,
                                                       input=json.dumps(payload))
        except WorkflowError as exc:
            if isinstance(exc.__cause__, Exception) and getattr(exc.__cause__, "response", None) and \
                    error_code(exc.__cause__) == "ExecutionAlreadyExists":
                raise RunInProgress(f"run {run_id} was already started") from exc
            raise
        return response["executionArn"]

    def status(self, execution_arn: str) -> str:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED (or PENDING_REDRIVE)."""
        with aws_errors(WorkflowError, "DescribeExecution"):
            return self.client.describe_execution(executionArn=execution_arn)["status"]

    def list(self, max_results: int = 50) -> list[dict]:
        with aws_errors(WorkflowError, "ListExecutions"):
            return self.client.list_executions(stateMachineArn=self._arn(), maxResults=max_results)["executions"]

    def history(self, execution_arn: str) -> list[dict]:
        with aws_errors(WorkflowError, "GetExecutionHistory"):
            pages = self.client.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
            return [e for page in pages for e in page["events"]]
