"""SageMaker training jobs (CreateTrainingJob / DescribeTrainingJob / StopTrainingJob) running training/train.py.

The training code is the ``code/sourcedir.tar.gz`` object (train.py + the autobert package), run by the PyTorch
training image through SageMaker's script mode (``sagemaker_program`` / ``sagemaker_submit_directory``). Artifacts
land under ``<output>/<job_name>/output/{model.tar.gz,output.tar.gz}``, i.e. ``models/<version>/`` with the job name
as the model version.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from autobert import layout
from autobert.adapters.aws_errors import aws_errors
from autobert.config import Settings
from autobert.contracts import METRIC_DEFINITIONS
from autobert.ports import ObjectNotFound, ObjectStore, TrainingJobs, TrainingJobSpec, TrainingJobState
from autobert.training_log import training_progress
from autobert.workflow.errors import EvaluationError, TrainingStartError

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"  # CheckpointConfig.LocalPath (SageMaker's default), train.py's folder
CHANNEL_ROOT = "/opt/ml/input/data"  # where SageMaker puts each input channel in the container
LOG_GROUP = "/aws/sagemaker/TrainingJobs"  # SageMaker writes each training job's log here
MAX_LOG_PAGES = 20  # GetLogEvents pages (up to 1 MB each) read per stream: far more than train.py's log holds
STATUS = {"InProgress": "InProgress", "Completed": "Completed", "Failed": "Failed", "Stopping": "InProgress",
          "Stopped": "Stopped"}

logger = logging.getLogger("autobert.training")


class SageMakerTrainingJobs(TrainingJobs):
    def __init__(self, client, settings: Settings, code_uri: str, store: ObjectStore | None = None, logs=None):
        self.client = client
        self.logs = logs  # a CloudWatch Logs client: where progress() reads the job's log (None: no progress)
        self.settings = settings
        self.code_uri = code_uri
        self.store = store  # the bucket the jobs write to: where read_report finds their output.tar.gz

    def request(self, spec: TrainingJobSpec) -> dict:
        s = self.settings
        if not s.sagemaker_role_arn or not s.training_image_uri:
            raise TrainingStartError("AUTOBERT_SAGEMAKER_ROLE_ARN and AUTOBERT_TRAINING_IMAGE_URI must be set")
        hyperparameters = {**spec.hyperparameters, "sagemaker_program": "train.py",
                           "sagemaker_submit_directory": self.code_uri, **distribution_hyperparameters(s)}
        output = spec.output_uri.rstrip("/")
        return {
            "TrainingJobName": spec.job_name,
            **training_job_definition(
                image_uri=s.training_image_uri, role_arn=s.sagemaker_role_arn, channels=spec.channels,
                output_uri=output, instance_type=s.training_instance_type, max_run_seconds=s.training_max_run_seconds,
                use_spot=s.training_use_spot, checkpoint_uri=f"{output}/{spec.job_name}/checkpoints",
                hyperparameters=hyperparameters, hyperparameters_key="HyperParameters",
                instance_count=s.training_instance_count),
            "Tags": [{"Key": "autobert:run", "Value": str(spec.extra.get("run_id", ""))}],
        }

    def init_model_path(self, channel: str, uri: str) -> str:
        # SageMaker downloads each channel into the container; train.py reads the live model from there.
        return f"{CHANNEL_ROOT}/{channel}"

    def read_report(self, output_uri: str, name: str) -> dict:
        """A report file inside the job's ``output.tar.gz`` (SageMaker packs /opt/ml/output/data there)."""
        try:
            key = output_uri.split("/", 3)[3]
            with tarfile.open(fileobj=io.BytesIO(self.store.get_bytes(key)), mode="r:gz") as archive:
                member = next((m for m in archive.getmembers() if Path(m.name).name == name), None)
                if member is None:
                    raise EvaluationError(f"{output_uri}: no {name} in the training job's output")
                return json.load(archive.extractfile(member))
        except (OSError, ValueError, IndexError, tarfile.TarError, ObjectNotFound) as exc:
            raise EvaluationError(f"{output_uri}: cannot read {name} ({exc})") from exc

    def start(self, spec: TrainingJobSpec) -> None:
        with aws_errors(TrainingStartError, f"CreateTrainingJob {spec.job_name}"):
            self.client.create_training_job(**self.request(spec))

    def describe(self, job_name: str) -> TrainingJobState:
        with aws_errors(TrainingStartError, f"DescribeTrainingJob {job_name}"):
            job = self.client.describe_training_job(TrainingJobName=job_name)
        status = STATUS.get(job["TrainingJobStatus"], "InProgress")
        done = status == "Completed"
        model_uri = job.get("ModelArtifacts", {}).get("S3ModelArtifacts") if done else None
        output = job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        return TrainingJobState(job_name, status, job.get("FailureReason"), model_uri=model_uri,
                                output_uri=f"{output}/{job_name}/output/output.tar.gz" if done else None)

    def stop(self, job_name: str) -> None:
        with aws_errors(TrainingStartError, f"StopTrainingJob {job_name}"):
            self.client.stop_training_job(TrainingJobName=job_name)

    def progress(self, job_name: str) -> dict | None:
        """From the job's CloudWatch log streams (``<job>/algo-1-<time>``; a spot job interrupted and resumed has
        one per start), oldest first: the lines SageMaker's metric definitions read too."""
        if self.logs is None:
            return None
        try:
            streams = self.logs.describe_log_streams(logGroupName=LOG_GROUP,
                                                     logStreamNamePrefix=f"{job_name}/")["logStreams"]
            lines: list[str] = []
            for stream in sorted(streams, key=lambda s: s.get("creationTime", 0)):
                request = {"logGroupName": LOG_GROUP, "logStreamName": stream["logStreamName"], "startFromHead": True}
                for _ in range(MAX_LOG_PAGES):
                    page = self.logs.get_log_events(**request)
                    lines += [event["message"] for event in page["events"]]
                    if not page["events"] or page.get("nextForwardToken") in (None, request.get("nextToken")):
                        break  # the end of the stream: GetLogEvents answers the token it was given
                    request["nextToken"] = page["nextForwardToken"]
        except (ClientError, BotoCoreError) as exc:  # no log group before the first job logs; throttling
            logger.warning("progress of training job %s unknown: %s", job_name, exc)
            return None
        return training_progress(lines)


