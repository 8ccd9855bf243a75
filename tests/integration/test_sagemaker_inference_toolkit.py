"""The model artifact served the way SageMaker's PyTorch serving container serves it.

The pytorch-inference:2.6.0 image runs TorchServe with sagemaker-pytorch-inference 2.0.25 (the version its buildspec
pins; requirements-dev.txt installs the same). TorchServe calls the toolkit's ``HandlerService``: ``initialize``
puts ``/opt/ml/model/code`` on the path and loads our ``inference.py`` (``SAGEMAKER_PROGRAM``) into
``sagemaker_inference``'s ``Transformer``; ``handle`` runs ``input_fn`` → ``predict_fn`` → ``output_fn`` per request.
Here a real ``model.tar.gz`` (a model folder as training writes it, repacked with ``code/`` exactly as
``autobert aws bootstrap`` deploys it) is unpacked into a model dir and served by that handler service. The one stand-in
is TorchServe's request context (status, headers, content type: the model server, not our code).

On an error the toolkit answers ``"<message>\\n<Python traceback>"`` with the error's status. The second half checks
what the predict Lambda makes of exactly that body: its one-line message and status, never the traceback."""

from __future__ import annotations

import json
import sys

import pytest
from botocore.stub import Stubber
from serving_helpers import (
    LABELS,
    MAX_BATCH,
    MAX_TEXT_CHARS,
    REPO,
    invoke,
    load_module,
    make_linear_model_folder,
    make_model_folder,
    rest_event,
    serve,
    set_env,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The toolkit's handler service, initialised on the unpacked, repacked artifact (in /opt/ml/model's place)."""
    yield from serve(make_model_folder(tmp_path_factory.mktemp("trained") / "model", "v9"), tmp_path_factory)


@pytest.fixture(scope="module")
def served_linear(tmp_path_factory):
    """The same for a linear-only model (kind "linear": no encoder files), the first model a stack serves."""
    yield from serve(make_linear_model_folder(tmp_path_factory.mktemp("linear") / "model", "lin-3"),
                     tmp_path_factory)


def test_the_container_loads_our_inference_script_from_the_models_code_folder(served):
    service, model_dir = served
    assert sys.modules["inference"].__file__ == str(model_dir / "code" / "inference.py")
    assert (model_dir / "code" / "autobert" / "modeling.py").is_file()
    shipped = (model_dir / "code" / "requirements.txt").read_text()
    assert shipped == (REPO / "inference" / "requirements.txt").read_text()


@pytest.mark.parametrize("accept", ["application/json", "*/*"])
def test_a_good_request_gets_200_and_one_json_prediction_per_text(served, accept):
    status, content_type, body = invoke(served, json.dumps({"instances": ["the shuttle", "my car"], "top_k": 2})
                                        .encode(), accept=accept)
    assert (status, content_type) == (200, "application/json")
    answer = json.loads(body)
    assert answer["model_version"] == "v9" and len(answer["predictions"]) == 2
    assert all(p["label"] in LABELS and len(p["top_k"]) == 2 for p in answer["predictions"])


def test_a_linear_only_model_is_served_by_the_container_like_any_other(served_linear):
    status, content_type, body = invoke(served_linear, json.dumps({"instances": ["sci space text", "rec autos text"],
                                                                   "top_k": 3}).encode())
    assert (status, content_type) == (200, "application/json")
    answer = json.loads(body)
    assert answer["model_version"] == "lin-3"
    assert [p["label"] for p in answer["predictions"]] == ["sci.space", "rec.autos"]
    assert all({alt["label"] for alt in p["top_k"]} == set(LABELS) for p in answer["predictions"])
    status, _, text = invoke(served_linear, b"{not json")
    assert status == 400 and text.startswith("invalid JSON body")


BAD_REQUESTS = [  # the predict Lambda's statuses and messages (autobert.api_models): the same model checks both
    (b"{not json", "application/json", 400, "invalid JSON body"),
    (b'{"text": "orbit"}', "text/csv", 415, "unsupported content type 'text/csv'"),
    (json.dumps({"instances": ["a"] * (MAX_BATCH + 1)}).encode(), "application/json", 422,
     f"instances: too many instances: {MAX_BATCH + 1} > {MAX_BATCH} in one request"),
    (json.dumps({"text": "x" * (MAX_TEXT_CHARS + 1)}).encode(), "application/json", 413,
     f"text: too long: {MAX_TEXT_CHARS + 1} > {MAX_TEXT_CHARS} characters"),
    (b'{"text": "   "}', "application/json", 422, "text: must not be empty or whitespace"),
    (b'{"instances": []}', "application/json", 422, "instances: List should have at least 1 item"),
    # The model failed on a lone surrogate (a 500, counted toward the rollback alarm); deep nesting, the parser.
    (b'{"text": "\\ud800"}', "application/json", 422, "text: not valid Unicode: a lone surrogate \\ud800"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "invalid JSON body: nested too deeply"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), BAD_REQUESTS)
def test_a_bad_request_gets_its_status_and_our_message_first_then_the_toolkits_traceback(
        served, body, content_type, status, message):
    got_status, _, text = invoke(served, body, content_type)
    first, _, rest = text.partition("\n")
    assert got_status == status and first.startswith(message)
    assert rest.startswith("Traceback (most recent call last):")  # what the toolkit appends (Transformer.handle_error)


# ------------------------------------------------------------------- what the predict Lambda makes of that body
@pytest.fixture
def predict_lambda(aws, monkeypatch, tmp_path):
    """The predict Lambda in AWS mode over the moto account and bucket of tests/conftest.py's ``aws``."""
    set_env(monkeypatch, mode="aws", bucket=aws, endpoint_name="autobert-endpoint", home=tmp_path)
    return load_module(REPO / "functions" / "predict.py", "predict_handler_toolkit")


