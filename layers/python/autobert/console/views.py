"""What the console shows, computed from the stored records: runs (``runs/<id>/{run,history}.json``), the model
registry and the unmerged feedback. Pure reads over the object store, so the JSON API stays a thin layer.

A run's per-state view follows the Step Functions console: each state of the ASL gets an outcome (succeeded,
failed, running, not reached) and its visits (input, output, error, retries, timing), from the execution's event
history as aws-local-stepfunctions records it; the rounds of a wait loop fold into one line per state
(``fold_visits``). A run in training also shows its job's progress (``training_view``: epoch, step, samples/s, ETA,
each finished epoch's validation scores), which CheckTraining keeps in the run record.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from autobert import layout
from autobert.bootstrap import Services
from autobert.contracts import TRAINING_PROGRESS
from autobert.ports import ObjectNotFound
from autobert.workflow.datasets import current_dataset, feedback_keys, seen_ids
from autobert.workflow.registry import ModelRegistry
from autobert.workflow.runs import FINISHED, RunStore, is_final

OUTCOMES = ("succeeded", "failed", "running", "not_reached")
MAX_EVENTS = 500
MAX_VISIT_DOCUMENTS = 10


# ------------------------------------------------------------------------------------------------------------ runs
def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def duration_seconds(run: dict, now: datetime | None = None) -> float | None:
    started = parse_time(run.get("started_at"))
    if started is None:
        return None
    end = parse_time(run.get("finished_at"))
    if end is None:
        if run.get("status") in FINISHED:
            return None
        end = now or datetime.now(UTC)
    return max(0.0, (end - started).total_seconds())


def _scores(summary: dict | None) -> dict | None:
    if not summary:
        return None
    return {"accuracy": summary.get("accuracy"), "macro_f1": summary.get("macro_f1")}


def gate_of(run: dict, record: dict | None) -> dict | None:
    """The gate decision and the holdout scores before (live model) and after (candidate): the model record's
    ``gate`` (complete), else the run's (decision only, until the model is registered)."""
    if run.get("trigger") == "rollback":
        return None
    recorded = (record or {}).get("gate") or {}
    gate = run.get("gate") or {}
    if not recorded and not gate:
        return None
    promote = recorded.get("promote", gate.get("promote"))
    return {"result": "promoted" if promote else "rejected",
            "reasons": recorded.get("reasons") or gate.get("reasons") or [],
            "before": _scores(recorded.get("live")), "after": _scores(recorded.get("candidate")),
            "live_version": recorded.get("live_version") or run.get("live_version_before"),
            "holdout_rows": recorded.get("holdout_rows"), "new_labels": recorded.get("new_labels") or []}


def run_summary(run: dict, records: dict[str, dict], now: datetime | None = None) -> dict:
    version = run.get("model_version")
    return {
        "run_id": run.get("run_id"),
        "status": run.get("status", "unknown"),
        "final": is_final(run),
        "trigger": run.get("trigger"),
        "trigger_kinds": run.get("trigger_kinds") or ([run["trigger"]] if run.get("trigger") else []),
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "duration_seconds": duration_seconds(run, now),
        "dataset_version": run.get("dataset_version"),
        "model_version": version,
        "tuning_job": run.get("tuning_job"),
        "full": run.get("full"),
        "warm": run.get("warm"),
        "live_version_before": run.get("live_version_before"),
        "live_version": run.get("live_version"),
        "error": run.get("error"),
        "cause": run.get("cause"),
        "gate": gate_of(run, records.get(version) if version else None),
    }


def _records(services: Services) -> dict[str, dict]:
    return {r["version"]: r for r in ModelRegistry(services.store).list()}


def list_runs(services: Services) -> list[dict]:
    records = _records(services)
    return [run_summary(run, records) for run in RunStore(services.store).list()]


