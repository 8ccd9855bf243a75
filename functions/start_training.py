"""Step Functions task StartTraining: Start the training job (fresh job name per attempt).

The logic is autobert.workflow.steps.start_training (the local runner calls it too); an exception's class name is the
errorType the state machine's Retry/Catch match.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from autobert.bootstrap import bootstrap
from autobert.workflow import steps

services = bootstrap()
logger = Logger(service="retrain")


@logger.inject_lambda_context(log_event=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return steps.start_training(services, event)
