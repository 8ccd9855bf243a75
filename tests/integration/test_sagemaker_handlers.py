"""The state machine's Lambda handlers in AWS mode against moto: S3 bucket, SageMaker, Step Functions. moto's gaps
(UpdateEndpoint, InProgress training status) are filled in fixtures by botocore hooks."""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest
from botocore.exceptions import ClientError
from serving_helpers import load_module, rest_event, set_env
from test_sagemaker_adapters import fill_gaps

from autobert import layout
from autobert.adapters.s3_store import S3ObjectStore
from autobert.config import REPO_ROOT
from autobert.workflow.errors import DeploymentError
from autobert.workflow.registry import ModelRegistry

REPO_FUNCTIONS = __import__("pathlib").Path(__file__).resolve().parents[2] / "functions"
BUCKET = "autobert-bucket"


def put_training_output(store, job: str, promote_ready: bool = True, hyperparameters: dict | None = None) -> None:
    report = {"accuracy": 0.9, "macro_f1": 0.9, "per_class": {
        "autos": {"f1": 0.9, "support": 2}, "space": {"f1": 0.9, "support": 2}}}
    files = {"holdout.json": {"candidate": report, "live": None, "holdout_rows": 4},
             "metrics.json": {"labels": ["autos", "space", "cooking"], "test": {"accuracy": 0.9, "macro_f1": 0.9},
                              "hyperparameters": hyperparameters or {}}}
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
    assert store.get_json(layout.run_record("r-1"))["model_version"] == job  # the job name is kept in S3

    fill_gaps(sagemaker, [], in_progress=1)
    assert h["check_training"].lambda_handler(state, lambda_context)["status"] == "InProgress"
    state["training_status"] = h["check_training"].lambda_handler(state, lambda_context)
    assert state["training_status"]["status"] == "Completed"

    put_training_output(store, job)
    state["gate"] = h["evaluate"].lambda_handler(state, lambda_context)
    assert state["gate"]["promote"] is True
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
    deployer = h["update_endpoint"].services.deployer
    fill_gaps(deployer.client, [], rolled_back=True)
    deployer.deploy("ab-old", "s3://autobert-bucket/models/ab-old/output/model.tar.gz")  # creates the endpoint
    state = {"run_id": "r-3", "gate": {"model_version": "ab-new", "model_uri": "s3://x/m.tar.gz"}}
    state["deploy"] = h["update_endpoint"].lambda_handler(state, lambda_context)
    with pytest.raises(DeploymentError, match="rolled back"):
        h["check_endpoint"].lambda_handler(state, lambda_context)


def scalable_targets(h) -> list:
    client = h["check_endpoint"].services.deployer.autoscaling
    return client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]


def test_a_rolled_back_instance_type_change_gets_the_old_fleet_its_scaling_back(handlers, lambda_context):
    """An update to another instance type deregisters the variant first (AWS refuses it otherwise); when the
    guardrails roll it back, the old fleet serves on and is registered again, not left at a fixed count."""
    store, h = handlers
    deployer = h["update_endpoint"].services.deployer
    fill_gaps(deployer.client, [], rolled_back=True)
    deployer.deploy("ab-old", "s3://autobert-bucket/models/ab-old/output/model.tar.gz")
    h["check_endpoint"].services.deployer.ensure_scaling()
    assert len(scalable_targets(h)) == 1
    deployer.settings = deployer.settings.model_copy(update={"inference_instance_type": "ml.c5.xlarge"})
    state = {"run_id": "r-3b", "gate": {"model_version": "ab-new", "model_uri": "s3://x/m.tar.gz"}}
    state["deploy"] = h["update_endpoint"].lambda_handler(state, lambda_context)
    assert scalable_targets(h) == []  # deregistered before the update
    with pytest.raises(DeploymentError, match="rolled back"):
        h["check_endpoint"].lambda_handler(state, lambda_context)
    assert len(scalable_targets(h)) == 1


def test_a_scaling_failure_after_the_swap_leaves_the_new_model_live_and_says_why(handlers, lambda_context):
    store, h = handlers
    deployer = h["update_endpoint"].services.deployer
    fill_gaps(deployer.client, [])
    deployer.deploy("ab-old", "s3://autobert-bucket/models/ab-old/output/model.tar.gz")
    ModelRegistry(store).register("ab-new", status="candidate", model_uri="s3://x/m.tar.gz")

    def denied(**_):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized to perform: "
                                     "cloudwatch:PutMetricAlarm"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                          "PutScalingPolicy")

    h["check_endpoint"].services.deployer.autoscaling.meta.events.register(
        "before-call.application-autoscaling.PutScalingPolicy", denied)
    state = {"run_id": "r-3c", "gate": {"model_version": "ab-new", "model_uri": "s3://x/m.tar.gz", "promote": True}}
    state["deploy"] = h["update_endpoint"].lambda_handler(state, lambda_context)
    out = h["check_endpoint"].lambda_handler(state, lambda_context)
    assert out["status"] == "InService" and "AccessDeniedException" in out["scaling"]["error"]
    assert store.get_json(layout.LIVE_MODEL)["version"] == "ab-new"
    run = store.get_json(layout.run_record("r-3c"))
    assert run["status"] == "succeeded" and "cloudwatch:PutMetricAlarm" in run["scaling_error"]


