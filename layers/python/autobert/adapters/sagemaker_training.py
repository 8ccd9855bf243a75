"""SageMaker training jobs (CreateTrainingJob / DescribeTrainingJob / StopTrainingJob) running training/train.py.

The training code is the ``code/sourcedir.tar.gz`` object (train.py + the autobert package), run by the PyTorch
training image through SageMaker's script mode (``sagemaker_program`` / ``sagemaker_submit_directory``). Artifacts
land under ``<output>/<job_name>/output/{model.tar.gz,output.tar.gz}``, i.e. ``models/<version>/`` with the job name
as the model version.
"""

from __future__ import annotations

from autobert import layout
from autobert.adapters.aws_errors import aws_errors
from autobert.config import Settings
from autobert.ports import TrainingJobs, TrainingJobSpec, TrainingJobState
from autobert.workflow.errors import TrainingStartError

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"  # CheckpointConfig.LocalPath (SageMaker's default), train.py's folder
STATUS = {"InProgress": "InProgress", "Completed": "Completed", "Failed": "Failed", "Stopping": "InProgress",
          "Stopped": "Stopped"}


class SageMakerTrainingJobs(TrainingJobs):
    def __init__(self, client, settings: Settings, code_uri: str):
        self.client = client
        self.settings = settings
        self.code_uri = code_uri

    def request(self, spec: TrainingJobSpec) -> dict:
        s = self.settings
        if not s.sagemaker_role_arn or not s.training_image_uri:
            raise TrainingStartError("AUTOBERT_SAGEMAKER_ROLE_ARN and AUTOBERT_TRAINING_IMAGE_URI must be set")
        hyperparameters = {**spec.hyperparameters, "sagemaker_program": "train.py",
                           "sagemaker_submit_directory": self.code_uri}
        output = spec.output_uri.rstrip("/")
        request = {
            "TrainingJobName": spec.job_name,
            "HyperParameters": hyperparameters,
            "AlgorithmSpecification": {
                "TrainingImage": s.training_image_uri, "TrainingInputMode": "File",
                # train.py's per-epoch log line, for the console's metric graphs and the tuner
                "MetricDefinitions": [
                    {"Name": "train_loss", "Regex": r"train_loss=([0-9.]+)"},
                    {"Name": "val_accuracy", "Regex": r"val_accuracy=([0-9.]+)"},
                    {"Name": "val_macro_f1", "Regex": r"val_macro_f1=([0-9.]+)"},
                ],
            },
            "RoleArn": s.sagemaker_role_arn,
            "InputDataConfig": [
                {"ChannelName": name, "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}}}
                for name, uri in spec.channels.items()
            ],
            "OutputDataConfig": {"S3OutputPath": output},
            "ResourceConfig": {"InstanceType": s.training_instance_type, "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": s.training_max_run_seconds},
            "EnableManagedSpotTraining": s.training_use_spot,
            "Tags": [{"Key": "autobert:run", "Value": str(spec.extra.get("run_id", ""))}],
        }
        if s.training_use_spot:
            # Spot capacity can vanish: allow waiting for it, and checkpoint so an interrupted job resumes. SageMaker
            # syncs LocalPath to S3Uri while the job runs and restores it when the interrupted job starts again;
            # train.py writes a checkpoint there after every epoch and resumes from the latest one.
            request["StoppingCondition"]["MaxWaitTimeInSeconds"] = 2 * s.training_max_run_seconds
            request["CheckpointConfig"] = {"S3Uri": f"{output}/{spec.job_name}/checkpoints",
                                           "LocalPath": CHECKPOINT_LOCAL_PATH}
            hyperparameters["checkpoint-dir"] = CHECKPOINT_LOCAL_PATH
        return request

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


def code_uri(store) -> str:
    return store.uri(layout.TRAINING_CODE)
