"""Ports: the small interfaces the domain code talks to. Real adapters live in ``autobert.adapters``
(``local`` for the embedded local stack, ``aws`` for S3/SageMaker/Step Functions); ``autobert.bootstrap`` picks them
from one setting (``AUTOBERT_MODE``). Fakes, if any, live in tests only.

Adapters do no I/O in their constructors.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from autobert.errors import AutobertError


class ObjectNotFound(AutobertError):
    """No object under that key."""


class EndpointUnavailable(AutobertError):
    """The inference endpoint is down, missing or updating; callers answer 503."""


class EndpointRequestError(AutobertError):
    """The endpoint refused the request as invalid (4xx): the caller's input is at fault."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


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


class TrainingJobs(abc.ABC):
    """SageMaker training jobs, or local training-job processes running training/train.py with the same contract."""

    @abc.abstractmethod
    def start(self, spec: TrainingJobSpec) -> None: ...

    @abc.abstractmethod
    def describe(self, job_name: str) -> TrainingJobState: ...

    @abc.abstractmethod
    def stop(self, job_name: str) -> None: ...

    def stop_if_running(self, job_name: str) -> bool:
        """Stop the job if it is still in progress; True if it was."""
        if self.describe(job_name).status != "InProgress":
            return False
        self.stop(job_name)
        return True


class TuningJobs(abc.ABC):
    """SageMaker hyperparameter tuning jobs (the AWS tuning path; the local tuner runs in `autobert tune`)."""

    @abc.abstractmethod
    def status(self, job_name: str) -> JobStatus: ...

    @abc.abstractmethod
    def stop(self, job_name: str) -> None: ...

    def stop_if_running(self, job_name: str) -> bool:
        if self.status(job_name) != "InProgress":
            return False
        self.stop(job_name)
        return True


class EndpointDeployer(abc.ABC):
    """Puts a model version live on the one endpoint whose name never changes."""

    @abc.abstractmethod
    def deploy(self, model_version: str, model_uri: str) -> None:
        """Start switching the endpoint to this model (SageMaker: CreateModel, CreateEndpointConfig,
        UpdateEndpoint; local: the endpoint's zero-downtime swap)."""

    @abc.abstractmethod
    def status(self) -> str:
        """``InService``, ``Updating``, ``Creating`` or ``Failed``."""
