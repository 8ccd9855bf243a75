"""The local endpoint: a process speaking SageMaker's inference-container contract on 127.0.0.1.

    GET  /ping          200 once a model is loaded, 503 before
    POST /invocations   the inference script's input_fn → predict_fn → output_fn (inference/inference.py, the very
                        functions SageMaker's PyTorch container calls)
    POST /admin/model   {"version", "model_uri", "wait"?: true}: zero-downtime swap (loopback clients only)
    GET  /admin/status  {"status": "InService" | "Updating" | "Creating" | "Failed", "version", "error", ...}

Swap: the new model loads beside the old one while the old keeps serving; one pointer assignment switches new requests
to it; requests already holding the old model finish on it (the swap waits for them), then the old one is freed. A
model that fails to load leaves the old one serving; the error is returned (``wait``) and kept in the status.

HTTP: a Starlette app (``create_app``) served by uvicorn (``autobert.local_http.LocalServer``, as the local API); the
blocking model work of each request (parse, wait for its forward, serialise) runs in a worker thread, off the event
loop.

Batching: each request's worker thread parses and validates its own input, then hands it to one batcher thread that
runs the model. While a forward runs, new requests queue; the batcher merges everything queued into the next forward
(up to ``AUTOBERT_ENDPOINT_MAX_BATCH_TEXTS`` texts). A lone request never waits for company, so batch-1 latency is
unchanged and throughput under many clients rises (one batched forward beats many small ones contending for the cores).

    python -m autobert.endpoint_server --model-dir .autobert/bucket/models/v1/model --version v1 --port 0
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import ipaddress
import json
import logging
import queue
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autobert.api_models import PAYLOAD_LIMIT_BYTES
from autobert.config import Settings, get_settings
from autobert.local_http import LocalServer

logger = logging.getLogger("autobert.endpoint")

MAX_PAYLOAD_BYTES = PAYLOAD_LIMIT_BYTES  # SageMaker real-time endpoints refuse larger request bodies too
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # an over-limit body up to this size is discarded, the connection kept


class EndpointBusy(Exception):
    """Serving is impossible right now (no model yet): 503."""

    retry_after: int | None = None


class EndpointSaturated(EndpointBusy):
    """More work is queued than the model gets through in time: 503 with Retry-After, at once or after
    ``queue_seconds``, never a request left waiting past its client's deadline."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def load_script(path: Path) -> ModuleType:
    """Import the inference script by path, as SageMaker's container imports code/inference.py."""
    spec = importlib.util.spec_from_file_location("autobert_inference_script", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import inference script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(eq=False)
class LoadedModel:
    version: str
    model_uri: str
    model: Any
    loaded_at: float = field(default_factory=time.time)
    in_flight: int = 0
    scratch: Path | None = None  # extracted model.tar.gz, removed when freed


# ------------------------------------------------------------------------------------------------------ model host
class ModelHost:
    """Which model serves, the swap, and the in-flight accounting that makes the swap lossless."""

    def __init__(self, script: ModuleType, drain_timeout: float = 60.0):
        self.script = script
        self.drain_timeout = drain_timeout
        self.current: LoadedModel | None = None
        self.state = "Creating"
        self.error: str | None = None
        self.target: dict | None = None  # the version being loaded, while Updating
        self._lock = threading.Condition()
        self._swap_lock = threading.Lock()

    @contextmanager
    def acquire(self) -> Iterator[LoadedModel]:
        with self._lock:
            model = self.current
            if model is None:
                raise EndpointBusy("no model loaded yet" if self.state != "Failed" else f"no model: {self.error}")
            model.in_flight += 1
        try:
            yield model
        finally:
            with self._lock:
                model.in_flight -= 1
                self._lock.notify_all()

    def begin(self, version: str, model_uri: str) -> None:
        """Claim the one update slot and show ``Updating`` at once (before any loading starts), so a status read
        right after the request never sees the old state. RuntimeError if another update holds it."""
        if not self._swap_lock.acquire(blocking=False):
            raise RuntimeError(f"an update to {self.target and self.target['version']} is already in progress")
        self.state, self.error, self.target = "Updating", None, {"version": version, "model_uri": model_uri}

    def swap(self, version: str, model_uri: str) -> LoadedModel:
        """Load, switch, drain, free. Raises (and keeps the old model) when the new one cannot be loaded; raises
        RuntimeError at once if another swap is running."""
        self.begin(version, model_uri)
        return self.finish()

    def finish(self) -> LoadedModel:
        """The rest of the update ``begin`` claimed; releases the slot whatever happens."""
        try:
            version, model_uri = self.target["version"], self.target["model_uri"]
            logger.info("loading model %s from %s", version, model_uri)
            try:
                new = self._load(version, model_uri)
            except Exception as exc:
                self.state, self.error = "Failed", f"model {version} failed to load: {_one_line(exc)}"
                logger.error("%s; %s", self.error,
                             f"still serving {self.current.version}" if self.current else "no model serving")
                raise
            with self._lock:
                old, self.current = self.current, new
                self.state, self.target = "InService", None
            logger.info("now serving %s", version)
            if old is not None:
                self._drain_and_free(old)
            return new
        finally:
            self._swap_lock.release()

    def _load(self, version: str, model_uri: str) -> LoadedModel:
        folder, scratch = resolve_model_uri(model_uri)
        try:
            return LoadedModel(version, model_uri, self.script.model_fn(str(folder)), scratch=scratch)
        except BaseException:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
            raise

    def _drain_and_free(self, old: LoadedModel) -> None:
        with self._lock:
            drained = self._lock.wait_for(lambda: old.in_flight == 0, timeout=self.drain_timeout)
        if not drained:
            logger.warning("model %s still had %d request(s) after %.0fs; freeing it anyway", old.version,
                           old.in_flight, self.drain_timeout)
        old.model = None
        if old.scratch:
            shutil.rmtree(old.scratch, ignore_errors=True)
        gc.collect()
        logger.info("freed model %s", old.version)

    def status(self) -> dict:
        with self._lock:
            current = self.current
            return {
                "status": self.state,
                "version": current.version if current else None,
                "model_uri": current.model_uri if current else None,
                "loaded_at": current.loaded_at if current else None,
                "in_flight": current.in_flight if current else 0,
                "target": self.target,
                "error": self.error,
            }


def resolve_model_uri(model_uri: str) -> tuple[Path, Path | None]:
    """A model folder (path or file:// URI), or a model.tar.gz as SageMaker receives it (extracted to scratch)."""
    path = Path(urlparse(model_uri).path if model_uri.startswith("file://") else model_uri)
    if path.is_dir():
        return path, None
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        scratch = Path(tempfile.mkdtemp(prefix="autobert-model-"))
        with tarfile.open(path) as archive:
            archive.extractall(scratch, filter="data")  # "data" refuses links/paths escaping the folder
        return scratch, scratch
    raise FileNotFoundError(f"no model folder or model.tar.gz at {model_uri}")


# --------------------------------------------------------------------------------------------------------- batcher
@dataclass(eq=False)
class _Job:
    model: LoadedModel
    data: dict
    done: threading.Event = field(default_factory=threading.Event)
    result: dict | None = None
    error: BaseException | None = None
    state: str = "queued"  # -> "running" (the batcher took it) or "expired" (it waited too long: skipped)


class Batcher:
    """One worker runs the model; requests queued while it was busy share its next forward."""

    def __init__(self, script: ModuleType, max_texts: int = 32, wait_s: float = 0.0, *, queue_seconds: float = 5.0,
                 max_queued_texts: int = 512, retry_after: int = 1):
        self.script = script
        self.max_texts = max_texts
        self.wait_s = wait_s
        self.queue_seconds = queue_seconds
        self.max_queued_texts = max_queued_texts
        self.retry_after = retry_after
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._state = threading.Lock()  # guards each job's state and the queued-texts count
        self.queued_texts = 0
        self.batches = 0
        self.jobs = 0
        self.refused = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="endpoint-batcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread:
            self._queue.put(None)
            self._thread.join(timeout=10)

    def submit(self, model: LoadedModel, data: dict) -> dict:
        job, n = _Job(model, data), len(data["texts"])
        with self._state:
            if self.queued_texts and self.queued_texts + n > self.max_queued_texts:
                self.refused += 1
                raise EndpointSaturated(f"the endpoint is saturated ({self.queued_texts} texts queued); retry in "
                                        f"{self.retry_after}s", self.retry_after)
            self.queued_texts += n
        self._queue.put(job)
        if not job.done.wait(self.queue_seconds):
            with self._state:
                if job.state == "queued":  # still waiting for a forward: give up on it (the batcher skips it)
                    job.state = "expired"
                    self.queued_texts -= n
                    self.refused += 1
                    raise EndpointSaturated(f"the endpoint is saturated: no forward within {self.queue_seconds:g}s; "
                                            f"retry in {self.retry_after}s", self.retry_after)
            job.done.wait()  # its forward is running: it ends soon
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _take(self, job: _Job) -> bool:
        """Claim a queued job for a forward; False for one its request gave up on."""
        with self._state:
            if job.state != "queued":
                return False
            job.state = "running"
            self.queued_texts -= len(job.data["texts"])
            return True

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        batch, texts = [first], len(first.data["texts"])
        deadline = time.monotonic() + self.wait_s
        while texts < self.max_texts:
            try:
                remaining = deadline - time.monotonic()
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            if self._take(job):
                batch.append(job)
                texts += len(job.data["texts"])
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            if not self._take(first):
                continue
            batch, stop = self._gather(first)
            groups: dict[int, list[_Job]] = {}
            for job in batch:  # during a swap a batch may mix the old and the new model
                groups.setdefault(id(job.model), []).append(job)
            for jobs in groups.values():
                self._predict(jobs)

    def _predict(self, jobs: list[_Job]) -> None:
        inputs = [job.data for job in jobs]
        try:
            merged = self.script.predict_fn(self.script.merge_inputs(inputs), jobs[0].model.model)
            for job, result in zip(jobs, self.script.split_prediction(merged, inputs), strict=True):
                job.result = result
        except BaseException as exc:  # handed to each waiting request thread, which answers for it
            for job in jobs:
                job.error = exc
        finally:
            self.batches += 1
            self.jobs += len(jobs)
            for job in jobs:
                job.done.set()


# ------------------------------------------------------------------------------------------------------ HTTP server
# Threads for the blocking model work (parse, wait for the batcher's forward, serialise; a swap with ``wait``). Each
# request in flight holds one while the batcher merges it with the others: it must exceed the concurrent clients
# expected, or requests queue here instead of sharing a forward.
WORKER_THREADS = 64


class EndpointServer:
    """The endpoint process's state (the model host, the batcher) and its Starlette app, served by
    ``autobert.local_http.LocalServer`` (uvicorn in a thread; the socket is bound here: the URL, port 0 resolved, is
    known, and a bind failure raised, before ``start``)."""

    def __init__(self, address: tuple[str, int], script: ModuleType, settings: Settings):
        self.script = script
        self.host = ModelHost(script, settings.endpoint_drain_timeout)
        self.batcher = Batcher(script, settings.endpoint_max_batch_texts, settings.endpoint_batch_wait_ms / 1000,
                               queue_seconds=settings.endpoint_queue_seconds,
                               max_queued_texts=settings.endpoint_max_queued_texts,
                               retry_after=settings.retry_after_seconds)
        self.batching = settings.endpoint_batching
        self.threads = anyio.CapacityLimiter(WORKER_THREADS)
        self.app = create_app(self)
        self.http = LocalServer(self.app, *address, name="autobert-endpoint")

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def address(self) -> tuple[str, int]:
        return self.http.host, self.http.port

    def start(self) -> EndpointServer:
        if self.batching:
            self.batcher.start()
        self.http.start()
        return self

    def stop(self) -> None:
        """Graceful: in-flight requests finish (on the batcher, stopped after them)."""
        self.http.stop()
        self.batcher.stop()

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        data = self.script.input_fn(body, content_type)
        with self.host.acquire() as model:
            if self.batching:
                prediction = self.batcher.submit(model, data)
            else:
                prediction = self.script.predict_fn(data, model.model)
        result = self.script.output_fn(prediction, accept)
        # As sagemaker-inference's transformer: output_fn may return (body, content type) or just the body.
        return result if isinstance(result, tuple) else (result, accept or "application/json")

    def swap_in_background(self, version: str, model_uri: str) -> None:
        """Start an update and return at once (RuntimeError if one is running); /admin/status follows it."""
        self.host.begin(version, model_uri)

        def run() -> None:
            with contextlib.suppress(Exception):  # already logged, and kept in the status for /admin/status
                self.host.finish()

        threading.Thread(target=run, name=f"swap-{version}", daemon=True).start()


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status, headers=headers)


