"""The state machine's Lambda handlers in AWS mode against moto: S3 bucket, SageMaker, Step Functions. moto's gaps
(UpdateEndpoint, InProgress training status) are filled in fixtures by botocore hooks."""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pandas as pd
import pytest
from autobert import layout
from autobert.adapters.s3_store import S3ObjectStore
from autobert.workflow.errors import DeploymentError
from autobert.workflow.merge import import_initial_dataset
from moto import mock_aws
from serving_helpers import load_module, rest_event, set_env
from test_sagemaker_adapters import ROLE, fill_gaps

REPO_FUNCTIONS = __import__("pathlib").Path(__file__).resolve().parents[2] / "functions"
BUCKET = "autobert-bucket"


@pytest.fixture
def handlers(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(name="retrain", roleArn=ROLE, definition=json.dumps(
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
        set_env(monkeypatch, mode="aws", bucket=BUCKET, sagemaker_role_arn=ROLE, training_image_uri="train:img",
                inference_image_uri="infer:img", state_machine_arn=arn, trace_disabled="true")
        store = S3ObjectStore(boto3.client("s3", region_name="us-east-1"), BUCKET)
        rows = [(f"{lbl}/{i}", f"text {i} on {lbl}", lbl) for lbl in ("autos", "space") for i in range(10)]
        import_initial_dataset(store, pd.DataFrame(rows, columns=["id", "text", "label"]), ["autos", "space"],
                               holdout_fraction=0.2, seed=0)
        store.put_json(layout.feedback_key("f1", __import__("datetime").date(2026, 11, 25)),
                       {"id": "f1", "text": "a recipe for soup", "label": "cooking", "received_at": "x"})
        names = ["merge_data", "start_training", "check_training", "evaluate", "update_endpoint", "check_endpoint",
                 "record_failure", "retrain"]
        yield store, {n: load_module(REPO_FUNCTIONS / f"{n}.py", f"handler_{n}") for n in names}


def put_training_output(store, job: str, promote_ready: bool = True) -> None:
    report = {"accuracy": 0.9, "macro_f1": 0.9, "per_class": {
        "autos": {"f1": 0.9, "support": 2}, "space": {"f1": 0.9, "support": 2}}}
    files = {"evaluation.json": {"candidate": report, "live": None, "holdout_rows": 4},
             "metrics.json": {"labels": ["autos", "space", "cooking"], "test": {"accuracy": 0.9, "macro_f1": 0.9}}}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    store.put_bytes(f"models/{job}/output/output.tar.gz", buffer.getvalue())


def test_one_run_through_every_handler_on_aws(handlers, lambda_context):
    store, h = handlers
    state = {"run_id": "r-1", "triggers": [], "full": True}
    state["merge"] = h["merge_data"].lambda_handler(state, lambda_context)
    assert state["merge"]["merged"] == 1 and state["merge"]["new_labels"] == ["cooking"]
    assert store.exists(layout.dataset_prefix(state["merge"]["dataset_version"]) + "dataset.parquet")

    state["training"] = h["start_training"].lambda_handler(state, lambda_context)
    job = state["training"]["job_name"]
    sagemaker = h["check_training"].services.training_jobs.client
    described = sagemaker.describe_training_job(TrainingJobName=job)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in described["InputDataConfig"]}
    assert channels["train"] == f"s3://{BUCKET}/datasets/{state['merge']['dataset_version']}/"
    assert channels["holdout"].startswith(f"s3://{BUCKET}/holdout/")
    assert store.get_json(layout.run_record("r-1"))["training_job"] == job  # the job name is kept in S3

    fill_gaps(sagemaker, [], in_progress=1)
    assert h["check_training"].lambda_handler(state, lambda_context)["status"] == "InProgress"
    state["training_status"] = h["check_training"].lambda_handler(state, lambda_context)
    assert state["training_status"]["status"] == "Completed"

    put_training_output(store, job)
    state["evaluation"] = h["evaluate"].lambda_handler(state, lambda_context)
    assert state["evaluation"]["promote"] is True
    assert store.get_json(layout.model_record(job))["status"] == "candidate"

    state["deploy"] = h["update_endpoint"].lambda_handler(state, lambda_context)
    assert h["check_endpoint"].lambda_handler(state, lambda_context)["status"] == "InService"
    assert store.get_json(layout.LIVE_MODEL)["version"] == job
    assert store.get_json(layout.run_record("r-1"))["status"] == "succeeded"


def test_a_retried_training_start_uses_a_fresh_job_name(handlers, lambda_context):
    _, h = handlers
    state = {"run_id": "r-2", "triggers": [], "full": True}
    state["merge"] = h["merge_data"].lambda_handler(state, lambda_context)
    first = h["start_training"].lambda_handler(state, lambda_context)["job_name"]
    second = h["start_training"].lambda_handler(state, lambda_context)["job_name"]
    assert first != second


def test_an_update_rolled_back_by_the_guardrails_fails_the_check(handlers, lambda_context):
    store, h = handlers
    deployer = h["update_endpoint"].services.sagemaker_deployer
    fill_gaps(deployer.client, [], rolled_back=True)
    deployer.deploy("ab-old", "s3://autobert-bucket/models/ab-old/output/model.tar.gz")  # creates the endpoint
    state = {"run_id": "r-3", "evaluation": {"model_version": "ab-new", "model_uri": "s3://x/m.tar.gz"}}
    state["deploy"] = h["update_endpoint"].lambda_handler(state, lambda_context)
    with pytest.raises(DeploymentError, match="rolled back"):
        h["check_endpoint"].lambda_handler(state, lambda_context)


def test_record_failure_keeps_the_cause_from_lambdas_error_document(handlers, lambda_context):
    store, h = handlers
    cause = json.dumps({"errorMessage": "CreateTrainingJob: ResourceLimitExceeded", "errorType": "TrainingStartError"})
    out = h["record_failure"].lambda_handler({"run_id": "r-4", "error": {"Error": "TrainingStartError",
                                                                           "Cause": cause}}, lambda_context)
    assert out == {"error": "TrainingStartError", "cause": "CreateTrainingJob: ResourceLimitExceeded"}
    run = store.get_json(layout.run_record("r-4"))
    assert run["status"] == "failed" and run["error"] == "TrainingStartError"


def test_the_retrain_route_starts_a_run_or_queues_the_trigger_while_one_runs(handlers, lambda_context):
    store, h = handlers
    first = h["retrain"].lambda_handler(rest_event("POST", "/retrain", {}), lambda_context)
    assert first["statusCode"] == 202
    body = json.loads(first["body"])
    assert body["status"] == "started" and body["run_id"]
    second = json.loads(h["retrain"].lambda_handler(rest_event("POST", "/retrain", {"full": True}),
                                                    lambda_context)["body"])
    assert second["status"] == "queued"  # moto keeps the first execution RUNNING
    assert store.exists(layout.trigger_key(second["trigger"]))
    bad = h["retrain"].lambda_handler(rest_event("POST", "/retrain", {"full": "maybe"}), lambda_context)
    assert bad["statusCode"] == 422 and json.loads(bad["body"])


def test_an_execution_that_timed_out_is_closed_and_the_waiting_trigger_starts_the_next_run(handlers, lambda_context):
    store, h = handlers
    first = json.loads(h["retrain"].lambda_handler(rest_event("POST", "/retrain", {}), lambda_context)["body"])
    queued = json.loads(h["retrain"].lambda_handler(rest_event("POST", "/retrain", {}), lambda_context)["body"])
    assert queued["status"] == "queued"
    sfn = h["retrain"].services.workflow_runs.client
    sfn.stop_execution(executionArn=store.get_json(layout.run_record(first["run_id"]))["execution_arn"])
    event = {"source": "aws.states", "detail-type": "Step Functions Execution Status Change",
             "detail": {"name": first["run_id"], "status": "TIMED_OUT"}}
    out = h["retrain"].lambda_handler(event, lambda_context)
    closed = store.get_json(layout.run_record(first["run_id"]))
    assert closed["status"] == "failed" and closed["error"] == "ExecutionTimedOut"
    assert out["status"] == "started" and out["run_id"] != first["run_id"]


def test_the_schedule_rule_starts_a_full_retrain(handlers, lambda_context):
    store, h = handlers
    out = h["retrain"].lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, lambda_context)
    assert out["status"] == "started"
    assert store.get_json(layout.run_record(out["run_id"]))["full"] is True


def test_the_workflow_handlers_load_without_torch():
    # Lambda packages stay small: the step handlers (gate included) are plain Python over pandas and boto3.
    import subprocess
    import sys

    code = ("import sys, autobert.workflow.steps, autobert.workflow.start, autobert.workflow.rollback; "
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
