"""Composition root: the one place that picks adapters, from ``Settings.mode`` (``local`` or ``aws``).

Handlers, the CLI and the local stack call ``bootstrap()`` once (per Lambda container: at module level is fine, since
adapters do no I/O when built) and use the ``Services`` it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from autobert.config import Settings, get_settings
from autobert.errors import AutobertError
from autobert.ports import EndpointClient, EndpointDeployer, ObjectStore, TrainingJobs, TuningJobs, Workflow


@dataclass
class Services:
    settings: Settings

    @property
    def aws(self) -> bool:
        return self.settings.mode == "aws"

    def client(self, name: str):
        import boto3

        return boto3.client(name, region_name=self.settings.region)

    @cached_property
    def store(self) -> ObjectStore:
        if self.aws:
            from autobert.adapters.s3_store import S3ObjectStore

            if not self.settings.bucket:
                raise RuntimeError("AUTOBERT_BUCKET must be set in aws mode")
            return S3ObjectStore(self.client("s3"), self.settings.bucket)
        from autobert.adapters.local_store import LocalObjectStore

        return LocalObjectStore(self.settings.home / "bucket")

    # --- serving (issue 3) ------------------------------------------------------------------------------------------
    @cached_property
    def endpoint_client(self) -> EndpointClient:
        if self.aws:
            import boto3

            from autobert.adapters.sagemaker_runtime import SageMakerEndpointClient, invoke_config

            # API Gateway gives up after 29 s: every attempt together ends before that, and the Lambda answers 503.
            client = boto3.client("sagemaker-runtime", region_name=self.settings.region,
                                  config=invoke_config(self.settings.endpoint_timeout))
            return SageMakerEndpointClient(client, self.settings.endpoint_name)
        from autobert.adapters.local_endpoint import LocalEndpointClient

        return LocalEndpointClient(self.settings.resolved_endpoint_url, self.settings.endpoint_timeout)

    @cached_property
    def deployer(self) -> EndpointDeployer:
        if self.aws:
            # CreateModel + CreateEndpointConfig + UpdateEndpoint: the workflow's adapter (autobert.adapters.
            # sagemaker_deploy), which knows the image, role and instance settings of the deployed stack.
            from autobert.adapters.sagemaker_deploy import SageMakerEndpointDeployer

            return SageMakerEndpointDeployer(self.client("sagemaker"), self.settings,
                                             self.client("application-autoscaling"))
        from autobert.adapters.local_endpoint import LocalEndpointDeployer

        return LocalEndpointDeployer(self.settings.resolved_endpoint_url, self.settings.endpoint_timeout)

    @cached_property
    def batch_predictor(self):
        """`autobert predict-batch`: SageMaker Batch Transform jobs, or the inference script run here."""
        if self.aws:
            from autobert.adapters.sagemaker_batch import SageMakerBatchTransform

            return SageMakerBatchTransform(self.client("sagemaker"), self.store, self.settings)
        from autobert.adapters.local_batch import LocalBatchPredictor
        from autobert.config import REPO_ROOT
        from autobert.workflow.registry import ModelRegistry

        return LocalBatchPredictor(ModelRegistry(self.store), REPO_ROOT / "inference" / "inference.py",
                                   self.settings.batch_size)

    @property
    def deploy_poll_seconds(self) -> float:
        """How often a rollback re-checks the endpoint while it swaps models (SageMaker takes minutes)."""
        return 15.0 if self.aws else 0.5

    # --- end serving ------------------------------------------------------------------------------------------------

    # --- retraining workflow (issue 4) -------------------------------------------------------------------------------
    @cached_property
    def training_jobs(self) -> TrainingJobs:
        if self.aws:
            from autobert.adapters.sagemaker_training import SageMakerTrainingJobs, code_uri

            return SageMakerTrainingJobs(self.client("sagemaker"), self.settings, code_uri(self.store), self.store,
                                         logs=self.client("logs"))  # the jobs' logs: their progress
        from autobert.adapters.local_training import LocalTrainingJobs
        from autobert.config import REPO_ROOT

        return LocalTrainingJobs(self.settings.home / "training-jobs", REPO_ROOT / "training" / "train.py")

    @cached_property
    def tuning_jobs(self) -> TuningJobs:
        """SageMaker tuning jobs (the AWS tuning path); locally the tuning path is refused."""
        if self.aws:
            from autobert.adapters.sagemaker_training import code_uri
            from autobert.adapters.sagemaker_tuning import SageMakerTuningJobs

            return SageMakerTuningJobs(self.client("sagemaker"), code_uri(self.store))
        from autobert.adapters.local_training import LocalTuningJobs

        return LocalTuningJobs()

    @cached_property
    def workflow(self) -> Workflow:
        """Who serves run requests: Step Functions executions, or the local executor of the same ASL."""
        if self.aws:
            from autobert.workflow.start import StepFunctionsWorkflow

            return StepFunctionsWorkflow(self)
        from autobert.workflow.local import LocalWorkflow

        return LocalWorkflow(self)

    @cached_property
    def workflow_runs(self):
        """Executions of the retraining state machine (AWS mode)."""
        from autobert.adapters.stepfunctions import StepFunctionsRuns

        return StepFunctionsRuns(self.client("stepfunctions"), self.settings.state_machine_arn)
    # --- end retraining workflow -------------------------------------------------------------------------------------


class NotLocalMode(AutobertError):
    """The local stack was asked for with AWS settings."""


def bootstrap_local_stack(settings: Settings) -> Services:
    """The services of the embedded local stack (`autobert up`), which only the local adapters can serve."""
    if settings.mode != "local":
        raise NotLocalMode("`autobert up` runs the local stack; with AUTOBERT_MODE=aws deploy with serverless "
                           "instead (docs/deploy.md)")
    return bootstrap(settings)


def bootstrap(settings: Settings | None = None, **adapters: Any) -> Services:
    """The services for ``settings`` (default: from the environment). ``adapters`` replaces chosen ones by name
    (``store=``, ``training_jobs=``, ``workflow_runs=``, ...): a caller that already holds its clients (e.g.
    `autobert aws bootstrap`, given the deployed stack's) passes them in."""
    services = Services(settings or get_settings())
    for name, adapter in adapters.items():
        if not isinstance(getattr(Services, name, None), cached_property):
            raise TypeError(f"bootstrap: no adapter named {name!r}")
        setattr(services, name, adapter)  # what the cached property would have built
    return services
