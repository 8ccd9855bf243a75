"""The console's HTTP server: the single page (package data under ``static/``) and the JSON API it reads.

Routes (all JSON unless noted):
    GET  /                                  the page (text/html); /static/<file> its CSS and ES modules
    GET  /api/health                        {"ok": true, "mode": ...}
    GET  /api/statemachine                  the ASL definition (statemachines/retrain.asl.json, as deployed)
    GET  /api/runs                          run summaries, newest first
    GET  /api/runs/<run_id>                 one run: summary, record, event history, per-state outcomes
    GET  /api/models                        registry versions (newest first) and the live one
    POST /api/models/<version>/rollback     put that version back live (waits until the endpoint serves it)
    GET  /api/feedback                      unmerged feedback per label, the retraining threshold
    POST /api/retrain                       start a manual retraining run

Writes need ``Content-Type: application/json`` and, when the browser sends one, an ``Origin`` equal to the
console's own: another site open in the same browser can then neither submit a form to nor script these routes.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from autobert.bootstrap import Services
from autobert.config import REPO_ROOT
from autobert.console import views
from autobert.errors import AutobertError
from autobert.ports import EndpointUnavailable
from autobert.workflow.errors import DeploymentError, UnknownModelVersion
from autobert.workflow.runs import UnknownRun

logger = logging.getLogger("autobert.console")

ASL_FILE = REPO_ROOT / "statemachines" / "retrain.asl.json"
MAX_BODY_BYTES = 64 * 1024
LOOPBACK = ("127.0.0.1", "::1", "localhost")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of the page, read once: name → (content, content type)."""
    files = {}
    for entry in resources.files("autobert.console").joinpath("static").iterdir():
        if entry.is_file():
            suffix = Path(entry.name).suffix
            kind = STATIC_TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
            files[entry.name] = (entry.read_bytes(), kind)
    return files


class ConsoleServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], services: Services, asl_file: Path = ASL_FILE):
        super().__init__(address, ConsoleHandler)
        self.services = services
        self.asl_file = asl_file
        self.static = static_files()
        self.feedback = views.FeedbackCounter()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def definition(self) -> dict:
        # Read per request: the graph always matches the file the next run executes.
        try:
            return json.loads(self.asl_file.read_text())
        except (OSError, ValueError) as exc:
            raise ApiError(500, f"cannot read the state machine definition {self.asl_file}: {exc}") from exc

    def start(self) -> threading.Thread:
        """Serve in a daemon thread; ``stop()`` ends it."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="autobert-console", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(timeout=5)


class ConsoleHandler(BaseHTTPRequestHandler):
    server: ConsoleServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — the base class's signature
        logger.debug("%s " + format, self.address_string(), *args)

    # Responses -------------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                         "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, default=str).encode(), "application/json")

    # Dispatch --------------------------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        try:
            self._check_host()
            if method == "POST":
                body = self._body()
                self._post(path, body)
            else:
                self._get(path)
        except ApiError as exc:
            self._json(exc.status, {"message": exc.message})
        except Exception:
            logger.exception("console: %s %s failed", method, path)
            self._json(500, {"message": "internal error (see the local stack's log)"})

    def do_GET(self) -> None:  # noqa: N802 — http.server's naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _unsupported(self) -> None:
        self._json(405, {"message": f"method {self.command} not allowed"})

    do_PUT = do_PATCH = do_DELETE = _unsupported  # noqa: N815

    def _check_host(self) -> None:
        # DNS rebinding: a site whose name resolves to 127.0.0.1 would be same-origin with the console; its
        # requests carry its own name in Host. A loopback console answers only to loopback names.
        bound = self.server.server_address[0]
        if bound not in LOOPBACK:
            return
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if host and host not in LOOPBACK and host != "localhost":
            raise ApiError(403, f"host {host!r} is not allowed: open the console at {self.server.url}")

    def _body(self) -> dict:
        origin = self.headers.get("Origin")
        if origin and origin != self.server.url and origin != f"http://{self.headers.get('Host', '')}":
            raise ApiError(403, "cross-origin requests are not allowed")
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            raise ApiError(415, "send the request body as application/json")
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit():
            raise ApiError(400, "invalid Content-Length")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(int(length)) if int(length) else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return body

    def _get(self, path: str) -> None:
        srv, services = self.server, self.server.services
        if path in ("/", "/index.html"):
            content, kind = srv.static["index.html"]
            self._send(200, content, kind)
        elif path.startswith("/static/"):
            name = path[len("/static/"):]
            if name not in srv.static:
                raise ApiError(404, f"no file {path}")
            content, kind = srv.static[name]
            self._send(200, content, kind)
        elif path == "/api/health":
            from autobert.workflow.registry import ModelRegistry

            self._json(200, {"ok": True, "mode": services.settings.mode, "live": ModelRegistry(services.store).live()})
        elif path == "/api/statemachine":
            self._json(200, srv.definition())
        elif path == "/api/runs":
            self._json(200, {"runs": views.list_runs(services)})
        elif path.startswith("/api/runs/"):
            run_id = self._name(path[len("/api/runs/"):], "run id")
            try:
                self._json(200, views.run_detail(services, run_id, srv.definition()))
            except UnknownRun:
                raise ApiError(404, f"no run {run_id!r}") from None
        elif path == "/api/models":
            self._json(200, views.models_view(services))
        elif path == "/api/feedback":
            self._json(200, srv.feedback.counts(services))
        else:
            raise ApiError(404, f"no route GET {path}")

    def _post(self, path: str, body: dict) -> None:
        services = self.server.services
        match = re.fullmatch(r"/api/models/([^/]+)/rollback", path)
        if match:
            self._json(200, rollback(services, self._name(match.group(1), "model version")))
        elif path == "/api/retrain":
            full = body.get("full", False)
            if not isinstance(full, bool):
                raise ApiError(400, "'full' must be true or false")
            self._json(202, start_retrain(services, full=full))
        else:
            raise ApiError(404 if not path.startswith("/api/") else 405, f"no route POST {path}")

    @staticmethod
    def _name(value: str, what: str) -> str:
        if not NAME.match(value):
            raise ApiError(400, f"invalid {what} {value!r}")
        return value


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
