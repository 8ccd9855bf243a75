"""Merging feedback into the dataset: every merge writes a NEW dataset version; feedback objects are only read.

Determinism: the version id is a hash of the parent version and the sorted ids of the feedback items the merge saw,
so merging the same feedback into the same parent twice gives the same version (and writes nothing new). Feedback
stored while a merge runs is not in its listing and therefore not in ``merged.json``: the next merge picks it up.

A version's ``merged.json`` lists every feedback id it has seen (merged, duplicate, superseded or invalid), so
nothing is counted or merged twice and the feedback-count trigger counts only what is new.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from autobert import layout
from autobert.api_models import FeedbackItem, RequestRejected, check
from autobert.data import DATASET_FILE, LABELS_FILE, MANIFEST_FILE
from autobert.errors import DataError
from autobert.ports import ObjectNotFound, ObjectStore
from autobert.workflow.datasets import current_dataset, feedback_keys, seen_ids
from autobert.workflow.errors import NoDatasetError

HOLDOUT_FILE = "holdout.parquet"
FEEDBACK_ROW_PREFIX = "fb/"


# ---------------------------------------------------------------------------------------------------------- helpers
def norm_text(text: str) -> str:
    """Duplicate key: whitespace-insensitive, case-sensitive (case can carry meaning)."""
    return " ".join(str(text).split())


def read_parquet(store: ObjectStore, key: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(store.get_bytes(key)))
    except ObjectNotFound:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise DataError(f"{key}: unreadable Parquet object ({exc})") from exc


def write_parquet(store: ObjectStore, key: str, df: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    df.reset_index(drop=True).to_parquet(buffer, index=False)
    store.put_bytes(key, buffer.getvalue())


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def frame_digest(df: pd.DataFrame) -> str:
    rows = sorted(f"{i}\t{lbl}\t{hashlib.sha1(t.encode()).hexdigest()}"
                  for i, t, lbl in zip(df["id"], df["text"], df["label"], strict=True))
    return _digest(*rows)


def read_version(store: ObjectStore, version: str) -> tuple[pd.DataFrame, list[str]]:
    prefix = layout.dataset_prefix(version)
    df = read_parquet(store, prefix + DATASET_FILE)
    labels = store.get_json(prefix + LABELS_FILE)["labels"]
    return df, labels


def _write_version(store: ObjectStore, version: str, df: pd.DataFrame, labels: list[str], manifest: dict,
                   seen: list[str]) -> None:
    prefix = layout.dataset_prefix(version)
    df = df.copy()
    df["label_id"] = df["label"].map({lbl: i for i, lbl in enumerate(labels)}).astype("int64")
    write_parquet(store, prefix + DATASET_FILE, df[["id", "text", "label", "label_id"]])
    store.put_json(prefix + LABELS_FILE, {"labels": list(labels)})
    store.put_json(layout.dataset_merged_ids(version), {"seen": sorted(seen)})
    counts = {str(k): int(v) for k, v in df["label"].value_counts().sort_index().items()}
    # The manifest goes last among the version's objects: a version with a manifest is complete.
    store.put_json(prefix + MANIFEST_FILE, {"version": version, "documents": len(df), "classes": len(labels),
                                            "counts_per_label": counts, **manifest})


# ---------------------------------------------------------------------------------------------- the first dataset
def stratified_holdout(df: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``fraction`` of each label off (at least one row for labels with 2+ rows), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for _, group in df.groupby("label", sort=True):
        idx = group.index.to_numpy().copy()
        rng.shuffle(idx)
        n = max(1, int(round(len(idx) * fraction))) if len(idx) >= 2 else 0
        held.extend(idx[:n])
    mask = df.index.isin(held)
    return df[~mask].reset_index(drop=True), df[mask].reset_index(drop=True)


def import_initial_dataset(store: ObjectStore, df: pd.DataFrame, labels: list[str], *, holdout_fraction: float,
                           seed: int, source: str = "") -> dict:
    """Split the fixed holdout off the initial dataset once and write both as version 0. Idempotent: returns the
    existing current dataset if there is one."""
    existing = current_dataset(store)
    if existing:
        return existing
    missing = {"id", "text", "label"} - set(df.columns)
    if missing:
        raise DataError(f"initial dataset lacks column(s) {sorted(missing)}")
    df = df[["id", "text", "label"]].astype(str)
    train, holdout = stratified_holdout(df, holdout_fraction, seed)
    holdout_version = "h-" + frame_digest(holdout)
    version = "d-" + frame_digest(train)
    hprefix = layout.holdout_prefix(holdout_version)
    write_parquet(store, hprefix + HOLDOUT_FILE, holdout)
    store.put_json(hprefix + LABELS_FILE, {"labels": list(labels)})
    store.put_json(hprefix + MANIFEST_FILE, {
        "version": holdout_version, "documents": len(holdout), "fraction": holdout_fraction, "seed": seed,
        "counts_per_label": {str(k): int(v) for k, v in holdout["label"].value_counts().sort_index().items()}})
    _write_version(store, version, train, labels, {"parent": None, "holdout": holdout_version, "source": source,
                                                   "feedback": {"merged": [], "duplicates": [], "invalid": [],
                                                                "relabelled": [], "superseded": []}}, [])
    current = {"version": version, "holdout": holdout_version}
    store.put_json(layout.CURRENT_DATASET, current)
    return current


# ------------------------------------------------------------------------------------------------------ the merge
@dataclass
class MergeResult:
    dataset_version: str
    parent_version: str
    holdout_version: str
    new_version: bool
    merged: list[str] = field(default_factory=list)
    relabelled: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    invalid: list[dict] = field(default_factory=list)
    new_labels: list[str] = field(default_factory=list)
    counts_per_label: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        out = asdict(self)
        for name in ("merged", "relabelled", "duplicates", "superseded", "invalid"):
            out[name] = len(out[name])
        return out


def validate_item(key: str, raw: bytes) -> tuple[dict | None, str | None]:
    """Return (item, None) or (None, reason): the stored object checked by ``FeedbackItem``, the API's own rules."""
    try:
        item = check(FeedbackItem, raw)
    except RequestRejected as exc:
        return None, exc.message
    if item.id != layout.feedback_item_id(key):
        return None, "id does not match the object key"
    return {"id": item.id, "text": item.text.strip(), "label": item.label, "received_at": item.received_at or ""}, None


