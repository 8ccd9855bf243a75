"""The local endpoint: SageMaker's container contract, bad input, batching, and the zero-downtime model swap."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from serving_helpers import LABELS, EndpointThread, OnLog, make_model_folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "v1": make_model_folder(root / "v1" / "model", "v1"),
        "v2": make_model_folder(root / "v2" / "model", "v2", labels=[*LABELS, "comp.graphics"]),
    }


@pytest.fixture
def endpoint():
    server = EndpointThread()
    yield server
    server.close()


def load(endpoint, version: str, uri) -> requests.Response:
    return requests.post(f"{endpoint.url}/admin/model", json={"version": version, "model_uri": str(uri)}, timeout=60)


def invoke(url: str, body, content_type: str = "application/json", session=requests) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return session.post(f"{url}/invocations", data=data, headers={"Content-Type": content_type}, timeout=30)


def test_ping_is_503_until_a_model_is_loaded_then_200(endpoint, models):
    assert requests.get(f"{endpoint.url}/ping", timeout=5).status_code == 503
    response = invoke(endpoint.url, {"text": "hello"})
    assert response.status_code == 503 and "no model" in response.json()["message"]
    assert requests.get(f"{endpoint.url}/admin/status", timeout=5).json()["status"] == "Creating"
    assert load(endpoint, "v1", models["v1"]).status_code == 200
    assert requests.get(f"{endpoint.url}/ping", timeout=5).status_code == 200
    status = requests.get(f"{endpoint.url}/admin/status", timeout=5).json()
    assert status["status"] == "InService" and status["version"] == "v1"


def test_invocations_answer_one_prediction_per_input(endpoint, models):
    load(endpoint, "v1", models["v1"])
    response = invoke(endpoint.url, {"instances": ["the shuttle", "the car", "the gun"], "top_k": 2})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["model_version"] == "v1" and len(body["predictions"]) == 3
    assert all(p["label"] in LABELS and len(p["top_k"]) == 2 for p in body["predictions"])


@pytest.mark.parametrize(("method", "path", "body", "content_type", "status"), [
    ("POST", "/invocations", b'{"text": "x"}', "text/csv", 415),
    ("POST", "/invocations", b"{oops", "application/json", 400),
    ("POST", "/invocations", b'{"text": "  "}', "application/json", 422),
    ("POST", "/invocations", b'{"instances": [1, 2]}', "application/json", 422),
    ("POST", "/nowhere", b"{}", "application/json", 404),
    ("GET", "/invocations", None, None, 405),
    ("POST", "/ping", b"", "application/json", 405),
    ("POST", "/admin/model", b'{"version": ""}', "application/json", 400),
])
def test_bad_requests_get_a_json_error_never_a_500(endpoint, models, method, path, body, content_type, status):
    load(endpoint, "v1", models["v1"])
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.request(method, f"{endpoint.url}{path}", data=body, headers=headers, timeout=10)
    assert response.status_code == status
    assert response.json()["message"]
    assert "Traceback" not in response.text
    assert invoke(endpoint.url, {"text": "still fine"}).status_code == 200  # the connection handling survived


def test_a_model_that_fails_to_load_leaves_the_old_one_serving(endpoint, models, tmp_path):
    load(endpoint, "v1", models["v1"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    response = load(endpoint, "v9", broken)
    assert response.status_code == 422 and "v9 failed to load" in response.json()["message"]
    status = requests.get(f"{endpoint.url}/admin/status", timeout=5).json()
    assert status["status"] == "Failed" and status["version"] == "v1" and "v9" in status["error"]
    assert requests.get(f"{endpoint.url}/ping", timeout=5).status_code == 200
    assert invoke(endpoint.url, {"text": "hello"}).json()["model_version"] == "v1"
    assert load(endpoint, "v2", tmp_path / "missing").status_code == 422
    assert invoke(endpoint.url, {"text": "hello"}).json()["model_version"] == "v1"


def test_concurrent_clients_get_their_own_answers_from_merged_batches(endpoint, models):
    load(endpoint, "v1", models["v1"])
    texts = [f"document number {i} about {LABELS[i % 3]}" for i in range(48)]
    alone = {t: invoke(endpoint.url, {"text": t, "top_k": 3}).json()["predictions"][0] for t in texts[:6]}
    batches_before = endpoint.server.batcher.batches

    def call(text: str) -> tuple[str, dict]:
        return text, invoke(endpoint.url, {"text": text, "top_k": 3}).json()["predictions"][0]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, texts))
    assert [t for t, _ in results] == texts
    for text, prediction in results:
        if text in alone:
            assert prediction["label"] == alone[text]["label"]
            assert prediction["score"] == pytest.approx(alone[text]["score"], abs=2e-2)
    batches = endpoint.server.batcher.batches - batches_before
    assert batches < len(texts), "concurrent requests should share forwards"


def test_holding_the_old_model_delays_its_release_until_the_request_finishes(endpoint, models):
    load(endpoint, "v1", models["v1"])
    host = endpoint.server.host
    log = "autobert.endpoint"
    with OnLog(log, "now serving v2") as switched, OnLog(log, "freed model v1") as freed:
        with host.acquire() as old:  # an in-flight request on v1
            swap = threading.Thread(target=host.swap, args=("v2", str(models["v2"])))
            swap.start()
            assert switched.seen.wait(timeout=60), "the swap never switched to v2"
            assert host.current.version == "v2"  # new requests already go to v2 ...
            # ... while v1 stays loaded for the request using it: the swap waits (a release would end it at once)
            swap.join(timeout=0.2)
            assert swap.is_alive() and not freed.seen.is_set() and old.model is not None
        swap.join(timeout=60)
        assert freed.seen.is_set() and old.model is None  # released once that request finished


def test_swapping_models_under_concurrent_load_fails_no_request(endpoint, models, tmp_path):
    load(endpoint, "v1", models["v1"])
    stop = threading.Event()
    failures: list[str] = []
    seen: list[list[str]] = [[] for _ in range(8)]
    answered = [0] * 8
    progress = threading.Condition()

    def client(i: int) -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                response = invoke(endpoint.url, {"instances": [f"client {i} text", "another"]}, session=session)
            except requests.RequestException as exc:
                failures.append(repr(exc))
            else:
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                else:
                    seen[i].append(response.json()["model_version"])
            with progress:
                answered[i] += 1
                progress.notify_all()

    def every_client_sends_a_request_from_now() -> None:
        """Return once each client has finished a request it sent after this call (its second answer from now)."""
        with progress:
            marks = list(answered)
            assert progress.wait_for(lambda: all(a >= m + 2 for a, m in zip(answered, marks, strict=True)),
                                     timeout=120), f"clients stalled: {answered} from {marks}; {failures[:3]}"

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        every_client_sends_a_request_from_now()
        assert load(endpoint, "v2", models["v2"]).status_code == 200
        every_client_sends_a_request_from_now()
        (tmp_path / "bad").mkdir()
        assert load(endpoint, "v3", tmp_path / "bad").status_code == 422
        every_client_sends_a_request_from_now()
        assert load(endpoint, "v1", models["v1"]).status_code == 200  # and back
        every_client_sends_a_request_from_now()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert failures == []
    for versions in seen:
        # Each client sees v1, then v2 (also while v3 fails to load), then v1 again: a switch is atomic, never back
        # and forth.
        assert versions[0] == "v1" and versions[-1] == "v1"
        assert [b for a, b in zip(versions, versions[1:], strict=False) if a != b] == ["v2", "v1"]


# ------------------------------------------------------------------------------------------------- hostile input
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(("body", "status", "message"), [
    (b'{"text": "caf\xe9"}', 400, "the body is not valid UTF-8 (byte 0xe9 at offset 13)"),
    (b'{"text": "\\ud800"}', 422, "text: not valid Unicode: a lone surrogate \\ud800 at position 0"),
    (DEEP, 400, "invalid JSON body: nested too deeply"),
    (b'{"instances": ' + DEEP + b"}", 400, "invalid JSON body: nested too deeply"),
    (b'{"text": "' + b"x" * (7 * 1024 * 1024) + b'"}', 413, "request body over 6291456 bytes"),
], ids=["not-utf8", "lone-surrogate", "deep-array", "deep-field", "7MB"])
def test_hostile_input_is_a_4xx_with_one_line_and_the_server_keeps_serving(endpoint, models, body, status, message):
    # Before: a lone surrogate failed the model (500), deep nesting the parser (500).
    load(endpoint, "v1", models["v1"])
    with requests.Session() as session:
        response = invoke(endpoint.url, body, session=session)
        assert (response.status_code, response.json()) == (status, {"message": message})
        assert invoke(endpoint.url, {"text": "still fine"}, session=session).status_code == 200


def test_a_body_over_the_payload_limit_is_read_and_answered_413(endpoint, models):
    # Before, the 413 went out on a connection closed under the client still sending (20 MB: more than the socket
    # buffers hold), which it saw as a broken pipe or a reset.
    load(endpoint, "v1", models["v1"])
    host, port = endpoint.server.address
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request("POST", "/invocations", body=b"x" * (20 * 1024 * 1024),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (413, {"message": "request body over 6291456 bytes"})
        connection.request("POST", "/invocations", body=b'{"text": "same connection"}',
                           headers={"Content-Type": "application/json"})
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_a_body_past_the_drain_limit_is_answered_413_and_the_connection_closed(endpoint, models):
    # Up to the drain limit the rest of an over-limit body is discarded as it arrives (above: the connection stays
    # usable); past it the server reads none of it: it answers after the headers and closes the connection.
    from autobert.endpoint_server import DRAIN_LIMIT_BYTES

    load(endpoint, "v1", models["v1"])
    with socket.create_connection(endpoint.server.address, timeout=30) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: endpoint\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (DRAIN_LIMIT_BYTES + 1))
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert (response.status, json.loads(response.read())) == (413, {"message": "request body over 6291456 bytes"})
        assert response.getheader("Connection") == "close"
        assert sock.recv(1) == b""  # closed by the server


def asgi_request(app, method: str, path: str, client: tuple[str, int], body: bytes = b"") -> tuple[int, dict]:
    """One request straight into the endpoint's ASGI app, as uvicorn hands it over, from the peer ``client``."""
    messages: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "client": client,
             "server": ("127.0.0.1", 8080), "headers": [(b"host", b"endpoint"), (b"content-type", b"application/json"),
                                                        (b"content-length", str(len(body)).encode())]}
    asyncio.run(app(scope, receive, send))
    return messages[0]["status"], json.loads(b"".join(m.get("body", b"") for m in messages[1:]))