def answer_through_sagemaker(module, lambda_context, status: int, container_body: str) -> tuple[int, str]:
    """InvokeEndpoint answering as SageMaker does when the container answered ``status`` with ``container_body``:
    ModelError (HTTP 424), the container's status and body as OriginalStatusCode / OriginalMessage."""
    kind = "client" if status < 500 else "server"
    stubber = Stubber(module.services.endpoint_client.client)
    stubber.add_client_error(
        "invoke_endpoint", service_error_code="ModelError", http_status_code=424,
        service_message=f'Received {kind} error ({status}) from primary with message "{container_body}". See '
                        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:group="
                        "/aws/sagemaker/Endpoints/autobert-endpoint in account 123456789012 for more information.",
        modeled_fields={"OriginalStatusCode": status, "OriginalMessage": container_body,
                        "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/x"})
    with stubber:
        response = module.lambda_handler(rest_event("POST", "/predict", {"text": "orbit"}), lambda_context)
    return response["statusCode"], json.loads(response["body"])["message"]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), BAD_REQUESTS)
def test_the_api_client_gets_the_containers_status_and_one_line_message_never_a_traceback(
        served, predict_lambda, lambda_context, body, content_type, status, message):
    container_status, _, container_body = invoke(served, body, content_type)
    assert "Traceback" in container_body
    api_status, api_message = answer_through_sagemaker(predict_lambda, lambda_context, container_status,
                                                       container_body)
    assert api_status == status and api_message.startswith(message)
    assert "\n" not in api_message and "Traceback" not in api_message


def test_a_container_failure_is_a_503_without_the_traceback(served, predict_lambda, lambda_context):
    # Not UTF-8 under application/json: the toolkit's own decode fails before input_fn runs, which it answers 500.
    container_status, _, container_body = invoke(served, b'{"text": "\xff"}')
    assert container_status == 500 and "Traceback" in container_body
    api_status, api_message = answer_through_sagemaker(predict_lambda, lambda_context, container_status,
                                                       container_body)
    assert api_status == 503 and "unavailable" in api_message
    assert "\n" not in api_message and "Traceback" not in api_message