def run_detail(services: Services, run_id: str, definition: dict) -> dict:
    """Raises ``UnknownRun`` when there is no such run."""
    runs = RunStore(services.store)
    run = runs.get(run_id)
    events = runs.history(run_id)
    record = None
    if run.get("model_version"):
        try:
            record = ModelRegistry(services.store).get(run["model_version"])
        except Exception:  # noqa: BLE001 — a record not written yet (the run is still training) is normal
            record = None
    summary = run_summary(run, {record["version"]: record} if record else {})
    states = state_views(definition, events, active=not is_final(run), failed=run.get("status") == "failed",
                         started=run.get("status") == "running")
    transitions = taken_transitions(events, states)
    # A long local run loops through its Wait states thousands of times and the page polls this every second or
    # two: keep the answer bounded (the last events, and the documents of each state's last visits).
    for view in states.values():
        for visit in view["visits"][:-MAX_VISIT_DOCUMENTS]:
            visit.pop("input", None)
            visit.pop("output", None)
        view["visit_groups"] = fold_visits(view["visits"])
    shown = events[-MAX_EVENTS:]
    return {**summary, "record": run, "events": shown, "events_total": len(events),
            "events_offset": len(events) - len(shown), "first_event_at": events[0].get("timestamp") if events else None,
            "has_history": bool(events), "states": states, "transitions": transitions,
            "training": training_view(run, states)}


TRAINING_LOOP = ("WaitForTraining", "CheckTraining", "TrainingStatus")


def training_view(run: dict, states: dict[str, dict]) -> dict | None:
    """The training job's progress as CheckTraining last recorded it (``contracts.TRAINING_PROGRESS``): epoch and
    step of the totals, the share done, loss, samples/s, ETA and each finished epoch's validation scores; ``active``
    while the run is in its training loop. None before the job's log shows any progress."""
    progress = run.get(TRAINING_PROGRESS)
    if not progress:
        return None
    step, steps = progress.get("step"), progress.get("steps")
    active = not is_final(run) and any(states.get(name, {}).get("outcome") == "running" for name in TRAINING_LOOP)
    return {**progress, "percent": round(100 * step / steps, 1) if step is not None and steps else None,
            "active": active}


def _foldable(visit: dict) -> bool:
    """A plain round of a loop: finished well, at once (no error, retry or catch)."""
    return (visit.get("status") == "succeeded" and not visit.get("retries") and not visit.get("caught")
            and not visit.get("error") and not visit.get("inferred"))


def fold_visits(visits: list[dict]) -> list[dict]:
    """The state panel's lines: consecutive plain visits of a state (the rounds of a wait loop: WaitForTraining →
    CheckTraining → TrainingStatus → ...) folded into one line; a visit with an error, a retry or a catch, and the
    one running now, each on its own. Each: ``first``/``last`` (0-based indices into ``visits``), ``count``,
    ``entered`` (the first visit's) and ``exited`` (the last one's), ``status``."""
    groups: list[dict] = []
    for index, visit in enumerate(visits):
        last = groups[-1] if groups else None
        if last and _foldable(visit) and _foldable(visits[last["last"]]):
            last.update(last=index, count=last["count"] + 1, exited=visit.get("exited"))
            continue
        groups.append({"first": index, "last": index, "count": 1, "entered": visit.get("entered"),
                       "exited": visit.get("exited"), "status": visit.get("status")})
    return groups


def taken_transitions(events: list[dict], states: dict[str, dict]) -> list[str]:
    """Edges the run took: ``from>to`` between successive state entries, ``from>to#catch`` when ``from``'s error
    was caught; the last one leads to the state the run is in now when the history does not show it yet."""
    counts: dict[str, int] = {}
    sequence: list[tuple[str, bool]] = []
    for event in events:
        name = (event.get("state") or {}).get("name")
        if event.get("type") != "StateEntered" or name not in states:
            continue
        counts[name] = counts.get(name, 0) + 1
        visits = states[name]["visits"]
        visit = visits[counts[name] - 1] if counts[name] <= len(visits) else {}
        sequence.append((name, bool(visit.get("caught"))))
    current = next((v["name"] for v in states.values() if v["visits"] and v["visits"][-1].get("inferred")), None)
    if current:
        sequence.append((current, False))
    pairs = zip(sequence, sequence[1:], strict=False)  # each entry with the one after it
    taken = {f"{a}>{b}{'#catch' if caught else ''}" for (a, caught), (b, _) in pairs}
    return sorted(taken)


