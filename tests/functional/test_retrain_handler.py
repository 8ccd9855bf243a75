"""POST /retrain answers bad input as the other API routes do: a 4xx with a one-line JSON message, never a server
error or Powertools' bare validation detail."""

from __future__ import annotations

import importlib.util
import json

import pytest
from serving_helpers import rest_event

from autobert.config import REPO_ROOT

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def retrain(aws, settings):
    spec = importlib.util.spec_from_file_location("handler_retrain_bad_input", REPO_ROOT / "functions" / "retrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def answer(retrain, lambda_context, event) -> tuple[int, dict]:
    out = retrain.lambda_handler(event, lambda_context)
    return out["statusCode"], json.loads(out["body"])


@pytest.mark.parametrize(("body", "status", "message"), [
    ("{not json", 400, "invalid JSON body"),
    (DEEP, 400, "invalid JSON body: nested too deeply"),
    ('{"full": "yes please"}', 422, "full: "),
    ('{"full": true, "tune": true}', 422, "tune: "),
    ("[1, 2]", 400, "the body must be a JSON object"),
], ids=["not-json", "deep", "not-a-bool", "unknown-field", "not-an-object"])
def test_bad_input_is_a_4xx_with_a_one_line_message(retrain, lambda_context, body, status, message):
    code, payload = answer(retrain, lambda_context, rest_event("POST", "/retrain", body))
    assert code == status, payload
    assert isinstance(payload.get("message"), str) and message in payload["message"]
    assert "\n" not in payload["message"] and "Traceback" not in payload["message"]


def test_a_body_that_is_not_utf8_is_a_400(retrain, lambda_context):
    event = rest_event("POST", "/retrain", None)
    event.update(body="/w==", isBase64Encoded=True)  # the byte 0xff
    code, payload = answer(retrain, lambda_context, event)
    assert code == 400 and "not valid UTF-8" in payload["message"]


def test_a_wrong_method_is_a_405_naming_post(retrain, lambda_context):
    code, payload = answer(retrain, lambda_context, rest_event("GET", "/retrain"))
    assert code == 405 and "POST" in payload["message"]