def test_record_failure_never_rejects_the_version_the_endpoint_serves(handlers, lambda_context):
    """A run that fails after its swap (CheckEndpoint's retries of a transient scaling error ran out) ends failed,
    but the version it put on the endpoint stays live in the registry."""
    store, h = handlers
    registry = ModelRegistry(store)
    registry.register("ab-new", status="candidate", model_uri="s3://x/m.tar.gz")
    registry.mark_live("ab-new")
    out = h["record_failure"].lambda_handler({"run_id": "r-3d", "gate": {"model_version": "ab-new", "promote": True},
                                              "error": {"Error": "TransientError", "Cause": "PutScalingPolicy: "
                                                        "ConcurrentUpdateException"}}, lambda_context)
    assert out["error"] == "TransientError"
    assert registry.get("ab-new")["status"] == "live" and registry.live()["version"] == "ab-new"
    run = store.get_json(layout.run_record("r-3d"))
    assert run["status"] == "failed" and run["live_version"] == "ab-new"


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


def test_only_the_steps_that_read_datasets_load_pandas():
    # check_endpoint, update_endpoint, record_failure, check_training and start_training never touch a DataFrame:
    # importing the step module must not import pandas (MergeData imports it when it runs).
    import subprocess
    import sys

    code = ("import sys, autobert.workflow.steps, autobert.workflow.tuning_steps; "
            "print(sorted(m for m in ('pandas', 'numpy', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_the_run_starter_and_its_lambda_load_without_pandas():
    # POST /retrain, the schedule and the end of a run go through workflow.start: importing it (and the retrain
    # handler module) must not import pandas, nor what a request then reads (the dataset pointer, the feedback count).
    import subprocess
    import sys

    code = ("import sys, tempfile, importlib.util, autobert.workflow.start, autobert.workflow.rollback, "
            "autobert.bootstrap; "
            "spec = importlib.util.spec_from_file_location('retrain_handler', 'functions/retrain.py'); "
            "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
            "from autobert.adapters.local_store import LocalObjectStore; "
            "from autobert.workflow.datasets import current_dataset; "
            "from autobert.workflow.triggers import threshold_reached; "
            "store = LocalObjectStore(tempfile.mkdtemp()); "
            "assert current_dataset(store) is None and not threshold_reached(store, 1); "
            "print(sorted(m for m in ('pandas', 'numpy', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         cwd=REPO_ROOT)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------ the tuning path
def test_the_tuning_path_gates_and_deploys_the_best_training_job_through_the_same_handlers(handlers, lambda_context):
    store, h = handlers
    state = {"run_id": "r-5", "triggers": [], "full": True, "tune": True}
    state["merge"] = h["merge_data"].lambda_handler(state, lambda_context)
    state["training"] = h["start_tuning"].lambda_handler(state, lambda_context)
    tuning_job = state["training"]["tuning_job"]
    sagemaker = h["check_training"].services.client("sagemaker")
    sent = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
                for c in sent["TrainingJobDefinition"]["InputDataConfig"]}
    assert channels["train"] == f"s3://{BUCKET}/datasets/{state['merge']['dataset_version']}/"

    # CheckTraining sees a tuning job in $.training and describes it (moto completes it at once).
    state["training_status"] = h["check_training"].lambda_handler(state, lambda_context)
    best = state["training_status"]["model_version"]
    assert state["training_status"]["status"] == "Completed" and best and best != tuning_job
    assert state["training_status"]["model_version"] == best

    put_training_output(store, best, hyperparameters={"learning_rate": 4.2e-05, "epochs": 3})
    state["gate"] = h["evaluate"].lambda_handler(state, lambda_context)
    assert state["gate"]["promote"] is True and state["gate"]["model_version"] == best
    record = store.get_json(layout.model_record(best))
    assert record["status"] == "candidate" and record["version"] == best
    assert record["model_uri"] == f"s3://{BUCKET}/models/{best}/output/model.tar.gz"
    assert record["hyperparameters"] == {"learning_rate": 4.2e-05, "epochs": 3}
    assert record["tuning"]["job"] == tuning_job
    assert record["tuning"]["objective"] == state["training_status"]["best_objective"]
    run = store.get_json(layout.run_record("r-5"))
    assert run["tuning_job"] == tuning_job and run["model_version"] == best

    state["deploy"] = h["update_endpoint"].lambda_handler(state, lambda_context)
    assert h["check_endpoint"].lambda_handler(state, lambda_context)["status"] == "InService"
    assert store.get_json(layout.LIVE_MODEL)["version"] == best


def test_a_warm_start_through_the_tuning_path_gets_the_training_paths_channels_and_checkpoints(handlers,
                                                                                                lambda_context):
    """StartTuning's trials get StartTraining's inputs: on a warm start the fused TF-IDF model refits on the whole
    dataset (``fusion``) and the live model is the init model."""
    store, h = handlers
    state = {"run_id": "r-8", "triggers": [], "full": True}
    state["merge"] = h["merge_data"].lambda_handler(state, lambda_context)
    state["training"] = h["start_training"].lambda_handler(state, lambda_context)
    state["training_status"] = h["check_training"].lambda_handler(state, lambda_context)
    put_training_output(store, state["training"]["job_name"])
    state["gate"] = h["evaluate"].lambda_handler(state, lambda_context)
    state["deploy"] = h["update_endpoint"].lambda_handler(state, lambda_context)
    assert h["check_endpoint"].lambda_handler(state, lambda_context)["status"] == "InService"
    live = store.get_json(layout.LIVE_MODEL)

    store.put_json(layout.feedback_key("f2", __import__("datetime").date(2026, 11, 26)),
                   {"id": "f2", "text": "bread and butter", "label": "cooking", "received_at": "x"})
    warm = {"run_id": "r-9", "triggers": [], "full": False, "tune": True}
    warm["merge"] = h["merge_data"].lambda_handler(warm, lambda_context)
    assert warm["merge"]["warm"] is True
    warm["training"] = h["start_tuning"].lambda_handler(warm, lambda_context)
    sagemaker = h["check_training"].services.client("sagemaker")
    definition = sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=warm["training"]["tuning_job"])["TrainingJobDefinition"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in definition["InputDataConfig"]}
    assert channels["fusion"] == f"s3://{BUCKET}/datasets/{warm['merge']['dataset_version']}/"
    assert channels["live"] == live["model_uri"]
    static = definition["StaticHyperParameters"]
    assert static["init-model"] == "/opt/ml/input/data/live"
    assert definition["EnableManagedSpotTraining"] is True
    # Trials share the definition's one checkpoint S3Uri: they do not checkpoint (train.py would refuse another
    # trial's checkpoint), unlike a single training job.
    assert "CheckpointConfig" not in definition and "checkpoint-dir" not in static


