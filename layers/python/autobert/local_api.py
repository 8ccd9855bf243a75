"""The local API: the very same Lambda handlers (``functions/*.py``) served over HTTP on 127.0.0.1.

Each HTTP request becomes an API Gateway REST (v1) proxy event, is passed to the function's ``lambda_handler`` with a
Lambda-like context, and the proxy response is written back, as API Gateway and serverless-offline do. What API Gateway
itself does before a Lambda runs is done here too: unknown routes are answered 404, an API key is required in
``x-api-key`` when ``AUTOBERT_API_KEY`` is set (403 otherwise), bodies over 10 MB are refused (413), and a handler that
crashes is a 502 ``{"message": "Internal server error"}``.

Concurrency is Lambda's: one event at a time per handler instance, more instances for more concurrent requests. Each
instance is a separate import of the handler file (its own resolver, clients and caches), created on demand up to
``max_instances`` per function; powertools' resolver keeps the current event on the app, so one instance must never
serve two requests at once.
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import logging
import queue
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from autobert.config import REPO_ROOT, Settings, get_settings
from autobert.endpoint_server import drop_body

logger = logging.getLogger("autobert.api")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
STAGE = "local"
# The http events of serverless.yml: path → (handler file, methods). Wrong methods still reach the handler, whose
# resolver answers 405, so the behaviour a client sees is the handler's own.
ROUTES: dict[str, tuple[str, frozenset[str]]] = {
    "/predict": ("functions/predict.py", frozenset({"POST"})),
    "/feedback": ("functions/feedback.py", frozenset({"POST"})),
    "/retrain": ("functions/retrain.py", frozenset({"POST"})),
}


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_s: float = 29.0
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


class FunctionPool:
    """Warm instances of one handler file; each serves one event at a time (a Lambda execution environment)."""

    _ids = itertools.count()

    def __init__(self, name: str, path: Path, max_instances: int = 16):
        self.name = name
        self.path = path
        self.max_instances = max_instances
        self._idle: queue.LifoQueue[ModuleType] = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()

    def _load(self) -> ModuleType:
        module_name = f"autobert_local_fn_{self.name}_{next(self._ids)}"
        spec = importlib.util.spec_from_file_location(module_name, self.path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {self.path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # powertools resolves the route's type hints through the module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module

    def acquire(self) -> ModuleType:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            create = self._created < self.max_instances
            if create:
                self._created += 1
        if not create:
            return self._idle.get()
        try:
            return self._load()
        except BaseException:
            with self._lock:
                self._created -= 1
            raise

    def release(self, module: ModuleType) -> None:
        self._idle.put(module)

    def invoke(self, event: dict) -> dict:
        module = self.acquire()
        try:
            return module.lambda_handler(event, LambdaContext(self.name))
        finally:
            self.release(module)


def build_event(method: str, raw_path: str, headers: dict[str, str], body: bytes, source_ip: str,
                api_key: str | None) -> dict:
    """An API Gateway REST (v1) proxy event, as API Gateway (and serverless-offline) build it."""
    parts = urlsplit(raw_path)
    query = parse_qs(parts.query, keep_blank_values=True)
    try:
        text, is_b64 = body.decode(), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(body).decode(), True
    now = time.time()
    return {
        "resource": parts.path,
        "path": parts.path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": parts.path, "httpMethod": method, "path": f"/{STAGE}{parts.path}", "stage": STAGE,
            "requestId": str(uuid.uuid4()), "accountId": "000000000000", "apiId": "local",
            "protocol": "HTTP/1.1", "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("user-agent"), "apiKey": api_key},
        },
        "body": (text if body else None),
        "isBase64Encoded": is_b64,
    }


class LocalApiServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], settings: Settings, routes: dict | None = None,
                 max_instances: int = 16):
        super().__init__(address, LocalApiHandler)
        self.settings = settings
        self.pools = {path: FunctionPool(Path(file).stem, REPO_ROOT / file, max_instances)
                      for path, (file, _) in (routes or ROUTES).items() if (REPO_ROOT / file).is_file()}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def warm_up(self) -> None:
        """Load one instance of each handler now (a cold start at boot, not on the first request)."""
        for path, pool in self.pools.items():
            try:
                pool.release(pool.acquire())
            except Exception:
                logger.exception("handler for %s failed to load; it will answer 502", path)


class LocalApiHandler(BaseHTTPRequestHandler):
    server: LocalApiServer
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms per request on a kept-alive connection).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — the base class's signature
        logger.debug("%s " + format, self.address_string(), *args)

    def _write(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        sent = set()
        for name, value in (headers or {}).items():
            if name.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            self.send_header(name, value)
            sent.add(name.lower())
        if "content-type" not in sent:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, message: str) -> None:
        self._write(status, json.dumps({"message": message}).encode())

    def _handle(self) -> None:
        length = self.headers.get("Content-Length")
        if length is not None and not length.isdigit():
            self.close_connection = True
            self._json(400, "invalid Content-Length")
            return
        if length and int(length) > MAX_BODY_BYTES:
            self.close_connection = not drop_body(self.rfile, int(length))  # the client gets the 413, not a reset
            self._json(413, "Request Too Long")
            return
        body = self.rfile.read(int(length)) if length else b""
        path = urlsplit(self.path).path
        pool = self.server.pools.get(path)
        if pool is None:
            self._json(404, f"no route {self.command} {path}")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        expected = self.server.settings.api_key
        if expected and headers.get("x-api-key") != expected:
            self._json(403, "Forbidden")
            return
        event = build_event(self.command, self.path, headers, body, self.client_address[0], headers.get("x-api-key"))
        try:
            response = pool.invoke(event)
        except Exception:
            logger.exception("handler for %s raised", path)
            self._json(502, "Internal server error")
            return
        self._respond(response)

    def _respond(self, response: Any) -> None:
        if not isinstance(response, dict) or "statusCode" not in response:
            logger.error("handler returned a malformed proxy response: %r", response)
            self._json(502, "Internal server error")
            return
        headers = dict(response.get("headers") or {})
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(str(v) for v in values)
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
        self._write(int(response["statusCode"]), data, headers)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle  # noqa: N815


def make_api(settings: Settings | None = None, host: str | None = None, port: int | None = None,
             max_instances: int = 16) -> LocalApiServer:
    settings = settings or get_settings()
    return LocalApiServer((host or settings.api_host, settings.api_port if port is None else port), settings,
                          max_instances=max_instances)