# ---------------------------------------------------------------------------------------------- per-state view
def _path_value(document: Any, path: str) -> tuple[bool, Any]:
    """Resolve a simple JSONPath (``$.a.b[0]``) as Choice rules use it; (found, value)."""
    if not path.startswith("$"):
        return False, None
    value = document
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path[1:]):
        if name:
            if not isinstance(value, dict) or name not in value:
                return False, None
            value = value[name]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                return False, None
            value = value[int(index)]
    return True, value


_COMPARE = {
    "StringEquals": lambda v, x: isinstance(v, str) and v == x,
    "NumericEquals": lambda v, x: isinstance(v, int | float) and not isinstance(v, bool) and v == x,
    "NumericLessThan": lambda v, x: isinstance(v, int | float) and not isinstance(v, bool) and v < x,
    "NumericGreaterThan": lambda v, x: isinstance(v, int | float) and not isinstance(v, bool) and v > x,
    "NumericLessThanEquals": lambda v, x: isinstance(v, int | float) and not isinstance(v, bool) and v <= x,
    "NumericGreaterThanEquals": lambda v, x: isinstance(v, int | float) and not isinstance(v, bool) and v >= x,
    "BooleanEquals": lambda v, x: isinstance(v, bool) and v == x,
    "IsNull": lambda v, x: (v is None) == x,
    "IsString": lambda v, x: isinstance(v, str) == x,
    "IsBoolean": lambda v, x: isinstance(v, bool) == x,
}


def choice_matches(rule: dict, document: Any) -> bool:
    if "And" in rule:
        return all(choice_matches(r, document) for r in rule["And"])
    if "Or" in rule:
        return any(choice_matches(r, document) for r in rule["Or"])
    if "Not" in rule:
        return not choice_matches(rule["Not"], document)
    found, value = _path_value(document, rule.get("Variable", ""))
    if "IsPresent" in rule:
        return found == rule["IsPresent"]
    if not found:
        return False
    for operator, test in _COMPARE.items():
        if operator in rule:
            return test(value, rule[operator])
    return False


def next_state(definition: dict, name: str, output: Any, caught_next: str | None = None) -> str | None:
    """The state a run goes to after ``name`` exits with ``output`` (None at the end or when it cannot tell)."""
    if caught_next:
        return caught_next
    state = definition.get("States", {}).get(name) or {}
    if state.get("Type") == "Choice":
        for rule in state.get("Choices", []):
            if choice_matches(rule, output):
                return rule.get("Next")
        return state.get("Default")
    return None if state.get("End") else state.get("Next")


