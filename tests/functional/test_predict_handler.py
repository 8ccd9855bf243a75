"""functions/predict.py with API Gateway REST events: against the local endpoint, and against sagemaker-runtime
(moto for answers, botocore's Stubber for an endpoint that cannot serve)."""

from __future__ import annotations

import base64
import json
import socket

import pytest
import requests
from botocore.stub import Stubber
from serving_helpers import LABELS, REPO, EndpointThread, load_module, rest_event, serving_endpoint, set_env


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    server = serving_endpoint(tmp_path_factory.mktemp("m"))
    yield server
    server.close()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def handler(monkeypatch, tmp_path, **env):
    set_env(monkeypatch, mode="local", home=tmp_path, **env)
    return load_module(REPO / "functions" / "predict.py", "predict_handler")


def call(module, lambda_context, event) -> tuple[int, dict]:
    response = module.lambda_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def test_predict_returns_the_endpoints_predictions(monkeypatch, tmp_path, endpoint, lambda_context):
    module = handler(monkeypatch, tmp_path, endpoint_url=endpoint.url)
    status, body = call(module, lambda_context, rest_event("POST", "/predict", {"instances": ["orbit", "car"],
                                                                               "top_k": 2}))
    assert status == 200
    assert body["model_version"] == "v1" and len(body["predictions"]) == 2
    assert all(p["label"] in LABELS and len(p["top_k"]) == 2 for p in body["predictions"])
    status, body = call(module, lambda_context, rest_event("POST", "/predict", {"text": "the shuttle"}))
    assert status == 200 and len(body["predictions"]) == 1


def test_a_stopped_endpoint_is_a_503_with_a_clear_message(monkeypatch, tmp_path, lambda_context):
    module = handler(monkeypatch, tmp_path, endpoint_url=dead_url(), endpoint_timeout=2)
    status, body = call(module, lambda_context, rest_event("POST", "/predict", {"text": "hello"}))
    assert status == 503 and "unavailable" in body["message"] and "not running" in body["message"]


def test_an_endpoint_without_a_model_yet_is_a_503(monkeypatch, tmp_path, lambda_context):
    empty = EndpointThread()
    try:
        module = handler(monkeypatch, tmp_path, endpoint_url=empty.url)
        status, body = call(module, lambda_context, rest_event("POST", "/predict", {"text": "hello"}))
        assert status == 503 and "no model" in body["message"]
    finally:
        empty.close()


BAD = [
    ("POST", "/predict", "{not json", {}, 400, "invalid JSON"),
    ("POST", "/predict", '["a list"]', {}, 400, "JSON object"),
    ("POST", "/predict", None, {}, 400, "JSON body is required"),
    ("POST", "/predict", "{}", {}, 422, "exactly one"),
    ("POST", "/predict", '{"text": 5}', {}, 422, "text"),
    ("POST", "/predict", '{"text": "   "}', {}, 422, "empty or whitespace"),
    ("POST", "/predict", '{"text": ""}', {}, 422, "empty or whitespace"),
    ("POST", "/predict", '{"instances": []}', {}, 422, "instances"),
    ("POST", "/predict", '{"instances": ["ok", 7]}', {}, 422, "instances.1"),
    ("POST", "/predict", '{"text": "a", "top_k": 0}', {}, 422, "top_k"),
    ("POST", "/predict", '{"text": "a", "top_k": "2"}', {}, 422, "top_k"),
    ("POST", "/predict", '{"text": "a", "colour": "red"}', {}, 422, "colour"),
    ("POST", "/predict", '{"text": "a"}', {"content-type": "text/plain"}, 415, "content type"),
    ("POST", "/predict", json.dumps({"text": "x" * 101}), {}, 413, "too long"),
    ("POST", "/predict", json.dumps({"instances": ["a"] * 5}), {}, 422, "too many"),
    ("GET", "/predict", None, {}, 405, "not allowed"),
    ("PUT", "/predict", '{"text": "a"}', {}, 405, "not allowed"),
    ("POST", "/predictions", '{"text": "a"}', {}, 404, "no route"),
    ("GET", "/", None, {}, 404, "no route"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "fragment"), BAD)
def test_bad_input_gets_a_clear_4xx_json_error(monkeypatch, tmp_path, lambda_context, method, path, body, headers,
                                               status, fragment):
    # The endpoint is down: a request that got past validation would be a 503, not the expected 4xx.
    module = handler(monkeypatch, tmp_path, endpoint_url=dead_url(), max_text_chars=100, max_batch=4)
    got, answer = call(module, lambda_context, rest_event(method, path, body, headers))
    assert got == status, answer
    assert fragment in answer["message"]


def raw_event(path: str, raw: bytes) -> dict:
    """A POST whose body bytes are not text: API Gateway (and the local API) pass them base64-encoded."""
    return {**rest_event("POST", path, base64.b64encode(raw).decode()), "isBase64Encoded": True}


DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE = [
    (raw_event("/predict", b'{"text": "caf\xe9"}'), 400, "the body is not valid UTF-8 (byte 0xe9 at offset 13)"),
    (rest_event("POST", "/predict", '{"text": "\\ud800"}'), 422, "text: not valid Unicode: a lone surrogate \\ud800"),
    (rest_event("POST", "/predict", '{"instances": ["ok", "x\\udfff"]}'), 422, "instances.1: not valid Unicode"),
    (rest_event("POST", "/predict", DEEP), 400, "invalid JSON body: nested too deeply"),
    (rest_event("POST", "/predict", '{"text": ' + DEEP + "}"), 400, "invalid JSON body: nested too deeply"),
]


