"""SageMaker hyperparameter tuning jobs, as the workflow's TuningJobs port: CreateHyperParameterTuningJob over
training/train.py (script mode, like a training job), describe → status and best training job, stop."""

from __future__ import annotations

from autobert.adapters.aws_errors import aws_errors
from autobert.adapters.sagemaker_training import CHANNEL_ROOT
from autobert.ports import TuningJobs
from autobert.tuning.sagemaker import (
    TuningJobConfig,
    TuningJobState,
    build_request,
    describe_tuning_job,
    new_tuning_job_name,
    start_tuning_job,
    stop_tuning_job,
)
from autobert.tuning.space import SearchSpace
from autobert.workflow.errors import TrainingStartError


class SageMakerTuningJobs(TuningJobs):
    def __init__(self, client, code_uri: str | None = None):
        self.client = client
        self.code_uri = code_uri  # the training code every trial runs (code/sourcedir.tar.gz)

    def new_job_name(self) -> str:
        return new_tuning_job_name()

    def start(self, config: TuningJobConfig, space: SearchSpace) -> None:
        config.static_hyperparameters = {**config.static_hyperparameters, "sagemaker_program": "train.py",
                                         "sagemaker_submit_directory": self.code_uri}
        request = build_request(config, space)
        with aws_errors(TrainingStartError, f"CreateHyperParameterTuningJob {config.job_name}"):
            start_tuning_job(self.client, request)

    def init_model_path(self, channel: str, uri: str) -> str:
        return f"{CHANNEL_ROOT}/{channel}"  # each trial is a SageMaker training job

    def describe(self, job_name: str) -> TuningJobState:
        with aws_errors(TrainingStartError, f"DescribeHyperParameterTuningJob {job_name}"):
            return describe_tuning_job(self.client, job_name)

    def stop(self, job_name: str) -> None:
        with aws_errors(TrainingStartError, f"StopHyperParameterTuningJob {job_name}"):
            stop_tuning_job(self.client, job_name)
