"""The local endpoint's adapters: invoke it over HTTP (EndpointClient) and ask it to swap models (EndpointDeployer).

The endpoint process is ``autobert.endpoint_server``; ``autobert up`` starts it.
"""

from __future__ import annotations

import threading

import requests

from autobert.ports import EndpointClient, EndpointDeployer, EndpointRequestError, EndpointUnavailable


def _message(response: requests.Response) -> str:
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:300] or response.reason


class _Http:
    # One requests.Session per thread: sessions pool connections but are not documented as thread-safe.
    def __init__(self, base_url: str, timeout: float):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        try:
            return session.request(method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise EndpointUnavailable(f"the endpoint at {self.base_url} did not answer within {self.timeout:g}s"
                                      ) from exc
        except requests.ConnectionError as exc:
            raise EndpointUnavailable(f"the endpoint at {self.base_url} is not running (start it with "
                                      "`autobert up`)") from exc


class LocalEndpointClient(EndpointClient):
    def __init__(self, base_url: str, timeout: float = 30.0):
        self.http = _Http(base_url, timeout)

    def invoke(self, payload: dict) -> dict:
        response = self.http.request("POST", "/invocations", json=payload,
                                     headers={"Accept": "application/json"})
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
                                     json={"version": model_version, "model_uri": model_uri, "wait": False})
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
