"""Step Functions task Evaluate: Gate the candidate against the live model on the fixed holdout; register the version.

Its step is the one the registry autobert.workflow.tasks names; the local runner calls that step too.
"""

from autobert.bootstrap import bootstrap
from autobert.workflow.tasks import task_handler

services = bootstrap()
lambda_handler = task_handler("Evaluate", services)
