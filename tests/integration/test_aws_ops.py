"""``autobert aws bootstrap|status|teardown`` against moto.

What moto cannot do is supplied by the fixtures, explicitly: a Step Functions execution never finishes in moto (the
``finish_run`` fixture ends it and writes what the real run would have written), a training job is never InProgress
(an after-call hook reports InProgress once), a training job writes no artifact (the fixture uploads one), and moto's
API Gateway needs an extra dependency we do not install (GetApiKey is answered by a botocore Stubber).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import boto3
import pandas as pd
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from autobert import aws_ops, layout
from autobert.adapters.s3_store import S3ObjectStore
from autobert.aws_ops import AwsOpsError, build_tarball, inference_code_files, repack_model, training_code_files
from autobert.config import REPO_ROOT, Settings
from autobert.data import export_dataset

REGION = "eu-west-1"
STACK = "autobert-test"
ENDPOINT = "autobert-test"
API_KEY = "k3y-0123456789abcdefghij"


# ----------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def aws_region() -> str:
    return REGION


@pytest.fixture
def aws(moto_account, aws_region):
    """Here: the clients of the (empty) moto account of tests/conftest.py; the stack creates the bucket."""
    return {name: boto3.client(name, region_name=aws_region)
            for name in ("cloudformation", "s3", "sagemaker", "stepfunctions", "iam")}


@pytest.fixture
def apigateway():
    client = boto3.client("apigateway", region_name=REGION)
    stubber = Stubber(client)
    for _ in range(3):
        stubber.add_response("get_api_key", {"id": "key-id", "value": API_KEY, "enabled": True},
                             {"apiKey": "key-id", "includeValue": True})
    with stubber:
        yield client


STACK_TEMPLATE = {
    "Parameters": {name: {"Type": "String"} for name in ("StateMachineArn", "RoleArn")},
    "Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}},
    "Outputs": {
        "BucketName": {"Value": {"Ref": "Bucket"}},
        "RetrainStateMachineArn": {"Value": {"Ref": "StateMachineArn"}},
        "EndpointName": {"Value": ENDPOINT},
        "SageMakerRoleArn": {"Value": {"Ref": "RoleArn"}},
        "ServiceEndpoint": {"Value": f"https://abc123.execute-api.{REGION}.amazonaws.com/test"},
        "ApiKeyId": {"Value": "key-id"},
        "InferenceImageUri": {"Value": "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:2.6.0-cpu"},
        "TrainingImageUri": {"Value": "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.6.0-gpu"},
    },
}


@pytest.fixture
def stack(aws):
    """The deployed stack as bootstrap sees it: its outputs, bucket, state machine and SageMaker role."""
    role = aws["iam"].create_role(RoleName="sagemaker-exec", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    machine = aws["stepfunctions"].create_state_machine(
        name=f"{STACK}-retrain", roleArn=role,
        definition=(REPO_ROOT / "statemachines" / "retrain.asl.json").read_text())["stateMachineArn"]
    aws["cloudformation"].create_stack(StackName=STACK, TemplateBody=json.dumps(STACK_TEMPLATE), Parameters=[
        {"ParameterKey": "StateMachineArn", "ParameterValue": machine},
        {"ParameterKey": "RoleArn", "ParameterValue": role}])
    return aws_ops.stack_info(aws["cloudformation"], STACK)


@pytest.fixture
def store(aws, stack) -> S3ObjectStore:
    return S3ObjectStore(aws["s3"], stack.bucket)


@pytest.fixture
def prepared(tmp_path) -> Path:
    """A prepared dataset folder as `autobert prepare` writes it: 3 labels x 10 documents."""
    labels = ["rec.autos", "sci.space", "talk.politics.guns"]
    rows = [{"id": f"{label}-{i}", "text": f"document {i} about {label.split('.')[-1]} number {i}",
             "label": label, "label_id": n} for n, label in enumerate(labels) for i in range(10)]
    return export_dataset(pd.DataFrame(rows), labels, tmp_path / "prepared")


def model_tar_gz(extra: dict[str, bytes] | None = None) -> bytes:
    files = {"config.json": b'{"model_type": "bert"}', "model.safetensors": b"\0weights", "labels.json": b"{}",
             **(extra or {})}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def settings(**over) -> Settings:
    return Settings(mode="aws", region=REGION, **over)


def tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def tar_read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.extractfile(name).read()


# ------------------------------------------------------------------------------------------------- code tarballs
def test_the_training_tarball_holds_train_py_requirements_and_the_package_at_its_root():
    data = build_tarball(training_code_files())
    names = list(tar_members(data))
    assert names == sorted(names)
    assert {"train.py", "requirements.txt", "autobert/__init__.py", "autobert/config.py", "autobert/data.py",
            "inference/inference.py", "inference/requirements.txt"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert tar_read(data, "train.py") == (REPO_ROOT / "training" / "train.py").read_bytes()
    assert b"\ntransformers==5." in tar_read(data, "requirements.txt")  # pinned: what the container installs


def test_the_inference_tarball_holds_inference_py_its_requirements_and_the_package():
    names = set(tar_members(build_tarball(inference_code_files())))
    assert {"inference.py", "requirements.txt", "autobert/modeling.py"} <= names


def test_tarballs_are_byte_identical_for_the_same_code_and_differ_when_it_changes(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "b.py").write_text("b = 1\n")
    (pkg / "a.py").write_text("a = 1\n")
    files = aws_ops.package_files(pkg, "autobert/")
    first = build_tarball(files)
    (pkg / "a.py").touch()  # a new mtime changes nothing
    assert build_tarball(aws_ops.package_files(pkg, "autobert/")) == first
    members = tar_members(first)
    assert list(members) == ["autobert/a.py", "autobert/b.py"]
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members.values()} == {(aws_ops.FIXED_MTIME, 0, 0, "")}
    assert gzip.GzipFile(fileobj=io.BytesIO(first)).read()  # a valid gzip stream
    (pkg / "a.py").write_text("a = 2\n")
    assert build_tarball(aws_ops.package_files(pkg, "autobert/")) != first


def test_a_missing_code_file_is_a_clear_error(tmp_path):
    with pytest.raises(AwsOpsError, match="missing"):
        build_tarball({"train.py": tmp_path / "nope.py"})


def test_repacking_puts_the_inference_code_under_code_and_keeps_the_model_files():
    original = model_tar_gz({"code/stale.py": b"old"})
    packed = repack_model(original, inference_code_files())
    names = set(tar_members(packed))
    assert {"config.json", "model.safetensors", "labels.json", "code/inference.py", "code/requirements.txt",
            "code/autobert/config.py"} <= names
    assert "code/stale.py" not in names
    assert tar_read(packed, "model.safetensors") == b"\0weights"
    assert repack_model(original, inference_code_files()) == packed


def test_repacking_something_that_is_not_a_model_artifact_is_a_clear_error():
    with pytest.raises(AwsOpsError, match=r"not a readable \.tar\.gz"):
        repack_model(b"not a tarball", inference_code_files())


# ---------------------------------------------------------------------------------------------------- the stack
def test_stack_outputs_are_read(stack):
    assert stack.endpoint_name == ENDPOINT and stack.bucket
    assert stack.state_machine_arn.endswith(":autobert-test-retrain")
    assert stack.api_url.startswith("https://")


def test_a_missing_stack_says_to_deploy_first(aws):
    with pytest.raises(AwsOpsError, match="not found.*npx osls deploy"):
        aws_ops.stack_info(aws["cloudformation"], "autobert-nope")


@pytest.mark.parametrize(("code", "message"), [
    # Not a missing stack, though the text says "does not exist": the code decides first.
    ("AccessDenied", "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
                     "cloudformation:DescribeStacks because no identity-based policy allows it (the role does not "
                     "exist)"),
    # The same code as a missing stack (ValidationError), another error: the message tells them apart.
    ("ValidationError", "1 validation error detected: Value 'autobert_x!' at 'stackName' failed to satisfy "
                        "constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*"),
])
def test_other_describe_stacks_errors_are_not_taken_for_a_missing_stack(code, message):
    cfn = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(cfn)
    stubber.add_client_error("describe_stacks", service_error_code=code, service_message=message,
                             http_status_code=400 if code == "ValidationError" else 403)
    with stubber, pytest.raises(ClientError) as info:
        aws_ops.stack_info(cfn, "autobert-x")
    assert not isinstance(info.value, AwsOpsError) and info.value.response["Error"]["Code"] == code


# ------------------------------------------------------------------------------------------------------ bootstrap
def execution(aws, arn: str):
    from moto.stepfunctions.models import stepfunctions_backends

    backend = stepfunctions_backends["123456789012"][REGION]
    return next(e for m in backend.state_machines for e in m.executions if e.execution_arn == arn)


@pytest.fixture
def finish_run(aws, store):
    """A `sleep` for bootstrap's wait loop that plays the state machine's part (moto never runs one): the run trains
    a model, registers it and marks it live, then the execution succeeds."""
    from autobert.workflow.registry import ModelRegistry

    calls = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)
        [running] = aws["stepfunctions"].list_executions(stateMachineArn=store_state_machine(aws),
                                                         statusFilter="RUNNING")["executions"]
        version = "ab-20260101-000000-abcdef"
        artifact = f"{layout.model_prefix(version)}{version}/output/model.tar.gz"
        store.put_bytes(artifact, model_tar_gz())
        registry = ModelRegistry(store)
        registry.register(version, status="candidate", model_uri=store.uri(artifact))
        registry.mark_live(version)
        execution(aws, running["executionArn"]).status = "SUCCEEDED"

    sleep.calls = calls
    return sleep


def store_state_machine(aws) -> str:
    return aws["stepfunctions"].list_state_machines()["stateMachines"][0]["stateMachineArn"]


def run_bootstrap(aws, apigateway, prepared, **kwargs):
    return aws_ops.bootstrap(cfn=aws["cloudformation"], s3=aws["s3"], sagemaker=aws["sagemaker"],
                             stepfunctions=aws["stepfunctions"], apigateway=apigateway,
                             settings=kwargs.pop("settings", settings()), stack_name=STACK, prepared=prepared,
                             poll=kwargs.pop("poll", 0.01), timeout=kwargs.pop("timeout", 60), **kwargs)


def test_bootstrap_uploads_data_and_code_runs_the_state_machine_and_creates_the_endpoint(
        aws, apigateway, stack, store, prepared, finish_run):
    report = run_bootstrap(aws, apigateway, prepared, sleep=finish_run)

    # dataset version 0 and its fixed holdout, as the workflow lays them out
    current = store.get_json(layout.CURRENT_DATASET)
    assert report["dataset"] == current
    train = pd.read_parquet(io.BytesIO(store.get_bytes(layout.dataset_prefix(current["version"]) + "dataset.parquet")))
    holdout_keys = store.list_keys(layout.holdout_prefix(current["holdout"]))
    assert holdout_keys and len(train) < 30
    # code, byte-identical to what build_tarball makes
    assert store.get_bytes(layout.TRAINING_CODE) == build_tarball(training_code_files())
    assert store.get_bytes(layout.INFERENCE_CODE) == build_tarball(inference_code_files())
    # the first run: a recorded bootstrap trigger, an execution named after the run with the workflow's input
    run = report["run"]
    described = aws["stepfunctions"].describe_execution(executionArn=run["execution_arn"])
    assert described["name"] == run["run_id"] and run["status"] == "SUCCEEDED"
    payload = json.loads(described["input"])
    assert payload["run_id"] == run["run_id"] and payload["full"] is True
    assert payload["triggers"] == [run["trigger"]]
    assert store.get_json(layout.trigger_key(run["trigger"]))["kind"] == "bootstrap"
    assert store.get_json(layout.run_record(run["run_id"]))["trigger"] == "bootstrap"
    assert finish_run.calls  # it waited for the run
    # the endpoint with the fixed name, serving the live model repacked with the inference code
    sm = aws["sagemaker"]
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    [variant] = config["ProductionVariants"]
    assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 1
    model = sm.describe_model(ModelName=variant["ModelName"])
    live = store.get_json(layout.LIVE_MODEL)
    assert variant["ModelName"] == f"{ENDPOINT}-{live['version']}"
    container = model["PrimaryContainer"]
    assert container["Image"] == stack.inference_image_uri and model["ExecutionRoleArn"] == stack.sagemaker_role_arn
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    packed = store.get_bytes(container["ModelDataUrl"].removeprefix(f"s3://{stack.bucket}/"))
    assert {"model.safetensors", "code/inference.py", "code/autobert/config.py"} <= set(tar_members(packed))
    # what the user needs next
    assert report["api_url"] == stack.api_url and report["api_key"] == API_KEY


def test_the_first_run_trains_the_linear_model_and_the_bert_run_is_queued_behind_it(
        aws, apigateway, stack, store, prepared, finish_run):
    from autobert.adapters.stepfunctions import StepFunctionsRuns
    from autobert.bootstrap import bootstrap
    from autobert.workflow.start import start_pending_on_aws
    from autobert.workflow.triggers import pending_triggers

    report = run_bootstrap(aws, apigateway, prepared, sleep=finish_run)  # AUTOBERT_FIRST_MODEL: linear by default
    run = report["run"]
    assert store.get_json(layout.trigger_key(run["trigger"]))["model_kind"] == run["model_kind"] == "linear"
    followup = store.get_json(layout.trigger_key(run["followup_trigger"]))
    assert (followup["kind"], followup["model_kind"], followup["full"]) == ("bootstrap", "bert", True)
    assert [t["id"] for t in pending_triggers(store)] == [followup["id"]]  # recorded while the first run ran
    assert report["endpoint"]["created"] is True  # the first (linear) model serves meanwhile
    # When the first execution ended, the execution-status rule's starter starts the run that serves it.
    sfn = StepFunctionsRuns(aws["stepfunctions"], stack.state_machine_arn)
    services = bootstrap(settings(bucket=stack.bucket, state_machine_arn=stack.state_machine_arn), store=store,
                         workflow_runs=sfn)
    started = start_pending_on_aws(services, ended=run["run_id"])
    assert started["status"] == "started"
    described = aws["stepfunctions"].describe_execution(executionArn=started["execution_arn"])
    assert json.loads(described["input"])["triggers"] == [followup["id"]]


def test_with_first_model_bert_the_first_run_is_the_fine_tune_and_nothing_follows(
        aws, apigateway, stack, store, prepared, finish_run):
    report = run_bootstrap(aws, apigateway, prepared, sleep=finish_run, settings=settings(first_model="bert"))
    assert report["run"]["model_kind"] == "bert" and "followup_trigger" not in report["run"]
    assert store.get_json(layout.trigger_key(report["run"]["trigger"]))["model_kind"] == "bert"


def test_bootstrap_again_reuses_the_dataset_and_leaves_a_serving_endpoint_alone(
        aws, apigateway, stack, store, prepared, finish_run):
    first = run_bootstrap(aws, apigateway, prepared, sleep=finish_run)
    second = run_bootstrap(aws, apigateway, prepared, sleep=finish_run)
    assert second["dataset"] == first["dataset"]
    assert second["endpoint"]["created"] is False
    assert len(aws["sagemaker"].list_endpoints()["Endpoints"]) == 1


def test_bootstrap_without_waiting_starts_the_run_and_returns(aws, apigateway, stack, store, prepared):
    report = run_bootstrap(aws, apigateway, prepared, wait=False)
    assert report["run"]["started"] is True and "endpoint" not in report
    assert aws["sagemaker"].list_endpoints()["Endpoints"] == []
    # a second bootstrap while the run is still running starts no other one
    again = run_bootstrap(aws, apigateway, prepared, wait=False)
    assert again["run"]["started"] is False
    assert (again["run"]["run_id"], again["run"]["execution_arn"]) == (report["run"]["run_id"],
                                                                       report["run"]["execution_arn"])
    assert len(aws["stepfunctions"].list_executions(stateMachineArn=stack.state_machine_arn)["executions"]) == 1
    # its trigger is recorded, so the next run serves it
    assert store.get_json(layout.trigger_key(again["run"]["trigger"]))["kind"] == "bootstrap"


def test_a_failed_first_run_is_reported_with_where_to_look(aws, apigateway, stack, store, prepared):
    def fail(seconds):
        [running] = aws["stepfunctions"].list_executions(stateMachineArn=stack.state_machine_arn,
                                                         statusFilter="RUNNING")["executions"]
        execution(aws, running["executionArn"]).status = "FAILED"

    with pytest.raises(AwsOpsError, match="ended FAILED: see the Step Functions console"):
        run_bootstrap(aws, apigateway, prepared, sleep=fail)


def test_a_run_still_running_when_the_wait_ends_is_reported_after_a_check_every_poll(aws, apigateway, stack,
                                                                                    prepared):
    slept = []
    with pytest.raises(AwsOpsError, match=r"run r-\S+ still RUNNING after 5 s"):
        run_bootstrap(aws, apigateway, prepared, sleep=slept.append, timeout=5, poll=1)
    assert slept == [1, 1, 1, 1, 1]  # checks at 0, 1, ..., 5 s: six DescribeExecution calls


def test_bootstrap_without_a_prepared_dataset_says_what_to_run(aws, apigateway, stack, tmp_path):
    with pytest.raises(AwsOpsError, match="autobert prepare"):
        run_bootstrap(aws, apigateway, tmp_path / "empty")


@pytest.fixture
def training_job_world(aws, store):
    """moto's training jobs complete at once and write nothing: report InProgress on the first DescribeTrainingJob,
    and upload the artifact the job would have written when it is created."""
    sm = aws["sagemaker"]
    seen = {"describes": 0}

    def after_create(params, **_):
        output = params["OutputDataConfig"]["S3OutputPath"].removeprefix(f"s3://{store.bucket}/")
        store.put_bytes(f"{output}/{params['TrainingJobName']}/output/model.tar.gz", model_tar_gz())

    def after_describe(parsed, **_):
        seen["describes"] += 1
        if seen["describes"] == 1:
            parsed["TrainingJobStatus"] = "InProgress"
            parsed.pop("ModelArtifacts", None)

    sm.meta.events.register("provide-client-params.sagemaker.CreateTrainingJob", after_create)
    sm.meta.events.register("after-call.sagemaker.DescribeTrainingJob", after_describe)
    return seen


def test_bootstrap_direct_runs_one_training_job_then_deploys_and_marks_it_live(
        aws, apigateway, stack, store, prepared, training_job_world):
    report = run_bootstrap(aws, apigateway, prepared, direct=True, sleep=lambda s: None,
                           settings=settings(train_hyperparameters={"max-length": "128"}))
    job = report["training"]["job"]
    described = aws["sagemaker"].describe_training_job(TrainingJobName=job)
    hp = described["HyperParameters"]
    assert hp["sagemaker_program"] == "train.py"
    assert hp["sagemaker_submit_directory"] == f"s3://{stack.bucket}/{layout.TRAINING_CODE}"
    assert hp["model-name"] == "offline-default" and hp["max-length"] == "128"
    assert described["RoleArn"] == stack.sagemaker_role_arn
    assert training_job_world["describes"] >= 2  # waited through InProgress
    assert store.get_json(layout.LIVE_MODEL)["version"] == job
    assert report["endpoint"]["created"] is True
    assert aws["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == f"{ENDPOINT}-{job}"


def test_a_direct_training_job_that_fails_is_reported_with_its_reason(aws, apigateway, stack, store, prepared):
    def failed(parsed, **_):
        parsed.update(TrainingJobStatus="Failed", FailureReason="AlgorithmError: CUDA out of memory")

    aws["sagemaker"].meta.events.register("after-call.sagemaker.DescribeTrainingJob", failed)
    with pytest.raises(AwsOpsError, match=r"ended Failed: AlgorithmError: CUDA out of memory"):
        run_bootstrap(aws, apigateway, prepared, direct=True)
    assert not store.exists(layout.LIVE_MODEL)


def test_a_direct_training_job_still_running_after_the_wait_is_reported(aws, apigateway, stack, prepared):
    describes = []

    def in_progress(parsed, **_):
        describes.append(1)
        parsed["TrainingJobStatus"] = "InProgress"

    aws["sagemaker"].meta.events.register("after-call.sagemaker.DescribeTrainingJob", in_progress)
    with pytest.raises(AwsOpsError, match=r"still InProgress after 0.02 s"):
        run_bootstrap(aws, apigateway, prepared, direct=True, timeout=0.02, poll=0.01)
    assert len(describes) == 3 + 1  # the waiter's checks at 0, 0.01, 0.02 s, then the description it reports


def test_an_endpoint_that_fails_to_come_up_is_reported_with_its_reason(aws, apigateway, stack, store, prepared,
                                                                        training_job_world):
    def failed(parsed, **_):
        if "EndpointStatus" in parsed:  # DescribeEndpoint of the endpoint bootstrap just created
            parsed.update(EndpointStatus="Failed", FailureReason="The primary container did not pass the ping")

    aws["sagemaker"].meta.events.register("after-call.sagemaker.DescribeEndpoint", failed)
    with pytest.raises(AwsOpsError, match=f"endpoint {ENDPOINT} is Failed: The primary container did not pass"):
        run_bootstrap(aws, apigateway, prepared, direct=True)


def test_serverless_inference_is_an_endpoint_config_option(aws, apigateway, stack, store, prepared,
                                                            training_job_world):
    run_bootstrap(aws, apigateway, prepared, direct=True, sleep=lambda s: None,
                  settings=settings(aws_serverless_memory_mb=3072))
    name = aws["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    [variant] = aws["sagemaker"].describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]
    assert variant["ServerlessConfig"]["MemorySizeInMB"] == 3072 and "InstanceType" not in variant


# --------------------------------------------------------------------------------------------- status / teardown
def test_status_shows_endpoint_live_model_and_last_runs(aws, apigateway, stack, store, prepared, finish_run):
    before = aws_ops.status(cfn=aws["cloudformation"], s3=aws["s3"], sagemaker=aws["sagemaker"],
                            stepfunctions=aws["stepfunctions"], stack_name=STACK)
    assert before["endpoint"] == {"name": ENDPOINT, "status": "absent"} and before["live_model"] is None
    assert before["runs"] == []
    report = run_bootstrap(aws, apigateway, prepared, sleep=finish_run)
    after = aws_ops.status(cfn=aws["cloudformation"], s3=aws["s3"], sagemaker=aws["sagemaker"],
                           stepfunctions=aws["stepfunctions"], stack_name=STACK)
    assert after["endpoint"]["status"] == "InService"
    assert after["live_model"]["version"] == store.get_json(layout.LIVE_MODEL)["version"]
    assert [(r["name"], r["status"]) for r in after["runs"]] == [(report["run"]["run_id"], "SUCCEEDED")]


def make_endpoint(sm, role: str, versions: list[str]) -> None:
    for v in versions:
        sm.create_model(ModelName=f"{ENDPOINT}-{v}", ExecutionRoleArn=role,
                        PrimaryContainer={"Image": "img", "ModelDataUrl": "s3://b/m.tar.gz"})
        sm.create_endpoint_config(EndpointConfigName=f"{ENDPOINT}-{v}", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": f"{ENDPOINT}-{v}", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{ENDPOINT}-{versions[-1]}")


def test_teardown_deletes_the_endpoint_its_configs_and_models_and_says_what_remains(aws, stack):
    sm = aws["sagemaker"]
    make_endpoint(sm, stack.sagemaker_role_arn, ["v1", "v2"])
    sm.create_model(ModelName="someone-else", ExecutionRoleArn=stack.sagemaker_role_arn,
                    PrimaryContainer={"Image": "img"})
    result = aws_ops.teardown(cfn=aws["cloudformation"], sagemaker=sm, stack_name=STACK)
    assert result.endpoint == ENDPOINT
    assert result.endpoint_configs == [f"{ENDPOINT}-v1", f"{ENDPOINT}-v2"] == result.models
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["someone-else"]
    remains = "\n".join(result.remains)
    assert "npx osls remove --stage test --region eu-west-1" in remains and f"s3://{stack.bucket}" in remains
    # nothing left to delete: a second teardown is a no-op
    again = aws_ops.teardown(cfn=aws["cloudformation"], sagemaker=sm, stack_name=STACK)
    assert (again.endpoint, again.endpoint_configs, again.models) == (None, [], [])


def test_teardown_deletes_the_configs_of_every_page(aws, stack):
    sm = aws["sagemaker"]
    make_endpoint(sm, stack.sagemaker_role_arn, ["v1", "v2", "v3"])
    pages = []

    def one_per_page(params, **_):  # SageMaker pages at 100 by default: make three pages of three configs
        params["MaxResults"] = 1
        pages.append(params.get("NextToken"))

    sm.meta.events.register("provide-client-params.sagemaker.ListEndpointConfigs", one_per_page)
    result = aws_ops.teardown(cfn=aws["cloudformation"], sagemaker=sm, stack_name=STACK)
    assert result.endpoint_configs == [f"{ENDPOINT}-v1", f"{ENDPOINT}-v2", f"{ENDPOINT}-v3"]
    assert len(pages) == 3 and pages[0] is None and all(pages[1:])
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []


def test_teardown_after_the_stack_is_gone_needs_the_endpoint_name(aws):
    sm = aws["sagemaker"]
    role = aws["iam"].create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    make_endpoint(sm, role, ["v1"])
    with pytest.raises(AwsOpsError, match="not found"):
        aws_ops.teardown(cfn=aws["cloudformation"], sagemaker=sm, stack_name=STACK)
    result = aws_ops.teardown(cfn=aws["cloudformation"], sagemaker=sm, stack_name=STACK, endpoint_name=ENDPOINT)
    assert result.endpoint == ENDPOINT and sm.list_endpoints()["Endpoints"] == []


# ---------------------------------------------------------------------------------------------------------- CLI
def test_the_cli_reports_a_missing_stack_in_one_line(aws, monkeypatch, capsys):
    from autobert.cli import main

    monkeypatch.setenv("AUTOBERT_REGION", REGION)
    monkeypatch.setenv("AUTOBERT_AWS_STAGE", "nope")
    from autobert import config

    config.reset_settings()
    try:
        assert main(["aws", "status"]) == 2
    finally:
        config.reset_settings()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stack autobert-nope not found" in err[0]


def test_the_cli_prints_status_and_teardown(aws, stack, monkeypatch, capsys):
    from autobert import config
    from autobert.cli import main

    monkeypatch.setenv("AUTOBERT_REGION", REGION)
    monkeypatch.setenv("AUTOBERT_AWS_STAGE", "test")
    make_endpoint(aws["sagemaker"], stack.sagemaker_role_arn, ["v1"])
    config.reset_settings()
    try:
        assert main(["aws", "status"]) == 0
        assert json.loads(capsys.readouterr().out)["endpoint"]["status"] == "InService"
        assert main(["aws", "teardown"]) == 0
    finally:
        config.reset_settings()
    out = capsys.readouterr().out
    assert '"endpoint": "autobert-test"' in out and "What remains:" in out and "npx osls remove" in out