@pytest.mark.parametrize("client", [("192.0.2.7", 40000), ("2001:db8::7", 40000), ("testclient", 40000)])
def test_admin_routes_refuse_clients_that_are_not_loopback(endpoint, models, client):
    update = json.dumps({"version": "v1", "model_uri": str(models["v1"])}).encode()
    refused = {"message": "admin routes answer loopback clients only"}
    assert asgi_request(endpoint.server.app, "GET", "/admin/status", client) == (403, refused)
    assert asgi_request(endpoint.server.app, "POST", "/admin/model", client, update) == (403, refused)
    assert endpoint.server.host.status()["status"] == "Creating"  # nothing was loaded
    # The same requests from loopback peers are served.
    assert asgi_request(endpoint.server.app, "GET", "/admin/status", ("::1", 40000))[0] == 200
    assert asgi_request(endpoint.server.app, "POST", "/admin/model", ("127.0.0.1", 40000), update)[0] == 200
    assert endpoint.server.host.status()["version"] == "v1"


def test_a_forwarded_for_header_does_not_change_who_the_peer_is(endpoint):
    # The local servers trust no proxy: a loopback client naming another address in X-Forwarded-For is still the
    # loopback peer it is (and a remote one could not pass for loopback).
    answer = requests.get(f"{endpoint.url}/admin/status", headers={"X-Forwarded-For": "192.0.2.7"}, timeout=5)
    assert answer.status_code == 200 and answer.json()["status"] == "Creating"