def state_views(definition: dict, events: list[dict], *, active: bool, failed: bool = False,
                started: bool = False) -> dict[str, dict]:
    """Per ASL state: ``outcome`` (one of OUTCOMES) and ``visits`` (entered/exited epoch ms, seconds, input,
    output, error, cause, retries). A state the run is in but whose entry the history does not show yet (local
    runs write the history when a state exits) is inferred from the last exit: ``inferred: true``."""
    states = definition.get("States", {})
    views: dict[str, dict] = {name: {"name": name, "type": s.get("Type"), "outcome": "not_reached", "visits": []}
                              for name, s in states.items()}
    open_visits: dict[str, dict] = {}
    last_exit: tuple[str, Any, str | None, int] | None = None
    for event in events:
        kind, state = event.get("type"), event.get("state") or {}
        name = state.get("name")
        if name not in views:
            continue  # a Map/Parallel inner state, or a definition that changed since the run
        ts = event.get("timestamp")
        if kind == "StateEntered":
            visit = {"entered": ts, "input": state.get("input"), "status": "running", "retries": 0}
            views[name]["visits"].append(visit)
            open_visits[name] = visit
            continue
        visit = open_visits.get(name)
        if visit is None:
            continue
        if kind == "StateFailed":
            visit["error"], visit["cause"] = event.get("Error"), event.get("Cause")
            if state.get("type") == "Fail" or views[name]["type"] == "Fail":
                visit.update(status="failed", exited=ts)
                open_visits.pop(name)
        elif kind == "StateRetried":
            visit["retries"] += 1
            visit.setdefault("retried_errors", []).append({"error": visit.pop("error", None),
                                                           "cause": visit.pop("cause", None), "at": ts})
        elif kind == "StateCaught":
            visit["caught"] = True
            visit["caught_next"] = ((event.get("catch") or {}).get("catcher") or {}).get("Next")
        elif kind == "StateExited":
            visit.update(exited=ts, output=state.get("output"),
                         status="failed" if visit.get("caught") else "succeeded")
            open_visits.pop(name)
            last_exit = (name, state.get("output"), visit.get("caught_next"), ts)
    for visit in open_visits.values():
        if not active:
            visit["status"] = "failed" if failed or visit.get("error") else "succeeded"
    if active and not open_visits:
        start = definition.get("StartAt")
        target, since = None, None
        if last_exit:
            target = next_state(definition, last_exit[0], last_exit[1], last_exit[2])
            since = last_exit[3]
        elif started and not events:
            target = start
        if target in views:
            visit = {"entered": since, "status": "running", "retries": 0, "inferred": True}
            if last_exit:
                visit["input"] = last_exit[1]  # a state's input is the output of the state before it
            views[target]["visits"].append(visit)
    for view in views.values():
        for visit in view["visits"]:
            if visit.get("entered") is not None and visit.get("exited") is not None:
                visit["seconds"] = round((visit["exited"] - visit["entered"]) / 1000, 3)
        if view["visits"]:
            view["outcome"] = view["visits"][-1]["status"]
    return views


# ------------------------------------------------------------------------------------------------------ models
def models_view(services: Services) -> dict:
    registry = ModelRegistry(services.store)
    live = registry.live()
    models = []
    for record in reversed(registry.list()):  # newest first
        gate = record.get("gate") or {}
        models.append({
            "version": record["version"],
            "status": record.get("status"),
            "live": bool(live and live.get("version") == record["version"]),
            "created_at": record.get("created_at"),
            "promoted_at": record.get("promoted_at"),
            "retired_at": record.get("retired_at"),
            "run_id": record.get("run_id"),
            "dataset_version": record.get("dataset_version"),
            "warm": record.get("warm"),
            "labels": len(record.get("labels") or []),
            "metrics": {k: (record.get("metrics") or {}).get(k) for k in ("accuracy", "macro_f1")},
            "holdout": _scores(gate.get("candidate")),
            "can_roll_back": bool(record.get("model_uri")) and not (live and live.get("version") == record["version"]),
            "source": record.get("source"),
        })
    return {"live": live, "models": models}


# ---------------------------------------------------------------------------------------------------- feedback
class FeedbackCounter:
    """Unmerged feedback per label. Feedback objects are never rewritten, so each item's label is read once and
    remembered by key: polling the page costs one listing, not one read per item."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}

    def counts(self, services: Services) -> dict:
        store = services.store
        current = current_dataset(store)
        version = current["version"] if current else None
        seen = seen_ids(store, version) if version else set()
        per_label: dict[str, int] = {}
        unreadable = 0
        for key in feedback_keys(store):
            if layout.feedback_item_id(key) in seen:
                continue
            label = self._labels.get(key)
            if label is None:
                try:
                    label = str(store.get_json(key)["label"])
                except (ObjectNotFound, ValueError, KeyError, TypeError, json.JSONDecodeError):
                    unreadable += 1  # the merge reports it as invalid; count it, do not hide it
                    continue
                self._labels[key] = label
            per_label[label] = per_label.get(label, 0) + 1
        merged_by = next((r for r in RunStore(store).list() if version and r.get("dataset_version") == version), None)
        return {
            "dataset_version": version,
            "merged_by_run": merged_by.get("run_id") if merged_by else None,
            "merged_at": merged_by.get("started_at") if merged_by else None,
            "total": sum(per_label.values()) + unreadable,
            "unreadable": unreadable,
            "threshold": services.settings.feedback_threshold,
            "labels": [{"label": k, "count": v} for k, v in sorted(per_label.items(), key=lambda kv: (-kv[1], kv[0]))],
        }

