"""What the bucket says about the dataset and the feedback, read without pandas (the run starter and the console
need it; the merge itself, with pandas, is ``autobert.workflow.merge``)."""

from __future__ import annotations

from autobert import layout
from autobert.ports import ObjectNotFound, ObjectStore


def current_dataset(store: ObjectStore) -> dict | None:
    """``{"version", "holdout"}`` of the dataset training uses now, or None before the first import."""
    try:
        return store.get_json(layout.CURRENT_DATASET)
    except ObjectNotFound:
        return None


def seen_ids(store: ObjectStore, version: str) -> set[str]:
    try:
        return set(store.get_json(layout.dataset_merged_ids(version))["seen"])
    except ObjectNotFound:
        return set()


def feedback_keys(store: ObjectStore) -> list[str]:
    return [k for k in store.list_keys(layout.FEEDBACK)
            if k.startswith(layout.FEEDBACK + "date=") and k.endswith(".json")]


def unmerged_feedback_count(store: ObjectStore) -> int:
    cur = current_dataset(store)
    seen = seen_ids(store, cur["version"]) if cur else set()
    return sum(1 for k in feedback_keys(store) if layout.feedback_item_id(k) not in seen)
