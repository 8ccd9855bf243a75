"""Puts a model version live on the SageMaker endpoint, whose name never changes.

CreateModel + CreateEndpointConfig (both named ``<endpoint>-<version>``) then UpdateEndpoint (CreateEndpoint the
first time). UpdateEndpoint uses deployment guardrails: blue/green by default (the new fleet is provisioned beside the
old one, traffic shifts at once, the old fleet is kept for ``bake_seconds``), with automatic rollback when one of the
configured CloudWatch alarms fires. A rolled-back update leaves the endpoint InService on the old config, which
``serving_version()`` reveals.

Autoscaling (``endpoint_max_instances`` above ``inference_instance_count``): Application Auto Scaling tracks
invocations per instance on the variant, which keeps its name (``AllTraffic``) across every swap, so its registration
survives a model-only UpdateEndpoint (AWS: "If you change the model for a variant that is configured for auto
scaling, Amazon SageMaker AI auto scaling allows the update"); the update retains the variant's current instance
count (``RetainAllVariantProperties``), so a swap at peak does not shrink the fleet. An update that changes the
instance type would fail on a registered variant: the target is deregistered first. ``ensure_scaling`` (the wait
loop's CheckEndpoint, once InService) registers the target and upserts the policy, so a new or re-created endpoint
scales too. A CloudFormation ScalableTarget cannot do this: the endpoint does not exist when the stack is created.

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
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_POLICY = "invocations-per-instance"
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
    def __init__(self, client, settings: Settings, autoscaling=None):
        self.client = client
        self.settings = settings
        self._autoscaling = autoscaling  # an application-autoscaling client (made when first needed)

    @property
    def autoscaling(self):
        if self._autoscaling is None:
            import boto3

            self._autoscaling = boto3.client("application-autoscaling", region_name=self.settings.region)
        return self._autoscaling

    @property
    def autoscaled(self) -> bool:
        s = self.settings
        return not s.aws_serverless_memory_mb and s.endpoint_max_instances > s.inference_instance_count

    def scaling_target(self) -> dict:
        return {"ServiceNamespace": "sagemaker", "ResourceId": f"endpoint/{self.endpoint}/variant/{VARIANT}",
                "ScalableDimension": SCALABLE_DIMENSION}

    def scaling_requests(self) -> tuple[dict, dict]:
        """RegisterScalableTarget's and PutScalingPolicy's requests (both upserts)."""
        s = self.settings
        target = {**self.scaling_target(), "MinCapacity": s.inference_instance_count,
                  "MaxCapacity": s.endpoint_max_instances}
        policy = {**self.scaling_target(), "PolicyName": SCALING_POLICY, "PolicyType": "TargetTrackingScaling",
                  "TargetTrackingScalingPolicyConfiguration": {
                      "TargetValue": float(s.endpoint_target_invocations),
                      "PredefinedMetricSpecification": {
                          "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                      "ScaleInCooldown": s.endpoint_scale_in_cooldown,
                      "ScaleOutCooldown": s.endpoint_scale_out_cooldown}}
        return target, policy

    def ensure_scaling(self) -> dict | None:
        if not self.autoscaled:
            self.deregister_scaling()  # turned off (or serverless): the variant keeps its configured count
            return None
        target, policy = self.scaling_requests()
        with aws_errors(DeploymentError, f"RegisterScalableTarget {target['ResourceId']}"):
            self.autoscaling.register_scalable_target(**target)
            self.autoscaling.put_scaling_policy(**policy)
        return {"min": target["MinCapacity"], "max": target["MaxCapacity"],
                "target_invocations_per_instance": policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]}

    def deregister_scaling(self) -> bool:
        """Remove the variant's scalable target (and with it its policy); False if there was none."""
        target = self.scaling_target()
        with aws_errors(DeploymentError, f"DeregisterScalableTarget {target['ResourceId']}"):
            found = self.autoscaling.describe_scalable_targets(
                ServiceNamespace="sagemaker", ResourceIds=[target["ResourceId"]],
                ScalableDimension=SCALABLE_DIMENSION)["ScalableTargets"]
            if not found:
                return False
            self.autoscaling.deregister_scalable_target(**target)
        return True

    def instance_type_changes(self, endpoint: dict) -> bool:
        """The update would give the variant another instance type (or switch instances and serverless)."""
        with aws_errors(DeploymentError, f"DescribeEndpointConfig {endpoint['EndpointConfigName']}"):
            config = self.client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        current = (config.get("ProductionVariants") or [{}])[0]
        wanted = self.production_variant("")
        return current.get("InstanceType") != wanted.get("InstanceType") or \
            bool(current.get("ServerlessConfig")) != bool(wanted.get("ServerlessConfig"))

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
                # A Failed endpoint serves nothing and takes no update: delete it, create it on the next attempt
                # (its scalable target first: AWS would otherwise need the permission to drop it on our behalf).
                self.deregister_scaling()
                self.client.delete_endpoint(EndpointName=self.endpoint)
                raise EndpointNotReady(f"endpoint {self.endpoint} was Failed "
                                       f"({endpoint.get('FailureReason', 'no reason given')}): deleted, to be "
                                       "created anew serving " + model_version)
            if status in BUSY:
                raise EndpointNotReady(f"endpoint {self.endpoint} is {status}; the update to {model_version} "
                                       "waits for it")
            retain = False
            if self.instance_type_changes(endpoint):
                # AWS fails an update that changes a scaled variant's instance type: deregister, re-register after.
                self.deregister_scaling()
            else:
                retain = self.autoscaled  # keep the instance count autoscaling reached: a swap at peak keeps it
            self.client.update_endpoint(EndpointName=self.endpoint, EndpointConfigName=name,
                                        DeploymentConfig=self.deployment_config(),
                                        RetainAllVariantProperties=retain)

    def describe(self) -> dict:
        with aws_errors(DeploymentError, f"DescribeEndpoint {self.endpoint}"):
            return self.client.describe_endpoint(EndpointName=self.endpoint)

    def status(self) -> str:
        return STATUS.get(self.describe()["EndpointStatus"], "Updating")

    def serving_version(self) -> str:
        config = self.describe()["EndpointConfigName"]
        prefix = f"{self.endpoint}-"
        return config[len(prefix):] if config.startswith(prefix) else config
