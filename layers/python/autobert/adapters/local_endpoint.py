"""The local endpoint's adapters: invoke it over HTTP (EndpointClient) and ask it to swap models (EndpointDeployer).

The endpoint process is ``autobert.endpoint_server``; ``autobert up`` starts it.
"""

from __future__ import annotations

import http.client
import json
import threading
from urllib.parse import urlsplit

from autobert.ports import EndpointClient, EndpointDeployer, EndpointRequestError, EndpointUnavailable


class Response:
    def __init__(self, status: int, body: bytes):
        self.status_code = status
        self.body = body

    def json(self):
        return json.loads(self.body)


def _message(response: Response) -> str:
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.body.decode(errors="replace").strip()[:300] or f"HTTP {response.status_code}"


class _Http:
    """Kept-alive HTTP/1.1 connections, one per thread (http.client: a fraction of requests' per-call overhead,
    which matters on the predict path's second hop)."""

    def __init__(self, base_url: str, timeout: float):
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return conn

    def request(self, method: str, path: str, payload: dict | None = None) -> Response:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        # A kept-alive connection the server already closed fails on first use: one retry on a fresh connection
        # (safe: invocations have no side effects, and a swap request is idempotent per version).
        for attempt in (0, 1):
            conn = self._connection(fresh=attempt > 0)
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                return Response(response.status, response.read())
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady) as exc:
                conn.close()
                if attempt:
                    raise EndpointUnavailable(f"the endpoint at {self.base_url} dropped the connection") from exc
            except TimeoutError as exc:
                conn.close()
                raise EndpointUnavailable(f"the endpoint at {self.base_url} did not answer within "
                                          f"{self.timeout:g}s") from exc
            except OSError as exc:  # refused, unreachable
                conn.close()
                raise EndpointUnavailable(f"the endpoint at {self.base_url} is not running (start it with "
                                          "`autobert up`)") from exc
        raise AssertionError("unreachable")


class LocalEndpointClient(EndpointClient):
    def __init__(self, base_url: str, timeout: float = 30.0):
        self.http = _Http(base_url, timeout)

    def invoke(self, payload: dict) -> dict:
        response = self.http.request("POST", "/invocations", payload)
        if response.status_code == 200:
            return response.json()
        message = _message(response)
        if 400 <= response.status_code < 500:
            raise EndpointRequestError(response.status_code, message)
        if response.status_code == 503:
            raise EndpointUnavailable(f"the endpoint is not ready: {message}")
        raise EndpointUnavailable(f"the endpoint failed ({response.status_code}): {message}")


class LocalEndpointDeployer(EndpointDeployer):
    """Asks the running endpoint to load a model beside the current one and switch (its zero-downtime swap)."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.http = _Http(base_url, timeout)

    def deploy(self, model_version: str, model_uri: str) -> None:
        # wait=False: like UpdateEndpoint, this starts the update; status() reports Updating, then InService/Failed.
        response = self.http.request("POST", "/admin/model",
                                     {"version": model_version, "model_uri": model_uri, "wait": False})
        if response.status_code not in (200, 202):
            raise EndpointUnavailable(f"the endpoint refused the update ({response.status_code}): "
                                      f"{_message(response)}")

    def describe(self) -> dict:
        """The endpoint's full status: status, version, model_uri, error, target."""
        response = self.http.request("GET", "/admin/status")
        if response.status_code != 200:
            raise EndpointUnavailable(f"endpoint status unavailable ({response.status_code}): {_message(response)}")
        return response.json()

    def status(self) -> str:
        return self.describe()["status"]
