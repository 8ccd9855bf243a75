"""The local API's own behaviour (what API Gateway does before a Lambda runs), over HTTP, with stand-in Lambda
handler files written by the tests: the routes are serverless.yml's, API keys, 404/405, the 10 MB limit answered
413 on a connection that stays usable, the proxy event a handler receives, 502 for a crashing handler, and 16
concurrent invocations. The real handlers over the same server: tests/e2e/test_local_api.py."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from osls_package import package, requires_osls

from autobert.config import Settings
from autobert.local_api import MAX_BODY_BYTES, make_api
from autobert.local_http import bind
from autobert.serverless_yml import HttpRoute

KEY = "k-123"
HANDLER = '''
import base64, json, probe_state

def lambda_handler(event, context):
    action = (event.get("queryStringParameters") or {}).get("do")
    if action == "raise":
        raise RuntimeError("handler bug")
    if action == "malformed":
        return {"body": "no statusCode"}
    if action == "wait":
        probe_state.BARRIER.wait()
    probe_state.EVENTS.append(event)
    return {"statusCode": 201, "headers": {"X-Echo": "1", "Content-Length": "999"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": json.dumps({"ok": True})}
'''


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A stand-in Lambda (functions/echo.py's shape) and the module it records into (one, shared by every instance
    the pool imports)."""
    (tmp_path / "probe_state.py").write_text("BARRIER = None\nEVENTS = []\n")
    (tmp_path / "echo.py").write_text(HANDLER)
    monkeypatch.syspath_prepend(str(tmp_path))
    import probe_state

    yield probe_state, tmp_path / "echo.py"
    sys.modules.pop("probe_state", None)


@pytest.fixture
def api(probe):
    state, handler = probe
    routes = [HttpRoute("echo", "/echo", "POST", True, str(handler), "lambda_handler"),
              HttpRoute("echo", "/echo", "PUT", False, str(handler), "lambda_handler"),
              HttpRoute("open", "/open/{item}", "GET", False, str(handler), "lambda_handler")]
    server = make_api(Settings(api_key=KEY), host="127.0.0.1", port=0, max_instances=16, routes=routes).start()
    yield server, state
    server.stop()


@requires_osls
@pytest.mark.slow
def test_the_local_api_serves_exactly_the_routes_serverless_yml_gives_api_gateway():
    """Read from the packaged template (what API Gateway will serve): each method's path, HTTP method, API key and
    handler; the local API must route the same and nothing else."""
    resources = package().template["Resources"]

    def path_of(ref: dict) -> str:
        if "Fn::GetAtt" in ref:  # the API's root
            return ""
        props = resources[ref["Ref"]]["Properties"]
        return f"{path_of(props['ParentId'])}/{props['PathPart']}"

    deployed = set()
    for props in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method"):
        if props["HttpMethod"] == "OPTIONS" and props["Integration"]["Type"] == "MOCK":  # CORS preflight, if any
            continue
        function = next(p["Fn::GetAtt"][0] for p in props["Integration"]["Uri"]["Fn::Join"][1] if "Fn::GetAtt" in p)
        deployed.add((path_of(props["ResourceId"]), props["HttpMethod"], props.get("ApiKeyRequired", False),
                       resources[function]["Properties"]["Handler"]))
    assert deployed, "no API Gateway methods in the packaged template"

    server = make_api(Settings(api_key=KEY), host="127.0.0.1", port=0)
    served = {(r.path, r.method, r.private, r.handler_file.removesuffix(".py") + "." + r.handler_name)
              for r in server.api.routes}
    # Starlette answers HEAD wherever GET is routed; API Gateway only where declared.
    routed = {(route.path, method) for route in server.api.app.routes for method in route.methods if method != "HEAD"}
    assert served == deployed
    assert routed == {(path, method) for path, method, _, _ in deployed if method != "HEAD"}
    server.start()
    try:  # a private route is routed (no 404/405) and stops at the key check, as API Gateway does: no handler runs
        for path, method, _, _ in (route for route in deployed if route[2]):
            response = requests.request(method, server.url + path, json={}, timeout=10)
            assert (response.status_code, response.json()) == (403, {"message": "Forbidden"}), (method, path)
    finally:
        server.stop()


def test_a_private_route_needs_the_api_key_and_gets_api_gateways_403(api):
    server, state = api
    for headers in ({}, {"x-api-key": "wrong"}):
        response = requests.post(server.url + "/echo", json={}, headers=headers, timeout=10)
        assert (response.status_code, response.json()) == (403, {"message": "Forbidden"})
    assert state.EVENTS == []  # the handler never ran
    assert requests.post(server.url + "/echo", json={}, headers={"x-api-key": KEY}, timeout=10).status_code == 201
    assert requests.put(server.url + "/echo", json={}, timeout=10).status_code == 201  # not private


def test_unknown_paths_are_404_and_other_methods_405_as_json(api):
    server, state = api
    response = requests.post(server.url + "/nothing", json={}, headers={"x-api-key": KEY}, timeout=10)
    assert (response.status_code, response.json()) == (404, {"message": "no route POST /nothing"})
    response = requests.delete(server.url + "/echo", headers={"x-api-key": KEY}, timeout=10)
    assert response.status_code == 405 and response.json() == {"message": "method DELETE not allowed on /echo"}
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"POST", "PUT"}
    assert state.EVENTS == []


