"""The local API: the very same Lambda handlers (``functions/*.py``) served over HTTP on 127.0.0.1, on the routes
serverless.yml declares (``functions.<name>.events[].http``: path, method, private, handler).

Each HTTP request becomes an API Gateway REST (v1) proxy event, is passed to the function's handler with a Lambda-like
context, and the proxy response is written back, as API Gateway and serverless-offline do. What API Gateway itself
does before a Lambda runs is done here too: unknown paths are 404 and other methods on a known path 405 (JSON
``{"message": ...}``), a ``private`` route needs the API key in ``x-api-key`` when ``AUTOBERT_API_KEY`` is set
(403 ``{"message": "Forbidden"}`` otherwise), bodies over 10 MB are refused with a 413 (the rest of the body is read
and dropped, the connection stays usable), any body bytes reach the handler (not UTF-8: base64, ``isBase64Encoded``),
and a handler that crashes or returns no proxy response is a 502 ``{"message": "Internal server error"}``.

A Starlette app on uvicorn (``autobert.local_http.LocalServer``). Concurrency is Lambda's: one event at a time per
handler instance, more instances for more concurrent requests. Each instance is a separate import of the handler file
(its own resolver, clients and caches), created on demand up to ``max_instances`` per function; powertools' resolver
keeps the current event on the app, so one instance must never serve two requests at once. The handler call runs in
a worker thread (anyio), at most ``max_instances`` at once per function.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autobert import serverless_yml
from autobert.config import REPO_ROOT, Settings, get_settings
from autobert.local_http import LocalServer
from autobert.serverless_yml import HttpRoute

logger = logging.getLogger("autobert.api")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
STAGE = "local"
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]  # an ``ANY`` route


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

    def __init__(self, name: str, path: Path, max_instances: int = 16, handler: str = "lambda_handler"):
        self.name = name
        self.path = path
        self.handler = handler
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
            return getattr(module, self.handler)(event, LambdaContext(self.name))
        finally:
            self.release(module)


def build_event(method: str, resource: str, raw_path: str, query_string: str, headers: list[tuple[str, str]],
                body: bytes, source_ip: str | None, path_parameters: dict[str, str] | None = None) -> dict:
    """An API Gateway REST (v1) proxy event, as API Gateway (and serverless-offline) build it. ``headers``: (name,
    value) pairs as received; ``headers`` keeps the last value of a name, ``multiValueHeaders`` all of them."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name.lower()] = value
        multi.setdefault(name.lower(), []).append(value)
    query = parse_qs(query_string, keep_blank_values=True)
    try:
        text, is_b64 = body.decode(), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(body).decode(), True
    now = time.time()
    return {
        "resource": resource,
        "path": raw_path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource, "httpMethod": method, "path": f"/{STAGE}{raw_path}", "stage": STAGE,
            "requestId": str(uuid.uuid4()), "accountId": "000000000000", "apiId": "local",
            "protocol": "HTTP/1.1", "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": single.get("user-agent"),
                         "apiKey": single.get("x-api-key")},
        },
        "body": (text if body else None),
        "isBase64Encoded": is_b64,
    }


