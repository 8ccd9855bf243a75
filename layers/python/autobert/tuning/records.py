"""Tuning results in the bucket: study records (``tuning/<study_id>/study.json``) and the saved defaults
(``tuning/defaults.json``) that the next training runs start from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from autobert import layout
from autobert.ports import ObjectNotFound, ObjectStore
from autobert.tuning.errors import TuningError


def save_study(store: ObjectStore, record: dict[str, Any]) -> None:
    store.put_json(layout.tuning_study(record["study_id"]), record)


def study_ids(store: ObjectStore) -> list[str]:
    """Every saved study id, sorted by name."""
    suffix = "/study.json"
    return sorted(key[len(layout.TUNING):-len(suffix)] for key in store.list_keys(layout.TUNING)
                  if key.endswith(suffix))


def load_study(store: ObjectStore, study_id: str | None = None) -> dict[str, Any]:
    """A study record; the newest one (by ``created_at``) when ``study_id`` is None."""
    if study_id is None:
        records = [store.get_json(layout.tuning_study(i)) for i in study_ids(store)]
        if not records:
            raise TuningError("no tuning study found: run `autobert tune` first")
        return max(records, key=lambda r: (r.get("created_at") or "", r["study_id"]))
    try:
        return store.get_json(layout.tuning_study(study_id))
    except ObjectNotFound:
        raise TuningError(f"no tuning study {study_id!r} (known: {', '.join(study_ids(store)) or 'none'})") from None


def apply_defaults(store: ObjectStore, record: dict[str, Any], trial_number: int | None = None) -> dict[str, Any]:
    """Save one trial's parameters (the study's best by default) as the defaults of the next training runs."""
    if trial_number is None:
        best = record.get("best")
        if not best:
            raise TuningError(f"study {record['study_id']} has no completed trial: nothing to apply")
        trial_number = best["number"]
    trial = next((t for t in record.get("trials", []) if t["number"] == trial_number), None)
    if trial is None:
        raise TuningError(f"study {record['study_id']} has no trial {trial_number}")
    if trial["state"] != "COMPLETE":
        raise TuningError(f"trial {trial_number} of study {record['study_id']} is {trial['state']}, not COMPLETE: "
                          "only a completed trial's parameters can become defaults")
    defaults = {
        "hyperparameters": dict(trial["params"]),
        "source": {"backend": record.get("backend", "local"), "study_id": record["study_id"],
                   "trial": trial_number, "objective": record.get("objective"), "value": trial["value"]},
        "applied_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    store.put_json(layout.TUNING_DEFAULTS, defaults)
    return defaults


def load_defaults_record(store: ObjectStore) -> dict[str, Any] | None:
    """The whole defaults record (parameters and which study/trial they came from), or None if none was applied."""
    try:
        return store.get_json(layout.TUNING_DEFAULTS)
    except ObjectNotFound:
        return None


def load_defaults(store: ObjectStore) -> dict[str, str]:
    """Tuned training hyperparameters (train.py option names without dashes -> string values) saved by
    ``autobert tune apply``; empty when none were applied. The retraining workflow merges these into the
    hyperparameters of the next training runs (and records them with the model version)."""
    record = load_defaults_record(store)
    if not record:
        return {}
    return {str(k): str(v) for k, v in record.get("hyperparameters", {}).items()}


def clear_defaults(store: ObjectStore) -> bool:
    """Forget the tuned defaults (the store has no delete: an empty record means none). True if some were set."""
    had = bool(load_defaults(store))
    store.put_json(layout.TUNING_DEFAULTS, {"hyperparameters": {}, "source": None,
                                            "applied_at": datetime.now(UTC).isoformat(timespec="seconds")})
    return had