def test_the_handler_gets_an_api_gateway_rest_proxy_event_and_its_response_goes_back(api):
    server, state = api
    parts = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(parts[0], int(parts[1]), timeout=10)
    body = b'{"text": "caf\xe9"}'  # not UTF-8: passed on base64-encoded, as API Gateway does
    connection.putrequest("POST", "/echo?a=1&a=2&b=")
    for name, value in [("Content-Type", "application/json"), ("x-api-key", KEY), ("X-Multi", "one"),
                        ("X-Multi", "two"), ("Content-Length", str(len(body)))]:
        connection.putheader(name, value)
    connection.endheaders(body)
    response = connection.getresponse()
    assert response.status == 201 and json.loads(response.read()) == {"ok": True}
    assert response.getheader("X-Echo") == "1" and response.getheader("Content-Type") == "application/json"
    assert response.msg.get_all("Set-Cookie") == ["a=1", "b=2"]
    connection.close()
    (event,) = state.EVENTS
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/echo", "/echo", "POST")
    assert event["isBase64Encoded"] is True and event["body"] == "eyJ0ZXh0IjogImNhZukifQ=="
    assert event["headers"]["x-multi"] == "two" and event["multiValueHeaders"]["x-multi"] == ["one", "two"]
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    context = event["requestContext"]
    assert context["identity"]["apiKey"] == KEY and context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["stage"] == "local" and context["path"] == "/local/echo" and context["resourcePath"] == "/echo"

    assert requests.get(server.url + "/open/abc", timeout=10).status_code == 201
    assert state.EVENTS[-1]["pathParameters"] == {"item": "abc"} and state.EVENTS[-1]["resource"] == "/open/{item}"
    assert state.EVENTS[-1]["body"] is None and state.EVENTS[-1]["isBase64Encoded"] is False


@pytest.mark.parametrize("action", ["raise", "malformed"])
def test_a_crashing_handler_is_api_gateways_502(api, action):
    server, _ = api
    response = requests.put(f"{server.url}/echo?do={action}", json={}, timeout=10)
    assert (response.status_code, response.json()) == (502, {"message": "Internal server error"})


def raw_request(server, head: bytes, body_chunks) -> tuple[socket.socket, bytes]:
    """Send a request by hand (``body_chunks`` may stream a body of any size); returns the socket and the first
    response (headers and its Content-Length body)."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(head)
    for chunk in body_chunks:
        sock.sendall(chunk)
    return sock, read_response(sock)


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_10_mb_is_answered_413_and_the_connection_stays_usable(api, framing):
    # API Gateway's payload limit. The client sends all of its 30 MB (more than socket buffers hold) and gets the
    # 413, then sends its next request on the same connection and gets that answered too.
    server, state = api
    size, piece = 3 * MAX_BODY_BYTES, b"x" * (1024 * 1024)
    if framing == "content-length":
        head = f"POST /echo HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\nContent-Length: {size}\r\n\r\n".encode()
        chunks = [piece] * (size // len(piece))
    else:  # no Content-Length to refuse it by: counted as it streams in
        head = f"POST /echo HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (size // len(piece)) + [b"0\r\n\r\n"]
    sock, first = raw_request(server, head, chunks)
    try:
        assert first.startswith(b"HTTP/1.1 413 ") and first.endswith(b'{"message": "Request Too Long"}')
        assert b"connection: close" not in first.lower()
        sock.sendall(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert read_response(sock).startswith(b"HTTP/1.1 201 ")
    finally:
        sock.close()
    assert len(state.EVENTS) == 1 and state.EVENTS[0]["httpMethod"] == "PUT"  # the 30 MB never reached it


def test_a_body_of_exactly_10_mb_reaches_the_handler(api):
    server, state = api
    response = requests.put(server.url + "/echo", data=b"y" * MAX_BODY_BYTES, timeout=30)
    assert response.status_code == 201 and len(state.EVENTS[0]["body"]) == MAX_BODY_BYTES


def test_sixteen_concurrent_requests_run_in_sixteen_handler_instances_at_once(api):
    # Each invocation waits until 16 are inside the handler together: fewer worker threads or instances than 16
    # would break the barrier (its timeout) and answer 502.
    server, state = api
    state.BARRIER = threading.Barrier(16, timeout=30)
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: requests.put(f"{server.url}/echo?do=wait", json={}, timeout=60).status_code,
                                 range(16)))
    assert statuses == [201] * 16
    assert len(server.pools["echo"]._idle.queue) == 16  # noqa: SLF001 — sixteen instances were made, all idle now


def test_connections_to_a_local_server_have_nagles_algorithm_off():
    # uvicorn writes a response's head and body separately: with Nagle on, the body waits for the client's delayed
    # ACK (~40 ms a request). asyncio turns it off on the connections of the socket LocalServer binds (as uvicorn
    # serves it: loop.create_server(sock=...)), which needs a socket made with proto=IPPROTO_TCP.
    listener = bind("127.0.0.1", 0)
    seen: list[int] = []

    async def main() -> None:
        def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(connected, sock=listener)
        async with server:
            reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            await reader.read()  # until the server closes it: the callback has run
            writer.close()

    asyncio.run(main())
    assert seen and seen[0] != 0
