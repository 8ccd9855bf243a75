"""Step Functions task StartTuning: Start a SageMaker tuning job instead of one training job (execution input tune).

The logic is autobert.workflow.tuning_steps.start_tuning (AWS mode only); an exception's class name is the
errorType the state machine's Retry/Catch match.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from autobert.bootstrap import bootstrap
from autobert.workflow import tuning_steps as steps

services = bootstrap()
logger = Logger(service="retrain")


@logger.inject_lambda_context(log_event=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return steps.start_tuning(services, event)
