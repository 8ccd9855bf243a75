"""The inference script's request parsing and response encoding (no model needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from serving_helpers import REPO, load_module, set_env


@pytest.fixture(scope="module")
def inference():
    return load_module(REPO / "inference" / "inference.py", "inference_under_test")


def error_of(call) -> tuple[int, str]:
    with pytest.raises(Exception) as info:
        call()
    return info.value.status_code, info.value.message


def test_one_text_becomes_a_single_input(inference):
    assert inference.input_fn(b'{"text": "a car"}', "application/json") == {
        "texts": ["a car"], "top_k": None, "single": True}


def test_a_batch_keeps_its_order_and_top_k(inference):
    data = inference.input_fn('{"instances": ["b", "a", "c"], "top_k": 2}', "application/json; charset=utf-8")
    assert data == {"texts": ["b", "a", "c"], "top_k": 2, "single": False}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_a_non_json_content_type_is_refused_with_415(inference, content_type):
    status, message = error_of(lambda: inference.input_fn(b'{"text": "x"}', content_type))
    assert status == 415 and "application/json" in message


@pytest.mark.parametrize(("body", "status", "fragment"), [
    (b"{not json", 400, "invalid JSON body"),
    (b"\xff\xfe", 400, "the body is not valid UTF-8 (byte 0xff at offset 0)"),
    (b'["a", "b"]', 400, "JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "invalid JSON body: nested too deeply"),
    (b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "invalid JSON body: nested too deeply"),
    (b"{}", 422, "exactly one"),
    (b'{"text": "a", "instances": ["b"]}', 422, "exactly one"),
    (b'{"text": ""}', 422, "text: must not be empty"),
    (b'{"text": "   \\n\\t"}', 422, "text: must not be empty"),
    (b'{"text": 42}', 422, "text: Input should be a valid string"),
    (b'{"text": "\\ud800"}', 422, "text: not valid Unicode: a lone surrogate \\ud800 at position 0"),
    (b'{"instances": ["ok", "a\\udfff"]}', 422, "instances.1: not valid Unicode"),
    (b'{"instances": []}', 422, "instances: List should have at least 1 item"),
    (b'{"instances": "abc"}', 422, "instances: Input should be a valid list"),
    (b'{"instances": ["ok", 3]}', 422, "instances.1"),
    (b'{"instances": ["ok", null]}', 422, "instances.1"),
    (b'{"instances": ["ok", " "]}', 422, "instances.1"),
    (b'{"text": "a", "top_k": 0}', 422, "top_k"),
    (b'{"text": "a", "top_k": "3"}', 422, "top_k"),
    (b'{"text": "a", "top_k": true}', 422, "top_k"),
    (b'{"text": "a", "extra": 1}', 422, "extra: Extra inputs are not permitted"),
])
def test_bad_input_gets_the_apis_status_and_a_one_line_message(inference, body, status, fragment):
    got, message = error_of(lambda: inference.input_fn(body, "application/json"))
    assert (got, message.split("\n")[0]) == (status, message)
    assert fragment in message
    assert "Traceback" not in message


def test_a_batch_over_the_cap_is_refused_as_the_api_refuses_it(inference, monkeypatch):
    set_env(monkeypatch, max_batch=3)
    assert len(inference.input_fn(json.dumps({"instances": ["a"] * 3}), "application/json")["texts"]) == 3
    status, message = error_of(lambda: inference.input_fn(json.dumps({"instances": ["a"] * 4}), "application/json"))
    assert (status, message) == (422, "instances: too many instances: 4 > 3 in one request")


def test_a_text_over_the_size_limit_is_413(inference, monkeypatch):
    set_env(monkeypatch, max_text_chars=10)
    inference.input_fn(json.dumps({"text": "x" * 10}), "application/json")
    status, message = error_of(lambda: inference.input_fn(json.dumps({"text": "x" * 11}), "application/json"))
    assert (status, message) == (413, "text: too long: 11 > 10 characters")


@pytest.mark.parametrize("accept", [None, "application/json", "*/*", "text/html, application/json;q=0.9"])
def test_output_is_json_for_json_accepting_clients(inference, accept):
    prediction = {"predictions": [{"label": "a", "score": 0.5, "top_k": []}], "model_version": "v1"}
    body, content_type = inference.output_fn(prediction, accept)
    assert json.loads(body) == prediction and content_type == "application/json"


def test_output_refuses_an_accept_it_cannot_produce(inference):
    status, _ = error_of(lambda: inference.output_fn({"predictions": []}, "text/csv"))
    assert status == 406


def test_merged_requests_split_back_with_their_own_top_k(inference):
    inputs = [{"texts": ["a"], "top_k": 1}, {"texts": ["b", "c"], "top_k": None}]
    merged = inference.merge_inputs(inputs)
    assert merged["texts"] == ["a", "b", "c"] and merged["top_k"] == 3  # default_top_k is 3
    alternatives = [{"label": x, "score": 0.1} for x in "xyz"]
    prediction = {"predictions": [{"label": t, "score": 0.9, "top_k": alternatives} for t in "abc"],
                  "model_version": "v9"}
    first, second = inference.split_prediction(prediction, inputs)
    assert [p["label"] for p in first["predictions"]] == ["a"] and len(first["predictions"][0]["top_k"]) == 1
    assert [p["label"] for p in second["predictions"]] == ["b", "c"]
    assert all(len(p["top_k"]) == 3 for p in second["predictions"]) and second["model_version"] == "v9"


def test_the_request_model_the_script_shares_with_the_lambda_imports_without_powertools():
    # SageMaker's serving container installs inference/requirements.txt (pydantic, no Powertools): the request model
    # inference.py takes from autobert.api_models must import and check there.
    code = ("import sys; sys.modules['aws_lambda_powertools'] = None; "
            "from autobert.api_models import PredictRequest, check; from autobert.config import Settings; "
            "print(check(PredictRequest.limited(Settings()), b'{\"text\": \"a\"}').texts())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "['a']"
