"""Starting retraining runs, the same call locally and on AWS: record the trigger, then start a run unless one is
running (then the trigger waits for the next run). Used by `autobert retrain`, the retrain API route, the feedback
path (threshold) and the schedule (EventBridge on AWS, the local Scheduler)."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from autobert.bootstrap import Services
from autobert.workflow.errors import WorkflowError
from autobert.workflow.merge import current_dataset
from autobert.workflow.registry import ModelRegistry
from autobert.workflow.runs import FINISHED, RunStore, new_run_id
from autobert.workflow.triggers import mark_served, pending_triggers, record_trigger, threshold_reached


def request_run(services: Services, kind: str, *, full: bool = False, wait: bool = False, **detail: Any) -> dict:
    if not services.aws:
        from autobert.workflow.local import LocalWorkflow, ensure_initial_dataset

        ensure_initial_dataset(services)
        return LocalWorkflow(services).request(kind, full=full, wait=wait, **detail)
    trigger = record_trigger(services.store, kind, full=full, **detail)
    return {**start_pending_on_aws(services), "trigger": trigger}


def start_pending_on_aws(services: Services) -> dict:
    """Start an execution serving every pending trigger, unless one is running (its end, or the next trigger,
    serves them; an EventBridge rule on execution status changes may call this too)."""
    sfn = services.workflow_runs
    running = sfn.running()
    if running:
        return {"status": "queued", "running": [e["name"] for e in running]}
    pending = pending_triggers(services.store)
    if not pending:
        return {"status": "idle"}
    run_id = new_run_id()
    full = any(t.get("full") for t in pending) or ModelRegistry(services.store).live() is None
    # A trigger that asks for tuning (the schedule with AUTOBERT_SCHEDULE_TUNE) makes the run take the tuning path.
    tune = any(t.get("tune") for t in pending)
    RunStore(services.store).create(run_id, trigger=pending[0]["kind"], executor="stepfunctions",
                                    trigger_kinds=sorted({t["kind"] for t in pending}),
                                    triggered_at=min(t["at"] for t in pending), full=full, tune=tune)
    # Served from here on, even if the execution dies before its first step: a broken run must not restart forever.
    mark_served(services.store, [t["id"] for t in pending], run_id)
    arn = sfn.start(run_id, {"run_id": run_id, "triggers": [t["id"] for t in pending], "full": full, "tune": tune})
    RunStore(services.store).update(run_id, execution_arn=arn)
    return {"status": "started", "run_id": run_id, "execution_arn": arn}


def on_execution_end(services: Services, detail: dict) -> dict:
    """EventBridge "Step Functions Execution Status Change": an execution that timed out or was aborted never reached
    RecordFailure, so its run record is closed here; then the triggers that came in during the run are served."""
    run_id, status = detail.get("name"), detail.get("status")
    runs = RunStore(services.store)
    if run_id and status in ("FAILED", "TIMED_OUT", "ABORTED"):
        with suppress(WorkflowError):
            if runs.get(run_id).get("status") not in FINISHED:
                runs.update(run_id, status="failed", error=f"Execution{status.title().replace('_', '')}",
                            cause=f"the execution ended {status} before recording its outcome")
    return start_pending_on_aws(services)


def after_feedback(services: Services) -> dict | None:
    """Starts a run once enough unmerged feedback has piled up (None if not, or if a threshold trigger already
    waits). Cheap: it lists feedback keys and reads the current dataset's merged ids. Locally the Scheduler checks
    the threshold; on AWS an EventBridge rate rule calls it through the retrain starter (``functions/retrain.py``),
    so the feedback Lambda stays free of pandas and of the workflow's permissions."""
    s = services.settings
    if current_dataset(services.store) is None or not threshold_reached(services.store, s.feedback_threshold):
        return None
    return request_run(services, "threshold", threshold=s.feedback_threshold)