async def _body(request: Request) -> bytes | Response:
    """The request body, or the error response that refuses it."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        return _error(411, "Content-Length required")
    if int(length) > MAX_PAYLOAD_BYTES:
        # Left unread: the server discards the rest of the body as it arrives, so the client, still sending, gets the
        # 413 on a connection that stays usable; past DRAIN_LIMIT_BYTES the connection closes after the answer.
        return _error(413, f"request body over {MAX_PAYLOAD_BYTES} bytes",
                      {"Connection": "close"} if int(length) > DRAIN_LIMIT_BYTES else None)
    return await request.body()


def _loopback(request: Request) -> bool:
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def create_app(server: EndpointServer) -> Starlette:
    """The routes (module docstring) over ``server``; the model work runs in worker threads, off the event loop."""

    async def ping(request: Request) -> Response:
        ok = server.host.current is not None
        return JSONResponse({"status": "Healthy" if ok else "no model loaded"}, 200 if ok else 503)

    async def invocations(request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, Response):
            return body
        try:
            payload, content_type = await anyio.to_thread.run_sync(
                server.invoke, body, request.headers.get("content-type"), request.headers.get("accept"),
                limiter=server.threads)
        except EndpointBusy as exc:
            return _error(503, str(exc), {"Retry-After": str(exc.retry_after)} if exc.retry_after else None)
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            if isinstance(status, int) and 400 <= status < 600 and hasattr(exc, "message"):
                if status >= 500:
                    logger.error("invocation failed: %s", exc.message)
                return _error(status, exc.message)
            logger.exception("invocation failed")
            return _error(500, f"internal error in the model server ({type(exc).__name__})")
        return Response(payload, 200, media_type=content_type)

    async def admin_status(request: Request) -> Response:
        if not _loopback(request):
            return _error(403, "admin routes answer loopback clients only")
        return JSONResponse(server.host.status())

    async def admin_model(request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, Response):
            return body
        if not _loopback(request):
            return _error(403, "admin routes answer loopback clients only")
        try:
            update = json.loads(body)
            version, model_uri = update["version"], update["model_uri"]
            wait = update.get("wait", True)
            if not (isinstance(version, str) and version and isinstance(model_uri, str) and model_uri
                    and isinstance(wait, bool)):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _error(400, 'send {"version": "<non-empty string>", "model_uri": "<folder or model.tar.gz>", '
                               '"wait"?: true|false}')
        if not wait:
            try:
                server.swap_in_background(version, model_uri)
            except RuntimeError as exc:
                return _error(409, str(exc))
            return JSONResponse({"status": "Updating", "version": version}, 202)
        try:
            await anyio.to_thread.run_sync(server.host.swap, version, model_uri, limiter=server.threads)
        except RuntimeError as exc:
            return _error(409, str(exc))
        except Exception:
            return _error(422, server.host.error or "model failed to load")
        return JSONResponse(server.host.status())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: f"no route {request.url.path}",
                   405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code, exc.detail)
        return _error(exc.status_code, message, exc.headers)

    async def internal_error(request: Request, exc: Exception) -> Response:
        logger.error("request %s %s failed: %s", request.method, request.url.path, _one_line(exc))
        return _error(500, f"internal error in the model server ({type(exc).__name__})")

    return Starlette(
        routes=[Route("/ping", ping, methods=["GET"]), Route("/invocations", invocations, methods=["POST"]),
                Route("/admin/model", admin_model, methods=["POST"]),
                Route("/admin/status", admin_status, methods=["GET"])],
        exception_handlers={HTTPException: http_error, Exception: internal_error})


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def make_server(settings: Settings | None = None, host: str | None = None, port: int | None = None,
                script: Path | None = None) -> EndpointServer:
    settings = settings or get_settings()
    if settings.endpoint_torch_threads:
        import torch

        torch.set_num_threads(settings.endpoint_torch_threads)
    address = (host or settings.endpoint_host, settings.endpoint_port if port is None else port)
    return EndpointServer(address, load_script(script or settings.inference_script), settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autobert.endpoint_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="Model folder (or model.tar.gz) to serve at start; without it /ping "
                        "answers 503 until POST /admin/model loads one.")
    parser.add_argument("--version", help="Version name of --model-dir (default: its folder name).")
    parser.add_argument("--host", default=None, help="Bind address (default AUTOBERT_ENDPOINT_HOST, 127.0.0.1).")
    parser.add_argument("--port", type=int, default=None, help="Port (default AUTOBERT_ENDPOINT_PORT; 0 = any free).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = make_server(host=args.host, port=args.port)
    except OSError as exc:
        print(f"endpoint: cannot listen: {exc}", file=sys.stderr)
        return 2

    # SIGTERM (autobert up stopping it) or SIGINT: stop accepting, let in-flight requests finish, exit 0.
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    server.start()
    # One line that parents (autobert up, tests) read to learn the port when it was 0.
    print(json.dumps({"event": "listening", "url": server.url}), flush=True)
    if args.model_dir:
        folder = Path(args.model_dir)
        # models/<version>/model/ is the bucket layout: the version is the parent's name there.
        server.swap_in_background(args.version or (folder.parent.name if folder.name == "model" else folder.name),
                                  args.model_dir)
    stopping.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
