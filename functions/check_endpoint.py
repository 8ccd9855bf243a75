"""Step Functions task CheckEndpoint: Endpoint status for the wait loop; marks the version live once it serves.

Its step is the one the registry autobert.workflow.tasks names; the local runner calls that step too.
"""

from autobert.bootstrap import bootstrap
from autobert.workflow.tasks import task_handler

services = bootstrap()
lambda_handler = task_handler("CheckEndpoint", services)
