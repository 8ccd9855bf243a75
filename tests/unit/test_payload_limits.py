"""The request size limits follow the payload limits on a request's path (API Gateway 10 MB, Lambda's event 6 MB,
InvokeEndpoint 6 MB): long posts are accepted, a text or a batch past what the path carries is a one-line 413."""

from __future__ import annotations

import json

import pytest

from autobert.api_models import (
    EVENT_ENVELOPE_BYTES,
    MAX_TEXT_CHARS,
    PAYLOAD_LIMIT_BYTES,
    FeedbackRequest,
    PredictRequest,
    RequestRejected,
    check,
)
from autobert.config import Settings

LAMBDA_REQUEST_LIMIT = 6_291_456  # "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
INVOKE_ENDPOINT_BODY_MAX = 6_291_456  # botocore's sagemaker-runtime model: BodyBlob max


@pytest.fixture
def limits() -> Settings:
    return Settings(max_batch=64)


def predict_model(settings: Settings):
    return PredictRequest.limited(settings)


def refusal(model, body: str) -> tuple[int, str]:
    with pytest.raises(RequestRejected) as info:
        check(model, body)
    return info.value.status, info.value.message


def test_the_default_cap_is_the_computed_one_and_fits_the_smallest_limit():
    assert Settings.model_fields["max_text_chars"].default == MAX_TEXT_CHARS == 444_708
    assert min(LAMBDA_REQUEST_LIMIT, INVOKE_ENDPOINT_BODY_MAX, 10 * 1024 * 1024) == PAYLOAD_LIMIT_BYTES


def test_a_text_at_the_cap_in_its_largest_encoding_fits_lambdas_event():
    # The worst client: every character outside the BMP, sent as JSON escape pairs (Python's json, requests' json=).
    body = json.dumps({"text": "\U0001F600" * MAX_TEXT_CHARS})
    # API Gateway's proxy event carries the body as a JSON string (escaped again) beside 10 KB of headers, twice.
    headers = {f"x-h{i}": "v" * 100 for i in range(95)}
    event = {"resource": "/predict", "path": "/predict", "httpMethod": "POST", "headers": headers,
             "multiValueHeaders": {k: [v] for k, v in headers.items()}, "requestContext": {"x": "y" * 2000},
             "body": body, "isBase64Encoded": False}
    size = len(json.dumps(event).encode())
    assert size <= LAMBDA_REQUEST_LIMIT
    assert size - len(json.dumps(body).encode()) < EVENT_ENVELOPE_BYTES


def test_a_long_post_of_the_corpus_is_accepted_at_the_defaults(limits):
    # One message of 20 Newsgroups' test split has about 160,000 characters; the old cap (100,000) answered 413.
    text = "The shuttle's engines were tested again. " * 4000  # 164,000 characters
    assert check(predict_model(limits), json.dumps({"text": text})).text == text
    assert check(FeedbackRequest.limited(limits), json.dumps({"text": text, "label": "sci.space"})).text == text


def test_just_under_and_just_over_the_text_cap(limits):
    assert len(check(predict_model(limits), json.dumps({"text": "x" * MAX_TEXT_CHARS})).text) == MAX_TEXT_CHARS
    assert refusal(predict_model(limits), json.dumps({"text": "x" * (MAX_TEXT_CHARS + 1)})) == (
        413, f"text: too long: {MAX_TEXT_CHARS + 1} > {MAX_TEXT_CHARS} characters")
    assert refusal(FeedbackRequest.limited(limits), json.dumps({"text": "x" * (MAX_TEXT_CHARS + 1), "label": "a"})
                   ) == (413, f"text: too long: {MAX_TEXT_CHARS + 1} > {MAX_TEXT_CHARS} characters")


def batch_of_size(size: int) -> dict:
    """Texts under the cap whose request, as the predict function sends it on (json.dumps), is ``size`` bytes."""
    texts = ["x" * 400_000] * (size // 400_000)
    base = len(json.dumps({"instances": [*texts, ""]}).encode())
    return {"instances": [*texts, "x" * (size - base)]}


def test_a_batch_just_under_and_just_over_the_endpoints_payload_limit(limits):
    model = predict_model(limits)
    at_limit = batch_of_size(PAYLOAD_LIMIT_BYTES)
    assert len(json.dumps(at_limit).encode()) == PAYLOAD_LIMIT_BYTES
    assert check(model, json.dumps(at_limit)).instances == at_limit["instances"]
    over = batch_of_size(PAYLOAD_LIMIT_BYTES + 1)
    assert refusal(model, json.dumps(over)) == (
        413, f"body: request too large: {PAYLOAD_LIMIT_BYTES + 1} bytes as sent to the model > {PAYLOAD_LIMIT_BYTES}; "
             "send fewer or shorter texts")


def test_the_size_is_measured_as_sent_on_not_as_received(limits):
    # 1.1 million characters of accented text: 2.2 MB as UTF-8, but 6.6 MB with the ASCII escapes the predict function
    # sends to InvokeEndpoint; refused with the one-line 413, never InvokeEndpoint's own error.
    body = json.dumps({"instances": ["é" * 400_000] * 3}, ensure_ascii=False)
    assert len(body.encode()) < PAYLOAD_LIMIT_BYTES
    status, message = refusal(predict_model(limits), body)
    assert status == 413 and message.startswith("body: request too large: ") and "\n" not in message
