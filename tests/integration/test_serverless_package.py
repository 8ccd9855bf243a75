"""The deployment, proven offline: ``osls package`` builds the CloudFormation template and the zips, and every
property the deployment promises is asserted on them."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from osls_package import REPO, package, requires_osls

from autobert.api_models import MAX_TEXT_CHARS
from autobert.workflow.tasks import TASKS

pytestmark = [requires_osls, pytest.mark.slow]

MiB = 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 250 * MiB  # code + all layers of one function
# Unzipped sizes of the public layers (the packaged template only names them). Powertools: 32 MiB measured for
# aws-lambda-powertools[all] 3.37 built the way its layer is (pip install -t, boto3/botocore stripped); the pinned
# 3.22 is not bigger. AWS SDK for pandas 3.16.1: 204 MiB (aws/aws-sdk-pandas#3331; 3.16.0 and older: 167 MiB).
POWERTOOLS_LAYER_BYTES = 36 * MiB
PANDAS_LAYER_BYTES = 205 * MiB
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
S3_WRITE = re.compile(r"^s3:(Put|Delete|Restore|Replicate|Abort|Create|Update)", re.I)
SAGEMAKER_WRITE = re.compile(r"^sagemaker:(Create|Update|Delete|Stop|Start|Add|Put|Invoke)", re.I)


@pytest.fixture(scope="module")
def packaged():
    return package()


@pytest.fixture(scope="module")
def template(packaged) -> dict:
    return packaged.template


@pytest.fixture(scope="module")
def resources(template) -> dict:
    return template["Resources"]


def of_type(resources: dict, kind: str) -> dict:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def functions(resources: dict) -> dict:
    return of_type(resources, "AWS::Lambda::Function")


def function_named(resources: dict, handler: str) -> tuple[str, dict]:
    [(name, fn)] = [(n, f) for n, f in functions(resources).items() if f["Properties"]["Handler"] == handler]
    return name, fn


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def statements(resources: dict):
    """Every Allow statement of every IAM role in the template, with the role's name."""
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                if st["Effect"] == "Allow":
                    yield name, st


def resource_text(resource) -> str:
    """A policy resource as text: plain ARN, or the template string of Fn::Sub / a GetAtt/Ref marker."""
    if isinstance(resource, str):
        return resource
    if "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return json.dumps(resource)


# ------------------------------------------------------------------------------------------------------ functions
HANDLERS = ["predict", "feedback", "retrain", *(task.handler for task in TASKS.values())]  # every function


def test_every_handler_is_a_python312_function_with_tracing_and_its_own_role(resources):
    fns = functions(resources)
    assert sorted(f["Properties"]["Handler"] for f in fns.values()) == sorted(
        f"functions/{h}.lambda_handler" for h in HANDLERS)
    roles = set()
    for fn in fns.values():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.12"
        assert props["TracingConfig"] == {"Mode": "Active"}
        role = props["Role"]["Fn::GetAtt"][0]
        assert resources[role]["Type"] == "AWS::IAM::Role"
        roles.add(role)
        env = props["Environment"]["Variables"]
        assert env["AUTOBERT_MODE"] == "aws" and env["AUTOBERT_BUCKET"] == {"Ref": "Bucket"}
    assert len(roles) == len(fns), "each function gets its own role"


def test_log_groups_have_a_retention(resources):
    groups = of_type(resources, "AWS::Logs::LogGroup")
    assert len(groups) >= len(HANDLERS) + 1  # one per function + the state machine's
    assert all(g["Properties"].get("RetentionInDays") == 30 for g in groups.values())


API_HANDLERS = {"functions/predict.lambda_handler", "functions/feedback.lambda_handler"}


def test_functions_get_the_domain_layer_and_powertools_and_only_workflow_ones_get_pandas(resources):
    for name, fn in functions(resources).items():
        layers = fn["Properties"]["Layers"]
        assert {"Ref": "DomainLambdaLayer"} in layers
        assert any("/aws/service/powertools/python/x86_64/python3.12/" in json.dumps(layer) for layer in layers)
        has_pandas = any("AWSSDKPandas-Python312" in json.dumps(layer) for layer in layers)
        assert has_pandas == (fn["Properties"]["Handler"] not in API_HANDLERS), name


