"""The local endpoint's adapters: invoke it over HTTP (EndpointClient) and ask it to swap models (EndpointDeployer).

The endpoint process is ``autobert.endpoint_server``; ``autobert up`` starts it.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from autobert.ports import EndpointClient, EndpointDeployer, EndpointRequestError, EndpointUnavailable

HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class Response:
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None):
        self.status_code = status
        self.body = body
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}

    def json(self):
        return json.loads(self.body)


def _message(response: Response) -> str:
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.body.decode(errors="replace").strip()[:300] or f"HTTP {response.status_code}"


class _Http:
    """A pool of kept-alive connections to the endpoint, shared by threads (urllib3: a fraction of requests' per-call
    overhead, which matters on the predict path's second hop). A pooled connection the endpoint closed meanwhile is
    replaced before use."""

    def __init__(self, base_url: str, timeout: float):
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # maxsize: connections kept for reuse (more are opened under load, and closed after use).
        self.pool = urllib3.HTTPConnectionPool(parts.hostname or "127.0.0.1", parts.port or 80, maxsize=32,
                                               timeout=urllib3.Timeout(timeout), retries=False)

    def request(self, method: str, path: str, payload: dict | None = None) -> Response:
        body = json.dumps(payload).encode() if payload is not None else None
        # A connection dropped while the request was on it: one retry on a fresh connection (safe: invocations have
        # no side effects, and a swap request is idempotent per version). Timeouts and refusals are not retried.
        for attempt in (0, 1):
            try:
                response = self.pool.request(method, path, body=body, headers=HEADERS)
                return Response(response.status, response.data, dict(response.headers))
            except NewConnectionError as exc:  # refused, unreachable (a subclass of the timeout error: first)
                raise EndpointUnavailable(f"the endpoint at {self.base_url} is not running (start it with "
                                          "`autobert up`)") from exc
            except Urllib3Timeout as exc:
                raise EndpointUnavailable(f"the endpoint at {self.base_url} did not answer within "
                                          f"{self.timeout:g}s") from exc
            except ProtocolError as exc:
                if attempt:
                    raise EndpointUnavailable(f"the endpoint at {self.base_url} dropped the connection") from exc
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
            retry_after = response.headers.get("retry-after", "")
            raise EndpointUnavailable(f"the endpoint is not ready: {message}",
                                      int(retry_after) if retry_after.isdigit() else None)
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

    def serving_version(self) -> str | None:
        return self.describe()["version"]
