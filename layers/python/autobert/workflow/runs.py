"""Run records: ``runs/<run_id>/run.json`` (trigger, status, training job name, versions, timings, error) and, for
local runs, the execution's event history as aws-local-stepfunctions emits it: JSON lines in chunks
``runs/<run_id>/history/<n>.jsonl``, one written per save and never rewritten (``HistoryWriter``), so a save costs the
same however long the run has been going (an object store has no append: each save is a new object). A history
written whole (``runs/<run_id>/history.json``, runs recorded before the chunks) still reads. On AWS the history is
Step Functions' own (``StepFunctionsRuns.history``)."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from autobert import layout
from autobert.ports import ObjectNotFound, ObjectStore
from autobert.workflow.errors import WorkflowError
from autobert.workflow.registry import ModelRegistry, now_iso
from autobert.workflow.triggers import mark_served

FINISHED = ("succeeded", "rejected", "failed")


def is_final(run: dict) -> bool:
    """The run has ended and its record is complete. Locally the executor writes ``execution_status`` (with the
    last events) after the last state, which may be a moment after a step recorded the outcome."""
    return run.get("status") in FINISHED and (run.get("executor") != "local" or "execution_status" in run)


def new_run_id() -> str:
    # Sortable by start time, unique, and a valid Step Functions execution name.
    return f"r-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


RUN_KINDS = ("retrain", "rollback")


def open_run(store: ObjectStore, triggers: list[dict], *, executor: str, run_id: str | None = None,
             kind: str = "retrain", **fields: Any) -> dict:
    """Create the record of a run and mark the ``triggers`` it serves (oldest first) served by it; returns the
    execution input ``{"run_id", "triggers", "full", "tune"}``. Every run opens here (Step Functions' starter, the
    local executor, a rollback), so every run record has the same fields.

    ``kind`` "retrain": the retraining state machine, serving ``triggers``: a full retrain when a trigger asks for
    one or no model is live yet; the tuning path when a trigger asks for it (the schedule with
    AUTOBERT_SCHEDULE_TUNE). ``kind`` "rollback": a previous version put back live at once (`autobert rollback`, the
    console), serving no trigger: its ``trigger`` is "rollback", triggered now."""
    if kind not in RUN_KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    if kind == "retrain" and not triggers:
        raise ValueError("a retraining run serves at least one trigger")
    run_id = run_id or new_run_id()
    live = ModelRegistry(store).live()
    retrain = kind == "retrain"
    full = retrain and (any(t.get("full") for t in triggers) or live is None)
    tune = retrain and any(t.get("tune") for t in triggers)
    ids = [t["id"] for t in triggers]
    RunStore(store).create(run_id, kind=kind, trigger=triggers[0]["kind"] if triggers else kind,
                           trigger_kinds=sorted({t["kind"] for t in triggers}),
                           triggered_at=min(t["at"] for t in triggers) if triggers else now_iso(), full=full,
                           tune=tune, executor=executor, live_version_before=live["version"] if live else None,
                           **fields)
    # Served from here on, even if the run dies before its first step: a broken run must not restart forever.
    mark_served(store, ids, run_id)
    return {"run_id": run_id, "triggers": ids, "full": full, "tune": tune}


class UnknownRun(WorkflowError):
    """No run with that id."""


class RunStore:
    def __init__(self, store: ObjectStore):
        self.store = store

    def create(self, run_id: str, **fields: Any) -> dict:
        record = {"run_id": run_id, "status": "starting", "started_at": now_iso(), **fields}
        self.store.put_json(layout.run_record(run_id), record)
        return record

    def get(self, run_id: str) -> dict:
        try:
            return self.store.get_json(layout.run_record(run_id))
        except ObjectNotFound as exc:
            raise UnknownRun(f"no run {run_id!r}") from exc

    def update(self, run_id: str, **fields: Any) -> dict:
        try:
            record = self.get(run_id)
        except UnknownRun:
            record = {"run_id": run_id, "started_at": now_iso()}  # started outside our starter (e.g. the console)
        record.update(fields)
        if fields.get("status") in FINISHED and "finished_at" not in fields:
            record["finished_at"] = now_iso()
        self.store.put_json(layout.run_record(run_id), record)
        return record

    def list(self) -> list[dict]:
        keys = [k for k in self.store.list_keys(layout.RUNS) if k.endswith("/run.json")]
        return sorted((self.store.get_json(k) for k in keys), key=lambda r: r.get("started_at", ""), reverse=True)

    def history(self, run_id: str) -> list[dict]:
        """Every event of the run's history, in order ([] when it has none)."""
        keys = self.store.list_keys(layout.run_history_chunks(run_id))
        if not keys:
            try:
                return self.store.get_json(layout.run_history(run_id))  # written whole, before the chunks
            except ObjectNotFound:
                return []
        return [json.loads(line) for key in keys for line in self.store.get_bytes(key).splitlines() if line.strip()]

    def append_history(self, run_id: str, index: int, events: list[dict]) -> None:
        """Write ``events`` as chunk ``index`` of the history (0, 1, ...: the caller counts); a chunk is never
        rewritten."""
        if not self.store.put_bytes(layout.run_history_chunk(run_id, index), json_lines(events), if_absent=True):
            raise WorkflowError(f"run {run_id}: history chunk {index} already written")

    def put_history(self, run_id: str, events: list[dict]) -> None:
        """A whole history at once (fixtures, imports), as one chunk that a later call replaces."""
        chunks = self.store.list_keys(layout.run_history_chunks(run_id))
        if chunks[1:]:
            raise WorkflowError(f"run {run_id}: the history was appended to, it cannot be replaced")
        self.store.put_bytes(layout.run_history_chunk(run_id, 0), json_lines(events))


