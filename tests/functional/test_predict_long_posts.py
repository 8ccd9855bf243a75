"""A long post through functions/predict.py and the local endpoint at the default limits: answered (read the way the
model was trained), and a batch past the endpoint's payload limit is a one-line 413 from the handler."""

from __future__ import annotations

import json

import pytest
from serving_helpers import LABELS, REPO, load_module, rest_event, serving_endpoint, set_env

from autobert.api_models import PAYLOAD_LIMIT_BYTES


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    server = serving_endpoint(tmp_path_factory.mktemp("m"))
    yield server
    server.close()


def call(monkeypatch, tmp_path, lambda_context, endpoint, body: dict) -> tuple[int, dict]:
    set_env(monkeypatch, mode="local", home=tmp_path, endpoint_url=endpoint.url)  # the default text and batch caps
    module = load_module(REPO / "functions" / "predict.py", "predict_handler")
    response = module.lambda_handler(rest_event("POST", "/predict", body), lambda_context)
    return response["statusCode"], json.loads(response["body"])


def test_a_160000_character_post_is_answered(monkeypatch, tmp_path, lambda_context, endpoint):
    # The size of the longest post of the corpus's test split; the old 100,000-character cap answered it 413.
    text = "The orbit of the station was raised again last week. " * 3000  # 159,000 characters
    status, body = call(monkeypatch, tmp_path, lambda_context, endpoint, {"text": text})
    assert status == 200, body
    assert body["model_version"] == "v1" and body["predictions"][0]["label"] in LABELS


def test_a_batch_over_the_endpoints_payload_limit_is_a_413_from_the_handler(monkeypatch, tmp_path, lambda_context,
                                                                            endpoint):
    texts = ["x" * 400_000] * 16  # each under the text cap; 6.4 MB together
    status, body = call(monkeypatch, tmp_path, lambda_context, endpoint, {"instances": texts})
    assert status == 413
    assert body["message"].startswith("body: request too large: ") and f"> {PAYLOAD_LIMIT_BYTES};" in body["message"]
