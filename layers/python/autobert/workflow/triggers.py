"""Retraining triggers: manual, feedback-count threshold and schedule (low-traffic window).

A trigger is first recorded (``triggers/<id>.json``), then a run is started if none is running; the run that starts
next marks every pending trigger as served by it (``triggers/_served/<id>.json``). So a trigger that arrives during a
run is never dropped: it is served by the next run.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, time
from typing import Any, Literal

from autobert import layout
from autobert.contracts import TRIGGER_KINDS
from autobert.ports import ObjectNotFound, ObjectStore
from autobert.workflow.datasets import unmerged_feedback_count
from autobert.workflow.registry import now_iso

Kind = Literal["manual", "threshold", "schedule", "bootstrap"]  # = autobert.contracts.TRIGGER_KINDS


def record_trigger(store: ObjectStore, kind: Kind, *, full: bool = False, now: datetime | None = None,
                   **detail: Any) -> dict:
    """Record a trigger named by its time (``now``: the caller's clock, e.g. the scheduler's; default the real one),
    so ``scheduled_today`` finds the day from the same clock that named it."""
    if kind not in TRIGGER_KINDS:
        raise ValueError(f"unknown trigger kind {kind!r}: one of {', '.join(TRIGGER_KINDS)}")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    trigger = {"id": f"t-{now:%Y%m%d-%H%M%S-%f}-{secrets.token_hex(2)}", "kind": kind,
               "full": bool(full), "at": now_iso(now), **detail}
    store.put_json(layout.trigger_key(trigger["id"]), trigger)
    return trigger


def pending_triggers(store: ObjectStore) -> list[dict]:
    keys = [k for k in store.list_keys(layout.TRIGGERS) if not k.startswith(layout.TRIGGERS_SERVED)]
    served = {k.rsplit("/", 1)[-1] for k in store.list_keys(layout.TRIGGERS_SERVED)}
    return [store.get_json(k) for k in keys if k.rsplit("/", 1)[-1] not in served]


def mark_served(store: ObjectStore, trigger_ids: list[str], run_id: str) -> None:
    for trigger_id in trigger_ids:
        store.put_json(layout.trigger_served_key(trigger_id), {"run_id": run_id, "at": now_iso()}, if_absent=True)


def served_by(store: ObjectStore, trigger_id: str) -> str | None:
    try:
        return store.get_json(layout.trigger_served_key(trigger_id))["run_id"]
    except ObjectNotFound:
        return None


def parse_window(window: str) -> tuple[time, time]:
    start, end = window.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def in_window(now: datetime, window: str) -> bool:
    """Whether ``now`` (UTC) is inside ``HH:MM-HH:MM``; a window may wrap midnight (``23:00-02:00``)."""
    start, end = parse_window(window)
    t = now.astimezone(UTC).time().replace(tzinfo=None)
    return start <= t < end if start <= end else (t >= start or t < end)


def scheduled_today(store: ObjectStore, now: datetime) -> bool:
    day = f"t-{now.astimezone(UTC):%Y%m%d}"
    return any(store.get_json(k).get("kind") == "schedule"
               for k in store.list_keys(layout.TRIGGERS + day))


def threshold_reached(store: ObjectStore, threshold: int) -> bool:
    """Enough unmerged feedback, and no threshold trigger already waiting for a run."""
    if any(t["kind"] == "threshold" for t in pending_triggers(store)):
        return False
    return unmerged_feedback_count(store) >= threshold
