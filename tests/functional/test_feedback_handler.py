"""functions/feedback.py with API Gateway REST events: the local store and S3 (moto); durability, idempotency,
the new-label policy and every bad input."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime

import boto3
import pytest
from serving_helpers import REPO, load_module, rest_event, set_env

from autobert import layout
from autobert.adapters.local_store import LocalObjectStore
from autobert.feedback import FeedbackError, FeedbackStore, default_feedback_id

KNOWN = ["rec.autos", "sci.space"]


def live_model(store, version: str = "v4", labels: list[str] = KNOWN) -> None:
    store.put_json(layout.LIVE_MODEL, {"version": version, "model_uri": f"/models/{version}/model"})
    store.put_json(f"{layout.model_prefix(version)}model/labels.json", {"labels": labels})


def handler(monkeypatch, tmp_path, **env):
    set_env(monkeypatch, mode="local", home=tmp_path, **env)
    return load_module(REPO / "functions" / "feedback.py", "feedback_handler")


def post(module, lambda_context, body, method="POST", path="/feedback", headers=None) -> tuple[int, dict]:
    response = module.lambda_handler(rest_event(method, path, body, headers), lambda_context)
    return response["statusCode"], json.loads(response["body"])


def feedback_objects(store) -> list[str]:
    return [k for k in store.list_keys(layout.FEEDBACK) if not k.startswith(layout.FEEDBACK_IDS)]


def test_feedback_is_stored_as_its_own_dated_object_before_the_202(monkeypatch, tmp_path, lambda_context):
    module = handler(monkeypatch, tmp_path)
    live_model(module.services.store)
    status, body = post(module, lambda_context, {"text": "My car's brakes squeal", "label": "rec.autos",
                                                 "predicted_label": "sci.space"})
    assert status == 202 and body["duplicate"] is False
    assert body["id"] == default_feedback_id("My car's brakes squeal", "rec.autos")
    # Read back through a fresh store on the same folder: the write is on disk, not in a buffer.
    store = LocalObjectStore(tmp_path / "bucket")
    key = layout.feedback_key(body["id"], datetime.now(UTC).date())
    item = store.get_json(key)
    assert item == {"id": body["id"], "text": "My car's brakes squeal", "label": "rec.autos",
                    "predicted_label": "sci.space", "received_at": item["received_at"], "model_version": "v4"}
    assert datetime.fromisoformat(item["received_at"]).tzinfo is not None
    assert store.get_json(layout.feedback_marker(body["id"]))["key"] == key


def test_the_same_feedback_posted_twice_is_stored_once(monkeypatch, tmp_path, lambda_context):
    module = handler(monkeypatch, tmp_path)
    first = post(module, lambda_context, {"text": "orbit", "label": "sci.space"})
    second = post(module, lambda_context, {"text": "orbit", "label": "sci.space"})
    assert first[0] == second[0] == 202 and first[1]["id"] == second[1]["id"]
    assert second[1]["duplicate"] is True
    assert len(feedback_objects(module.services.store)) == 1
    other = post(module, lambda_context, {"text": "orbit", "label": "rec.autos"})  # another label: another item
    assert other[0] == 202 and other[1]["id"] != first[1]["id"]
    assert len(feedback_objects(module.services.store)) == 2


def test_a_client_id_makes_retries_idempotent_and_refuses_reuse_for_other_feedback(monkeypatch, tmp_path,
                                                                                     lambda_context):
    module = handler(monkeypatch, tmp_path)
    assert post(module, lambda_context, {"id": "req-1", "text": "orbit", "label": "sci.space"}) == (
        202, {"id": "req-1", "duplicate": False, "message": "feedback stored"})
    assert post(module, lambda_context, {"id": "req-1", "text": "orbit", "label": "sci.space"})[1]["duplicate"]
    status, body = post(module, lambda_context, {"id": "req-1", "text": "different", "label": "sci.space"})
    assert status == 409 and "already used" in body["message"]
    assert len(feedback_objects(module.services.store)) == 1


def test_concurrent_posts_of_the_same_feedback_store_one_object(tmp_path):
    store = LocalObjectStore(tmp_path)
    results, barrier = [], threading.Barrier(8)

    def submit() -> None:
        barrier.wait()
        results.append(FeedbackStore(store).submit("same text", "sci.space"))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len({r.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert len(feedback_objects(store)) == 1


def test_new_labels_are_accepted_by_default(monkeypatch, tmp_path, lambda_context):
    module = handler(monkeypatch, tmp_path)
    live_model(module.services.store)
    assert post(module, lambda_context, {"text": "a GPU question", "label": "comp.graphics"})[0] == 202


def test_new_labels_are_refused_when_the_policy_says_so(monkeypatch, tmp_path, lambda_context):
    module = handler(monkeypatch, tmp_path, allow_new_labels="false")
    live_model(module.services.store)
    status, body = post(module, lambda_context, {"text": "a GPU question", "label": "comp.graphics"})
    assert status == 422 and "comp.graphics" in body["message"] and "sci.space" in body["message"]
    assert post(module, lambda_context, {"text": "orbit", "label": "sci.space"})[0] == 202
    assert len(feedback_objects(module.services.store)) == 1


BAD = [
    ("POST", "/feedback", "{nope", 400, "invalid JSON"),
    ("POST", "/feedback", None, 400, "JSON body is required"),
    ("POST", "/feedback", "42", 400, "JSON object"),
    ("POST", "/feedback", '{"label": "sci.space"}', 422, "text"),
    ("POST", "/feedback", '{"text": "orbit"}', 422, "label"),
    ("POST", "/feedback", '{"text": 3, "label": "sci.space"}', 422, "text"),
    ("POST", "/feedback", '{"text": "orbit", "label": ["sci.space"]}', 422, "label"),
    ("POST", "/feedback", '{"text": " \\n ", "label": "sci.space"}', 422, "empty or whitespace"),
    ("POST", "/feedback", '{"text": "orbit", "label": "no spaces allowed"}', 422, "label"),
    ("POST", "/feedback", '{"text": "orbit", "label": ""}', 422, "label"),
    ("POST", "/feedback", '{"text": "orbit", "label": "x", "predicted_label": "a/b"}', 422, "predicted_label"),
    ("POST", "/feedback", '{"text": "orbit", "label": "x", "id": "../../etc"}', 422, "id"),
    ("POST", "/feedback", '{"text": "orbit", "label": "x", "extra": 1}', 422, "extra"),
    ("POST", "/feedback", json.dumps({"text": "x" * 51, "label": "x"}), 413, "too long"),
    ("GET", "/feedback", None, 405, "not allowed"),
    ("DELETE", "/feedback", None, 405, "not allowed"),
    ("POST", "/feedbacks", '{"text": "a", "label": "b"}', 404, "no route"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "fragment"), BAD)
def test_bad_input_gets_a_clear_4xx_and_stores_nothing(monkeypatch, tmp_path, lambda_context, method, path, body,
                                                        status, fragment):
    module = handler(monkeypatch, tmp_path, max_text_chars=50)
    got, answer = post(module, lambda_context, body, method=method, path=path)
    assert got == status, answer
    assert fragment in answer["message"]
    assert module.services.store.list_keys(layout.FEEDBACK) == []


DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE = [
    ({"body": base64.b64encode(b'{"text": "caf\xe9", "label": "x"}').decode(), "isBase64Encoded": True}, 400,
     "the body is not valid UTF-8 (byte 0xe9 at offset 13)"),
    ({"body": '{"text": "\\ud800", "label": "x"}'}, 422, "text: not valid Unicode: a lone surrogate \\ud800"),
    ({"body": '{"text": "a", "label": "x", "predicted_label": "\\udc00"}'}, 422, "predicted_label: not a valid label"),
    ({"body": DEEP}, 400, "invalid JSON body: nested too deeply"),
    ({"body": '{"text": "a", "label": ' + DEEP + "}"}, 400, "invalid JSON body: nested too deeply"),
    # The same id the same answer everywhere (the model refused it 422, the store 400 since it holds "..").
    ({"body": '{"text": "orbit", "label": "x", "id": "a..b"}'}, 422, "id: not a valid id"),
]


@pytest.mark.parametrize(("override", "status", "message"), HOSTILE,
                         ids=["not-utf8", "lone-surrogate", "surrogate-label", "deep-array", "deep-field",
                              "dot-dot-id"])
def test_hostile_input_is_a_4xx_with_one_line_and_stores_nothing(monkeypatch, tmp_path, lambda_context, override,
                                                                  status, message):
    module = handler(monkeypatch, tmp_path)
    response = module.lambda_handler({**rest_event("POST", "/feedback"), **override}, lambda_context)
    answer = json.loads(response["body"])
    assert (response["statusCode"], answer["message"].split("\n")[0]) == (status, answer["message"])
    assert answer["message"].startswith(message)
    assert module.services.store.list_keys(layout.FEEDBACK) == []


def test_the_store_refuses_what_the_api_refuses_with_the_same_status(tmp_path):
    store = FeedbackStore(LocalObjectStore(tmp_path))
    for text, label, item_id, field in [("orbit", "x", "a..b", "id"), ("orbit", "x" * 65, None, "label"),
                                        ("x\ud800", "x", None, "text"), ("  ", "x", None, "text")]:
        with pytest.raises(FeedbackError) as info:
            store.submit(text, label, item_id=item_id)
        assert info.value.status == 422 and str(info.value).startswith(f"{field}: ")
    assert store.store.list_keys(layout.FEEDBACK) == []


def test_a_store_that_cannot_write_is_never_acknowledged(monkeypatch, tmp_path, lambda_context):
    (tmp_path / "bucket").write_text("a file where the bucket folder should be")
    module = handler(monkeypatch, tmp_path)
    status, body = post(module, lambda_context, {"text": "orbit", "label": "sci.space"})
    assert status == 500 and "nothing was acknowledged" in body["message"]


# ------------------------------------------------------------------------------------------------------------ AWS
@pytest.fixture
def bucket() -> str:
    return "autobert-test"


@pytest.fixture
def aws(aws, monkeypatch, tmp_path):
    """Here: the feedback Lambda, loaded in AWS mode over the moto account and bucket of tests/conftest.py's ``aws``."""
    set_env(monkeypatch, mode="aws", bucket=aws, home=tmp_path, allow_new_labels="false")
    return load_module(REPO / "functions" / "feedback.py", "feedback_handler")


def test_on_aws_feedback_lands_in_s3_once_under_the_dated_prefix(aws, lambda_context):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket="autobert-test", Key=layout.LIVE_MODEL, Body=json.dumps({"version": "v2", "model_uri":
                  "s3://autobert-test/models/v2/model.tar.gz", "labels": KNOWN}))
    body = {"text": "launch window", "label": "sci.space", "id": "abc-1"}
    assert post(aws, lambda_context, body)[0] == 202
    assert post(aws, lambda_context, body)[1]["duplicate"] is True
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="autobert-test", Prefix="feedback/")["Contents"]]
    day = datetime.now(UTC).date().isoformat()
    assert sorted(keys) == ["feedback/_ids/abc-1.json", f"feedback/date={day}/abc-1.json"]
    item = json.loads(s3.get_object(Bucket="autobert-test", Key=f"feedback/date={day}/abc-1.json")["Body"].read())
    assert item["label"] == "sci.space" and item["model_version"] == "v2"
    status, answer = post(aws, lambda_context, {"text": "a GPU question", "label": "comp.graphics"})
    assert status == 422  # the policy (refuse new labels) with labels named in live.json
