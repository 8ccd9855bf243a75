"""Feedback: a user's correct label for a text, stored durably, once, as its own object.

    feedback/date=YYYY-MM-DD/<id>.json   {"id", "text", "label", "predicted_label", "received_at", "model_version"?}
    feedback/_ids/<id>.json              idempotency marker {"id", "key", "fingerprint"}

The id is the client's (``id``) or, without one, derived from text + label, so a retried or repeated post is stored
once. Order of writes: the item first, then the marker, each create-if-absent. An acknowledged item therefore always
exists; a crash between the two writes leaves an item without a marker, and the retry (same id, same day) finds the
item already there and just adds the marker.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from autobert import layout
from autobert.api_models import FeedbackFields, FeedbackItem, RequestRejected, validate
from autobert.errors import RequestRefused
from autobert.ports import ObjectNotFound, ObjectStore


class FeedbackError(RequestRefused):
    """Feedback the API refuses; ``status`` is the HTTP answer (a field that fails ``FeedbackFields``: 422)."""

    status = 422


class UnknownLabel(FeedbackError):
    status = 422


class IdConflict(FeedbackError):
    status = 409


def fingerprint(text: str, label: str) -> str:
    return hashlib.sha256(f"{label}\x00{text}".encode()).hexdigest()


def default_feedback_id(text: str, label: str) -> str:
    """The id of feedback posted without one: the same text + label always gets the same id."""
    return fingerprint(text, label)[:32]


@dataclass
class Stored:
    id: str
    key: str
    duplicate: bool


class LiveLabels:
    """The labels of the live model, read from the store and cached for ``ttl`` seconds (cheap per request).

    Looked up in order: ``models/live.json`` → its ``labels``; the registry record ``models/<v>/record.json`` →
    ``labels``; ``models/<v>/model/labels.json`` (the local model folder layout); ``<model_uri>/labels.json`` when the
    model URI is a local folder. None when there is no live model or its labels cannot be found.
    """

    def __init__(self, store: ObjectStore, ttl: float = 60.0):
        self.store = store
        self.ttl = ttl
        self._cached: tuple[float, dict | None] | None = None
        self._lock = threading.Lock()

    def get(self) -> dict | None:
        """``{"version": ..., "labels": [...] | None}`` or None without a live model."""
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.ttl:
                return self._cached[1]
        value = self._read()
        with self._lock:
            self._cached = (time.monotonic(), value)
        return value

    def _read(self) -> dict | None:
        try:
            live = self.store.get_json(layout.LIVE_MODEL)
        except ObjectNotFound:
            return None
        version = live.get("version")
        labels = live.get("labels")
        if labels is None and version:
            labels = self._labels_from(layout.model_record(version), "labels")
        if labels is None and version:
            labels = self._labels_from(f"{layout.model_prefix(version)}model/labels.json", "labels")
        uri = live.get("model_uri")
        if labels is None and uri and "://" not in uri and (Path(uri) / "labels.json").is_file():
            try:
                labels = json.loads((Path(uri) / "labels.json").read_text())["labels"]
            except (OSError, ValueError, KeyError):
                labels = None
        return {"version": version, "labels": list(labels) if isinstance(labels, list) else None}

    def _labels_from(self, key: str, field: str) -> list | None:
        try:
            value = self.store.get_json(key).get(field)
        except (ObjectNotFound, ValueError, AttributeError):
            return None
        return value if isinstance(value, list) else None


class FeedbackStore:
    def __init__(self, store: ObjectStore, live_labels: LiveLabels | None = None, *, allow_new_labels: bool = True):
        self.store = store
        self.live_labels = live_labels or LiveLabels(store)
        self.allow_new_labels = allow_new_labels

    def submit(self, text: str, label: str, *, predicted_label: str | None = None, item_id: str | None = None,
               now: datetime | None = None) -> Stored:
        """Validate (``FeedbackFields``, the API's rules) and store; returns only once the item is durably stored (or
        was already)."""
        try:
            validate(FeedbackFields, {"text": text, "label": label, "predicted_label": predicted_label, "id": item_id})
        except RequestRejected as exc:
            raise FeedbackError(exc.message) from None
        live = self.live_labels.get()
        known = live.get("labels") if live else None
        if not self.allow_new_labels and known is not None and label not in known:
            raise UnknownLabel(f"label {label!r} is not one the live model knows, and new labels are not accepted "
                               f"(known: {', '.join(known[:20])}{', ...' if len(known) > 20 else ''})")
        item_id = item_id or default_feedback_id(text, label)
        print_ = fingerprint(text, label)
        marker_key = layout.feedback_marker(item_id)
        try:
            marker = self.store.get_json(marker_key)
        except ObjectNotFound:
            marker = None
        if marker is not None:
            return self._duplicate(item_id, marker, print_)
        received = now or datetime.now(UTC)
        item = FeedbackItem(id=item_id, text=text, label=label, predicted_label=predicted_label,
                            received_at=received.isoformat(timespec="milliseconds"),
                            model_version=live.get("version") if live else None)
        key = layout.feedback_key(item_id, received.date())
        if not self.store.put_json(key, item.to_json(), if_absent=True):
            existing = self.store.get_json(key)  # same id, same day: a retry, or a conflicting reuse of the id
            if fingerprint(existing["text"], existing["label"]) != print_:
                raise IdConflict(f"id {item_id!r} was already used for different feedback")
        created = self.store.put_json(marker_key, {"id": item_id, "key": key, "fingerprint": print_}, if_absent=True)
        if not created:  # a concurrent post of the same id got there first
            return self._duplicate(item_id, self.store.get_json(marker_key), print_)
        return Stored(item_id, key, duplicate=False)

    @staticmethod
    def _duplicate(item_id: str, marker: dict, print_: str) -> Stored:
        if marker.get("fingerprint") not in (None, print_):
            raise IdConflict(f"id {item_id!r} was already used for different feedback")
        return Stored(item_id, marker["key"], duplicate=True)