TORCH_DISTRIBUTED = "sagemaker_torch_distributed_enabled"  # the SDK's distribution={"torch_distributed": ...}


def distribution_hyperparameters(settings: Settings) -> dict[str, str]:
    """The launcher of a training job: with ``training_distributed`` or several instances, the PyTorch container's
    toolkit (sagemaker-pytorch-training) runs train.py under ``torchrun --nnodes <instances> --nproc_per_node
    <GPUs per instance>`` (sagemaker-training's TorchDistributedRunner), which train.py joins as a data-parallel
    job; otherwise one process, as before."""
    if settings.training_distributed or settings.training_instance_count > 1:
        return {TORCH_DISTRIBUTED: "true"}
    return {}


def code_uri(store) -> str:
    return store.uri(layout.TRAINING_CODE)


def training_job_definition(*, image_uri: str, role_arn: str, channels: Mapping[str, str], output_uri: str,
                            instance_type: str, max_run_seconds: int, use_spot: bool, checkpoint_uri: str | None,
                            hyperparameters: Mapping[str, str], hyperparameters_key: str,
                            max_wait_seconds: int | None = None, instance_count: int = 1,
                            volume_gb: int = 30) -> dict[str, Any]:
    """The parts a CreateTrainingJob request and a tuning job's TrainingJobDefinition share: the image with
    train.py's metric definitions (for the console's graphs and the tuner's objective), the channels, the output,
    the instance, the time limits and, with spot, the checkpoint folder. ``hyperparameters_key``: "HyperParameters"
    for a training job, "StaticHyperParameters" for a tuning job's definition. ``checkpoint_uri`` None: no
    checkpoints (spot without resume)."""
    hyperparameters = {k: str(v) for k, v in hyperparameters.items()}
    definition: dict[str, Any] = {
        hyperparameters_key: hyperparameters,
        "AlgorithmSpecification": {"TrainingImage": image_uri, "TrainingInputMode": "File",
                                   "MetricDefinitions": [dict(d) for d in METRIC_DEFINITIONS]},
        "RoleArn": role_arn,
        "InputDataConfig": [
            {"ChannelName": name, "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}}}
            for name, uri in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": instance_count, "VolumeSizeInGB": volume_gb},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_run_seconds},
        "EnableManagedSpotTraining": use_spot,
    }
    if use_spot:
        # Spot capacity can vanish: allow waiting for it, and checkpoint so an interrupted job resumes. SageMaker
        # syncs LocalPath to S3Uri while the job runs and restores it when the interrupted job starts again;
        # train.py writes a checkpoint there after every epoch and resumes from the latest one.
        definition["StoppingCondition"]["MaxWaitTimeInSeconds"] = max_wait_seconds or 2 * max_run_seconds
        if checkpoint_uri:
            definition["CheckpointConfig"] = {"S3Uri": checkpoint_uri, "LocalPath": CHECKPOINT_LOCAL_PATH}
            hyperparameters["checkpoint-dir"] = CHECKPOINT_LOCAL_PATH
    return definition