def json_lines(events: list[dict]) -> bytes:
    return "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in events).encode()


class HistoryWriter:
    """A local run's history as it happens: ``add`` each event; ``save`` appends those added since the last save as
    the next chunk and updates the run record's ``states`` from them alone (``StateTimings``): a save encodes and
    writes the new events, not the history, however long the run has been going (the record's ``states`` list
    grows by one short entry per visited state)."""

    def __init__(self, runs: RunStore, run_id: str):
        self.runs, self.run_id = runs, run_id
        self.timings = StateTimings()
        self.unsaved: list[dict] = []
        self.chunks = 0

    def add(self, event: dict) -> None:
        self.unsaved.append(event)
        self.timings.add(event)

    def save(self, **fields: Any) -> dict:
        """Append the unsaved events and update the run record with the timings and ``fields``."""
        if self.unsaved:
            self.runs.append_history(self.run_id, self.chunks, self.unsaved)
            self.chunks += 1
            self.unsaved = []
        return self.runs.update(self.run_id, states=self.timings.states, **fields)


class StateTimings:
    """Per visited state: name, type, entered/exited (epoch ms), seconds and error, in visiting order (``states``),
    kept up to date one event at a time."""

    def __init__(self) -> None:
        self.states: list[dict] = []
        self._open: dict[str, dict] = {}

    def add(self, event: dict) -> None:
        kind, state = event.get("type"), event.get("state") or {}
        if kind == "StateEntered":
            entry = {"name": state["name"], "type": state["type"], "entered": event["timestamp"]}
            self._open[state["name"]] = entry
            self.states.append(entry)
        elif kind in ("StateExited", "StateFailed") and state.get("name") in self._open:
            entry = self._open[state["name"]]
            if kind == "StateFailed":
                entry["error"], entry["cause"] = event.get("Error"), event.get("Cause")
                if state["type"] != "Fail":
                    return  # a retry or catch follows; the state exits (or the run ends) later
            entry["exited"] = event["timestamp"]
            entry["seconds"] = round((entry["exited"] - entry["entered"]) / 1000, 3)
            self._open.pop(state["name"])


def state_timings(events: list[dict]) -> list[dict]:
    """``StateTimings`` of a whole history."""
    timings = StateTimings()
    for event in events:
        timings.add(event)
    return timings.states