@pytest.mark.parametrize(("event", "status", "message"), HOSTILE,
                         ids=["not-utf8", "lone-surrogate", "surrogate-in-batch", "deep-array", "deep-field"])
def test_hostile_input_is_a_4xx_with_one_line_never_a_server_error(monkeypatch, tmp_path, lambda_context, event,
                                                                    status, message):
    # The endpoint is down: input that got past validation would be a 503 (what a lone surrogate got: the model
    # server failed on it, a 5xx that counts toward the rollback alarm).
    module = handler(monkeypatch, tmp_path, endpoint_url=dead_url())
    got, answer = call(module, lambda_context, event)
    assert (got, answer["message"].split("\n")[0]) == (status, answer["message"])
    assert answer["message"].startswith(message)


def test_a_405_names_the_allowed_method(monkeypatch, tmp_path, lambda_context):
    module = handler(monkeypatch, tmp_path, endpoint_url=dead_url())
    response = module.lambda_handler(rest_event("GET", "/predict"), lambda_context)
    headers = {k.lower(): v for k, v in {**response.get("headers", {}),
                                         **{k: v[0] for k, v in response.get("multiValueHeaders", {}).items()}}.items()}
    assert response["statusCode"] == 405 and headers["allow"] == "POST"


# ------------------------------------------------------------------------------------------------------------ AWS
@pytest.fixture
def bucket() -> str:
    return "autobert-test"


@pytest.fixture
def aws(aws, monkeypatch, tmp_path):
    """Here: the predict Lambda, loaded in AWS mode over the moto account and bucket of tests/conftest.py's ``aws``."""
    set_env(monkeypatch, mode="aws", bucket=aws, endpoint_name="autobert-endpoint", home=tmp_path)
    return load_module(REPO / "functions" / "predict.py", "predict_handler")


def test_on_aws_predict_invokes_the_sagemaker_endpoint(aws, lambda_context):
    answer = {"predictions": [{"label": "sci.space", "score": 0.8, "top_k": [{"label": "sci.space", "score": 0.8}]}],
              "model_version": "v2"}
    requests.post("http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
                  json={"results": [{"Body": json.dumps(answer), "ContentType": "application/json"}]}, timeout=5)
    assert aws.services.endpoint_client.endpoint_name == "autobert-endpoint"
    status, body = call(aws, lambda_context, rest_event("POST", "/predict", {"text": "orbit", "top_k": 1}))
    assert (status, body) == (200, answer)


@pytest.mark.parametrize(("code", "message", "http"), [
    ("ValidationError", "Endpoint autobert-endpoint of account 123456789012 not found.", 400),  # InvokeEndpoint's code
    ("ModelNotReadyException", "Model not ready: the endpoint is Updating", 429),
])
def test_on_aws_an_endpoint_that_cannot_serve_is_a_503(aws, lambda_context, code, message, http):
    stubber = Stubber(aws.services.endpoint_client.client)
    stubber.add_client_error("invoke_endpoint", service_error_code=code, service_message=message,
                             http_status_code=http)
    with stubber:
        status, body = call(aws, lambda_context, rest_event("POST", "/predict", {"text": "orbit"}))
    assert status == 503 and "unavailable" in body["message"]


def headers_of(response: dict) -> dict:
    return {k.lower(): v for k, v in {**response.get("headers", {}),
                                      **{k: v[0] for k, v in response.get("multiValueHeaders", {}).items()}}.items()}


@pytest.mark.parametrize(("code", "http", "fields"), [
    ("ThrottlingException", 400, {}),  # more requests than SageMaker lets through to the endpoint
    ("ModelError", 424, {"OriginalStatusCode": 503, "OriginalMessage": "Model queue full"}),  # its server's queue
])
def test_on_aws_a_saturated_endpoint_is_a_503_with_retry_after(aws, lambda_context, code, http, fields):
    stubber = Stubber(aws.services.endpoint_client.client)
    stubber.add_client_error("invoke_endpoint", service_error_code=code, service_message="too many requests",
                             http_status_code=http, modeled_fields=fields)
    with stubber:
        response = aws.lambda_handler(rest_event("POST", "/predict", {"text": "orbit"}), lambda_context)
    assert response["statusCode"] == 503 and headers_of(response)["retry-after"] == "1"
    assert "unavailable" in json.loads(response["body"])["message"]


def test_on_aws_an_endpoint_being_created_is_a_503_without_retry_after(aws, lambda_context):
    stubber = Stubber(aws.services.endpoint_client.client)
    stubber.add_client_error("invoke_endpoint", service_error_code="ValidationError", http_status_code=400,
                             service_message="Endpoint autobert-endpoint of account 123456789012 not found.")
    with stubber:
        response = aws.lambda_handler(rest_event("POST", "/predict", {"text": "orbit"}), lambda_context)
    assert response["statusCode"] == 503 and "retry-after" not in headers_of(response)


def test_on_aws_input_the_container_refuses_keeps_its_4xx(aws, lambda_context):
    stubber = Stubber(aws.services.endpoint_client.client)
    stubber.add_client_error("invoke_endpoint", service_error_code="ModelError", service_message="client error",
                             http_status_code=424, modeled_fields={"OriginalStatusCode": 413,
                                                                   "OriginalMessage": '{"message": "too long"}'})
    with stubber:
        status, body = call(aws, lambda_context, rest_event("POST", "/predict", {"text": "orbit"}))
    assert (status, body["message"]) == (413, "too long")
