"""Step Functions task CheckTraining: Training job status for the wait loop's Choice state.

Its step is the one the registry autobert.workflow.tasks names; the local runner calls that step too.
"""

from autobert.bootstrap import bootstrap
from autobert.workflow.tasks import task_handler

services = bootstrap()
lambda_handler = task_handler("CheckTraining", services)
