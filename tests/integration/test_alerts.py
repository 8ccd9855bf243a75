"""The alerts deliverable on the packaged template: alarms and EventBridge can publish to the alerts topic, and the
endpoint's rollback alarms fire on trouble, not on noise.

The alarms are evaluated the way CloudWatch evaluates them (a breaching datapoint per period; ALARM when
``DatapointsToAlarm`` of the last ``EvaluationPeriods`` breach), on per-minute SageMaker metrics made up for each
case; a metric-math alarm's expression is evaluated per datapoint (``IF(cond, a, b)``, arithmetic, comparisons).
"""

from __future__ import annotations

import ast
import operator

import pytest
from osls_package import package, requires_osls

from autobert.adapters.sagemaker_runtime import invoke_config
from autobert.config import Settings

pytestmark = [requires_osls, pytest.mark.slow]


@pytest.fixture(scope="module")
def resources() -> dict:
    return package().template["Resources"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# ----------------------------------------------------------------------------------------------------- the topic
def test_alarms_and_eventbridge_may_use_the_alerts_topics_key(resources):
    """A topic under the AWS managed key alias/aws/sns silently drops what CloudWatch alarms and EventBridge publish
    (that key's policy does not let them use it): the topic's key must be one whose policy does."""
    topic = resources["AlertsTopic"]["Properties"]
    key_ref = topic.get("KmsMasterKeyId")
    assert isinstance(key_ref, dict) and "Ref" in key_ref, f"{key_ref}: an AWS managed key cannot be shared"
    key = resources[key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    allowed: dict[str, set[str]] = {}
    for st in key["Properties"]["KeyPolicy"]["Statement"]:
        if st["Effect"] == "Allow" and "Service" in st.get("Principal", {}) and "Condition" not in st:
            for service in as_list(st["Principal"]["Service"]):
                allowed.setdefault(service, set()).update(as_list(st["Action"]))
    for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
        assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= allowed.get(service, set()), service
    assert key["Properties"]["EnableKeyRotation"] is True
    publishers = {s for st in resources["AlertsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
                  if st["Effect"] == "Allow" and st["Action"] == "sns:Publish"
                  for s in as_list(st["Principal"]["Service"])}
    assert {"cloudwatch.amazonaws.com", "events.amazonaws.com"} <= publishers


def test_a_failed_asynchronous_retrain_invocation_reaches_the_alerts_topic(resources):
    props = resources["RetrainLambdaFunction"]["Properties"]
    assert props["DeadLetterConfig"] == {"TargetArn": {"Ref": "AlertsTopic"}}


# ---------------------------------------------------------------------------------------------------- the alarms
OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
       ast.GtE: operator.ge, ast.Gt: operator.gt, ast.LtE: operator.le, ast.Lt: operator.lt, ast.Eq: operator.eq}


def evaluate_expression(expression: str, values: dict[str, float]) -> float | None:
    """One datapoint of a metric-math expression; None where CloudWatch yields no value (division by zero)."""

    def ev(node):
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if left is None or right is None or (isinstance(node.op, ast.Div) and right == 0):
                return None
            return OPS[type(node.op)](left, right)
        if isinstance(node, ast.Compare):
            [op], [right] = node.ops, node.comparators
            return float(OPS[type(op)](ev(node.left), ev(right)))
        if isinstance(node, ast.Call) and node.func.id == "IF":
            cond, then, other = node.args
            return ev(then) if ev(cond) else ev(other)
        raise AssertionError(f"unsupported metric math: {ast.dump(node)}")

    return ev(ast.parse(expression, mode="eval").body)


def alarm_fires(alarm: dict, minutes: list[dict[str, float]]) -> bool:
    """Whether the alarm is in ALARM after these minutes of metrics (metric name -> the minute's value of the
    statistic the alarm reads), each minute one evaluation period."""
    props = alarm["Properties"]
    assert all(m.get("MetricStat", {}).get("Period", 60) == 60 for m in props.get("Metrics", [])) and props.get(
        "Period", 60) == 60
    compare = {"GreaterThanThreshold": operator.gt, "GreaterThanOrEqualToThreshold": operator.ge}[
        props["ComparisonOperator"]]
    threshold = float(props["Threshold"])
    points = []
    for minute in minutes:
        if "Metrics" in props:
            ids = {m["Id"]: minute.get(m["MetricStat"]["Metric"]["MetricName"], 0.0)
                   for m in props["Metrics"] if "MetricStat" in m}
            [out] = [m for m in props["Metrics"] if m.get("ReturnData", True)]
            value = evaluate_expression(out["Expression"], ids) if "Expression" in out else ids[out["Id"]]
        else:
            value = minute.get(props["MetricName"])
        points.append(value)
    window = points[-props["EvaluationPeriods"]:]
    missing_breaches = props.get("TreatMissingData") == "breaching"
    breaching = sum(1 for v in window if (missing_breaches if v is None else compare(v, threshold)))
    return breaching >= props.get("DatapointsToAlarm", props["EvaluationPeriods"])


def errors_alarm(resources: dict) -> dict:
    [alarm] = [a for a in resources.values() if a["Type"] == "AWS::CloudWatch::Alarm"
               and a["Properties"].get("AlarmName", "").endswith("-endpoint-5xx")]
    return alarm


def test_the_5xx_alarm_ignores_scattered_errors_at_low_traffic(resources):
    quiet = [{"Invocations": 3, "Invocation5XXErrors": 1}] * 3  # one error in three calls, three minutes running
    assert not alarm_fires(errors_alarm(resources), quiet)


def test_the_5xx_alarm_ignores_a_low_error_rate_at_high_traffic(resources):
    busy = [{"Invocations": 1200, "Invocation5XXErrors": 6}] * 3  # 0.5 %
    assert not alarm_fires(errors_alarm(resources), busy)


def test_the_5xx_alarm_fires_when_a_real_share_of_calls_fails(resources):
    broken = [{"Invocations": 100, "Invocation5XXErrors": 0}, {"Invocations": 100, "Invocation5XXErrors": 30},
              {"Invocations": 90, "Invocation5XXErrors": 45}]
    assert alarm_fires(errors_alarm(resources), broken)
    one_bad_minute = [{"Invocations": 100, "Invocation5XXErrors": 0}, {"Invocations": 100, "Invocation5XXErrors": 0},
                      {"Invocations": 100, "Invocation5XXErrors": 50}]
    assert not alarm_fires(errors_alarm(resources), one_bad_minute)


def latency_alarm(resources: dict) -> dict:
    [alarm] = [a for a in resources.values() if a["Type"] == "AWS::CloudWatch::Alarm"
               and a["Properties"].get("AlarmName", "").endswith("-endpoint-latency")]
    return alarm


# A full batch is the slowest legitimate request: AUTOBERT_MAX_BATCH texts at the training max length (256 tokens).
# BERT-base on this project's bench CPU takes ~40 ms a text at 256 tokens (README: 30 ms at 128, 52 ms at 512,
# batch 1, bf16 on AMX); the default ml.m5.large (2 vCPUs, no AMX) is taken to be at least 3x slower: ~0.12 s a text.
SECONDS_PER_TEXT_ON_THE_DEFAULT_INSTANCE = 0.12


def test_the_latency_alarm_lets_a_full_batch_through_but_fires_before_predict_gives_up(resources):
    alarm = latency_alarm(resources)
    [predict] = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"
                 and r["Properties"]["Handler"] == "functions/predict.lambda_handler"]
    env = predict["Properties"]["Environment"]["Variables"]
    max_batch = int(env["AUTOBERT_MAX_BATCH"])
    timeout = float(env.get("AUTOBERT_ENDPOINT_TIMEOUT", Settings.model_fields["endpoint_timeout"].default))
    full_batch_us = max_batch * SECONDS_PER_TEXT_ON_THE_DEFAULT_INSTANCE * 1e6
    # predict's client gives up on one attempt after its read timeout (then retries once): the alarm fires before.
    timeout_us = invoke_config(timeout).read_timeout * 1e6
    full_batches = [{"ModelLatency": full_batch_us}] * 3  # p99 per minute: every minute's slowest calls are full
    assert not alarm_fires(alarm, full_batches)
    assert alarm_fires(alarm, [{"ModelLatency": timeout_us * 0.9}] * 3)
    assert alarm["Properties"]["ExtendedStatistic"] == "p99"