def test_a_training_run_records_no_tuning(handlers, lambda_context):
    store, h = handlers
    state = {"run_id": "r-6", "triggers": [], "full": True}
    state["merge"] = h["merge_data"].lambda_handler(state, lambda_context)
    state["training"] = h["start_training"].lambda_handler(state, lambda_context)
    state["training_status"] = h["check_training"].lambda_handler(state, lambda_context)
    job = state["training"]["job_name"]
    put_training_output(store, job, hyperparameters={"epochs": 3})
    h["evaluate"].lambda_handler(state, lambda_context)
    record = store.get_json(layout.model_record(job))
    assert record["tuning"] is None and record["version"] == job and record["hyperparameters"] == {"epochs": 3}


def apply_study(store, params: dict) -> None:
    from autobert.tuning import apply_defaults

    apply_defaults(store, {"study_id": "s-1", "backend": "local", "objective": "validation:macro_f1",
                           "best": {"number": 0},
                           "trials": [{"number": 0, "state": "COMPLETE", "params": params, "value": 0.8}]})


def test_tuned_defaults_reach_the_next_training_job_and_are_recorded(handlers, lambda_context):
    store, h = handlers
    apply_study(store, {"learning-rate": "4.2e-05", "epochs": "5", "batch-size": "32", "model-version": "x"})
    state = {"run_id": "r-7", "triggers": [], "full": True}
    state["merge"] = h["merge_data"].lambda_handler(state, lambda_context)
    state["training"] = h["start_training"].lambda_handler(state, lambda_context)
    job = state["training"]["job_name"]
    sent = h["check_training"].services.training_jobs.client.describe_training_job(TrainingJobName=job)
    hp = sent["HyperParameters"]
    assert (hp["learning-rate"], hp["epochs"], hp["batch-size"]) == ("4.2e-05", "5", "32")
    assert hp["model-version"] == job  # the workflow's own keys are never taken from tuned defaults
    assert state["training"]["tuned_defaults"]["study_id"] == "s-1"
    assert store.get_json(layout.run_record("r-7"))["tuned_defaults"]["study_id"] == "s-1"
    state["training_status"] = h["check_training"].lambda_handler(state, lambda_context)
    put_training_output(store, job)
    h["evaluate"].lambda_handler(state, lambda_context)
    assert store.get_json(layout.model_record(job))["tuned_defaults"]["study_id"] == "s-1"


