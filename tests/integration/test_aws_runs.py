"""What a real account hits after the first deploy, against moto (AWS's stand-in; its gaps are filled by botocore
hooks, never by replacing our code): one run at a time even when starters race, a slot left by a starter that died,
a tuning job that outlives its execution, a schedule that fires before the bootstrap, a Failed endpoint, a retried
UpdateEndpoint, the serving limits in the container's environment, and the predict client's time budget."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from serving_helpers import load_module, rest_event
from test_sagemaker_adapters import deployed_ab_1, fill_gaps
from test_sagemaker_handlers import BUCKET, REPO_FUNCTIONS

from autobert import layout
from autobert.adapters.s3_store import S3ObjectStore
from autobert.adapters.sagemaker_deploy import SageMakerEndpointDeployer
from autobert.adapters.sagemaker_runtime import API_GATEWAY_LIMIT_SECONDS, worst_case_seconds
from autobert.bootstrap import Services
from autobert.config import Settings
from autobert.workflow.errors import EndpointNotReady
from autobert.workflow.start import SLOT_STALE_SECONDS, on_execution_end, request_run, start_pending_on_aws
from autobert.workflow.triggers import pending_triggers, record_trigger

ASL = Path(__file__).resolve().parents[2] / "statemachines" / "retrain.asl.json"
OK = AWSResponse("https://sagemaker.us-east-1.amazonaws.com/", 200, {}, None)


def executions(services: Services) -> list[dict]:
    return services.workflow_runs.client.list_executions(stateMachineArn=services.settings.state_machine_arn)[
        "executions"]


# ------------------------------------------------------------------------------------------- one run at a time
def test_two_starters_racing_start_one_run_and_the_loser_waits_for_the_next(handlers, lambda_context):
    store, h = handlers
    first_container = h["retrain"].services
    second_container = Services(first_container.settings)  # another Lambda container: its own clients
    raced: list[dict] = []

    def the_schedule_fires_meanwhile(**_):
        # Between the API's check and its StartExecution, the scheduled run's starter runs to its end.
        if not raced:
            raced.append(request_run(second_container, "schedule", full=True))

    first_container.workflow_runs.client.meta.events.register("before-call.sfn.StartExecution",
                                                             the_schedule_fires_meanwhile)
    started = request_run(first_container, "manual")
    assert started["status"] == "started"
    assert raced[0]["status"] == "queued" and raced[0]["running"] == [started["run_id"]]
    assert [e["name"] for e in executions(first_container)] == [started["run_id"]]
    waiting = pending_triggers(store)
    assert [t["kind"] for t in waiting] == ["schedule"]  # recorded, not dropped: the next run serves it

    first_container.workflow_runs.client.stop_execution(
        executionArn=store.get_json(layout.run_record(started["run_id"]))["execution_arn"])
    following = on_execution_end(second_container, {"name": started["run_id"], "status": "ABORTED"})
    assert following["status"] == "started"
    assert json.loads(second_container.workflow_runs.client.describe_execution(
        executionArn=following["execution_arn"])["input"])["triggers"] == [waiting[0]["id"]]


def test_a_slot_whose_starter_died_before_starting_its_execution_frees_after_a_while(handlers):
    store, h = handlers
    services = h["retrain"].services
    taken = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    store.put_json(layout.run_slot(1), {"run_id": "r-died", "at": taken.isoformat()})
    record_trigger(store, "manual")
    soon = start_pending_on_aws(services, clock=lambda: taken + timedelta(seconds=60))
    assert soon == {"status": "queued", "running": ["r-died"]}
    later = start_pending_on_aws(services, clock=lambda: taken + timedelta(seconds=SLOT_STALE_SECONDS + 1))
    assert later["status"] == "started"
    assert store.get_json(layout.run_slot(2))["run_id"] == later["run_id"]


def test_a_run_whose_execution_ended_without_closing_its_record_does_not_block_the_next(handlers, lambda_context):
    store, h = handlers
    services = h["retrain"].services
    first = request_run(services, "manual")
    services.workflow_runs.client.stop_execution(executionArn=first["execution_arn"])  # no status event arrives
    assert store.get_json(layout.run_record(first["run_id"]))["status"] == "starting"
    second = request_run(services, "manual")
    assert second["status"] == "started" and second["run_id"] != first["run_id"]


def test_the_end_of_a_run_starts_the_next_even_while_the_listing_still_shows_it_running(handlers):
    store, h = handlers
    services = h["retrain"].services
    first = request_run(services, "manual")
    assert request_run(services, "manual")["status"] == "queued"
    client = services.workflow_runs.client
    client.stop_execution(executionArn=first["execution_arn"])
    listed = client.list_executions(stateMachineArn=services.settings.state_machine_arn)["executions"]

    def listing_lags_behind(parsed, **_):  # ListExecutions is eventually consistent
        parsed["executions"] = [{**e, "status": "RUNNING"} for e in listed if e["name"] == first["run_id"]]

    client.meta.events.register("after-call.sfn.ListExecutions", listing_lags_behind)
    following = on_execution_end(services, {"name": first["run_id"], "status": "ABORTED"})
    assert following["status"] == "started" and following["run_id"] != first["run_id"]


# ------------------------------------------------------------------------------------------- jobs left running
def test_an_execution_that_timed_out_stops_the_tuning_job_it_left_running(handlers):
    store, h = handlers
    services = h["retrain"].services
    calls: list[tuple[str, dict]] = []

    def sagemaker_side(params, model, **_):
        body = json.loads(params["body"] or b"{}")
        if model.name == "DescribeHyperParameterTuningJob":
            return OK, {"HyperParameterTuningJobName": body["HyperParameterTuningJobName"],
                        "HyperParameterTuningJobStatus": "InProgress", "HyperParameterTuningJobConfig": {},
                        "CreationTime": 0}
        if model.name == "StopHyperParameterTuningJob":
            calls.append((model.name, body))
            return OK, {}
        return None

    services.tuning_jobs.client.meta.events.register("before-call.sagemaker.*", sagemaker_side)
    started = request_run(services, "schedule", full=True, tune=True)
    runs_key = layout.run_record(started["run_id"])
    store.put_json(runs_key, {**store.get_json(runs_key), "status": "running", "tuning_job": "abt-1"})
    services.workflow_runs.client.stop_execution(executionArn=started["execution_arn"])
    on_execution_end(services, {"name": started["run_id"], "status": "TIMED_OUT"})
    assert calls == [("StopHyperParameterTuningJob", {"HyperParameterTuningJobName": "abt-1"})]
    record = store.get_json(runs_key)
    assert record["status"] == "failed" and record["stopped_jobs"] == ["abt-1"]


def test_a_job_that_cannot_be_stopped_still_leaves_the_run_closed(handlers):
    store, h = handlers
    services = h["retrain"].services
    from botocore.exceptions import ClientError

    def sagemaker_side(params, model, **_):
        body = json.loads(params["body"] or b"{}")
        if model.name == "DescribeTrainingJob":
            return OK, {"TrainingJobName": body["TrainingJobName"], "TrainingJobStatus": "Stopping",
                        "OutputDataConfig": {"S3OutputPath": "s3://b/models"}}
        if model.name == "StopTrainingJob":
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "job is already stopping"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "StopTrainingJob")
        return None

    services.training_jobs.client.meta.events.register("before-call.sagemaker.*", sagemaker_side)
    started = request_run(services, "manual")
    key = layout.run_record(started["run_id"])
    store.put_json(key, {**store.get_json(key), "status": "running", "model_version": "ab-1"})
    services.workflow_runs.client.stop_execution(executionArn=started["execution_arn"])
    on_execution_end(services, {"name": started["run_id"], "status": "ABORTED"})
    record = store.get_json(key)
    assert record["status"] == "failed" and record["error"] == "ExecutionAborted" and "stopped_jobs" not in record


def test_the_tuning_wait_loop_ends_before_the_execution_times_out(handlers, lambda_context):
    store, h = handlers
    state = {"run_id": "r-1", "triggers": [], "full": True, "tune": True}
    state["merge"] = h["merge_data"].lambda_handler(state, lambda_context)
    training = h["start_tuning"].lambda_handler(state, lambda_context)
    timeout = json.loads(ASL.read_text())["TimeoutSeconds"]
    assert h["start_tuning"].services.settings.run_timeout_seconds == timeout
    assert training["deadline"] - training["started_at"] < timeout


# --------------------------------------------------------------------------------------------- before bootstrap
def test_before_the_bootstrap_the_schedule_starts_no_run_and_the_api_says_what_to_run(empty_stack, lambda_context):
    retrain = load_module(REPO_FUNCTIONS / "retrain.py", "handler_retrain_not_bootstrapped")
    out = retrain.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, lambda_context)
    assert out["status"] == "not-bootstrapped" and "autobert aws bootstrap" in out["message"]
    api = retrain.lambda_handler(rest_event("POST", "/retrain", {}), lambda_context)
    assert api["statusCode"] == 409 and "autobert aws bootstrap" in json.loads(api["body"])["message"]
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    assert sfn.list_executions(stateMachineArn=empty_stack)["executions"] == []
    store = S3ObjectStore(boto3.client("s3", region_name="us-east-1"), BUCKET)
    assert store.list_keys(layout.TRIGGERS) == []


# ------------------------------------------------------------------------------------------------ the endpoint
def backend():
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends["123456789012"]["us-east-1"]


def test_a_failed_endpoint_is_deleted_then_created_anew_serving_the_new_model(aws, settings):
    calls: list = []
    client, deployer = deployed_ab_1(settings, calls)
    backend().endpoints["autobert"].endpoint_status = "Failed"
    with pytest.raises(EndpointNotReady, match="was Failed"):
        deployer.deploy("ab-2", "s3://autobert-bucket/models/ab-2/output/model.tar.gz")
    assert "autobert" not in backend().endpoints  # deleted; no UpdateEndpoint on a Failed endpoint
    deployer.deploy("ab-2", "s3://autobert-bucket/models/ab-2/output/model.tar.gz")  # the state machine's retry
    assert deployer.status() == "InService" and deployer.serving_version() == "ab-2"
    assert calls == []


def test_a_retried_update_that_finds_the_swap_under_way_waits_for_it(aws, settings):
    calls: list = []
    client, deployer = deployed_ab_1(settings, calls)

    def updating_to_ab_2(**kwargs):
        kwargs["parsed"].update(EndpointStatus="Updating",
                                PendingDeploymentSummary={"EndpointConfigName": "autobert-ab-2"})

    client.meta.events.register("after-call.sagemaker.DescribeEndpoint", updating_to_ab_2)
    deployer.deploy("ab-2", "s3://autobert-bucket/models/ab-2/output/model.tar.gz")  # the retry: no error
    assert calls == []  # no second UpdateEndpoint
    client.meta.events.unregister("after-call.sagemaker.DescribeEndpoint", updating_to_ab_2)

    def updating_to_another(**kwargs):
        kwargs["parsed"].update(EndpointStatus="Updating",
                                PendingDeploymentSummary={"EndpointConfigName": "autobert-ab-9"})

    client.meta.events.register("after-call.sagemaker.DescribeEndpoint", updating_to_another)
    with pytest.raises(EndpointNotReady, match="is Updating"):
        deployer.deploy("ab-3", "s3://autobert-bucket/models/ab-3/output/model.tar.gz")


def test_update_endpoint_retries_a_not_ready_endpoint_for_long_enough_to_delete_it():
    retry = next(r for r in json.loads(ASL.read_text())["States"]["UpdateEndpoint"]["Retry"]
                 if "EndpointNotReady" in r["ErrorEquals"])
    waits = [min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, retry.get("MaxDelaySeconds", 1e9))
             for n in range(retry["MaxAttempts"])]
    assert sum(waits) >= 15 * 60  # deleting an endpoint takes minutes


def test_the_container_gets_the_request_limits_the_lambda_enforces(aws, settings):
    client = boto3.client("sagemaker", region_name="us-east-1")
    fill_gaps(client, [])
    limited = settings.model_copy(update={"max_batch": 16, "max_text_chars": 5000})
    SageMakerEndpointDeployer(client, limited).deploy("ab-1", "s3://autobert-bucket/models/ab-1/model.tar.gz")
    environment = client.describe_model(ModelName="autobert-ab-1")["PrimaryContainer"]["Environment"]
    assert environment["AUTOBERT_MAX_BATCH"] == "16" and environment["AUTOBERT_MAX_TEXT_CHARS"] == "5000"
    container = Settings(_env_file=None, **{k: environment[f"AUTOBERT_{k.upper()}"]
                                             for k in ("max_batch", "max_text_chars")})
    assert (container.max_batch, container.max_text_chars) == (16, 5000)  # what inference.py's settings read


# --------------------------------------------------------------------------------------------- the predict client
@pytest.mark.parametrize("endpoint_timeout", [5.0, 25.0, 60.0])
def test_the_predict_clients_attempts_all_end_within_api_gateways_limit(endpoint_timeout):
    services = Services(Settings(mode="aws", bucket="b", endpoint_timeout=endpoint_timeout))
    config = services.endpoint_client.client.meta.config
    assert worst_case_seconds(config) < API_GATEWAY_LIMIT_SECONDS
    assert config.read_timeout <= endpoint_timeout
    assert config.retries["total_max_attempts"] >= 2  # a dropped connection or a throttle still gets a retry


# ------------------------------------------------------------------------------------------------------- rollback
def rolled_back_world(settings, calls: list, **over):
    """ab-1 live on the endpoint (moto, its gaps filled), ab-0 before it (retired, its artifact kept)."""
    from autobert.bootstrap import bootstrap
    from autobert.workflow.registry import ModelRegistry

    client, deployer = deployed_ab_1(settings, calls)
    services = bootstrap(settings.model_copy(update=over), deployer=deployer)
    registry = ModelRegistry(services.store)
    for version in ("ab-0", "ab-1"):
        registry.register(version, status="candidate", model_uri=f"s3://{BUCKET}/models/{version}/model.tar.gz")
        registry.mark_live(version)
    return client, services, registry


def test_a_rollback_is_a_run_opened_like_every_run_with_its_kind(aws, settings):
    from autobert.workflow.rollback import rollback
    from autobert.workflow.runs import RunStore, open_run

    calls: list = []
    client, services, registry = rolled_back_world(settings, calls)
    record_trigger(services.store, "manual")
    retrain = RunStore(services.store).get(open_run(services.store, pending_triggers(services.store),
                                                    executor="stepfunctions")["run_id"])

    def never(seconds):
        raise AssertionError("the endpoint served the version at once: no wait")

    assert rollback(services, "ab-0", sleep=never)["status"] == "live"
    assert registry.live()["version"] == "ab-0"
    assert [params["EndpointConfigName"] for _, params in calls] == ["autobert-ab-0"]
    [run] = [r for r in RunStore(services.store).list() if r["run_id"] != retrain["run_id"]]
    assert set(retrain) <= set(run)  # every field a run has
    assert (retrain["kind"], run["kind"], run["trigger"]) == ("retrain", "rollback", "rollback")
    assert run["status"] == "succeeded" and run["model_version"] == "ab-0" == run["live_version"]
    assert run["live_version_before"] == "ab-1" and run["trigger_kinds"] == [] and run["full"] is False


def test_a_rollback_waits_on_its_own_clock_and_gives_up_after_the_endpoint_wait(aws, settings):
    from autobert.workflow.errors import DeploymentError
    from autobert.workflow.rollback import rollback
    from autobert.workflow.runs import RunStore

    calls: list = []
    client, services, registry = rolled_back_world(settings, calls, endpoint_max_wait_seconds=10)

    def still_updating(parsed, **_):
        if calls and "EndpointStatus" in parsed:  # after the UpdateEndpoint of the rollback: it never ends
            parsed["EndpointStatus"] = "Updating"

    client.meta.events.register("after-call.sagemaker.DescribeEndpoint", still_updating)
    now, slept = [1000.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    with pytest.raises(DeploymentError, match=r"rollback to ab-0: endpoint Updating \(timed out\)"):
        rollback(services, "ab-0", poll_seconds=2, sleep=sleep, clock=lambda: now[0])
    assert slept == [2] * 6  # checked at 1000, 1002, ..., 1012 s: past the 10 s wait
    [run] = RunStore(services.store).list()
    assert run["kind"] == "rollback" and run["status"] == "failed" and run["error"] == "DeploymentError"
    assert registry.live()["version"] == "ab-1"
