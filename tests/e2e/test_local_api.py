"""The full local HTTP path: `autobert up` (local endpoint process + local API running the real handlers),
`autobert predict` / `autobert feedback`, API keys, bad input over HTTP, a model swap, and a clean Ctrl-C."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import requests
from serving_helpers import LABELS, REPO, make_model_folder

from autobert import layout
from autobert.adapters.local_endpoint import LocalEndpointDeployer
from autobert.adapters.local_store import LocalObjectStore
from autobert.local_stack import StackProcess, stack_environment

KEY = "local-secret-key"


def stack_env(home, **extra) -> dict:
    # No scheduled run (stack_environment): the suite may run at any hour, inside the low-traffic window too.
    return stack_environment(home, AUTOBERT_API_KEY=KEY, AUTOBERT_MAX_TEXT_CHARS="2000", **extra)


class Stack(StackProcess):
    def __init__(self, home):
        self.home = home
        super().__init__(stack_env(home), serving_timeout=120)

    def post(self, path: str, body=None, *, data=None, key: str | None = KEY, method: str = "POST",
             content_type: str = "application/json") -> requests.Response:
        headers = {"Content-Type": content_type, **({"x-api-key": key} if key else {})}
        data = json.dumps(body) if body is not None else data
        return requests.request(method, f"{self.api}{path}", data=data, headers=headers, timeout=30)

    def cli(self, *args: str, api_url: str | None = None) -> subprocess.CompletedProcess:
        env = stack_env(self.home, AUTOBERT_API_URL=api_url or self.api)
        return subprocess.run([sys.executable, "-m", "autobert.cli", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=60)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"v1": make_model_folder(root / "v1", "v1"), "v2": make_model_folder(root / "v2", "v2")}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, models):
    home = tmp_path_factory.mktemp("home")
    store = LocalObjectStore(home / "bucket")
    store.put_json(layout.LIVE_MODEL, {"version": "v1", "model_uri": str(models["v1"])})
    running = Stack(home)
    yield running
    running.stop()


def test_up_serves_predictions_over_http_from_the_live_model(stack):
    assert stack.version == "v1"
    response = stack.post("/predict", {"text": "the shuttle reached orbit", "top_k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "v1" and body["predictions"][0]["label"] in LABELS
    assert len(body["predictions"][0]["top_k"]) == 2


def test_the_api_key_is_required_like_api_gateway(stack):
    assert stack.post("/predict", {"text": "x"}, key=None).status_code == 403
    assert stack.post("/predict", {"text": "x"}, key="wrong").status_code == 403
    assert stack.post("/predict", {"text": "x"}, key="wrong").json() == {"message": "Forbidden"}


def test_feedback_over_http_is_stored_once_before_the_202(stack):
    body = {"text": "my brakes squeal", "label": "rec.autos", "predicted_label": "sci.space"}
    first, second = stack.post("/feedback", body), stack.post("/feedback", body)
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] == second.json()["id"] and second.json()["duplicate"] is True
    key = layout.feedback_key(first.json()["id"], datetime.now(UTC).date())
    stored = LocalObjectStore(stack.home / "bucket").get_json(key)
    assert stored["label"] == "rec.autos" and stored["model_version"] == "v1"


@pytest.mark.parametrize(("method", "path", "data", "content_type", "status"), [
    ("POST", "/predict", "{broken", "application/json", 400),
    ("POST", "/predict", '{"text": "  "}', "application/json", 422),
    ("POST", "/predict", '{"text": 12}', "application/json", 422),
    ("POST", "/predict", json.dumps({"text": "x" * 2001}), "application/json", 413),
    ("POST", "/predict", '{"text": "a"}', "text/plain", 415),
    ("GET", "/predict", None, "application/json", 405),
    ("POST", "/feedback", '{"text": "a"}', "application/json", 422),
    ("POST", "/feedback", '{"text": "a", "label": "not a label!"}', "application/json", 422),
    ("PUT", "/feedback", "{}", "application/json", 405),
    ("POST", "/nothing-here", "{}", "application/json", 404),
    ("GET", "/", None, "application/json", 404),
])
def test_bad_requests_over_http_get_json_4xx(stack, method, path, data, content_type, status):
    response = stack.post(path, data=data, method=method, content_type=content_type)
    assert response.status_code == status, response.text
    assert response.json()["message"]


DEEP = b"[" * 100_000 + b"]" * 100_000
HOSTILE = [
    ("/predict", b'{"text": "caf\xe9"}', 400, "the body is not valid UTF-8 (byte 0xe9 at offset 13)"),
    ("/feedback", b'{"text": "caf\xe9", "label": "x"}', 400, "the body is not valid UTF-8"),
    # The model server failed on it (500), which the API answered 503 "endpoint unavailable".
    ("/predict", b'{"text": "\\ud800"}', 422, "text: not valid Unicode: a lone surrogate \\ud800"),
    ("/feedback", b'{"text": "\\ud800", "label": "x"}', 422, "text: not valid Unicode"),
    ("/predict", DEEP, 400, "invalid JSON body: nested too deeply"),
    ("/feedback", DEEP, 400, "invalid JSON body: nested too deeply"),
]


@pytest.mark.parametrize(("path", "data", "status", "message"), HOSTILE,
                         ids=["predict-not-utf8", "feedback-not-utf8", "predict-lone-surrogate",
                              "feedback-lone-surrogate", "predict-deep", "feedback-deep"])
def test_hostile_input_over_http_is_a_4xx_with_one_line(stack, path, data, status, message):
    response = stack.post(path, data=data)
    assert response.status_code == status, response.text
    assert response.json()["message"].startswith(message) and "\n" not in response.json()["message"]


def test_a_body_over_api_gateways_10_mb_is_read_and_answered_413(stack):
    # Before, the 413 went out on a connection closed under the client still sending (30 MB: more than the socket
    # buffers hold), which it saw as a broken pipe or a reset.
    parts = urlsplit(stack.api)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("POST", "/predict", body=b"x" * (30 * 1024 * 1024),
                           headers={"Content-Type": "application/json", "x-api-key": KEY})
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (413, {"message": "Request Too Long"})
        # Refused, not dropped: the next request goes on the same connection and is answered.
        sock = connection.sock
        connection.request("POST", "/predict", body=json.dumps({"text": "the shuttle reached orbit"}),
                           headers={"Content-Type": "application/json", "x-api-key": KEY})
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["model_version"]
        assert sock is not None and connection.sock is sock
    finally:
        connection.close()


def test_sixteen_concurrent_clients_all_get_their_predictions(stack):
    texts = [f"text number {i}" for i in range(48)]
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda t: stack.post("/predict", {"instances": [t, t + " again"]}), texts))
    assert [r.status_code for r in responses] == [200] * len(texts)
    assert all(len(r.json()["predictions"]) == 2 for r in responses)


def test_the_cli_calls_the_local_api_and_prints_json(stack):
    result = stack.cli("predict", "the shuttle reached orbit", "--top-k", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["predictions"][0]["label"] in LABELS
    result = stack.cli("feedback", "a gpu question", "comp.graphics", "--predicted-label", "sci.space")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["duplicate"] is False
    result = stack.cli("feedback", "a gpu question", "bad label!")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "422" in result.stderr


def test_a_model_swap_reaches_the_predict_api(stack, models):
    deployer = LocalEndpointDeployer(stack.endpoint)
    deployer.deploy("v2", str(models["v2"]))
    deadline = time.monotonic() + 60
    while deployer.status() == "Updating" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert deployer.status() == "InService"
    assert stack.post("/predict", {"text": "hello"}).json()["model_version"] == "v2"


def test_ctrl_c_stops_endpoint_and_api_and_the_cli_then_says_so(stack):
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(timeout=30) == 0
    for url in (stack.api, stack.endpoint):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/ping", timeout=2)
    result = stack.cli("predict", "hello")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "not running" in result.stderr and "autobert up" in result.stderr


def test_up_with_a_live_model_that_cannot_load_stops_with_one_clear_line(tmp_path):
    LocalObjectStore(tmp_path / "bucket").put_json(layout.LIVE_MODEL, {"version": "v9",
                                                                       "model_uri": str(tmp_path / "gone")})
    result = subprocess.run([sys.executable, "-m", "autobert.cli", "up"], cwd=REPO, env=stack_env(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("autobert: error:") and "cannot load the live model" in last and "v9" in last
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"event": "stopped"}


def test_output_printed_in_pieces_from_many_threads_comes_out_as_whole_lines():
    import io

    from autobert.local_stack import LineWriter

    target = io.StringIO()
    writer = LineWriter(target)

    def chatty(i: int) -> None:
        for j in range(200):
            print(json.dumps({"thread": i, "n": j}), file=writer)  # print: the text, then "\n", separately

    threads = [threading.Thread(target=chatty, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = target.getvalue().splitlines()
    assert len(lines) == 8 * 200
    seen = sorted((d["thread"], d["n"]) for d in map(json.loads, lines))
    assert seen == [(i, j) for i in range(8) for j in range(200)]


def test_a_stack_started_in_the_background_stops_whole_endpoint_included(tmp_path, models):
    # A process started in the background (`cmd &` in a script) ignores SIGINT. The harness stops the stack with
    # SIGTERM, which `up` handles like Ctrl-C, so the endpoint goes with it (a stack killed at the timeout left its
    # endpoint process running).
    LocalObjectStore(tmp_path / "bucket").put_json(layout.LIVE_MODEL, {"version": "v1",
                                                                       "model_uri": str(models["v1"])})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the child, as from a background shell
    try:
        running = StackProcess(stack_env(tmp_path), serving_timeout=120)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert running.stop(timeout=30) == 0
    for url in (running.api, running.endpoint):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/ping", timeout=2)
