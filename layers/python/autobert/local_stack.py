"""``autobert up``: the local stack in the foreground — the local endpoint (a child process) and the local API (in
this process) — plus the first model when there is none yet. Ctrl-C (or SIGTERM) stops both cleanly.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from autobert import layout
from autobert.bootstrap import Services, bootstrap, bootstrap_local_stack
from autobert.config import REPO_ROOT, Settings, configure, get_settings
from autobert.errors import AutobertError
from autobert.ports import ObjectNotFound

logger = logging.getLogger("autobert.up")


class StackError(AutobertError):
    """The local stack could not start (port taken, endpoint crashed, first model failed)."""


# -------------------------------------------------------------------------------------------------- first model
def live_model(services: Services) -> dict | None:
    try:
        return services.store.get_json(layout.LIVE_MODEL)
    except ObjectNotFound:
        return None


def ensure_live_model(services: Services) -> dict:
    """Make sure a model is live (``models/live.json``) and served by the running local endpoint. The very first
    model is produced by a run of the retraining workflow itself (the bootstrap run: import the dataset, train,
    gate, swap onto the endpoint)."""
    from autobert.workflow.local import run_first_model

    return live_model(services) or run_first_model(services)


# ------------------------------------------------------------------------------------------------------ processes
def start_endpoint(settings: Settings, live: dict | None, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """The endpoint child process; returns it and its URL once it listens (the model may still be loading)."""
    cmd = [sys.executable, "-m", "autobert.endpoint_server", "--host", settings.endpoint_host,
           "--port", str(settings.endpoint_port)]
    if live:
        cmd += ["--model-dir", live["model_uri"], "--version", live["version"]]
    # The child's environment: ours, the settings, and its OpenMP policy (torch reads it at import).
    env = {**os.environ, **settings.as_environment()}
    if settings.endpoint_omp_wait_policy:
        env.setdefault("OMP_WAIT_POLICY", settings.endpoint_omp_wait_policy)
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env)
    line = _readline(process, timeout)
    try:
        url = json.loads(line)["url"]
    except (ValueError, KeyError, TypeError):
        stop_process(process)
        raise StackError(f"the local endpoint failed to start (exit {process.poll()}); see its log above") from None
    # Keep draining its stdout so the child never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return process, url


def _readline(process: subprocess.Popen, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"the local endpoint exited ({process.returncode}); see its log above")
        with contextlib.suppress(requests.RequestException, ValueError):
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
            status = requests.get(f"{url}/admin/status", timeout=2).json()
            if status["status"] == "Failed" and status["version"] is None:
                raise StackError(f"the local endpoint cannot load the live model: {status['error']}")
        time.sleep(0.2)
    raise StackError(f"the local endpoint at {url} did not become healthy within {timeout:.0f}s")


def emit(stream: TextIO, event: str, **fields: Any) -> None:
    """One JSON line per milestone (scripts and tests read them from `autobert up`'s stdout)."""
    stream.write(json.dumps({"event": event, **fields}) + "\n")
    stream.flush()


def stack_environment(home: Path, **settings: str) -> dict[str, str]:
    """The environment of an `autobert up` child with its own ``home`` on free ports and no scheduled, threshold or
    background run: its first model is the BERT fine-tune, not the linear model followed by a BERT run in the
    background (``settings``: more ``AUTOBERT_*`` variables, e.g. ``AUTOBERT_FIRST_MODEL="linear"``): ours
    without any ``AUTOBERT_*`` variable, plus those."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBERT_")}
    env.update({"AUTOBERT_MODE": "local", "AUTOBERT_HOME": str(home), "AUTOBERT_ENDPOINT_PORT": "0",
                "AUTOBERT_API_PORT": "0", "AUTOBERT_CONSOLE_PORT": "0", "AUTOBERT_SCHEDULE_ENABLED": "false",
                "AUTOBERT_FEEDBACK_THRESHOLD": "1000000000", "AUTOBERT_FIRST_MODEL": "bert", **settings})
    return env


class StackProcess:
    """`autobert up` as a child process (benchmarks and end-to-end tests drive the stack as a user does), followed
    through the JSON event lines of its stdout (``emit``: listening, serving, stopped). Returns once it serves."""

    def __init__(self, env: dict[str, str], *, serving_timeout: float, log: Path | None = None):
        self.env = env
        self.log = open(log, "a") if log else None  # noqa: SIM115 — closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "autobert.cli", "up"], cwd=REPO_ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.events: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        serving = self.wait_for("serving", serving_timeout)
        self.api, self.endpoint, self.version = serving["api"], serving["endpoint"], serving["version"]

    def _read(self) -> None:
        # Keep reading to the end (a full pipe would stall the stack) and pick out the event lines.
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict) and "event" in item:
                    self.events.put(item)

    def wait_for(self, event: str, timeout: float) -> dict:
        """The next ``event`` line; StackError if the stack exits first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self.events.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise StackError(f"autobert up exited ({self.process.returncode})"
                                     f"{f'; see {self.log.name}' if self.log else ''}") from None
                continue
            if item["event"] == event:
                return item
        raise StackError(f"no {event!r} from autobert up within {timeout:.0f}s")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (which `autobert up` handles like Ctrl-C; a SIGINT would be ignored where the caller runs in the
        background, and a stack killed at the timeout leaves its endpoint behind); killed if it has not stopped
        after ``timeout`` seconds. Its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log:
            self.log.close()
        return self.process.returncode


class LineWriter(io.TextIOBase):
    """A stream that writes whole lines only, one write per line: the handlers' logs and metrics (powertools prints
    them, in pieces, from many request threads) never interleave inside a line."""

    def __init__(self, target: TextIO):
        self.target = target
        self._lock = threading.Lock()
        self._local = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        pending = getattr(self._local, "pending", "") + text
        if "\n" in pending:
            lines, _, pending = pending.rpartition("\n")
            with self._lock:
                self.target.write(lines + "\n")
                self.target.flush()
        self._local.pending = pending
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self.target.flush()


# ---------------------------------------------------------------------------------------------------------- up
def up(settings: Settings | None = None, stop: threading.Event | None = None) -> int:
    settings = settings or get_settings()
    # stdout carries only the stack's JSON events; everything else printed in this process (the handlers' logs
    # and EMF metrics, as a Lambda would send to CloudWatch) goes to stderr, line by line.
    events, sys.stdout = sys.stdout, LineWriter(sys.stderr)
    try:
        return _up(settings, events, stop)
    finally:
        sys.stdout = events


def _up(settings: Settings, events: TextIO, stop: threading.Event | None) -> int:
    from autobert.console import make_server as make_console
    from autobert.local_api import make_api
    from autobert.workflow.local import Scheduler

    services = bootstrap_local_stack(settings)
    live = live_model(services)
    stop = stop or threading.Event()
    endpoint, endpoint_url = start_endpoint(settings, live)
    api = console = scheduler = None
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if _main_thread() else None
    try:
        # Everything from here on uses the endpoint's real address (its port may have been 0 = any free port): the
        # services, the Lambda handlers the local API hosts (their bare bootstrap() gets the configured settings)
        # and every child the workflow starts (it passes the settings on as AUTOBERT_* variables).
        settings = settings.model_copy(update={"endpoint_url": endpoint_url})
        configure(settings)
        services = bootstrap(settings)
        try:
            api = make_api(settings)
        except OSError as exc:
            raise StackError(f"the local API cannot listen on {settings.api_host}:{settings.api_port}: {exc}"
                             ) from exc
        api.warm_up()
        api.start()
        try:
            console = make_console(services, host=settings.api_host, port=settings.console_port)
        except OSError as exc:
            raise StackError(f"the runs console cannot listen on {settings.api_host}:{settings.console_port}: {exc}"
                             ) from exc
        console.start()
        logger.info("local endpoint %s, local API %s (POST /predict, /feedback, /retrain), runs console %s",
                    endpoint_url, api.url, console.url)
        emit(events, "listening", api=api.url, endpoint=endpoint_url, console=console.url)
        if live is None:
            logger.info("no live model yet: producing the first one (predict answers 503 until it serves)")
            live = ensure_live_model(services)
        wait_healthy(endpoint_url, endpoint)
        # Threshold and low-traffic-window triggers, and triggers that arrived during a run.
        scheduler = Scheduler(services).start()
        logger.info("serving model %s — Ctrl-C to stop", live["version"])
        emit(events, "serving", version=live["version"], api=api.url, endpoint=endpoint_url, console=console.url)
        while not stop.wait(0.5):
            if endpoint.poll() is not None:
                raise StackError(f"the local endpoint exited ({endpoint.returncode}); see its log above")
    except KeyboardInterrupt:
        pass
    finally:
        logger.info("stopping")
        if scheduler is not None:
            scheduler.stop()
        if console is not None:
            console.stop()
        if api is not None:
            api.stop()
        stop_process(endpoint)
        configure(None)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        emit(events, "stopped")
    return 0


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
