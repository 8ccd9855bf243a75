"""Step Functions task UpdateEndpoint: Start putting the candidate live on the endpoint (same name, blue/green).

Its step is the one the registry autobert.workflow.tasks names; the local runner calls that step too.
"""

from autobert.bootstrap import bootstrap
from autobert.workflow.tasks import task_handler

services = bootstrap()
lambda_handler = task_handler("UpdateEndpoint", services)