def merge_feedback(store: ObjectStore) -> MergeResult:
    cur = current_dataset(store)
    if cur is None:
        raise NoDatasetError("no current dataset: import one first (the first run does it from `autobert prepare`)")
    parent = cur["version"]
    seen = seen_ids(store, parent)
    # The listing is the merge's snapshot: anything stored after it is left for the next merge.
    pending = [k for k in feedback_keys(store) if layout.feedback_item_id(k) not in seen]
    if not pending:
        return MergeResult(parent, parent, cur["holdout"], False)
    considered = sorted(layout.feedback_item_id(k) for k in pending)
    version = "d-" + _digest(parent, *considered)
    result = MergeResult(version, parent, cur["holdout"], True)

    items, invalid = [], []
    for key in pending:
        item, reason = validate_item(key, store.get_bytes(key))
        if item is None:
            invalid.append({"id": layout.feedback_item_id(key), "reason": reason})
        else:
            items.append(item)
    # Within the batch the latest word on a text wins (a user correcting a correction); exact repeats are dups.
    items.sort(key=lambda it: (it["received_at"], it["id"]))
    latest: dict[str, dict] = {}
    duplicates, superseded = [], []
    for item in items:
        key = norm_text(item["text"])
        prev = latest.get(key)
        if prev is not None:
            (duplicates if prev["label"] == item["label"] else superseded).append(prev["id"])
        latest[key] = item

    df, labels = read_version(store, parent)
    df = df[["id", "text", "label"]].copy()
    index = {norm_text(t): i for i, t in zip(df.index, df["text"], strict=True)}
    new_rows, relabelled, merged = [], [], []
    for key, item in sorted(latest.items(), key=lambda kv: kv[1]["id"]):
        row = index.get(key)
        if row is None:
            new_rows.append({"id": FEEDBACK_ROW_PREFIX + item["id"], "text": item["text"], "label": item["label"]})
            merged.append(item["id"])
        elif df.at[row, "label"] == item["label"]:
            duplicates.append(item["id"])
        else:
            # The dataset said otherwise; the human correction is newer, so the new version carries it.
            df.at[row, "label"] = item["label"]
            relabelled.append(item["id"])
    if new_rows:
        df = pd.concat([df, pd.DataFrame(new_rows)], ignore_index=True)
    new_labels = sorted(set(df["label"]) - set(labels))
    labels = list(labels) + new_labels
    result.merged, result.relabelled = sorted(merged), sorted(relabelled)
    result.duplicates, result.superseded = sorted(duplicates), sorted(superseded)
    result.invalid, result.new_labels = sorted(invalid, key=lambda x: x["id"]), new_labels
    added = pd.DataFrame(new_rows) if new_rows else pd.DataFrame(columns=["label"])
    result.counts_per_label = {str(k): int(v) for k, v in added["label"].value_counts().sort_index().items()}

    if not store.exists(layout.dataset_prefix(version) + MANIFEST_FILE):
        manifest = {"parent": parent, "holdout": cur["holdout"], "new_labels": new_labels,
                    "feedback": {"merged": result.merged, "relabelled": result.relabelled,
                                 "duplicates": result.duplicates, "superseded": result.superseded,
                                 "invalid": result.invalid},
                    "feedback_counts_per_label": result.counts_per_label}
        _write_version(store, version, df, labels, manifest, sorted(seen | set(considered)))
    else:
        result.new_version = False  # the same merge ran before (a retried step): nothing to write
    # The pointer moves last: readers see either the old or the complete new version.
    store.put_json(layout.CURRENT_DATASET, {"version": version, "holdout": cur["holdout"]})
    return result


