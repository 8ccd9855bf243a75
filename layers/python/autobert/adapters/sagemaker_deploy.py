"""Puts a model version live on the SageMaker endpoint, whose name never changes.

CreateModel + CreateEndpointConfig (both named ``<endpoint>-<version>``) then UpdateEndpoint (CreateEndpoint the
first time). UpdateEndpoint uses deployment guardrails: blue/green by default (the new fleet is provisioned beside the
old one, traffic shifts at once, the old fleet is kept for ``bake_seconds``), with automatic rollback when one of the
configured CloudWatch alarms fires. A rolled-back update leaves the endpoint InService on the old config, which
``serving_version()`` reveals.

A retried UpdateEndpoint must not fail a run whose swap is already under way: an endpoint that already serves, or is
already updating to, this version's config is left to finish (the wait loop follows it). An endpoint left ``Failed``
(it serves nothing) is deleted and then created anew on a later attempt instead of blocking every run.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from autobert.adapters.aws_errors import already_exists, aws_errors, endpoint_missing
from autobert.config import Settings
from autobert.ports import EndpointDeployer
from autobert.workflow.errors import DeploymentError, EndpointNotReady

STATUS = {"InService": "InService", "Creating": "Creating", "Updating": "Updating", "SystemUpdating": "Updating",
          "RollingBack": "Updating", "UpdateRollbackFailed": "Failed", "Failed": "Failed", "Deleting": "Failed",
          "OutOfService": "Failed"}


BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
VARIANT = "AllTraffic"
SERVING_CODE_DIR = "/opt/ml/model/code"  # where the PyTorch serving container looks for code/ of model.tar.gz


def serving_environment(settings: Settings, version: str) -> dict[str, str]:
    """The serving container's environment (CreateModel): the script-mode variables, and the request limits the
    predict Lambda enforces, so the Lambda and the endpoint agree on them."""
    return {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": SERVING_CODE_DIR,
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": settings.region,
            "AUTOBERT_MODEL_VERSION": version, "AUTOBERT_MAX_BATCH": str(settings.max_batch),
            "AUTOBERT_MAX_TEXT_CHARS": str(settings.max_text_chars)}


def describe_endpoint_if_exists(client, name: str) -> dict | None:
    """DescribeEndpoint, or None for a missing endpoint (``aws_errors.endpoint_missing``); any other error raises."""
    try:
        return client.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if endpoint_missing(exc):
            return None
        raise


class SageMakerEndpointDeployer(EndpointDeployer):
    def __init__(self, client, settings: Settings):
        self.client = client
        self.settings = settings

    @property
    def endpoint(self) -> str:
        return self.settings.endpoint_name

    def resource_name(self, version: str) -> str:
        return f"{self.endpoint}-{version}"[:63]

    def deployment_config(self) -> dict:
        s = self.settings
        config: dict = {}
        if s.deployment_strategy == "blue_green":
            config["BlueGreenUpdatePolicy"] = {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": s.bake_seconds,
            }
        else:
            config["RollingUpdatePolicy"] = {
                "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
                "WaitIntervalInSeconds": min(s.bake_seconds, 3600),
            }
        if s.rollback_alarms:
            config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in s.rollback_alarms]}
        return config

    def production_variant(self, name: str) -> dict:
        """The endpoint config's one variant: instances, or serverless inference when AUTOBERT_AWS_SERVERLESS_MEMORY_MB
        is set (`autobert aws bootstrap`)."""
        s = self.settings
        variant: dict = {"VariantName": VARIANT, "ModelName": name}
        if s.aws_serverless_memory_mb:
            variant["ServerlessConfig"] = {"MemorySizeInMB": s.aws_serverless_memory_mb, "MaxConcurrency": 5}
        else:
            variant.update(InitialInstanceCount=s.inference_instance_count, InstanceType=s.inference_instance_type,
                           InitialVariantWeight=1.0)
        return variant

    def _create_if_absent(self, call, **kwargs) -> None:
        try:
            call(**kwargs)
        except ClientError as exc:
            # A retried step finds the model/config of its first attempt: same version, same content.
            if already_exists(exc):
                return
            raise

    def deploy(self, model_version: str, model_uri: str) -> None:
        s = self.settings
        if not s.sagemaker_role_arn or not s.inference_image_uri:
            raise DeploymentError("AUTOBERT_SAGEMAKER_ROLE_ARN and AUTOBERT_INFERENCE_IMAGE_URI must be set")
        name = self.resource_name(model_version)
        with aws_errors(DeploymentError, f"CreateModel {name}"):
            self._create_if_absent(
                self.client.create_model, ModelName=name, ExecutionRoleArn=s.sagemaker_role_arn,
                # The training job puts the serving code (inference.py + autobert) into the archive's code/ folder.
                PrimaryContainer={"Image": s.inference_image_uri, "ModelDataUrl": model_uri,
                                  "Environment": serving_environment(s, model_version)})
        with aws_errors(DeploymentError, f"CreateEndpointConfig {name}"):
            self._create_if_absent(self.client.create_endpoint_config, EndpointConfigName=name,
                                   ProductionVariants=[self.production_variant(name)])
        with aws_errors(DeploymentError, f"UpdateEndpoint {self.endpoint}"):
            endpoint = describe_endpoint_if_exists(self.client, self.endpoint)
            if endpoint is None:
                self.client.create_endpoint(EndpointName=self.endpoint, EndpointConfigName=name)
                return
            status = endpoint["EndpointStatus"]
            pending = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
            if name in (pending, endpoint.get("EndpointConfigName")) and status != "Failed":
                return  # a retried attempt: the swap to this version is under way (or done); the wait loop follows
            if status == "Failed":
                # A Failed endpoint serves nothing and takes no update: delete it, create it on the next attempt.
                self.client.delete_endpoint(EndpointName=self.endpoint)
                raise EndpointNotReady(f"endpoint {self.endpoint} was Failed "
                                       f"({endpoint.get('FailureReason', 'no reason given')}): deleted, to be "
                                       "created anew serving " + model_version)
            if status in BUSY:
                raise EndpointNotReady(f"endpoint {self.endpoint} is {status}; the update to {model_version} "
                                       "waits for it")
            self.client.update_endpoint(EndpointName=self.endpoint, EndpointConfigName=name,
                                        DeploymentConfig=self.deployment_config())

    def describe(self) -> dict:
        with aws_errors(DeploymentError, f"DescribeEndpoint {self.endpoint}"):
            return self.client.describe_endpoint(EndpointName=self.endpoint)

    def status(self) -> str:
        return STATUS.get(self.describe()["EndpointStatus"], "Updating")

    def serving_version(self) -> str:
        config = self.describe()["EndpointConfigName"]
        prefix = f"{self.endpoint}-"
        return config[len(prefix):] if config.startswith(prefix) else config
