"""Local execution of the retraining state machine, the local scheduler and the first model.

The ASL file is executed unchanged by aws-local-stepfunctions (``statemachines/local/run.mjs``, Node). Its Task
states call back into this process over the Node process's stdin/stdout (JSON lines), where the very step handlers of
the Lambdas (``autobert.workflow.tasks``) run with the local adapters; an exception's class name goes back as the
error name, so Retry/Catch behave as on AWS. One Node process per run, no Python process per task: the handlers
run warm in the process that holds the run lock.

Only one run at a time: a file lock (``<home>/retrain.lock``, ``filelock.FileLock``). A trigger is recorded first,
then whoever gets the lock serves every pending trigger; the holder re-checks after releasing it, so a trigger that
arrives while a run ends is not stranded. Only a runner ever takes the lock (the scheduler never probes it).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from autobert.bootstrap import Services
from autobert.config import REPO_ROOT
from autobert.contracts import ENCODER_KINDS, MODEL_KIND
from autobert.data import DATASET_FILE, LABELS_FILE, prepare_configured, read_labels
from autobert.errors import AutobertError
from autobert.ports import Workflow
from autobert.workflow.datasets import current_dataset
from autobert.workflow.errors import WorkflowError
from autobert.workflow.merge import import_initial_dataset
from autobert.workflow.registry import ModelRegistry
from autobert.workflow.runs import FINISHED, HistoryWriter, RunStore, is_final, open_run
from autobert.workflow.tasks import TASKS
from autobert.workflow.triggers import (
    in_window,
    pending_triggers,
    record_trigger,
    scheduled_today,
    served_by,
    threshold_reached,
)

logger = logging.getLogger("autobert.workflow")

ASL_FILE = REPO_ROOT / "statemachines" / "retrain.asl.json"
RUNNER = REPO_ROOT / "statemachines" / "local" / "run.mjs"


class LocalRunnerError(WorkflowError):
    """The local ASL interpreter could not run (Node missing, crashed, bad output)."""


# ---------------------------------------------------------------------------------------------------- the dataset
def ensure_initial_dataset(services: Services) -> dict:
    """The dataset version 0 (and the fixed holdout) in the bucket: imported from the exported dataset folder
    (``AUTOBERT_SEED_DATASET``, default ``<home>/prepared``), which ``autobert prepare``'s pipeline creates first
    if it is missing."""
    current = current_dataset(services.store)
    if current:
        return current
    s = services.settings
    folder = Path(s.seed_dataset or s.home / "prepared")
    if not (folder / DATASET_FILE).is_file():
        logger.info("no exported dataset in %s: preparing %s", folder, s.data_source or "20 Newsgroups")
        prepare_configured(s, folder)
    df = pd.read_parquet(folder / DATASET_FILE)
    return import_initial_dataset(services.store, df, read_labels(folder / LABELS_FILE),
                                  holdout_fraction=s.holdout_fraction, seed=s.seed, source=str(folder))


# -------------------------------------------------------------------------------------------------------- the lock
# A running run's history is saved once the runner has been quiet for HISTORY_QUIET_SECONDS (a burst of states is
# over: the run is in a Wait state or a retry's pause), and at least every HISTORY_SAVE_SECONDS while events keep
# coming (the console polls every 1.5-4 s). A save appends the new events only (``HistoryWriter``): its cost does not
# grow with the history.
HISTORY_QUIET_SECONDS = 0.25
HISTORY_SAVE_SECONDS = 2.0


LOCK_POLL_SECONDS = 0.5  # how often a runner waiting for the lock tries it again


@contextmanager
def run_lock(home: Path, *, wait: bool = False) -> Iterator[bool]:
    """Yields True while this process holds the one-run-at-a-time lock. Without ``wait``, False at once when another
    holds it; with ``wait``, once the holder has released it."""
    home.mkdir(parents=True, exist_ok=True)
    lock = FileLock(home / "retrain.lock", blocking=False, poll_interval=LOCK_POLL_SECONDS)
    try:
        lock.acquire()
        held = True
    except Timeout:
        held = False
        if wait:
            logger.info("waiting for the run lock %s: a run holds it", lock.lock_file)
            lock.acquire(blocking=True)
            held = True
    try:
        yield held
    finally:
        if held:
            lock.release()


# -------------------------------------------------------------------------------------------------- the executor
class LocalWorkflow(Workflow):
    def __init__(self, services: Services, *, prepare_dataset: bool = True):
        """``prepare_dataset``: a request first imports the initial dataset (preparing 20 Newsgroups if no exported
        one exists), as `autobert up` and `autobert retrain` need; False leaves the bucket as it is (a run without a
        dataset then fails at MergeData)."""
        self.services = services
        self.store = services.store
        self.runs = RunStore(services.store)
        self.prepare_dataset = prepare_dataset

    def check_ready(self) -> None:
        """A local run ends by swapping the model onto the running local endpoint: say so up front when `autobert
        up` is not running, rather than after a whole training run (or with a failed rollback on record)."""
        from autobert.ports import EndpointUnavailable

        try:
            self.services.deployer.status()
        except EndpointUnavailable:
            raise AutobertError(f"the local stack is not running (no endpoint at "
                                f"{self.services.settings.resolved_endpoint_url}): start it with `autobert up`"
                                ) from None

    # Triggers ------------------------------------------------------------------------------------------------
    def request(self, kind: str, *, full: bool = False, wait: bool = False, **detail: Any) -> dict:
        """Record a trigger and serve it: in this process (``wait``) or in a detached process. Returns the
        trigger and, with ``wait``, the run that served it."""
        if self.prepare_dataset:
            ensure_initial_dataset(self.services)
        trigger = record_trigger(self.store, kind, full=full, **detail)
        if not wait:
            self.start_detached()
            return {"status": "accepted", "trigger": trigger}
        self.serve_pending()
        run = self.wait_for(trigger["id"])
        return {"status": run["status"], "trigger": trigger, "run": run}

    def wait_for(self, trigger_id: str, timeout: float | None = None, poll: float = 1.0) -> dict:
        """Block until the run serving ``trigger_id`` has finished (it may be queued behind another run)."""
        deadline = time.monotonic() + (timeout or self.services.settings.training_max_wait_seconds * 2)
        while time.monotonic() < deadline:
            run_id = served_by(self.store, trigger_id)
            if run_id is None:
                self.serve_pending()  # the run that held the lock may have ended before seeing our trigger
            else:
                run = self.runs.get(run_id)
                if is_final(run):
                    return run
            time.sleep(poll)
        raise WorkflowError(f"trigger {trigger_id}: no finished run within the time limit")

    def serve_pending(self, *, wait: bool = False) -> list[dict]:
        """Run until no trigger is pending, if this process gets the lock; otherwise return at once (the holder
        serves what is pending), or with ``wait`` first wait until the holder releases it."""
        done: list[dict] = []
        while True:
            with run_lock(self.services.settings.home, wait=wait) as held:
                if not held:
                    return done
                while pending := pending_triggers(self.store):
                    done.append(self.run(pending))
            wait = False  # the re-check below: another runner that got the lock meanwhile serves what is pending
            if not pending_triggers(self.store):
                return done

    def start_detached(self, *, wait: bool = False) -> subprocess.Popen:
        """Serve pending triggers in a detached process (survives the caller, e.g. `autobert retrain`); with
        ``wait`` it waits for the lock instead of leaving the pending triggers to its holder."""
        s = self.services.settings
        s.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **s.as_environment()}
        command = [sys.executable, "-m", "autobert.workflow.local", "serve", *(["--wait"] if wait else [])]
        with open(s.home / "retrain.log", "ab") as log:
            proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        threading.Thread(target=proc.wait, daemon=True).start()
        return proc

    # One run ----------------------------------------------------------------------------------------------------
    def run(self, triggers: list[dict]) -> dict:
        s = self.services.settings
        execution_input = open_run(self.store, triggers, executor="local")
        history = HistoryWriter(self.runs, execution_input["run_id"])
        # Wait states and retry pauses as the ASL says, times the scale (tests run them faster).
        cmd = [s.node, str(RUNNER), "--definition", str(ASL_FILE), "--input", json.dumps(execution_input),
               "--time-scale", repr(s.local_wait_scale)]
        end: dict | None = None
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, cwd=REPO_ROOT)
        except OSError as exc:
            return self._finish(history, {"status": "FAILED", "error": "LocalRunnerError",
                                          "cause": f"cannot start {s.node}: {exc}"})
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_forward_lines, args=(proc.stdout, lines), name="asl-runner-output",
                         daemon=True).start()
        saved_at = time.monotonic()
        try:
            while True:
                try:  # no timeout while everything is saved: a Wait state costs nothing here
                    line = lines.get(timeout=HISTORY_QUIET_SECONDS if history.unsaved else None)
                except queue.Empty:
                    history.save()
                    saved_at = time.monotonic()
                    continue
                if line is None:
                    break
                message = json.loads(line)
                if message["type"] == "task":
                    proc.stdin.write(json.dumps(self._task(message)) + "\n")
                    proc.stdin.flush()
                elif message["type"] == "event":
                    history.add(message["event"])
                    if time.monotonic() - saved_at >= HISTORY_SAVE_SECONDS:
                        history.save()
                        saved_at = time.monotonic()
                elif message["type"] == "end":
                    end = message
        except (ValueError, KeyError, BrokenPipeError) as exc:
            end = {"status": "FAILED", "error": "LocalRunnerError", "cause": f"bad runner output: {exc}"}
            proc.kill()
        finally:
            if proc.stdin:
                proc.stdin.close()
            stderr = proc.stderr.read() if proc.stderr else ""
            proc.wait()
        if end is None:
            end = {"status": "FAILED", "error": "LocalRunnerError",
                   "cause": f"the ASL runner exited {proc.returncode}: {stderr.strip()[-1000:]}"}
        return self._finish(history, end)

    def _task(self, message: dict) -> dict:
        task = TASKS.get(message["resource"])
        if task is None:
            return {"id": message["id"], "error": "LocalRunnerError",
                    "cause": f"no handler for resource {message['resource']}"}
        try:
            return {"id": message["id"], "output": task.step()(self.services, message["input"])}
        except Exception as exc:  # any exception is a task failure, named by its class as Lambda names it
            logger.warning("task %s failed: %s: %s", message["state"], type(exc).__name__, exc)
            if not isinstance(exc, AutobertError):  # a bug rather than a known failure: keep the trace in the log
                logger.debug("task %s traceback", message["state"], exc_info=True)
            return {"id": message["id"], "error": type(exc).__name__, "cause": str(exc)}

    def _finish(self, history: HistoryWriter, end: dict) -> dict:
        run_id = history.run_id
        record = self.runs.get(run_id)
        fields: dict[str, Any] = {"execution_status": end["status"]}
        if end["status"] == "SUCCEEDED":
            if record.get("status") not in FINISHED:
                fields["status"] = "succeeded"
        else:
            fields["status"] = "failed"
            fields.setdefault("error", record.get("error") or end.get("error"))
            fields.setdefault("cause", record.get("cause") or end.get("cause"))
        record = history.save(**fields)
        logger.info("run %s: %s", run_id, record["status"])
        return record


def _forward_lines(stream, lines: queue.Queue) -> None:
    """The runner's output lines onto ``lines``, then None at its end (the run loop waits on them, with a timeout
    only while it has events to save)."""
    for line in stream:
        lines.put(line)
    lines.put(None)


# ------------------------------------------------------------------------------------------------- first model
def run_first_model(services: Services) -> dict:
    """Make sure a model is live: import the dataset if needed and run the retraining workflow once (bootstrap
    run: no warm start, the gate passes with no live model). The local endpoint must be running (it may have no
    model yet): the run ends by swapping the model onto it. Returns ``models/live.json``.

    With ``AUTOBERT_FIRST_MODEL=linear`` (the default) that first run trains the TF-IDF linear model alone (a
    minute or two, on any CPU), and once it is live a second bootstrap run, the BERT fine-tune, is started in the
    background: it replaces the linear model if the gate passes. Each trigger says what its run trains
    (``model_kind``)."""
    ensure_initial_dataset(services)
    registry = ModelRegistry(services.store)
    live = registry.live()
    if live:
        return live
    workflow = LocalWorkflow(services)
    first = services.settings.first_model
    result = workflow.request("bootstrap", full=True, wait=True, **{MODEL_KIND: first})
    live = registry.live()
    if live is None:
        run = result["run"]
        raise WorkflowError(f"the first run {run['run_id']} ended {run['status']}: "
                            f"{run.get('error')}: {run.get('cause')}")
    if first not in ENCODER_KINDS:
        followup = workflow.request("bootstrap", full=True, **{MODEL_KIND: "bert"})
        logger.info("model %s (%s) serves; the BERT fine-tune follows in the background (trigger %s)",
                    live["version"], first, followup["trigger"]["id"])
    return live


# ---------------------------------------------------------------------------------------------------- scheduler
class Scheduler:
    """The local stack's trigger loop: the scheduled run (once per low-traffic window), the feedback-count threshold
    (in case the feedback path did not check), and pending triggers left by a run that ended.

    Pending triggers go to a detached runner that waits for the run lock (``start_run``: returns the runner's
    ``Popen``, or None when there is nothing to watch); while that runner lives, no other is started."""

    def __init__(self, services: Services, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 start_run: Callable[[], subprocess.Popen | None] | None = None):
        self.services = services
        self.clock = clock
        self.workflow = LocalWorkflow(services)
        self.start_run = start_run or (lambda: self.workflow.start_detached(wait=True))
        self._runner: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[dict]:
        """One check; returns the triggers it recorded."""
        s, store = self.services.settings, self.services.store
        recorded = []
        now = self.clock()
        if s.schedule_enabled and in_window(now, s.schedule_window) and not scheduled_today(store, now):
            recorded.append(record_trigger(store, "schedule", full=s.schedule_full_retrain, now=now,
                                           window=s.schedule_window))
        if current_dataset(store) and threshold_reached(store, s.feedback_threshold):
            recorded.append(record_trigger(store, "threshold", now=now, threshold=s.feedback_threshold))
        # No look at the lock here: taking it even for a moment could turn away a runner that is starting. The
        # runner takes it itself, after the run that holds it (whose holder may serve these triggers first).
        if pending_triggers(store) and (self._runner is None or self._runner.poll() is not None):
            self._runner = self.start_run()
        return recorded

    def _loop(self) -> None:
        while not self._stop.wait(self.services.settings.scheduler_interval):
            try:
                self.tick()
            except Exception:  # the loop must outlive one bad tick (a full disk, a corrupt object)
                logger.exception("scheduler tick failed")

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._loop, name="autobert-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    from autobert.bootstrap import bootstrap

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv not in (["serve"], ["serve", "--wait"]):
        print("usage: python -m autobert.workflow.local serve [--wait]", file=sys.stderr)
        return 2
    for run in LocalWorkflow(bootstrap()).serve_pending(wait=argv == ["serve", "--wait"]):
        print(json.dumps({"run_id": run["run_id"], "status": run["status"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
