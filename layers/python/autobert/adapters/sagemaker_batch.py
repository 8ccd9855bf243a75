"""Bulk predictions on AWS: a SageMaker Batch Transform job over the live model (CreateTransformJob).

The texts go to the bucket as JSON lines (one ``{"text": ...}`` per line), cut into one part per transform instance
(``batch/<job>/input/part-00000.jsonl`` ...): Batch Transform hands whole S3 objects to its instances, so a single
file would keep every instance but one idle. The job runs the SageMaker model the deployment created for the version
(``<endpoint>-<version>``: the serving container with ``inference.py``) with ``SplitType: Line`` and
``BatchStrategy: MultiRecord`` (several lines per request, up to ``MAX_PAYLOAD_MB``), and ``AssembleWith: Line`` puts
one output line per input line, in input order, into ``batch/<job>/output/part-00000.jsonl.out`` ...; the parts are
joined in order. A request of ``MAX_PAYLOAD_MB`` of text is many hundred documents, so the container's model-server
timeout and the job's invocation timeout are raised to ``INVOCATION_TIMEOUT_SECONDS`` (their defaults, 60 s and 600 s,
would fail a full request on a CPU instance).

The job's name is a digest of the version and the input, so a second run over the same rows (a resumed
``predict-batch``) finds its job instead of starting another; a job of that name that Failed or was Stopped is not
reused (SageMaker never reuses a name): the next attempt gets the name with ``-2``, ``-3`` ... ``batch/<job>/job.json``
records the job. The operator's credentials run it (``docs/deploy.md``: the permissions it needs); the job reads and
writes the bucket as the model's execution role.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from autobert import layout
from autobert.adapters.aws_errors import already_exists, error_message
from autobert.adapters.sagemaker_deploy import SageMakerEndpointDeployer
from autobert.batch import BatchError
from autobert.config import Settings
from autobert.contracts import JSON_LINES
from autobert.ports import ObjectStore

# One request's body: about 500 posts of this corpus, a minute or two of inference on a CPU instance.
MAX_PAYLOAD_MB = 1
# The longest a request may take: the container's model server (SAGEMAKER_MODEL_SERVER_TIMEOUT, default 60 s) and the
# job's invocation timeout (ModelClientConfig, at most 3,600 s).
INVOCATION_TIMEOUT_SECONDS = 3600
MAX_ATTEMPTS = 20  # names tried for one input before giving up: a job that keeps failing needs a person
ENDED_UNSUCCESSFULLY = ("Failed", "Stopped")


def job_name(version: str, body: bytes) -> str:
    return "ab-batch-" + hashlib.sha256(version.encode() + b"\0" + body).hexdigest()[:20]


def attempt_name(name: str, attempt: int) -> str:
    """The job name of the ``attempt``-th job over one input: the name itself, then ``-2``, ``-3`` ..."""
    return name if attempt == 1 else f"{name}-{attempt}"


def input_parts(lines: list[str], parts: int) -> list[str]:
    """``lines`` cut into at most ``parts`` consecutive, non-empty parts of near-equal size (one per instance)."""
    parts = max(1, min(parts, len(lines)))
    size, extra = divmod(len(lines), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (k < extra)
        out.append("".join(lines[start:end]))
        start = end
    return out


def part_key(index: int) -> str:
    return f"part-{index:05d}.jsonl"


def transform_request(settings: Settings, job: str, model_name: str, store: ObjectStore) -> dict[str, Any]:
    """The CreateTransformJob request of ``job`` over ``model_name``."""
    prefix = layout.batch_prefix(job)
    return {
        "TransformJobName": job,
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "MaxConcurrentTransforms": settings.batch_max_concurrent_transforms,
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": INVOCATION_TIMEOUT_SECONDS, "InvocationsMaxRetries": 1},
        "Environment": {"SAGEMAKER_MODEL_SERVER_TIMEOUT": str(INVOCATION_TIMEOUT_SECONDS)},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": store.uri(prefix + "input/")}},
            "ContentType": JSON_LINES,
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": store.uri(prefix + "output/"), "Accept": JSON_LINES,
                            "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": settings.batch_instance_type,
                               "InstanceCount": settings.batch_instance_count},
    }


class SageMakerBatchTransform:
    def __init__(self, client, store: ObjectStore, settings: Settings, *, poll_seconds: int = 30):
        self.client = client
        self.store = store
        self.settings = settings
        self.poll_seconds = poll_seconds

    def predict(self, texts: list[str], version: str, top_k: int | None) -> Iterator[list[dict[str, Any]]]:
        extra = {"top_k": top_k} if top_k else {}
        lines = [json.dumps({"text": t, **extra}) + "\n" for t in texts]
        name = job_name(version, "".join(lines).encode())
        model_name = SageMakerEndpointDeployer(self.client, self.settings).resource_name(version)
        parts = input_parts(lines, self.settings.batch_instance_count)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            job = attempt_name(name, attempt)
            if self.start(job, model_name, parts, version, len(texts)):
                break
            status = self.client.describe_transform_job(TransformJobName=job)["TransformJobStatus"]
            if status not in ENDED_UNSUCCESSFULLY:
                break  # a resumed run: its job is running or done, and is followed below
        else:
            raise BatchError(f"{MAX_ATTEMPTS} transform jobs over this input ended Failed or Stopped (the last: "
                             f"{job}); see their FailureReason")
        with suppress(WaiterError):  # the waiter raises on Failed, a terminal state too: its reason is read below
            self.client.get_waiter("transform_job_completed_or_stopped").wait(
                TransformJobName=job, WaiterConfig={"Delay": self.poll_seconds, "MaxAttempts": 100_000})
        job_state = self.client.describe_transform_job(TransformJobName=job)
        status = job_state["TransformJobStatus"]
        if status != "Completed":
            raise BatchError(f"transform job {job} {status}: {job_state.get('FailureReason', 'no reason given')}")
        output = layout.batch_prefix(job) + "output/"
        predictions: list[dict[str, Any]] = []
        for index in range(len(parts)):
            text = self.store.get_bytes(output + part_key(index) + ".out").decode()
            predictions += [json.loads(line) for line in text.splitlines() if line.strip()]
        if len(predictions) != len(texts):
            raise BatchError(f"transform job {job} wrote {len(predictions)} predictions for {len(texts)} texts")
        yield predictions

    def start(self, job: str, model_name: str, parts: list[str], version: str, rows: int) -> bool:
        """Upload the input parts of ``job`` and create it; False if a job of that name exists already."""
        prefix = layout.batch_prefix(job)
        for index, part in enumerate(parts):
            self.store.put_bytes(prefix + "input/" + part_key(index), part.encode(), if_absent=True)
        request = transform_request(self.settings, job, model_name, self.store)
        try:
            self.client.create_transform_job(**request)
        except ClientError as exc:
            if already_exists(exc):
                return False
            raise BatchError(f"CreateTransformJob {job}: {error_message(exc) or exc}") from None
        self.store.put_json(prefix + "job.json", {"job": job, "model_version": version, "model_name": model_name,
                                                  "rows": rows, "parts": len(parts), "request": request})
        return True
