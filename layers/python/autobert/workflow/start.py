"""Starting retraining runs, the same call locally and on AWS: record the trigger, then start a run unless one is
running (then the trigger waits for the next run). Used by `autobert retrain`, the retrain API route, the feedback
path (threshold) and the schedule (EventBridge on AWS, the local Scheduler)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from autobert import layout
from autobert.bootstrap import Services
from autobert.ports import Workflow
from autobert.workflow.datasets import current_dataset
from autobert.workflow.errors import NoDatasetError, WorkflowError
from autobert.workflow.registry import now_iso
from autobert.workflow.runs import FINISHED, RunStore, new_run_id, open_run
from autobert.workflow.triggers import pending_triggers, record_trigger, threshold_reached

logger = logging.getLogger(__name__)


def request_run(services: Services, kind: str, *, full: bool = False, wait: bool = False, **detail: Any) -> dict:
    return services.workflow.request(kind, full=full, wait=wait, **detail)


class StepFunctionsWorkflow(Workflow):
    """Runs are executions of the deployed state machine; ``wait`` is not supported (a run takes hours)."""

    poll_seconds = 15.0

    def __init__(self, services: Services):
        self.services = services

    def check_ready(self) -> None:
        """The deployed stack has no precondition a client could check cheaply: a run's failure is recorded."""

    def request(self, kind: str, *, full: bool = False, wait: bool = False, **detail: Any) -> dict:
        if current_dataset(self.services.store) is None:
            # Before `autobert aws bootstrap` uploads the dataset every run would fail at MergeData: start none.
            raise NoDatasetError("no dataset in the bucket yet: run `autobert aws bootstrap` first")
        trigger = record_trigger(self.services.store, kind, full=full, **detail)
        return {**start_pending_on_aws(self.services), "trigger": trigger}


# A slot whose starter died between taking it and StartExecution is free again after this long.
SLOT_STALE_SECONDS = 900


def start_pending_on_aws(services: Services, clock: Callable[[], datetime] = lambda: datetime.now(UTC), *,
                         ended: str | None = None) -> dict:
    """Start an execution serving every pending trigger, unless a run is active (its end, or the next trigger,
    serves them; an EventBridge rule on execution status changes calls this too).

    One run at a time, even when two starters race (the API, the schedule, the threshold rule and the end of a run
    may all call this at once): a starter must first own the next run slot ``runs/_slots/<n>.json``, created with
    S3's conditional write (create-if-absent, atomic), and the slot before it must belong to a finished run. S3's
    listing is strongly consistent, so two starters see the same last slot and only one creates the next.

    ``ended``: the name of an execution whose end called this. ListExecutions is eventually consistent and may still
    list it as RUNNING a moment after its status-change event; it must not keep the waiting triggers waiting."""
    store, sfn = services.store, services.workflow_runs
    # An execution started elsewhere (the console, the CLI) counts too.
    running = [e for e in sfn.running() if e["name"] != ended]
    if running:
        return {"status": "queued", "running": [e["name"] for e in running]}
    last, active = last_slot(services, clock())
    if active:
        return {"status": "queued", "running": [active]}
    pending = pending_triggers(store)
    if not pending:
        return {"status": "idle"}
    run_id = new_run_id()
    if not store.put_json(layout.run_slot(last + 1), {"run_id": run_id, "at": now_iso(clock())}, if_absent=True):
        holder = store.get_json(layout.run_slot(last + 1))["run_id"]
        return {"status": "queued", "running": [holder]}  # another starter won the slot a moment ago
    execution_input = open_run(store, pending, executor="stepfunctions", run_id=run_id, slot=last + 1)
    arn = sfn.start(run_id, execution_input)
    RunStore(store).update(run_id, execution_arn=arn)
    return {"status": "started", "run_id": run_id, "execution_arn": arn}


def last_slot(services: Services, now: datetime) -> tuple[int, str | None]:
    """The number of the last run slot taken (0 before the first run) and, if its run is still active, its id. A
    run is active until its record is finished or its execution is no longer RUNNING; a slot whose starter never
    started an execution stays active for ``SLOT_STALE_SECONDS``."""
    store = services.store
    keys = store.list_keys(layout.RUN_SLOTS)
    if not keys:
        return 0, None
    number = int(keys[-1].rsplit("/", 1)[-1].removesuffix(".json"))
    slot = store.get_json(keys[-1])
    try:
        run = RunStore(store).get(slot["run_id"])
    except WorkflowError:
        run = {}
    if run.get("status") in FINISHED:
        return number, None
    if run.get("execution_arn"):
        return number, slot["run_id"] if services.workflow_runs.status(run["execution_arn"]) == "RUNNING" else None
    age = (now - datetime.fromisoformat(slot["at"])).total_seconds()
    return number, slot["run_id"] if age < SLOT_STALE_SECONDS else None


def on_execution_end(services: Services, detail: dict) -> dict:
    """EventBridge "Step Functions Execution Status Change": an execution that timed out or was aborted never reached
    RecordFailure, so its run record is closed here and the training or tuning job it left running is stopped (a
    tuning job outliving the execution would bill on); then the triggers that came in during the run are served."""
    run_id, status = detail.get("name"), detail.get("status")
    runs = RunStore(services.store)
    if run_id and status in ("FAILED", "TIMED_OUT", "ABORTED"):
        with suppress(WorkflowError):
            run = runs.get(run_id)
            if run.get("status") not in FINISHED:
                runs.update(run_id, status="failed", error=f"Execution{status.title().replace('_', '')}",
                            cause=f"the execution ended {status} before recording its outcome")
            stopped = stop_run_jobs(services, run)
            if stopped:
                runs.update(run_id, stopped_jobs=stopped)
    return start_pending_on_aws(services, ended=run_id)


def stop_run_jobs(services: Services, run: dict) -> list[str]:
    """Stop the run's tuning job and training job if they are still in progress; returns what was stopped. A job
    that cannot be stopped (already stopping, say) is logged and the other one is still tried."""
    stopped = []
    # The run's training job is named by its model version (autobert.contracts).
    for name, jobs in ((run.get("tuning_job"), services.tuning_jobs), (run.get("model_version"),
                                                                        services.training_jobs)):
        if not name:
            continue
        try:
            if jobs.stop_if_running(name):
                stopped.append(name)
        except WorkflowError as exc:
            logger.warning("could not stop %s of run %s: %s", name, run.get("run_id"), exc)
    return stopped


def after_feedback(services: Services) -> dict | None:
    """Starts a run once enough unmerged feedback has piled up (None if not, or if a threshold trigger already
    waits). Cheap: it lists feedback keys and reads the current dataset's merged ids. Locally the Scheduler checks
    the threshold; on AWS an EventBridge rate rule calls it through the retrain starter (``functions/retrain.py``),
    so the feedback Lambda stays free of pandas and of the workflow's permissions."""

    s = services.settings
    if current_dataset(services.store) is None or not threshold_reached(services.store, s.feedback_threshold):
        return None
    return request_run(services, "threshold", threshold=s.feedback_threshold)
