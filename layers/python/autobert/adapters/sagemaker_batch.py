"""Bulk predictions on AWS: a SageMaker Batch Transform job over the live model (CreateTransformJob).

The texts go to the bucket as JSON lines (``batch/<job>/input.jsonl``, one ``{"text": ...}`` per line); the job runs
the SageMaker model the deployment created for the version (``<endpoint>-<version>``: the serving container with
``inference.py``) with ``SplitType: Line`` and ``BatchStrategy: MultiRecord`` (several lines per request, up to
``MaxPayloadInMB``), and ``AssembleWith: Line`` puts one output line per input line, in input order, into
``batch/<job>/output/input.jsonl.out``. The job's name is a digest of the version and the input, so a second run over
the same rows (a resumed ``predict-batch``) finds its job instead of starting another; ``batch/<job>/job.json``
records it. The operator's credentials run it (``docs/deploy.md``: the permissions it needs); the job reads and
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

MAX_PAYLOAD_MB = 6  # the serving container's request limit, as for the real-time endpoint


def job_name(version: str, body: bytes) -> str:
    return "ab-batch-" + hashlib.sha256(version.encode() + b"\0" + body).hexdigest()[:20]


def transform_request(settings: Settings, job: str, model_name: str, store: ObjectStore) -> dict[str, Any]:
    """The CreateTransformJob request of ``job`` over ``model_name``."""
    prefix = layout.batch_prefix(job)
    return {
        "TransformJobName": job,
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "MaxConcurrentTransforms": settings.batch_max_concurrent_transforms,
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 1},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": store.uri(prefix + "input.jsonl")}},
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
        body = "".join(json.dumps({"text": t, **extra}) + "\n" for t in texts).encode()
        job = job_name(version, body)
        prefix = layout.batch_prefix(job)
        self.store.put_bytes(prefix + "input.jsonl", body, if_absent=True)
        model_name = SageMakerEndpointDeployer(self.client, self.settings).resource_name(version)
        request = transform_request(self.settings, job, model_name, self.store)
        try:
            self.client.create_transform_job(**request)
        except ClientError as exc:
            if not already_exists(exc):  # a resumed run: its job exists already, and is followed below
                raise BatchError(f"CreateTransformJob {job}: {error_message(exc) or exc}") from None
        self.store.put_json(prefix + "job.json", {"job": job, "model_version": version, "model_name": model_name,
                                                  "rows": len(texts), "request": request})
        with suppress(WaiterError):  # the waiter raises on Failed, a terminal state too: its reason is read below
            self.client.get_waiter("transform_job_completed_or_stopped").wait(
                TransformJobName=job, WaiterConfig={"Delay": self.poll_seconds, "MaxAttempts": 100_000})
        job_state = self.client.describe_transform_job(TransformJobName=job)
        status = job_state["TransformJobStatus"]
        if status != "Completed":
            raise BatchError(f"transform job {job} {status}: {job_state.get('FailureReason', 'no reason given')}")
        lines = self.store.get_bytes(prefix + "output/input.jsonl.out").decode().splitlines()
        predictions = [json.loads(line) for line in lines if line.strip()]
        if len(predictions) != len(texts):
            raise BatchError(f"transform job {job} wrote {len(predictions)} predictions for {len(texts)} texts")
        yield predictions
