"""The model registry: one ``models/<version>/record.json`` per trained model and ``models/live.json``.

Status life cycle: ``candidate`` (passed the gate) → ``live`` (serving) → ``retired`` (replaced); or ``rejected``
(the gate said no). A rollback puts a retired (or candidate) version back live.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, Literal

from autobert import layout
from autobert.ports import ObjectNotFound, ObjectStore
from autobert.workflow.errors import UnknownModelVersion

Status = Literal["candidate", "live", "rejected", "retired"]


def now_iso(now: datetime | None = None, timespec: str = "seconds") -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec=timespec)


class ModelRegistry:
    def __init__(self, store: ObjectStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store = store
        self.clock = clock

    def get(self, version: str) -> dict[str, Any]:
        try:
            return self.store.get_json(layout.model_record(version))
        except ObjectNotFound as exc:
            raise UnknownModelVersion(f"no model version {version!r} in the registry") from exc

    def put(self, record: dict[str, Any]) -> None:
        self.store.put_json(layout.model_record(record["version"]), record)

    def list(self) -> list[dict[str, Any]]:
        keys = [k for k in self.store.list_keys(layout.MODELS) if k.endswith("/record.json")]
        records = [self.store.get_json(k) for k in keys]
        # created_at has microseconds: records made in one second keep their order
        return sorted(records, key=lambda r: (r.get("created_at") or "", r["version"]))

    def live(self) -> dict[str, Any] | None:
        """``{"version", "model_uri"}`` of the model serving now, or None before the first model."""
        try:
            return self.store.get_json(layout.LIVE_MODEL)
        except ObjectNotFound:
            return None

    def live_record(self) -> dict[str, Any] | None:
        live = self.live()
        return self.get(live["version"]) if live else None

    def register(self, version: str, *, status: Status, **fields: Any) -> dict[str, Any]:
        record = {"version": version, "status": status, "created_at": now_iso(self.clock(), "microseconds"),
                  **fields}
        self.put(record)
        return record

    def set_status(self, version: str, status: Status, **fields: Any) -> dict[str, Any]:
        record = self.get(version)
        record.update(fields, status=status)
        record.setdefault("history", []).append({"status": status, "at": now_iso()})
        self.put(record)
        return record

    def mark_live(self, version: str) -> dict[str, Any]:
        """Record that ``version`` now serves: it becomes live, the previous live version retired. Called only once
        the endpoint serves it (so live.json never points at a model that is not serving)."""
        record = self.get(version)
        previous = self.live()
        self.store.put_json(layout.LIVE_MODEL, {"version": version, "model_uri": record["model_uri"],
                                                "since": now_iso()})
        if previous and previous["version"] != version:
            with suppress(UnknownModelVersion):  # a live model imported without a record: nothing to retire
                self.set_status(previous["version"], "retired", retired_at=now_iso())
        return self.set_status(version, "live", promoted_at=now_iso())
