"""The local endpoint as a process (as `autobert up` runs it) and the adapters that talk to it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from serving_helpers import REPO, EndpointThread, make_model_folder

from autobert.adapters.local_endpoint import LocalEndpointClient, LocalEndpointDeployer
from autobert.ports import EndpointRequestError, EndpointUnavailable


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {v: make_model_folder(root / v / "model", v) for v in ("v1", "v2")}


@pytest.fixture(scope="module")
def endpoint_process(models):
    process = subprocess.Popen([sys.executable, "-m", "autobert.endpoint_server", "--model-dir", str(models["v1"]),
                                "--port", "0"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        url = json.loads(process.stdout.readline())["url"]
        deadline = time.monotonic() + 60
        while requests.get(f"{url}/ping", timeout=5).status_code != 200:
            assert time.monotonic() < deadline and process.poll() is None, "endpoint never became healthy"
            time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


def free_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_the_process_serves_the_model_folder_it_was_started_with(endpoint_process):
    _, url = endpoint_process
    response = LocalEndpointClient(url).invoke({"text": "the shuttle reached orbit"})
    assert response["model_version"] == "v1" and len(response["predictions"]) == 1
    # models/<version>/model/ → the version is the parent folder's name
    assert requests.get(f"{url}/admin/status", timeout=5).json()["version"] == "v1"


def test_the_client_turns_a_refused_input_into_a_request_error(endpoint_process):
    _, url = endpoint_process
    with pytest.raises(EndpointRequestError) as info:
        LocalEndpointClient(url).invoke({"text": ""})
    assert info.value.status == 422 and "empty" in str(info.value)  # the API's answer to the same input


def test_the_client_reports_a_stopped_endpoint_as_unavailable():
    with pytest.raises(EndpointUnavailable, match="not running"):
        LocalEndpointClient(free_url(), timeout=2).invoke({"text": "hello"})


def test_the_deployer_swaps_the_model_and_reports_updating_then_in_service(endpoint_process, models):
    _, url = endpoint_process
    deployer, client = LocalEndpointDeployer(url), LocalEndpointClient(url)
    deployer.deploy("v2", str(models["v2"]))
    first = deployer.describe()  # right after the request: never the old state (the workflow would read a rollback)
    assert first["status"] == "Updating" or (first["status"], first["version"]) == ("InService", "v2")
    states = set()
    deadline = time.monotonic() + 60
    while (state := deployer.status()) != "InService":
        states.add(state)
        assert state in ("Updating", "InService") and time.monotonic() < deadline
        time.sleep(0.05)
    assert client.invoke({"text": "hello"})["model_version"] == "v2"
    assert deployer.describe()["version"] == "v2" and deployer.serving_version() == "v2"


def test_the_deployer_reports_a_failed_update_and_the_old_model_keeps_serving(endpoint_process, tmp_path):
    _, url = endpoint_process
    deployer, client = LocalEndpointDeployer(url), LocalEndpointClient(url)
    before = client.invoke({"text": "hello"})["model_version"]
    deployer.deploy("v-broken", str(tmp_path / "no-such-model"))
    deadline = time.monotonic() + 30
    while deployer.status() == "Updating" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert deployer.status() == "Failed"
    assert "v-broken" in deployer.describe()["error"]
    assert client.invoke({"text": "hello"})["model_version"] == before


def test_the_deployer_cannot_reach_a_stopped_endpoint():
    with pytest.raises(EndpointUnavailable):
        LocalEndpointDeployer(free_url(), timeout=2).status()


def test_sigterm_stops_the_process_cleanly(models):
    process = subprocess.Popen([sys.executable, "-m", "autobert.endpoint_server", "--port", "0"], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    url = json.loads(process.stdout.readline())["url"]
    assert requests.get(f"{url}/ping", timeout=5).status_code == 503  # started without a model
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def test_a_second_update_while_one_is_loading_is_refused(endpoint_process, models):
    _, url = endpoint_process
    deployer = LocalEndpointDeployer(url)
    deployer.deploy("v1-again", str(models["v1"]))
    try:
        with pytest.raises(EndpointUnavailable, match="409"):
            deployer.deploy("v2-again", str(models["v2"]))
    finally:
        deadline = time.monotonic() + 60
        while deployer.status() == "Updating" and time.monotonic() < deadline:
            time.sleep(0.05)
    assert deployer.describe()["version"] == "v1-again"


# ------------------------------------------------------------------------------------------ the client's connections
def test_the_client_keeps_its_connection_alive_and_takes_a_fresh_one_after_a_restart(models):
    def serve_v1(endpoint: EndpointThread) -> None:
        assert requests.post(f"{endpoint.url}/admin/model", json={"version": "v1", "model_uri": str(models["v1"])},
                             timeout=60).status_code == 200

    endpoint = EndpointThread()
    client = LocalEndpointClient(endpoint.url)
    try:
        serve_v1(endpoint)
        connections = set()  # the server's: one per TCP connection
        for _ in range(3):
            assert client.invoke({"text": "hello"})["model_version"] == "v1"
            connections |= endpoint.server.http.server.server_state.connections
        assert len(connections) == 1  # kept alive: three requests, one connection
    finally:
        endpoint.close()  # closes the connection the client keeps
    endpoint = EndpointThread(port=endpoint.server.address[1])  # restarted on the same port
    try:
        serve_v1(endpoint)
        # The kept connection was closed by the stopped endpoint: the client noticed, and connected afresh.
        assert client.invoke({"text": "hello"})["model_version"] == "v1"
    finally:
        endpoint.close()


class Peer:
    """A TCP peer misbehaving as the client must survive: ``answers`` requests answered per connection, then each
    connection is closed on its next request (a dropped connection), or, with ``answers=None``, held unanswered."""

    def __init__(self, answers: int | None):
        self.answers, self.connections = answers, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        if self.answers is None:
            self.held.append(conn)  # never answered, never closed (until the test ends)
            return
        with conn, conn.makefile("rb") as reader:
            for answered in range(self.answers + 1):
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                reader.read(length)
                if answered == self.answers:
                    return  # the request arrived: drop the connection without an answer
                body = json.dumps({"model_version": "peer", "predictions": []}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


def test_a_connection_dropped_under_a_request_is_retried_once_on_a_fresh_one():
    peer = Peer(answers=1)
    try:
        client = LocalEndpointClient(peer.url)
        assert client.invoke({"text": "a"})["model_version"] == "peer"
        # The kept-alive connection is dropped with this request on it: the client sends it again, on a new one.
        assert client.invoke({"text": "b"})["model_version"] == "peer"
        assert peer.connections == 2
    finally:
        peer.close()


def test_an_endpoint_that_drops_every_request_is_unavailable():
    peer = Peer(answers=0)
    try:
        with pytest.raises(EndpointUnavailable, match="dropped the connection"):
            LocalEndpointClient(peer.url).invoke({"text": "a"})
        assert peer.connections == 2  # one retry, no more
    finally:
        peer.close()


def test_an_endpoint_that_does_not_answer_in_time_is_unavailable():
    peer = Peer(answers=None)
    try:
        with pytest.raises(EndpointUnavailable, match="did not answer within 0.5s"):
            LocalEndpointDeployer(peer.url, timeout=0.5).status()
        assert peer.connections == 1  # a timeout is not retried
    finally:
        peer.close()
