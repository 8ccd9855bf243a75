"""SageMaker hyperparameter tuning jobs, as the workflow's TuningJobs port (status and stop)."""

from __future__ import annotations

from autobert.adapters.aws_errors import aws_errors
from autobert.ports import JobStatus, TuningJobs
from autobert.tuning.sagemaker import describe_tuning_job, stop_tuning_job
from autobert.workflow.errors import TrainingStartError


class SageMakerTuningJobs(TuningJobs):
    def __init__(self, client):
        self.client = client

    def status(self, job_name: str) -> JobStatus:
        with aws_errors(TrainingStartError, f"DescribeHyperParameterTuningJob {job_name}"):
            return describe_tuning_job(self.client, job_name).status

    def stop(self, job_name: str) -> None:
        with aws_errors(TrainingStartError, f"StopHyperParameterTuningJob {job_name}"):
            stop_tuning_job(self.client, job_name)
