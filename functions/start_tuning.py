"""Step Functions task StartTuning: Start a SageMaker tuning job instead of one training job (execution input tune).

Its step is the one the registry autobert.workflow.tasks names; the local runner calls that step too.
"""

from autobert.bootstrap import bootstrap
from autobert.workflow.tasks import task_handler

services = bootstrap()
lambda_handler = task_handler("StartTuning", services)
