"""Workflow errors. The class name is the ``errorType`` Lambda reports and the ``Error`` the state machine's
Retry/Catch match, locally and on AWS: never rename one without updating ``statemachines/retrain.asl.json``."""

from autobert.errors import AutobertError


class WorkflowError(AutobertError):
    """Base class of the workflow's own failures."""


class TransientError(WorkflowError):
    """Throttling or a temporary service error: the state machine retries with backoff."""


class NoDatasetError(WorkflowError):
    """There is no current dataset to merge feedback into (run `autobert prepare`, or import one)."""


class TrainingStartError(WorkflowError):
    """The training job could not be started (bad configuration, quota, missing channel)."""


class TrainingJobFailed(WorkflowError):
    """The training job ended Failed or Stopped."""


class TrainingTimeout(WorkflowError):
    """The training job did not finish within the workflow's overall limit (it is stopped)."""


class EvaluationError(WorkflowError):
    """The training job's holdout report (holdout.json) is missing or unreadable."""


class DeploymentError(WorkflowError):
    """The endpoint update failed or was rolled back; the previous model keeps serving."""


class EndpointNotReady(WorkflowError):
    """The endpoint cannot take this update yet (a Failed endpoint being deleted to be recreated, or another update
    in progress): the state machine retries UpdateEndpoint with a long backoff."""


class UnknownModelVersion(WorkflowError):
    """No such model version in the registry (rollback)."""


class RunInProgress(WorkflowError):
    """Another retraining run holds the lock; the trigger was recorded for the next run."""