def test_explicit_hyperparameters_beat_tuned_ones_and_a_warm_start_keeps_its_epochs_and_learning_rate(handlers):
    from autobert.bootstrap import Services
    from autobert.config import Settings
    from autobert.workflow.steps import training_hyperparameters

    store, _ = handlers
    apply_study(store, {"learning-rate": "4.2e-05", "epochs": "5", "batch-size": "32", "max-length": "128"})
    settings = Settings(mode="aws", bucket=BUCKET, region="us-east-1", train_hyperparameters={"max-length": "256"},
                        warm_epochs=2, warm_learning_rate=5e-5)
    full = training_hyperparameters(Services(settings), "ab-1", warm=False, init_path=None)
    assert (full["learning-rate"], full["epochs"], full["batch-size"], full["max-length"]) == (
        "4.2e-05", "5", "32", "256")
    # The gate's fixed holdout is the test: no internal test split takes documents away from training.
    assert full["test-fraction"] == "0"
    warm = training_hyperparameters(Services(settings), "ab-2", warm=True, init_path="/opt/ml/input/data/live")
    assert (float(warm["learning-rate"]), float(warm["epochs"]), warm["batch-size"]) == (5e-5, 2, "32")
    assert warm["init-model"] == "/opt/ml/input/data/live"


# ---------------------------------------------------------------------------------- feedback-count threshold (AWS)
THRESHOLD_CHECK = {"action": "check-threshold"}  # the input the EventBridge rate rule sends (serverless.yml)


def add_feedback(store, *ids: str) -> None:
    for item in ids:
        store.put_json(layout.feedback_key(item, __import__("datetime").date(2026, 11, 25)),
                       {"id": item, "text": f"soup recipe {item}", "label": "cooking", "received_at": "x"})


def test_the_threshold_check_starts_a_run_once_enough_unmerged_feedback_is_stored(handlers, lambda_context,
                                                                                  monkeypatch):
    store, _ = handlers
    set_env(monkeypatch, feedback_threshold=3)
    retrain = load_module(REPO_FUNCTIONS / "retrain.py", "handler_retrain_threshold")  # a cold start
    assert retrain.lambda_handler(THRESHOLD_CHECK, lambda_context) == {"status": "not-triggered", "threshold": 3}
    add_feedback(store, "f2")
    assert retrain.lambda_handler(THRESHOLD_CHECK, lambda_context)["status"] == "not-triggered"  # 2 < 3
    assert not store.list_keys(layout.TRIGGERS)
    sfn = retrain.services.workflow_runs
    assert sfn.running() == []

    add_feedback(store, "f3")
    out = retrain.lambda_handler(THRESHOLD_CHECK, lambda_context)
    assert out["status"] == "started"
    run = store.get_json(layout.run_record(out["run_id"]))
    assert run["trigger"] == "threshold" and run["tune"] is False
    assert [e["name"] for e in sfn.running()] == [out["run_id"]]

    # While that run runs, more checks neither start nor queue a second run for the same feedback.
    add_feedback(store, "f4", "f5", "f6")
    again = retrain.lambda_handler(THRESHOLD_CHECK, lambda_context)
    assert again["status"] == "running" and again["running"] == [out["run_id"]]
    assert len(store.list_keys(layout.TRIGGERS)) == 2  # the one trigger and its served marker


def test_the_threshold_check_does_nothing_before_the_first_dataset(empty_stack, monkeypatch, lambda_context):
    set_env(monkeypatch, feedback_threshold=1)
    store = S3ObjectStore(boto3.client("s3", region_name="us-east-1"), BUCKET)
    add_feedback(store, "f1", "f2")
    retrain = load_module(REPO_FUNCTIONS / "retrain.py", "handler_retrain_empty")
    assert retrain.lambda_handler(THRESHOLD_CHECK, lambda_context)["status"] == "not-triggered"
    assert not store.list_keys(layout.TRIGGERS)


def test_a_scheduled_run_tunes_when_the_stage_enables_it(handlers, lambda_context, monkeypatch):
    store, _ = handlers
    set_env(monkeypatch, schedule_tune="true")
    retrain = load_module(REPO_FUNCTIONS / "retrain.py", "handler_retrain_tune")
    out = retrain.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, lambda_context)
    assert out["status"] == "started"
    sfn = retrain.services.workflow_runs.client
    execution = sfn.describe_execution(executionArn=out["execution_arn"])
    assert json.loads(execution["input"])["tune"] is True
    assert store.get_json(layout.run_record(out["run_id"]))["tune"] is True
