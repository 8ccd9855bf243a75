"""The SageMaker tuning job request against moto (which implements CreateHyperParameterTuningJob and
DescribeHyperParameterTuningJob) and against botocore's service model through Stubber, which validates every
request parameter; moto reports every tuning job Completed at once, so the other states come from Stubber responses
(test fixtures, not product code)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ParamValidationError
from botocore.stub import Stubber

from autobert.config import Settings
from autobert.contracts import METRIC_DEFINITIONS
from autobert.tuning import SearchSpace, TuningConfigError, TuningError
from autobert.tuning.sagemaker import (
    build_request,
    describe_tuning_job,
    start_tuning_job,
    state_from_description,
    stop_tuning_job,
    tuning_job_record,
)
from autobert.tuning.service import tuning_job_config

ASL = Path(__file__).resolve().parents[2] / "statemachines" / "retrain.asl.json"

ROLE = "arn:aws:iam::123456789012:role/autobert-sagemaker"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/abt-20261125-1100"
STATIC = {"model-name": "bert-base-uncased", "seed": "42", "progress": "false", "model-version": "ab-shared",
          "sagemaker_program": "train.py", "sagemaker_submit_directory": "s3://autobert-bucket/code/sourcedir.tar.gz"}


@pytest.fixture
def aws(moto_account, aws_region):
    """Here: SageMaker in the (empty) moto account of tests/conftest.py."""
    return boto3.client("sagemaker", region_name=aws_region)


@pytest.fixture
def settings() -> Settings:
    return Settings(mode="aws", bucket="autobert-bucket", sagemaker_role_arn=ROLE, training_image_uri="train:img",
                    tuning_max_jobs=6, tuning_max_parallel_jobs=3)


def request_for(settings: Settings, name: str = "abt-20261125-1100") -> dict:
    config = tuning_job_config(settings, job_name=name, output_uri="s3://autobert-bucket/models/",
                               channels={"train": "s3://autobert-bucket/datasets/v1/",
                                         "holdout": "s3://autobert-bucket/holdout/v1/"},
                               static_hyperparameters=STATIC)
    return build_request(config, SearchSpace.default())


def test_the_tuning_job_request_is_accepted_by_moto_and_described_back_unchanged(aws, settings):
    request = request_for(settings)
    arn = start_tuning_job(aws, request)
    assert arn.endswith(":hyper-parameter-tuning-job/abt-20261125-1100")
    described = aws.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="abt-20261125-1100")
    assert described["HyperParameterTuningJobConfig"] == request["HyperParameterTuningJobConfig"]
    definition = described["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"]["MaxWaitTimeInSeconds"] >= definition["StoppingCondition"][
        "MaxRuntimeInSeconds"]
    limits = described["HyperParameterTuningJobConfig"]["ResourceLimits"]
    # The whole tuning job stops within the run's timeout (the state machine's), less the endpoint update's wait
    assert limits == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3,
                      "MaxRuntimeInSeconds": settings.run_timeout_seconds - settings.endpoint_max_wait_seconds - 900}
    assert limits["MaxRuntimeInSeconds"] < json.loads(ASL.read_text())["TimeoutSeconds"]
    # Every trial versions its model by its own training job name, never by one shared name.
    assert "model-version" not in definition["StaticHyperParameters"]
    assert definition["StaticHyperParameters"]["sagemaker_program"] == "train.py"


def test_starting_the_same_tuning_job_twice_returns_the_existing_job(aws, settings):
    request = request_for(settings)
    assert start_tuning_job(aws, request) == start_tuning_job(aws, request)


def test_describe_gives_the_status_and_the_best_training_jobs_model(aws, settings):
    start_tuning_job(aws, request_for(settings))
    state = describe_tuning_job(aws, "abt-20261125-1100")
    # moto completes at once with a placeholder best job; the artifact path follows SageMaker's layout.
    assert state.status == "Completed" and state.best_training_job
    assert state.model_uri == f"s3://autobert-bucket/models/{state.best_training_job}/output/model.tar.gz"


def test_the_request_is_valid_against_botocores_service_model():
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    request = request_for(Settings(mode="aws", bucket="b", sagemaker_role_arn=ROLE, training_image_uri="img"))
    with Stubber(client) as stub:
        stub.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": ARN}, request)
        assert start_tuning_job(client, request) == ARN
        stub.assert_no_pending_responses()


def test_botocores_service_model_would_catch_a_malformed_request():
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    request = request_for(Settings(mode="aws", bucket="b", sagemaker_role_arn=ROLE, training_image_uri="img"))
    request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] = "6"  # not an int
    with Stubber(client) as stub:
        stub.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": ARN})
        with pytest.raises(ParamValidationError):
            client.create_hyper_parameter_tuning_job(**request)


def described(status: str, best: str | None) -> dict:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    d = {
        "HyperParameterTuningJobName": "abt-1", "HyperParameterTuningJobArn": ARN,
        "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "ResourceLimits": {
            "MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3}},
        "TrainingJobDefinition": {"AlgorithmSpecification": {"TrainingInputMode": "File"}, "RoleArn": ROLE,
                                  "OutputDataConfig": {"S3OutputPath": "s3://b/models/"},
                                  "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
                                  "ResourceConfig": {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1,
                                                     "VolumeSizeInGB": 30}},
        "HyperParameterTuningJobStatus": status, "CreationTime": now,
        "TrainingJobStatusCounters": {"Completed": 2, "InProgress": 1}, "ObjectiveStatusCounters": {},
    }
    if best:
        d["BestTrainingJob"] = {
            "TrainingJobName": best, "TrainingJobArn": f"{ARN}/{best}", "CreationTime": now,
            "TrainingJobStatus": "Completed", "TunedHyperParameters": {"learning-rate": "4.2e-05", "epochs": "3"},
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "validation:macro_f1", "Value": 0.83}}
    return d


@pytest.mark.parametrize(("status", "best", "expected"), [
    ("InProgress", None, "InProgress"), ("InProgress", "abt-1-002-aa", "InProgress"),
    ("Stopping", "abt-1-002-aa", "InProgress"), ("Completed", "abt-1-004-bb", "Completed"),
    ("Completed", None, "Failed"), ("Failed", None, "Failed"), ("Stopped", None, "Stopped"),
    # Stopped at its overall limit (MaxRuntimeInSeconds) with a best training job: that job is the candidate.
    ("Stopped", "abt-1-004-bb", "Completed"),
])
def test_describe_maps_every_tuning_job_status(status, best, expected):
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", described(status, best),
                          {"HyperParameterTuningJobName": "abt-1"})
        state = describe_tuning_job(client, "abt-1")
    assert state.status == expected and state.sagemaker_status == status
    if expected == "Completed":
        assert state.best_hyperparameters == {"learning-rate": "4.2e-05", "epochs": "3"}
        assert state.model_uri == f"s3://b/models/{best}/output/model.tar.gz"
        record = tuning_job_record(state, SearchSpace.default(), STATIC)
        assert record["best"] == {"number": 0, "value": 0.83, "params": state.best_hyperparameters}
    else:
        with pytest.raises(TuningError):
            tuning_job_record(state, SearchSpace.default(), STATIC)
    if expected == "Failed":
        assert state.failure_reason


def test_stop_sends_the_job_name():
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response("stop_hyper_parameter_tuning_job", {}, {"HyperParameterTuningJobName": "abt-1"})
        stop_tuning_job(client, "abt-1")
        stub.assert_no_pending_responses()


def test_a_tuning_job_needs_the_role_and_image_settings():
    with pytest.raises(TuningConfigError, match="AUTOBERT_SAGEMAKER_ROLE_ARN"):
        tuning_job_config(Settings(mode="aws", bucket="b"), job_name="abt-1", channels={"train": "s3://b/d/"},
                          output_uri="s3://b/models/", static_hyperparameters={})


def test_state_from_description_reads_moto_and_real_shapes_alike():
    state = state_from_description(described("Completed", "abt-1-004-bb"))
    assert state.best_objective == 0.83 and state.counters == {"Completed": 2, "InProgress": 1}


# ------------------------------------------------------------------------------------- the workflow's task steps
def test_the_tuning_steps_start_a_job_over_the_runs_data_and_hand_on_the_best_training_job(aws, settings):
    from autobert.bootstrap import Services
    from autobert.tuning import load_study
    from autobert.workflow.runs import RunStore
    from autobert.workflow.tuning_steps import check_tuning, start_tuning

    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="autobert-bucket")
    services = Services(settings)
    event = {"run_id": "run-1", "merge": {"channels": {"train": "datasets/v1/", "validation": None},
                                          "holdout_version": "v1", "dataset_version": "v1", "warm": False}}
    training = start_tuning(services, event)
    assert training["job_name"] == training["tuning_job"] and len(training["tuning_job"]) <= 32
    assert training["deadline"] > training["started_at"] and training["model_version"] is None
    sent = aws.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=training["tuning_job"])
    definition = sent["TrainingJobDefinition"]
    assert {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in definition["InputDataConfig"]} == {
        "train": "s3://autobert-bucket/datasets/v1/", "holdout": "s3://autobert-bucket/holdout/v1/"}
    static = definition["StaticHyperParameters"]
    assert static["sagemaker_program"] == "train.py" and "model-version" not in static
    assert "learning-rate" not in static  # searched, not fixed
    assert definition["OutputDataConfig"]["S3OutputPath"] == "s3://autobert-bucket/models/"

    status = check_tuning(services, {**event, "training": training})
    best = status["model_version"]
    assert status["status"] == "Completed" and status["model_version"] == best and not status["timed_out"]
    assert status["model_uri"] == f"s3://autobert-bucket/models/{best}/output/model.tar.gz"
    assert status["output_uri"] == f"s3://autobert-bucket/models/{best}/output/output.tar.gz"
    record = load_study(services.store, training["tuning_job"])
    assert record["backend"] == "sagemaker" and record["best_training_job"] == best
    assert RunStore(services.store).get("run-1")["tuning"]["model_version"] == best


def test_the_tuning_path_refuses_local_mode(tmp_path):
    from autobert.bootstrap import Services
    from autobert.workflow.tuning_steps import start_tuning

    with pytest.raises(TuningConfigError, match="autobert tune"):
        start_tuning(Services(Settings(mode="local", home=tmp_path)), {"run_id": "r", "merge": {}})
