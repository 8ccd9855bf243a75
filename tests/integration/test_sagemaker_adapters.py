"""The SageMaker and Step Functions adapters against moto. moto lacks UpdateEndpoint and StopTrainingJob and reports
every training job Completed at once: the fixtures below fill those gaps (botocore before-call hooks), never the
product code."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from autobert.adapters.sagemaker_deploy import SageMakerEndpointDeployer
from autobert.adapters.sagemaker_training import SageMakerTrainingJobs
from autobert.adapters.stepfunctions import StepFunctionsRuns
from autobert.ports import TrainingJobSpec
from autobert.workflow.errors import DeploymentError, TrainingStartError, TransientError

ROLE = "arn:aws:iam::123456789012:role/autobert-sagemaker"


# The fixtures `aws` (moto with the bucket) and `settings` (the stack's settings) are tests/conftest.py's.


def fill_gaps(client, calls: list, *, rolled_back: bool = False, in_progress: int = 0) -> None:
    """moto gaps as botocore hooks: UpdateEndpoint (switches the endpoint's config unless ``rolled_back``),
    StopTrainingJob, and ``in_progress`` DescribeTrainingJob answers of InProgress before moto's Completed."""
    from moto.sagemaker.models import sagemaker_backends

    remaining = {"in_progress": in_progress}
    ok = AWSResponse("https://sagemaker.us-east-1.amazonaws.com/", 200, {}, None)

    def before(params, model, **_):
        name, params = model.name, json.loads(params["body"] or b"{}")  # the serialized request's JSON body
        if name == "UpdateEndpoint":
            calls.append(("UpdateEndpoint", params))
            if not rolled_back:
                backend = sagemaker_backends["123456789012"]["us-east-1"]
                backend.endpoints[params["EndpointName"]].endpoint_config_name = params["EndpointConfigName"]
            return ok, {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/autobert"}
        if name == "StopTrainingJob":
            calls.append(("StopTrainingJob", params))
            return ok, {}
        if name == "DescribeTrainingJob" and remaining["in_progress"] > 0:
            remaining["in_progress"] -= 1
            return ok, {"TrainingJobName": params["TrainingJobName"], "TrainingJobStatus": "InProgress",
                          "OutputDataConfig": {"S3OutputPath": "s3://autobert-bucket/models"}}
        return None

    client.meta.events.register("before-call.sagemaker.*", before)


def deployed_ab_1(settings, calls: list):
    """A SageMaker deployer on moto (its gaps filled, recording UpdateEndpoint calls in ``calls``) that has put
    model ab-1 on the endpoint; returns the client and the deployer."""
    client = boto3.client("sagemaker", region_name="us-east-1")
    fill_gaps(client, calls)
    deployer = SageMakerEndpointDeployer(client, settings)
    deployer.deploy("ab-1", "s3://autobert-bucket/models/ab-1/output/model.tar.gz")
    return client, deployer


def throttle(client, operation: str) -> None:
    def raise_throttling(**_):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)

    client.meta.events.register(f"before-call.sagemaker.{operation}", raise_throttling)


def spec(name: str = "ab-1") -> TrainingJobSpec:
    return TrainingJobSpec(job_name=name, hyperparameters={"epochs": "2", "init-model": "/opt/ml/input/data/live"},
                           channels={"train": "s3://autobert-bucket/trainsets/d1/d0/train/",
                                     "holdout": "s3://autobert-bucket/holdout/h1/",
                                     "live": "s3://autobert-bucket/models/ab-0/output/model.tar.gz"},
                           output_uri="s3://autobert-bucket/models/", extra={"run_id": "r-1"})


def test_a_training_job_runs_train_py_with_channels_spot_and_checkpoints(aws, settings):
    client = boto3.client("sagemaker", region_name="us-east-1")
    jobs = SageMakerTrainingJobs(client, settings, "s3://autobert-bucket/code/sourcedir.tar.gz")
    jobs.start(spec())
    job = client.describe_training_job(TrainingJobName="ab-1")
    assert job["HyperParameters"]["sagemaker_program"] == "train.py"
    assert job["HyperParameters"]["sagemaker_submit_directory"] == "s3://autobert-bucket/code/sourcedir.tar.gz"
    assert job["HyperParameters"]["init-model"] == "/opt/ml/input/data/live"
    assert {c["ChannelName"] for c in job["InputDataConfig"]} == {"train", "holdout", "live"}
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"]["MaxWaitTimeInSeconds"] >= job["StoppingCondition"]["MaxRuntimeInSeconds"]
    assert job["CheckpointConfig"]["S3Uri"] == "s3://autobert-bucket/models/ab-1/checkpoints"
    assert job["RoleArn"] == ROLE and job["AlgorithmSpecification"]["TrainingImage"] == "train:img"


def test_a_training_job_on_several_instances_is_launched_data_parallel_with_torchrun(aws, settings):
    client = boto3.client("sagemaker", region_name="us-east-1")
    one = SageMakerTrainingJobs(client, settings, "s3://x/c.tar.gz").request(spec())
    assert one["ResourceConfig"]["InstanceCount"] == 1
    assert "sagemaker_torch_distributed_enabled" not in one["HyperParameters"]
    jobs = SageMakerTrainingJobs(client, settings.model_copy(update={"training_instance_count": 4}), "s3://x/c.tar.gz")
    jobs.start(spec())
    job = client.describe_training_job(TrainingJobName="ab-1")
    assert job["ResourceConfig"]["InstanceCount"] == 4
    assert job["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
    # One multi-GPU instance: torchrun as well (one process per GPU), on request.
    multi_gpu = settings.model_copy(update={"training_distributed": True, "training_instance_type": "ml.g5.12xlarge"})
    request = SageMakerTrainingJobs(client, multi_gpu, "s3://x/c.tar.gz").request(spec())
    assert request["ResourceConfig"] == {"InstanceType": "ml.g5.12xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert request["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"


def test_describe_maps_in_progress_then_completed_with_the_artifacts(aws, settings):
    client = boto3.client("sagemaker", region_name="us-east-1")
    fill_gaps(client, [], in_progress=1)
    jobs = SageMakerTrainingJobs(client, settings, "s3://x/code.tar.gz")
    jobs.start(spec())
    assert jobs.describe("ab-1").status == "InProgress"
    done = jobs.describe("ab-1")
    assert done.status == "Completed"
    assert done.model_uri == "s3://autobert-bucket/models/ab-1/output/model.tar.gz"
    assert done.output_uri == "s3://autobert-bucket/models/ab-1/output/output.tar.gz"


def test_throttling_is_a_transient_error_and_a_bad_configuration_is_not(aws, settings):
    client = boto3.client("sagemaker", region_name="us-east-1")
    throttle(client, "CreateTrainingJob")
    jobs = SageMakerTrainingJobs(client, settings, "s3://x/code.tar.gz")
    with pytest.raises(TransientError, match="ThrottlingException"):
        jobs.start(spec())
    unconfigured = SageMakerTrainingJobs(client, settings.model_copy(update={"sagemaker_role_arn": None}), "s3://x")
    with pytest.raises(TrainingStartError, match="ROLE_ARN"):
        unconfigured.start(spec())


def test_without_spot_there_is_no_wait_time_or_checkpoint(aws, settings):
    client = boto3.client("sagemaker", region_name="us-east-1")
    jobs = SageMakerTrainingJobs(client, settings.model_copy(update={"training_use_spot": False}), "s3://x/c.tar.gz")
    request = jobs.request(spec())
    assert request["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in request["StoppingCondition"] and "CheckpointConfig" not in request


def test_the_first_deploy_creates_the_endpoint_and_later_ones_update_it_blue_green(aws, settings):
    calls: list = []
    client, deployer = deployed_ab_1(settings, calls)
    assert deployer.status() == "InService" and deployer.serving_version() == "ab-1"
    model = client.describe_model(ModelName="autobert-ab-1")
    assert model["PrimaryContainer"]["ModelDataUrl"].endswith("ab-1/output/model.tar.gz")
    assert model["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    deployer.deploy("ab-2", "s3://autobert-bucket/models/ab-2/output/model.tar.gz")
    (name, params), = calls
    assert params["EndpointName"] == "autobert"  # the endpoint name never changes
    assert params["EndpointConfigName"] == "autobert-ab-2"
    policy = params["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    assert policy["TerminationWaitInSeconds"] == 120
    assert params["DeploymentConfig"]["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "autobert-5xx"}]}
    assert deployer.serving_version() == "ab-2"


def aws_error(operation: str, code: str, message: str):
    """A before-call hook answering ``operation`` with the error AWS sends (its code and message)."""
    def raise_it(**_):
        raise ClientError({"Error": {"Code": code, "Message": message},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)

    return raise_it


def scaling(region: str = "us-east-1") -> tuple[list, list]:
    """The endpoint variant's scalable targets and scaling policies in Application Auto Scaling (moto)."""
    client = boto3.client("application-autoscaling", region_name=region)
    return (client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"],
            client.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"])


def test_autoscaling_is_registered_once_in_service_and_survives_a_model_swap(aws, settings):
    calls: list = []
    client, deployer = deployed_ab_1(settings, calls)
    assert scaling() == ([], [])  # nothing scales before the endpoint is InService
    assert deployer.ensure_scaling() == {"min": 1, "max": 4, "target_invocations_per_instance": 100.0}
    [target], [policy] = scaling()
    assert (target["ResourceId"], target["ScalableDimension"]) == ("endpoint/autobert/variant/AllTraffic",
                                                                   "sagemaker:variant:DesiredInstanceCount")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == \
        "SageMakerVariantInvocationsPerInstance"
    assert tracking["TargetValue"] == 100 and tracking["ScaleInCooldown"] > tracking["ScaleOutCooldown"]
    # A new model on the same variant and instance type: the registration stays, the scaled count is retained.
    deployer.deploy("ab-2", "s3://autobert-bucket/models/ab-2/output/model.tar.gz")
    [(_, params)] = calls
    assert params["RetainAllVariantProperties"] is True
    assert len(scaling()[0]) == 1
    deployer.ensure_scaling()  # the next InService: an upsert, still one target and one policy
    assert [len(x) for x in scaling()] == [1, 1]


def test_a_new_instance_type_deregisters_before_the_update_and_registers_again_after(aws, settings):
    calls: list = []
    client, deployer = deployed_ab_1(settings, calls)
    deployer.ensure_scaling()
    bigger = SageMakerEndpointDeployer(client, settings.model_copy(update={"inference_instance_type": "ml.c5.xlarge"}))
    bigger.deploy("ab-2", "s3://autobert-bucket/models/ab-2/output/model.tar.gz")
    [(_, params)] = calls
    # (AWS deletes a deregistered target's policies with it; moto keeps them, so only the targets are counted.)
    assert scaling()[0] == [] and params["RetainAllVariantProperties"] is False
    bigger.ensure_scaling()
    assert [len(x) for x in scaling()] == [1, 1]


def test_autoscaling_turned_off_deregisters_the_variant(aws, settings):
    _, deployer = deployed_ab_1(settings, [])
    deployer.ensure_scaling()
    fixed = SageMakerEndpointDeployer(deployer.client, settings.model_copy(update={"endpoint_max_instances": 1}))
    assert fixed.ensure_scaling() is None and scaling()[0] == []
    assert fixed.ensure_scaling() is None  # nothing registered: nothing to do, no error


def test_a_retried_deploy_finds_its_model_and_config_created_and_goes_on(aws, settings):
    calls: list = []
    client, deployer = deployed_ab_1(settings, calls)
    arn = "arn:aws:sagemaker:us-east-1:123456789012"
    # What SageMaker answers a second CreateModel / CreateEndpointConfig of the same name: a ValidationException
    # with only the message to tell it by.
    client.meta.events.register("before-call.sagemaker.CreateModel", aws_error(
        "CreateModel", "ValidationException", f'Cannot create already existing model "{arn}:model/autobert-ab-2".'))
    client.meta.events.register("before-call.sagemaker.CreateEndpointConfig", aws_error(
        "CreateEndpointConfig", "ValidationException",
        f'Cannot create already existing endpoint configuration "{arn}:endpoint-config/autobert-ab-2".'))
    deployer.deploy("ab-2", "s3://autobert-bucket/models/ab-2/output/model.tar.gz")
    assert [params["EndpointConfigName"] for _, params in calls] == ["autobert-ab-2"]


@pytest.mark.parametrize(("code", "message"), [
    # The code decides first: another failure that happens to say "already exist" is not a created model.
    ("ResourceLimitExceeded", "The account-level service limit 'maximum number of models' is 1000, and 1000 "
                              "models already exist"),
    ("ValidationException", "Could not access model data at s3://autobert-bucket/models/ab-1/output/model.tar.gz"),
])
def test_a_create_model_failure_is_not_taken_for_an_existing_model(aws, settings, code, message):
    client = boto3.client("sagemaker", region_name="us-east-1")
    client.meta.events.register("before-call.sagemaker.CreateModel", aws_error("CreateModel", code, message))
    with pytest.raises(DeploymentError, match=code):
        SageMakerEndpointDeployer(client, settings).deploy("ab-1", "s3://autobert-bucket/models/ab-1/m.tar.gz")
    assert client.list_endpoints()["Endpoints"] == []


def test_describe_endpoint_if_exists_is_none_only_for_a_missing_endpoint(aws, settings):
    from autobert.adapters.sagemaker_deploy import describe_endpoint_if_exists

    client = boto3.client("sagemaker", region_name="us-east-1")
    assert describe_endpoint_if_exists(client, "autobert") is None  # moto: 'Could not find endpoint "arn"'
    client.meta.events.register("before-call.sagemaker.DescribeEndpoint", aws_error(
        "DescribeEndpoint", "ValidationException", "1 validation error detected: Value 'autobert_1' at "
        "'endpointName' failed to satisfy constraint: Member must satisfy regular expression pattern"))
    with pytest.raises(ClientError, match="failed to satisfy constraint"):
        describe_endpoint_if_exists(client, "autobert_1")


def test_a_deploy_without_role_or_image_is_a_deployment_error(aws, settings):
    client = boto3.client("sagemaker", region_name="us-east-1")
    deployer = SageMakerEndpointDeployer(client, settings.model_copy(update={"inference_image_uri": None}))
    with pytest.raises(DeploymentError, match="INFERENCE_IMAGE_URI"):
        deployer.deploy("ab-1", "s3://b/m.tar.gz")


def test_step_functions_runs_start_list_and_see_running_executions(aws):
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(name="retrain", roleArn=ROLE, definition=json.dumps(
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    runs = StepFunctionsRuns(sfn, arn)
    assert runs.running() == []
    execution = runs.start("r-1", {"run_id": "r-1"})
    assert execution.endswith(":r-1")
    assert [e["name"] for e in runs.list()] == ["r-1"]
    assert runs.history(execution)


def test_a_jobs_progress_is_read_from_its_cloudwatch_log_streams(aws, settings):
    logs = boto3.client("logs", region_name="us-east-1")
    jobs = SageMakerTrainingJobs(boto3.client("sagemaker", region_name="us-east-1"), settings, "s3://x/c.tar.gz",
                                 logs=logs)
    assert jobs.progress("ab-1") is None  # no log group before the first job logs: no progress, no error
    group = "/aws/sagemaker/TrainingJobs"
    logs.create_log_group(logGroupName=group)
    prefix = "2026-12-02 05:10:02,036 INFO autobert.train: "
    streams = {  # a spot job interrupted after its first epoch and resumed (one stream per start), another job
        "ab-1/algo-1-1764651000": ["bash: no job control in this shell", prefix + "progress: epoch=1/2 step=10/40 "
                                   "loss=1.1000 samples_per_second=40.00 eta_seconds=12",
                                   prefix + "epoch=1 train_loss=1.0500 val_accuracy=0.7000 val_macro_f1=0.6500 "
                                   "samples_per_second=41.00"],
        "ab-1/algo-1-1764652000": [prefix + "resumed from checkpoint epoch=1 step=20 (/opt/ml/checkpoints/epoch-0001)",
                                   prefix + "progress: epoch=2/2 step=30/40 loss=0.6000 samples_per_second=44.50 "
                                   "eta_seconds=4"],
        "ab-10/algo-1-1764653000": [prefix + "progress: epoch=2/2 step=39/40 loss=0.1 samples_per_second=1.0 "
                                    "eta_seconds=1"],
    }
    now_ms = int(time.time() * 1000)  # CloudWatch (and moto) accept events of the last 14 days only
    for stream, lines in streams.items():
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            {"timestamp": now_ms - 60_000 + i, "message": line} for i, line in enumerate(lines)])
    assert jobs.progress("ab-1") == {
        "epoch": 2, "epochs": 2, "step": 30, "steps": 40, "loss": 0.6, "samples_per_second": 44.5, "eta_seconds": 4.0,
        "history": [{"epoch": 1, "train_loss": 1.05, "val_accuracy": 0.7, "val_macro_f1": 0.65,
                     "samples_per_second": 41.0}]}
    no_logs = SageMakerTrainingJobs(boto3.client("sagemaker", region_name="us-east-1"), settings, "s3://x/c.tar.gz")
    assert no_logs.progress("ab-1") is None