def zip_entries(path: Path) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as z:
        return z.infolist()


def test_the_zips_hold_only_handlers_and_the_domain_package_never_torch_or_transformers(packaged):
    code = [i.filename for i in zip_entries(packaged.folder / "autobert.zip")]
    layer = [i.filename for i in zip_entries(packaged.folder / "domain.zip")]
    assert code and all(n.startswith("functions/") and n.endswith(".py") for n in code)
    assert "python/autobert/config.py" in layer and "python/autobert/workflow/steps.py" in layer
    assert all(n.startswith("python/autobert/") and "__pycache__" not in n for n in layer)
    assert not [n for n in code + layer if re.search(r"(^|/)(torch|transformers)/", n)]


def test_each_function_with_its_layers_stays_under_lambdas_unzipped_limit(packaged, resources):
    code = sum(i.file_size for i in zip_entries(packaged.folder / "autobert.zip"))
    domain = sum(i.file_size for i in zip_entries(packaged.folder / "domain.zip"))
    assert domain < 5 * MiB and code < 1 * MiB
    for name, fn in functions(resources).items():
        total = code
        for layer in fn["Properties"]["Layers"]:
            text = json.dumps(layer)
            total += (domain if "DomainLambdaLayer" in text else POWERTOOLS_LAYER_BYTES if "powertools" in text
                      else PANDAS_LAYER_BYTES if "AWSSDKPandas" in text else LAMBDA_UNZIPPED_LIMIT)
        assert total < LAMBDA_UNZIPPED_LIMIT, f"{name}: {total / MiB:.0f} MiB"


# ------------------------------------------------------------------------------------------------------------ API
def test_every_route_requires_an_api_key_and_cors_is_off(resources):
    methods = of_type(resources, "AWS::ApiGateway::Method")
    routes = {}
    for m in methods.values():
        path = resources[m["Properties"]["ResourceId"]["Ref"]]["Properties"]["PathPart"]
        routes[(m["Properties"]["HttpMethod"], path)] = m
    assert set(routes) == {("POST", "predict"), ("POST", "feedback"), ("POST", "retrain")}  # no OPTIONS: no CORS
    assert all(m["Properties"]["ApiKeyRequired"] is True for m in routes.values())


