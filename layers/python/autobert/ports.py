"""Ports: the small interfaces the domain code talks to. Real adapters live in ``autobert.adapters``
(``local`` for the embedded local stack, ``aws`` for S3/SageMaker/Step Functions); ``autobert.bootstrap`` picks them
from one setting (``AUTOBERT_MODE``). Fakes, if any, live in tests only.

Adapters do no I/O in their constructors.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from autobert.errors import AutobertError, RequestRefused

if TYPE_CHECKING:
    from autobert.tuning.sagemaker import TuningJobConfig, TuningJobState
    from autobert.tuning.space import SearchSpace


class ObjectNotFound(AutobertError):
    """No object under that key."""


class EndpointUnavailable(AutobertError):
    """The inference endpoint is down, missing, updating or saturated; callers answer 503, with ``Retry-After``
    when the endpoint says how long to wait (saturated: a second or so)."""

    def __init__(self, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class EndpointRequestError(RequestRefused):
    """The endpoint refused the request as invalid (4xx): the caller's input is at fault."""

    def __init__(self, status: int, message: str):
        super().__init__(message, status)


class ObjectStore(abc.ABC):
    """The bucket: datasets, feedback, models, registry and run records (S3, or a local folder with the same keys)."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write durably (returns only once the object is stored). With ``if_absent`` an existing object is left
        untouched and False is returned; otherwise True."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Raise ObjectNotFound if missing."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """All keys under ``prefix``, sorted."""

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """Where the object lives, for humans and for SageMaker (``s3://...`` or a local path)."""

    def local_path(self, key: str) -> Path | None:
        """The file or folder of ``key`` on this machine, where the store is a local folder; None otherwise."""
        return None

    def put_json(self, key: str, value: Any, *, if_absent: bool = False) -> bool:
        return self.put_bytes(key, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode(), if_absent=if_absent)

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))


class EndpointClient(abc.ABC):
    """Calls the inference endpoint (sagemaker-runtime InvokeEndpoint, or the local endpoint's /invocations)."""

    @abc.abstractmethod
    def invoke(self, payload: dict) -> dict:
        """Send the inference request JSON; return the response JSON. Raise EndpointUnavailable when the endpoint
        cannot serve (down, updating, timeout) and EndpointRequestError when it rejects the input."""


JobStatus = Literal["InProgress", "Completed", "Failed", "Stopped"]


@dataclass
class TrainingJobSpec:
    job_name: str
    hyperparameters: dict[str, str]
    channels: dict[str, str]  # channel name -> store URI of its data prefix
    output_uri: str  # where the model artifact goes
    extra: dict = field(default_factory=dict)


@dataclass
class TrainingJobState:
    job_name: str
    status: JobStatus
    failure_reason: str | None = None
    model_uri: str | None = None  # model artifact (model.tar.gz on AWS, model folder locally) once Completed
    output_uri: str | None = None  # metrics / evaluation reports once Completed


class Jobs(abc.ABC):
    """What training and tuning jobs share: describe (a state with the TrainingJobs vocabulary's ``status``) and
    stop."""

    @abc.abstractmethod
    def describe(self, job_name: str) -> TrainingJobState | TuningJobState: ...

    @abc.abstractmethod
    def stop(self, job_name: str) -> None: ...

    def stop_if_running(self, job_name: str) -> bool:
        """Stop the job if it is still in progress; True if it was."""
        if self.describe(job_name).status != "InProgress":
            return False
        self.stop(job_name)
        return True


class TrainingJobs(Jobs):
    """SageMaker training jobs, or local training-job processes running training/train.py with the same contract."""

    @abc.abstractmethod
    def start(self, spec: TrainingJobSpec) -> None: ...

    @abc.abstractmethod
    def describe(self, job_name: str) -> TrainingJobState: ...

    @abc.abstractmethod
    def init_model_path(self, channel: str, uri: str) -> str:
        """Where train.py finds the model given as input channel ``channel`` (stored at ``uri``) to start from:
        inside a SageMaker container the channel's folder, locally the model folder itself."""

    @abc.abstractmethod
    def read_report(self, output_uri: str, name: str) -> dict:
        """A JSON report file (``autobert.contracts``: ``HOLDOUT_REPORT_FILE``, ``METRICS_FILE``) a completed job
        wrote to ``output_uri`` (``TrainingJobState.output_uri``); raise EvaluationError if it is missing or
        unreadable."""

    @abc.abstractmethod
    def progress(self, job_name: str) -> dict | None:
        """How far the job has got, from its log (``autobert.training_log``: epoch and step of the totals, loss,
        samples/s, ETA, each finished epoch's validation scores); None while its log shows none yet or cannot be
        read. Display only: never raises for a log that is missing or unreadable."""


class TuningJobs(Jobs):
    """SageMaker hyperparameter tuning jobs (the AWS tuning path; locally `autobert tune` runs the local tuner and
    this port refuses with TuningConfigError)."""

    @abc.abstractmethod
    def new_job_name(self) -> str:
        """A fresh tuning job name (a retried start never collides with the job of a failed attempt)."""

    @abc.abstractmethod
    def start(self, config: TuningJobConfig, space: SearchSpace) -> None:
        """Start a tuning job of training/train.py over ``space``."""

    @abc.abstractmethod
    def init_model_path(self, channel: str, uri: str) -> str:
        """As ``TrainingJobs.init_model_path``, for the tuning job's training jobs."""

    @abc.abstractmethod
    def describe(self, job_name: str) -> TuningJobState: ...


class EndpointDeployer(abc.ABC):
    """Puts a model version live on the one endpoint whose name never changes."""

    @abc.abstractmethod
    def deploy(self, model_version: str, model_uri: str) -> None:
        """Start switching the endpoint to this model (SageMaker: CreateModel, CreateEndpointConfig,
        UpdateEndpoint; local: the endpoint's zero-downtime swap)."""

    @abc.abstractmethod
    def status(self) -> str:
        """``InService``, ``Updating``, ``Creating`` or ``Failed``."""

    @abc.abstractmethod
    def serving_version(self) -> str | None:
        """The model version the endpoint serves now (None: none yet). After an update that ended InService, another
        version than the one deployed means it was rolled back (SageMaker: the endpoint config's name; local: the
        endpoint's status document)."""

    def ensure_scaling(self) -> dict | None:
        """Once the endpoint is InService on a new model: make its instance-count scaling what the settings say
        (SageMaker: Application Auto Scaling's target and policy, upserted; an endpoint that must not scale is
        deregistered). Returns what is in force, None where nothing scales (the local endpoint: one process)."""
        return None


class Workflow(abc.ABC):
    """Serves requests for retraining runs: the state machine on Step Functions, or its local executor."""

    poll_seconds: float = 1.0  # how often a follower (`autobert retrain --wait`) re-reads a run's record

    @abc.abstractmethod
    def check_ready(self) -> None:
        """Raise AutobertError (with what to do) when a run could not end well from here, e.g. the local endpoint
        a local run swaps its model onto is not running."""

    @abc.abstractmethod
    def request(self, kind: str, *, full: bool = False, wait: bool = False, **detail: Any) -> dict:
        """Record a trigger of ``kind`` and start a run serving it unless one is running (then the trigger waits
        for the next run). Returns ``{"status", "trigger", ...}``; with ``wait`` (locally) also the finished run."""