# -------------------------------------------------------------------------------------------- warm-start trainset
def _sample_per_class(df: pd.DataFrame, n: int | dict[str, int], seed: int) -> pd.DataFrame:
    """Up to ``n`` rows of each label (``n`` a count per label, 0 for a label it does not name), in id order."""
    if df.empty:
        return df.iloc[0:0]
    shuffled = df.sample(frac=1.0, random_state=seed)
    rank = shuffled.groupby("label", sort=True).cumcount()
    limit = shuffled["label"].map(n).fillna(0) if isinstance(n, dict) else pd.Series(n, index=shuffled.index)
    return shuffled[rank < limit].sort_values("id")


def balanced_replay_counts(changed: pd.DataFrame, rest_labels: set[str], known_labels: set[str], *,
                           replay_per_class: int, feedback_repeat: int) -> dict[str, int]:
    """Replayed documents per label, topped up so that every label the base model knew has the same number of rows
    in the warm trainset: ``max(replay_per_class, the largest known label's feedback copies)``, its own feedback
    copies included. Without it the corrected labels are over-represented (10 corrections of a label x 3 copies +
    40 replayed = 70 rows against 40 for the rest) and the model learns a prior that favours them: on the feedback
    benchmark a class with 10 corrections went from 3 to 9 false positives on the holdout and failed the gate. A
    label new to the model (no replay exists) keeps all its feedback copies."""
    copies = (changed["label"].value_counts() * feedback_repeat).to_dict()
    known_copies = [c for label, c in copies.items() if label in known_labels]
    target = max([replay_per_class, *known_copies]) if replay_per_class > 0 else 0
    return {label: max(0, target - copies.get(label, 0)) for label in sorted(rest_labels)}


def build_warm_trainset(store: ObjectStore, version: str, base_version: str, *, replay_per_class: int,
                        validation_per_class: int, feedback_repeat: int, seed: int) -> dict:
    """Training channels for a warm start from the model trained on ``base_version``: what changed since (new
    feedback rows and relabelled rows, repeated ``feedback_repeat`` times) plus a per-class replay sample of the
    rest that balances the labels the base knew (``balanced_replay_counts``); a disjoint per-class validation
    sample. Deterministic for (version, base, seed, sizes)."""
    prefix = layout.trainset_prefix(version, base_version)
    train_key, val_key = prefix + "train/train.parquet", prefix + "validation/validation.parquet"
    channels: dict[str, str | None] = {"train": prefix + "train/", "validation": prefix + "validation/"}
    if store.exists(train_key):
        return channels if store.exists(val_key) else {**channels, "validation": None}
    df, _ = read_version(store, version)
    df = df[["id", "text", "label"]]
    try:
        base, base_labels = read_version(store, base_version)
        known = set(zip(base["id"], base["label"], strict=True))
    except ObjectNotFound:
        known, base_labels = set(), []
    changed_mask = np.array([(i, lbl) not in known for i, lbl in zip(df["id"], df["label"], strict=True)],
                            dtype=bool)
    changed, rest = df[changed_mask], df[~changed_mask]
    counts = balanced_replay_counts(changed, set(rest["label"]), set(base_labels) or set(rest["label"]),
                                    replay_per_class=replay_per_class, feedback_repeat=feedback_repeat)
    replay = _sample_per_class(rest, counts, seed)
    remaining = rest[~rest["id"].isin(set(replay["id"]))]
    train = pd.concat([replay, *([changed] * feedback_repeat)], ignore_index=True)
    validation = _sample_per_class(remaining[remaining["label"].isin(set(train["label"]))], validation_per_class,
                                   seed + 1)
    if train.empty:
        raise DataError(f"warm start from {base_version}: nothing to train on")
    if validation.empty:
        channels["validation"] = None  # train.py then splits its own validation off the training channel
    else:
        write_parquet(store, val_key, validation)
    write_parquet(store, train_key, train)
    return channels
