"""The console's HTTP server: the single page (package data under ``static/``) and the JSON API it reads.

Routes (all JSON unless noted; GET routes answer HEAD too):
    GET  /                                  the page (text/html); /static/<file> its CSS and ES modules
    GET  /api/health                        {"ok": true, "mode": ...}
    GET  /api/statemachine                  the ASL definition (statemachines/retrain.asl.json, as deployed)
    GET  /api/runs                          run summaries, newest first
    GET  /api/runs/<run_id>                 one run: summary, record, event history, per-state outcomes
    GET  /api/models                        registry versions (newest first) and the live one
    POST /api/models/<version>/rollback     put that version back live (waits until the endpoint serves it)
    GET  /api/feedback                      unmerged feedback per label, the retraining threshold
    POST /api/retrain                       start a manual retraining run

Errors are ``{"message": ...}`` with the ``ApiError``'s status; an unknown path is 404, another method on a known
path 405. Writes need ``Content-Type: application/json`` and, when the browser sends one, an ``Origin`` equal to the
console's own: another site open in the same browser can then neither submit a form to nor script these routes.

A Starlette app (static files: Starlette's ``StaticFiles`` over the package's ``static/``) on uvicorn
(``autobert.local_http.LocalServer``); the blocking work of each route (stores, the endpoint) runs in a worker thread.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autobert.bootstrap import Services
from autobert.config import REPO_ROOT
from autobert.console import views
from autobert.errors import AutobertError
from autobert.local_http import LocalServer
from autobert.ports import EndpointUnavailable
from autobert.workflow.errors import DeploymentError, UnknownModelVersion
from autobert.workflow.runs import UnknownRun

logger = logging.getLogger("autobert.console")

ASL_FILE = REPO_ROOT / "statemachines" / "retrain.asl.json"
STATIC_DIR = Path(__file__).with_name("static")
MAX_BODY_BYTES = 64 * 1024
LOOPBACK = ("127.0.0.1", "::1", "localhost")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HEADERS = {  # on every answer
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "frame-ancestors 'none'",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str).encode()  # datetimes and the like as strings


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Json({"message": message}, status, headers=headers)


class Guard:
    """ASGI middleware: the host check before any route, and the console's headers on every answer."""

    def __init__(self, app: ASGIApp, bound_host: str, url: Callable[[], str]):
        self.app, self.bound_host, self.url = app, bound_host, url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode("latin-1").lower() not in HEADERS]
                message = {**message, "headers": headers + [(k.encode(), v.encode()) for k, v in HEADERS.items()]}
            await send(message)

        # DNS rebinding: a site whose name resolves to 127.0.0.1 would be same-origin with the console; its
        # requests carry its own name in Host. A loopback console answers only to loopback names.
        if self.bound_host in LOOPBACK:
            host = Request(scope).headers.get("host", "").rsplit(":", 1)[0].strip("[]").lower()
            if host and host not in LOOPBACK:
                await error(403, f"host {host!r} is not allowed: open the console at {self.url()}")(
                    scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


class ConsoleApp:
    """The console's routes over one set of services."""

    def __init__(self, services: Services, host: str, url: Callable[[], str], asl_file: Path = ASL_FILE):
        self.services = services
        self.asl_file = asl_file
        self.url = url
        self.feedback = views.FeedbackCounter()
        get, post = ["GET"], ["POST"]
        routes = [
            Route("/", self.page, methods=get),
            Route("/index.html", self.page, methods=get),
            Mount("/static", StaticFiles(directory=STATIC_DIR)),
            Route("/api/health", self.json_route(self.health), methods=get),
            Route("/api/statemachine", self.json_route(lambda request: self.definition()), methods=get),
            Route("/api/runs", self.json_route(lambda request: {"runs": views.list_runs(self.services)}),
                  methods=get),
            Route("/api/runs/{run_id:path}", self.json_route(self.run_detail), methods=get),
            Route("/api/models", self.json_route(lambda request: views.models_view(self.services)), methods=get),
            Route("/api/feedback", self.json_route(lambda request: self.feedback.counts(self.services)),
                  methods=get),
            Route("/api/models/{version:path}/rollback", self.json_route(self.rollback, write=True), methods=post),
            Route("/api/retrain", self.json_route(self.retrain, status=202, write=True), methods=post),
        ]
        app = Starlette(routes=routes, exception_handlers={HTTPException: self.http_error, ApiError: self.api_error})
        self.app = Guard(app, host, url)

    # Errors ----------------------------------------------------------------------------------------------------
    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        if exc.status_code == 404:
            return error(404, f"no file {path}" if path.startswith("/static/") else
                         f"no route {request.method} {path}")
        if exc.status_code == 405:
            return error(405, f"method {request.method} not allowed on {path}", exc.headers)
        return error(exc.status_code, str(exc.detail), exc.headers)

    async def api_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error(exc.status, exc.message)

    # Routes ----------------------------------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    def json_route(self, view: Callable[..., Any], status: int = 200,
                   write: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """A route answering ``view(request[, body])``'s JSON; the view runs in a worker thread (it blocks)."""

        async def endpoint(request: Request) -> Response:
            try:
                if write:
                    body = await self.body(request)
                    result = await run_in_threadpool(view, request, body)
                else:
                    result = await run_in_threadpool(view, request)
            except ApiError:
                raise
            except Exception:
                logger.exception("console: %s %s failed", request.method, request.url.path)
                return error(500, "internal error (see the local stack's log)")
            return Json(result, status)

        return endpoint

    async def body(self, request: Request) -> dict:
        origin = request.headers.get("origin")
        if origin and origin != self.url() and origin != f"http://{request.headers.get('host', '')}":
            raise ApiError(403, "cross-origin requests are not allowed")
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise ApiError(415, "send the request body as application/json")
        length = request.headers.get("content-length")
        if length is not None and int(length) > MAX_BODY_BYTES:  # the parser refuses a non-numeric one
            raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return body

    def definition(self) -> dict:
        # Read per request: the graph always matches the file the next run executes.
        try:
            return json.loads(self.asl_file.read_text())
        except (OSError, ValueError) as exc:
            raise ApiError(500, f"cannot read the state machine definition {self.asl_file}: {exc}") from exc

    def health(self, request: Request) -> dict:
        from autobert.workflow.registry import ModelRegistry

        return {"ok": True, "mode": self.services.settings.mode, "live": ModelRegistry(self.services.store).live()}

    def run_detail(self, request: Request) -> dict:
        run_id = name_of(request.path_params["run_id"], "run id")
        try:
            return views.run_detail(self.services, run_id, self.definition())
        except UnknownRun:
            raise ApiError(404, f"no run {run_id!r}") from None

    def rollback(self, request: Request, body: dict) -> dict:
        return rollback(self.services, name_of(request.path_params["version"], "model version"))

    def retrain(self, request: Request, body: dict) -> dict:
        full = body.get("full", False)
        if not isinstance(full, bool):
            raise ApiError(400, "'full' must be true or false")
        return start_retrain(self.services, full=full)


def name_of(value: str, what: str) -> str:
    if not NAME.match(value):
        raise ApiError(400, f"invalid {what} {value!r}")
    return value


class ConsoleServer(LocalServer):
    """The console bound to ``host:port`` (at construction): ``start()``, ``url``, ``stop()``."""

    def __init__(self, address: tuple[str, int], services: Services, asl_file: Path = ASL_FILE):
        self.console = ConsoleApp(services, address[0], lambda: self.url, asl_file)
        self.services = services
        super().__init__(self.console.app, *address, name="autobert-console")


# Actions ---------------------------------------------------------------------------------------------------------
def rollback(services: Services, version: str) -> dict:
    from autobert.workflow.registry import ModelRegistry
    from autobert.workflow.rollback import rollback as do_rollback

    try:
        ModelRegistry(services.store).get(version)
    except UnknownModelVersion as exc:
        raise ApiError(404, str(exc)) from None
    try:
        record = do_rollback(services, version)
    except UnknownModelVersion as exc:  # already live, or no artifact
        raise ApiError(409, str(exc)) from None
    except EndpointUnavailable as exc:
        raise ApiError(503, str(exc)) from None
    except DeploymentError as exc:
        raise ApiError(502, str(exc)) from None
    except AutobertError as exc:
        raise ApiError(409, str(exc)) from None
    return {"live": record["version"], "record": record}


def start_retrain(services: Services, full: bool = False) -> dict:
    from autobert.workflow.start import request_run

    try:
        result = request_run(services, "manual", full=full, source="console")
    except AutobertError as exc:
        raise ApiError(409, str(exc)) from None
    return {"status": result.get("status"), "trigger": result.get("trigger"), "run_id": result.get("run_id")}