def test_the_usage_plan_throttles_and_has_a_quota_and_holds_the_key(resources):
    [plan] = of_type(resources, "AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["Throttle"] == {"RateLimit": 10, "BurstLimit": 20}  # the endpoint's most capacity
    assert plan["Properties"]["Quota"] == {"Limit": 100000, "Period": "MONTH"}
    [key] = of_type(resources, "AWS::ApiGateway::UsagePlanKey").values()
    assert key["Properties"]["KeyId"] == {"Ref": "ApiGatewayApiKey1"}


def test_request_size_limits_reach_the_handlers(resources):
    _, predict = function_named(resources, "functions/predict.lambda_handler")
    env = predict["Properties"]["Environment"]["Variables"]
    assert env["AUTOBERT_MAX_TEXT_CHARS"] == str(MAX_TEXT_CHARS) and env["AUTOBERT_MAX_BATCH"] == "16"


# --------------------------------------------------------------------------------------------------------- bucket
def test_the_bucket_is_encrypted_versioned_private_kept_and_has_a_lifecycle(resources):
    bucket = resources["Bucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                       "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["old-model-artifacts"]["Prefix"] == "models/" and rules["old-model-artifacts"]["Status"] == "Enabled"


def test_the_bucket_policy_denies_every_request_without_tls(resources):
    policy = resources["BucketPolicy"]
    assert policy["Properties"]["Bucket"] == {"Ref": "Bucket"}
    [deny] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {resource_text(r) for r in deny["Resource"]} == {json.dumps({"Fn::GetAtt": ["Bucket", "Arn"]}),
                                                            "${Bucket.Arn}/*"}


# ------------------------------------------------------------------------------------------------------------ IAM
def test_no_s3_or_sagemaker_write_is_allowed_on_a_wildcard_or_the_whole_bucket(resources):
    checked = 0
    for role, st in statements(resources):
        for action in as_list(st["Action"]):
            assert action not in ("*", "s3:*", "sagemaker:*"), f"{role}: {action}"
            if S3_WRITE.match(action) or SAGEMAKER_WRITE.match(action):
                checked += 1
                for r in as_list(st["Resource"]):
                    text = resource_text(r)
                    assert text != "*" and not text.endswith(":*"), f"{role}: {action} on {text}"
                    assert text != "${Bucket.Arn}/*", f"{role}: {action} on the whole bucket"
                    if action.startswith("s3:"):
                        # a prefix, or a folder of every key under one (the SageMaker role's models/*/checkpoints/*)
                        assert re.fullmatch(r"\$\{Bucket\.Arn\}/[a-z_]+(/\*/[a-z_]+)?/\*", text), \
                            f"{role}: {action} on {text}"
    assert checked >= 15


def write_prefixes(resources: dict, role: str) -> set[str]:
    out = set()
    for name, st in statements(resources):
        if name == role and any(S3_WRITE.match(a) for a in as_list(st["Action"])):
            out |= {resource_text(r).removeprefix("${Bucket.Arn}/").removesuffix("/*") for r in as_list(st["Resource"])}
    return out


def test_each_function_writes_only_the_bucket_prefixes_it_owns(resources):
    def role_of(handler):
        return function_named(resources, f"functions/{handler}.lambda_handler")[1]["Properties"]["Role"][
            "Fn::GetAtt"][0]

    assert write_prefixes(resources, role_of("predict")) == set()
    assert write_prefixes(resources, role_of("feedback")) == {"feedback"}
    assert write_prefixes(resources, role_of("merge_data")) == {"datasets", "trainsets", "triggers", "runs"}
    assert write_prefixes(resources, role_of("start_tuning")) == {"runs"}
    assert write_prefixes(resources, role_of("check_training")) == {"runs", "tuning"}
    # artifacts and checkpoints; it may delete only checkpoints (SageMaker mirrors train.py's pruning to S3)
    # (batch/*/output: the predictions of a Batch Transform job, `autobert aws predict-batch`)
    assert write_prefixes(resources, "SageMakerExecutionRole") == {"models", "models/*/checkpoints", "batch/*/output"}


def test_only_the_endpoint_steps_may_change_the_endpoint_and_pass_the_sagemaker_role(resources):
    def actions(role):
        return {a for name, st in statements(resources) if name == role for a in as_list(st["Action"])}

    roles = {fn["Properties"]["Handler"].split("/")[1].split(".")[0]: fn["Properties"]["Role"]["Fn::GetAtt"][0]
             for fn in functions(resources).values()}
    assert {"sagemaker:UpdateEndpoint", "sagemaker:CreateEndpoint", "iam:PassRole"} <= actions(
        roles["update_endpoint"])
    assert {"sagemaker:CreateTrainingJob", "iam:PassRole"} <= actions(roles["start_training"])
    assert {"sagemaker:CreateHyperParameterTuningJob", "iam:PassRole"} <= actions(roles["start_tuning"])
    assert actions(roles["predict"]) & {a for a in actions(roles["predict"]) if a.startswith("sagemaker:")} == {
        "sagemaker:InvokeEndpoint"}
    for handler, role in roles.items():
        if handler not in ("update_endpoint", "start_training", "start_tuning"):
            assert "iam:PassRole" not in actions(role), handler
    pass_role = [st for name, st in statements(resources) if "iam:PassRole" in as_list(st["Action"])]
    assert all(st["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]} for st in pass_role)
    assert all(st["Condition"]["StringEquals"]["iam:PassedToService"] == "sagemaker.amazonaws.com"
               for st in pass_role)


def sagemaker_grants(resources: dict, handler: str) -> dict[str, set[str]]:
    """sagemaker action -> the resource patterns a function's role allows it on."""
    role = function_named(resources, f"functions/{handler}.lambda_handler")[1]["Properties"]["Role"]["Fn::GetAtt"][0]
    out: dict[str, set[str]] = {}
    for name, st in statements(resources):
        if name == role:
            for action in as_list(st["Action"]):
                if action.startswith("sagemaker:"):
                    out.setdefault(action, set()).update(resource_text(r) for r in as_list(st["Resource"]))
    return out


def test_the_tuning_path_may_start_and_watch_only_autobert_tuning_jobs(resources):
    tuning_job = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:hyper-parameter-tuning-job/abt-*"
    trials = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:training-job/abt-*"
    start = sagemaker_grants(resources, "start_tuning")
    assert start == {"sagemaker:CreateHyperParameterTuningJob": {tuning_job},
                     "sagemaker:DescribeHyperParameterTuningJob": {tuning_job},
                     "sagemaker:AddTags": {tuning_job, trials}}  # the job's tags go onto its training jobs
    check = sagemaker_grants(resources, "check_training")
    assert check["sagemaker:DescribeHyperParameterTuningJob"] == check["sagemaker:StopHyperParameterTuningJob"] == {
        tuning_job}
    assert check["sagemaker:DescribeTrainingJob"] == {
        "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:training-job/ab-*"}
    # The tuning job names StartTuning creates fit the granted pattern (and SageMaker's 32-character limit).
    from autobert.tuning.sagemaker import new_tuning_job_name

    name = new_tuning_job_name()
    assert name.startswith("abt-") and len(name) <= 32


def test_sagemaker_assumes_its_execution_role(resources):
    role = resources["SageMakerExecutionRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}


# -------------------------------------------------------------------------------------------------- state machine
def normalized(definition):
    """The definition with each state's query language made explicit (JSONPath is the default): the plugin's
    validator writes that default into every state, which changes nothing for Step Functions."""
    default = definition.get("QueryLanguage", "JSONPath")

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "States" and isinstance(value, dict):
                    for state in value.values():
                        state.setdefault("QueryLanguage", default)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(definition)
    return definition


def test_the_deployed_definition_is_the_asl_file_with_function_arns_substituted(resources):
    machine = resources["RetrainStateMachine"]["Properties"]
    subs = machine["DefinitionSubstitutions"]
    fake_arn = {name: f"arn:aws:lambda:eu-west-1:123456789012:function:{value['Fn::GetAtt'][0]}"
                for name, value in subs.items()}
    deployed = json.loads(PLACEHOLDER.sub(lambda m: fake_arn[m.group(1)], machine["DefinitionString"]))

    source = (REPO / "statemachines" / "retrain.asl.json").read_text()
    placeholders = set(PLACEHOLDER.findall(source))
    assert placeholders == set(subs)
    expected = json.loads(PLACEHOLDER.sub(lambda m: fake_arn[m.group(1)], source))
    assert normalized(deployed) == normalized(expected)
    # Each placeholder names the function whose handler matches it (MergeDataFunctionArn -> merge_data).
    for name, value in subs.items():
        logical_id = value["Fn::GetAtt"][0]
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("FunctionArn")).lower()
        assert resources[logical_id]["Properties"]["Handler"] == f"functions/{snake}.lambda_handler"
        assert value["Fn::GetAtt"][1] == "Arn"


def test_the_definition_was_validated_at_package_time(packaged):
    assert 'State machine "retrain" definition is valid' in packaged.output


def test_the_state_machine_logs_traces_and_may_invoke_exactly_its_task_functions(resources):
    props = resources["RetrainStateMachine"]["Properties"]
    assert props["LoggingConfiguration"]["Level"] == "ERROR"
    assert props["LoggingConfiguration"]["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["RetrainStateMachineLogGroup", "Arn"]}}}]
    assert props["TracingConfiguration"] == {"Enabled": True}
    invoke = [st for name, st in statements(resources) if name == "RetrainStateMachineRole"
              and "lambda:InvokeFunction" in as_list(st["Action"])]
    targets = {r["Fn::GetAtt"][0] for st in invoke for r in as_list(st["Resource"])}
    assert targets == {v["Fn::GetAtt"][0] for v in props["DefinitionSubstitutions"].values()}
    assert props["DefinitionSubstitutions"]["StartTuningFunctionArn"] == {
        "Fn::GetAtt": ["StartTuningLambdaFunction", "Arn"]}
    assert targets == {task.logical_id() for task in TASKS.values()}


def schedule_rules(resources: dict) -> dict[str, dict]:
    return {r["Properties"]["Name"]: r["Properties"] for r in of_type(resources, "AWS::Events::Rule").values()
            if "ScheduleExpression" in r["Properties"]}


def test_a_schedule_rule_starts_the_retrain_starter_in_the_low_traffic_window(resources):
    rule = schedule_rules(resources)["autobert-test-scheduled-retrain"]
    assert rule["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert rule["State"] == "ENABLED"
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["RetrainLambdaFunction", "Arn"]}
    assert "Input" not in target  # EventBridge's own "Scheduled Event": the starter records a schedule trigger


def test_a_rate_rule_has_the_retrain_starter_check_the_feedback_threshold(resources):
    rules = schedule_rules(resources)
    assert set(rules) == {"autobert-test-scheduled-retrain", "autobert-test-feedback-threshold"}
    rule = rules["autobert-test-feedback-threshold"]
    assert rule["ScheduleExpression"] == "rate(15 minutes)" and rule["State"] == "ENABLED"
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["RetrainLambdaFunction", "Arn"]}
    assert json.loads(target["Input"]) == {"action": "check-threshold"}
    _, feedback = function_named(resources, "functions/feedback.lambda_handler")
    assert feedback["Properties"]["Environment"]["Variables"]["AUTOBERT_FEEDBACK_THRESHOLD"] == "200"


def test_the_end_of_a_run_calls_the_starter_so_queued_triggers_are_served(resources):
    rules = [r["Properties"] for r in of_type(resources, "AWS::Events::Rule").values()
             if r["Properties"].get("EventPattern", {}).get("source") == ["aws.states"]
             and r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["RetrainLambdaFunction", "Arn"]}]
    [rule] = rules
    detail = rule["EventPattern"]["detail"]
    assert set(detail["status"]) == {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
    assert resource_text(detail["stateMachineArn"][0]).endswith(":stateMachine:autobert-test-retrain")
    permissions = [p["Properties"] for p in of_type(resources, "AWS::Lambda::Permission").values()
                   if p["Properties"]["Principal"] == "events.amazonaws.com"]
    assert len(permissions) == 3  # the schedule, the threshold check and this rule may invoke the starter


def test_failed_runs_raise_an_alarm_and_an_event_to_the_alerts_topic(resources):
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    failed = [a for a in alarms.values() if a["Properties"].get("MetricName") == "ExecutionsFailed"]
    assert failed and failed[0]["Properties"]["AlarmActions"] == [{"Ref": "AlertsTopic"}]
    rule = resources["FailedRunsRule"]["Properties"]
    assert rule["EventPattern"]["detail"]["status"] == ["FAILED", "TIMED_OUT", "ABORTED"]
    assert rule["Targets"][0]["Arn"] == {"Ref": "AlertsTopic"}


def alarm_namespaces(alarm: dict) -> set[str]:
    """The namespaces an alarm watches: its metric's, or those of its metric-math inputs."""
    props = alarm["Properties"]
    return {props["Namespace"]} if "Namespace" in props else {
        m["MetricStat"]["Metric"]["Namespace"] for m in props["Metrics"] if "MetricStat" in m}


def test_the_endpoint_rollback_alarms_are_the_ones_the_deploy_step_names(resources):
    names = {a["Properties"]["AlarmName"] for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
             if alarm_namespaces(a) == {"AWS/SageMaker"}}
    _, update = function_named(resources, "functions/update_endpoint.lambda_handler")
    assert set(json.loads(update["Properties"]["Environment"]["Variables"]["AUTOBERT_ROLLBACK_ALARMS"])) == names
    assert names == {"autobert-test-endpoint-5xx", "autobert-test-endpoint-latency"}


def test_outputs_tell_bootstrap_where_everything_is(template):
    assert {"ServiceEndpoint", "BucketName", "RetrainStateMachineArn", "EndpointName", "SageMakerRoleArn",
            "ApiKeyId", "InferenceImageUri", "TrainingImageUri"} <= set(template["Outputs"])
    assert template["Outputs"]["EndpointName"]["Value"] == "autobert-test"


# ----------------------------------------------------------------------------------------------------- parameters
def test_parameters_reach_the_template():
    t = package("trainingInstanceType=ml.p3.2xlarge", "trainingUseSpot=false", "endpointInstanceType=ml.c5.xlarge",
                "modelName=distilbert-base-uncased", "feedbackThreshold=50", "scheduleCron=cron(30 3 * * ? *)",
                "apiQuotaLimit=5000", "tuningMaxJobs=4", "tuningMaxParallelJobs=1", "scheduleTune=true",
                "thresholdCheckRate=rate(5 minutes)", "thresholdCheckEnabled=false", "endpoint5xxRateThreshold=0.1",
                "endpoint5xxMinInvocations=50", "endpointLatencyP99Ms=9000", "predictReservedConcurrency=7").template
    res = t["Resources"]
    env = function_named(res, "functions/start_training.lambda_handler")[1]["Properties"]["Environment"]["Variables"]
    assert env["AUTOBERT_TRAINING_INSTANCE_TYPE"] == "ml.p3.2xlarge"
    assert env["AUTOBERT_TRAINING_USE_SPOT"] == "false"
    assert env["AUTOBERT_INFERENCE_INSTANCE_TYPE"] == "ml.c5.xlarge"
    assert env["AUTOBERT_MODEL_NAME"] == "distilbert-base-uncased"
    assert env["AUTOBERT_FEEDBACK_THRESHOLD"] == "50"
    assert (env["AUTOBERT_TUNING_MAX_JOBS"], env["AUTOBERT_TUNING_MAX_PARALLEL_JOBS"]) == ("4", "1")
    assert env["AUTOBERT_SCHEDULE_TUNE"] == "true"
    rules = schedule_rules(res)
    assert rules["autobert-test-scheduled-retrain"]["ScheduleExpression"] == "cron(30 3 * * ? *)"
    threshold = rules["autobert-test-feedback-threshold"]
    assert threshold["ScheduleExpression"] == "rate(5 minutes)" and threshold["State"] == "DISABLED"
    [plan] = of_type(res, "AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["Quota"]["Limit"] == 5000
    errors, latency = res["EndpointErrorsAlarm"]["Properties"], res["EndpointLatencyAlarm"]["Properties"]
    assert float(errors["Threshold"]) == 0.1 and float(latency["Threshold"]) == 9_000_000
    assert [m["Expression"] for m in errors["Metrics"] if "Expression" in m] == [
        "IF(invocations >= 50, errors / invocations, 0)"]
    predict = function_named(res, "functions/predict.lambda_handler")[1]["Properties"]
    assert predict["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReservePredict", {"Ref": "PredictReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert t["Conditions"]["ReservePredict"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "PredictReservedConcurrency"},
                                                                             "none"]}]}
    assert t["Parameters"]["PredictReservedConcurrency"]["Default"] == "7"


def test_an_account_with_a_small_concurrency_quota_can_deploy_without_reserving_any():
    t = package("predictReservedConcurrency=none", "feedbackReservedConcurrency=none",
                "retrainReservedConcurrency=none").template
    for fn in ("Predict", "Feedback", "Retrain"):  # the condition is then false: ReservedConcurrentExecutions NoValue
        assert t["Parameters"][f"{fn}ReservedConcurrency"]["Default"] == "none"
        assert t["Conditions"][f"Reserve{fn}"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": f"{fn}ReservedConcurrency"},
                                                                               "none"]}]}