def test_kept_alive_connections_have_nagle_off(endpoint):
    # With Nagle on, a response's body (a write after the headers' write) waits for the client's delayed ACK: ~40 ms
    # per request on a kept-alive connection.
    with requests.Session() as session:
        assert session.get(f"{endpoint.url}/ping", timeout=5).status_code == 503
        connections = list(endpoint.server.http.server.server_state.connections)
        assert connections
        for connection in connections:
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert session.get(f"{endpoint.url}/ping", timeout=5).status_code == 503  # the same connection, still open
        assert list(endpoint.server.http.server.server_state.connections) == connections


def wait_until(condition, timeout: float = 30.0) -> bool:
    """Poll a condition on the server's state (not a sleep for a fixed time: it returns as soon as it holds)."""
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return condition()


def test_a_saturated_endpoint_answers_503_with_retry_after_and_never_leaves_a_request_waiting(models, monkeypatch):
    from autobert.config import Settings

    endpoint = EndpointThread(Settings(endpoint_queue_seconds=0.5, endpoint_max_queued_texts=3))
    try:
        load(endpoint, "v1", models["v1"])
        batcher = endpoint.server.batcher
        running, release = threading.Event(), threading.Event()
        real = batcher.script.predict_fn

        def held(data, model):  # the forward in progress takes as long as the test says
            running.set()
            release.wait(60)
            return real(data, model)

        monkeypatch.setattr(batcher.script, "predict_fn", held)
        with ThreadPoolExecutor(8) as pool:
            first = pool.submit(invoke, endpoint.url, {"text": "the shuttle"})
            assert running.wait(30)
            queued = [pool.submit(invoke, endpoint.url, {"text": f"text {i}"}) for i in range(3)]
            assert wait_until(lambda: batcher.queued_texts == 3)
            # The queue is full: refused at once.
            refused = invoke(endpoint.url, {"text": "one more"})
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert "saturated" in refused.json()["message"]
            # The queued ones waited queue_seconds for a forward that did not start: 503, not a hang.
            for future in queued:
                response = future.result(timeout=30)
                assert response.status_code == 503 and response.headers["Retry-After"] == "1"
            release.set()
            assert first.result(timeout=30).status_code == 200
        assert batcher.jobs == 1 and batcher.queued_texts == 0  # the expired requests never ran
        monkeypatch.setattr(batcher.script, "predict_fn", real)
        assert invoke(endpoint.url, {"text": "after the burst"}).status_code == 200
    finally:
        endpoint.close()