def message(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    """API Gateway's own answers: ``{"message": ...}``."""
    return Response(json.dumps({"message": text}), status, headers=headers, media_type="application/json")


def proxy_response(response: Any) -> Response:
    """The HTTP response of a Lambda proxy response (``statusCode``, ``headers``, ``multiValueHeaders``, ``body``,
    ``isBase64Encoded``)."""
    if not isinstance(response, dict) or "statusCode" not in response:
        logger.error("handler returned a malformed proxy response: %r", response)
        return message(502, "Internal server error")
    body = response.get("body") or ""
    data = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
    out = Response(data, int(response["statusCode"]))
    pairs = [(k, str(v)) for k, v in (response.get("headers") or {}).items()]
    pairs += [(k, str(v)) for k, values in (response.get("multiValueHeaders") or {}).items() for v in values]
    names = set()
    for name, value in pairs:
        if name.lower() in ("content-length", "connection", "transfer-encoding"):
            continue
        names.add(name.lower())
        out.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    if "content-type" not in names:
        out.raw_headers.append((b"content-type", b"application/json"))
    return out


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is over ``limit`` bytes (by its Content-Length, or as it streams in)."""
    length = request.headers.get("content-length")
    if length is not None and int(length) > limit:  # the parser already refused a Content-Length that is no number
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class LocalApi:
    """The Starlette app of the local API: one route per http event of serverless.yml."""

    def __init__(self, settings: Settings, routes: list[HttpRoute] | None = None, max_instances: int = 16):
        self.settings = settings
        self.routes = serverless_yml.http_routes() if routes is None else routes
        self.pools: dict[str, FunctionPool] = {}
        self._limiters: dict[str, anyio.CapacityLimiter] = {}
        self.max_instances = max_instances
        by_path: dict[str, dict[str, HttpRoute]] = {}
        for route in self.routes:
            for method in ALL_METHODS if route.method == "ANY" else [route.method]:
                by_path.setdefault(route.path, {}).setdefault(method, route)
            self.pools.setdefault(route.function, FunctionPool(route.function, REPO_ROOT / route.handler_file,
                                                               max_instances, route.handler_name))
        # One Starlette route per path, with that path's methods: another method is 405 (with Allow), another path 404.
        self.app = Starlette(routes=[Route(path, self._endpoint(here), methods=list(here))
                                     for path, here in by_path.items()],
                             exception_handlers={HTTPException: self._http_error})

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return message(404, f"no route {request.method} {request.url.path}")
        if exc.status_code == 405:
            return message(405, f"method {request.method} not allowed on {request.url.path}", exc.headers)
        return message(exc.status_code, str(exc.detail), exc.headers)

    def _endpoint(self, methods: dict[str, HttpRoute]) -> Callable:
        async def endpoint(request: Request) -> Response:
            route = methods.get(request.method) or methods["GET"]  # HEAD: Starlette's with GET
            pool = self.pools[route.function]
            body = await read_body(request, MAX_BODY_BYTES)
            if body is None:
                return message(413, "Request Too Long")  # the rest of the body is read and dropped by uvicorn
            expected = self.settings.api_key
            if route.private and expected and request.headers.get("x-api-key") != expected:
                return message(403, "Forbidden")
            scope = request.scope
            event = build_event(request.method, route.path, scope["raw_path"].decode("latin-1"),
                                scope["query_string"].decode("latin-1"),
                                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
                                body, request.client.host if request.client else None, request.path_params)
            limiter = self._limiters.get(route.function)
            if limiter is None:  # made in the event loop (anyio needs one); one worker thread per instance
                limiter = self._limiters[route.function] = anyio.CapacityLimiter(pool.max_instances)
            try:
                response = await anyio.to_thread.run_sync(pool.invoke, event, limiter=limiter)
            except Exception:
                logger.exception("handler for %s %s raised", route.method, route.path)
                return message(502, "Internal server error")
            return proxy_response(response)

        return endpoint

    def warm_up(self) -> None:
        """Load one instance of each handler now (a cold start at boot, not on the first request)."""
        for name, pool in self.pools.items():
            try:
                pool.release(pool.acquire())
            except Exception:
                logger.exception("handler of function %s failed to load; it will answer 502", name)


class LocalApiServer(LocalServer):
    """The local API served on ``host:port`` (bound at construction): ``warm_up()``, ``start()``, ``url``,
    ``stop()``."""

    def __init__(self, settings: Settings, host: str, port: int, routes: list[HttpRoute] | None = None,
                 max_instances: int = 16):
        self.api = LocalApi(settings, routes, max_instances)
        self.settings, self.pools = settings, self.api.pools
        super().__init__(self.api.app, host, port, name="autobert-api")

    def warm_up(self) -> None:
        self.api.warm_up()


def make_api(settings: Settings | None = None, host: str | None = None, port: int | None = None,
             max_instances: int = 16, routes: list[HttpRoute] | None = None) -> LocalApiServer:
    """The local API bound to ``host:port`` (defaults: settings' ``api_host``/``api_port``; 0 = any free port) on
    ``routes`` (default: serverless.yml's), not serving yet: ``.warm_up()`` then ``.start()``; ``.stop()`` ends it.
    OSError when the port cannot be bound."""
    settings = settings or get_settings()
    return LocalApiServer(settings, host or settings.api_host, settings.api_port if port is None else port,
                          routes=routes, max_instances=max_instances)
