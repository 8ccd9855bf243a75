"""Merging feedback into new dataset versions (in-memory bucket: the logic, not the storage)."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from autobert import layout
from autobert.ports import ObjectNotFound, ObjectStore
from autobert.workflow import datasets
from autobert.workflow import merge as m
from autobert.workflow.errors import NoDatasetError


class MemoryStore(ObjectStore):
    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.writes: list[str] = []

    def put_bytes(self, key, data, *, if_absent=False):
        if if_absent and key in self.objects:
            return False
        self.objects[key] = bytes(data)
        self.writes.append(key)
        return True

    def get_bytes(self, key):
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectNotFound(key) from None

    def exists(self, key):
        return key in self.objects

    def list_keys(self, prefix):
        return sorted(k for k in self.objects if k.startswith(prefix))

    def uri(self, key):
        return f"mem://{key}"


def initial_frame() -> pd.DataFrame:
    rows = [(f"{lbl}/{i}", f"document {i} about {lbl}", lbl) for lbl in ("autos", "space") for i in range(20)]
    return pd.DataFrame(rows, columns=["id", "text", "label"])


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    m.import_initial_dataset(store, initial_frame(), ["autos", "space"], holdout_fraction=0.2, seed=1)
    return store


def add_feedback(store: ObjectStore, item_id: str, text: str, label: str, at: str = "2026-11-25T10:00:00+00:00",
                 **extra) -> str:
    key = layout.feedback_key(item_id, date(2026, 11, 25))
    store.put_json(key, {"id": item_id, "text": text, "label": label, "predicted_label": "autos", "received_at": at,
                         **extra})
    return key


def dataset(store: ObjectStore, version: str) -> pd.DataFrame:
    return m.read_version(store, version)[0]


def test_the_initial_import_splits_a_stratified_holdout_that_the_dataset_does_not_contain(store):
    current = datasets.current_dataset(store)
    holdout = m.read_parquet(store, layout.holdout_prefix(current["holdout"]) + m.HOLDOUT_FILE)
    train = dataset(store, current["version"])
    assert holdout["label"].value_counts().to_dict() == {"autos": 4, "space": 4}
    assert len(train) == 32
    assert not set(holdout["id"]) & set(train["id"])


def test_a_merge_writes_a_new_version_with_a_manifest_and_moves_the_pointer(store):
    parent = datasets.current_dataset(store)["version"]
    add_feedback(store, "f1", "a rocket to the moon", "space")
    add_feedback(store, "f2", "a brand new topic", "cooking")
    result = m.merge_feedback(store)
    assert result.new_version and result.dataset_version != parent
    assert datasets.current_dataset(store)["version"] == result.dataset_version
    manifest = store.get_json(layout.dataset_prefix(result.dataset_version) + "manifest.json")
    assert manifest["parent"] == parent
    assert manifest["feedback"]["merged"] == ["f1", "f2"]
    assert manifest["feedback_counts_per_label"] == {"cooking": 1, "space": 1}
    assert manifest["new_labels"] == ["cooking"]
    labels = store.get_json(layout.dataset_prefix(result.dataset_version) + "labels.json")["labels"]
    assert labels == ["autos", "space", "cooking"]  # old label ids unchanged, new ones appended
    df = dataset(store, result.dataset_version)
    assert len(df) == 34 and "fb/f2" in set(df["id"])
    assert len(dataset(store, parent)) == 32  # the parent version is untouched


def test_the_same_feedback_on_the_same_parent_gives_the_same_version(store):
    add_feedback(store, "f1", "a rocket to the moon", "space")
    snapshot = dict(store.objects)
    first = m.merge_feedback(store)
    other = MemoryStore()
    other.objects = snapshot
    second = m.merge_feedback(other)
    assert first.dataset_version == second.dataset_version
    assert other.objects[layout.dataset_prefix(first.dataset_version) + "dataset.parquet"] == \
        store.objects[layout.dataset_prefix(first.dataset_version) + "dataset.parquet"]


def test_merging_again_without_new_feedback_changes_nothing(store):
    add_feedback(store, "f1", "a rocket to the moon", "space")
    first = m.merge_feedback(store)
    writes = len(store.writes)
    again = m.merge_feedback(store)
    assert not again.new_version and again.dataset_version == first.dataset_version
    assert len(store.writes) == writes


def test_feedback_is_never_rewritten_or_deleted(store):
    key = add_feedback(store, "f1", "a rocket to the moon", "space")
    before, writes = store.objects[key], len(store.writes)
    m.merge_feedback(store)
    assert store.objects[key] == before
    assert not [k for k in store.writes[writes:] if k.startswith(layout.FEEDBACK)]


def test_feedback_stored_after_the_listing_is_merged_by_the_next_run(store, monkeypatch):
    add_feedback(store, "f1", "a rocket to the moon", "space")
    real_read = m.read_version

    def read_and_receive_more(s, version):
        # Feedback arrives while the merge is running (after it listed the feedback objects).
        add_feedback(store, "late", "launch window for the shuttle", "space")
        monkeypatch.setattr(m, "read_version", real_read)
        return real_read(s, version)

    monkeypatch.setattr(m, "read_version", read_and_receive_more)
    first = m.merge_feedback(store)
    assert first.merged == ["f1"]
    assert datasets.unmerged_feedback_count(store) == 1
    second = m.merge_feedback(store)
    assert second.merged == ["late"] and second.parent_version == first.dataset_version
    assert datasets.unmerged_feedback_count(store) == 0


def test_duplicates_are_dropped_within_the_batch_and_against_the_dataset(store):
    train = dataset(store, datasets.current_dataset(store)["version"])
    existing = train.iloc[0]
    add_feedback(store, "same-as-dataset", existing["text"], existing["label"])
    add_feedback(store, "a", "orbit  insertion burn", "space", at="2026-11-25T10:00:00+00:00")
    add_feedback(store, "b", "orbit insertion burn", "space", at="2026-11-25T10:01:00+00:00")
    result = m.merge_feedback(store)
    assert result.merged == ["b"]
    assert result.duplicates == ["a", "same-as-dataset"]


def test_a_later_correction_of_the_same_text_wins(store):
    add_feedback(store, "first", "the engine of my car", "space", at="2026-11-25T10:00:00+00:00")
    add_feedback(store, "second", "the engine of my car", "autos", at="2026-11-25T10:05:00+00:00")
    result = m.merge_feedback(store)
    assert result.merged == ["second"] and result.superseded == ["first"]
    df = dataset(store, result.dataset_version)
    assert df.loc[df["text"] == "the engine of my car", "label"].tolist() == ["autos"]


def test_feedback_contradicting_a_dataset_row_relabels_it_in_the_new_version(store):
    parent = datasets.current_dataset(store)["version"]
    row = dataset(store, parent).iloc[0]
    other = "space" if row["label"] == "autos" else "autos"
    add_feedback(store, "fix", row["text"], other)
    result = m.merge_feedback(store)
    assert result.relabelled == ["fix"]
    df = dataset(store, result.dataset_version)
    assert df.loc[df["id"] == row["id"], "label"].item() == other
    assert dataset(store, parent).loc[lambda d: d["id"] == row["id"], "label"].item() == row["label"]


def test_invalid_feedback_is_recorded_not_merged_and_not_counted_again(store):
    add_feedback(store, "empty", "   ", "space")
    store.put_bytes(layout.feedback_key("broken", date(2026, 11, 25)), b"{not json")
    add_feedback(store, "ok", "a comet", "space")
    result = m.merge_feedback(store)
    assert result.merged == ["ok"]
    assert [i["id"] for i in result.invalid] == ["broken", "empty"]
    assert datasets.unmerged_feedback_count(store) == 0


def test_stored_feedback_is_checked_by_the_apis_own_rules(store):
    # One answer per rule: what POST /feedback would refuse, the merge refuses too (it took labels up to 200 characters
    # of any kind, and a lone surrogate that no dataset file can hold).
    add_feedback(store, "long-label", "a comet", "x" * 65)
    add_feedback(store, "spaced-label", "a comet", "outer space")
    add_feedback(store, "surrogate", "a comet \ud800", "space")
    add_feedback(store, "bad-guess", "a comet", "space", predicted_label="a/b")
    add_feedback(store, "longest-label", "a long label", "y" * 64)
    result = m.merge_feedback(store)
    assert result.merged == ["longest-label"]
    reasons = {i["id"]: i["reason"] for i in result.invalid}
    assert sorted(reasons) == ["bad-guess", "long-label", "spaced-label", "surrogate"]
    assert reasons["long-label"].startswith("label: not a valid label: 1-64 characters")
    assert reasons["spaced-label"].startswith("label: not a valid label")
    assert reasons["surrogate"].startswith("text: not valid Unicode")
    assert reasons["bad-guess"].startswith("predicted_label: not a valid label")


def test_merging_without_a_dataset_is_a_clear_error():
    with pytest.raises(NoDatasetError):
        m.merge_feedback(MemoryStore())


def test_the_warm_trainset_holds_every_change_since_the_base_plus_a_replay_sample(store):
    base = datasets.current_dataset(store)["version"]
    add_feedback(store, "f1", "a rocket to the moon", "space")
    add_feedback(store, "f2", "a brand new topic", "cooking")
    version = m.merge_feedback(store).dataset_version
    add_feedback(store, "f3", "my car's brakes squeal", "autos")
    version = m.merge_feedback(store).dataset_version
    channels = m.build_warm_trainset(store, version, base, replay_per_class=3, validation_per_class=2,
                                     feedback_repeat=2, seed=0)
    train = m.read_parquet(store, channels["train"] + "train.parquet")
    changed = train[train["id"].str.startswith("fb/")]
    assert changed["id"].value_counts().to_dict() == {"fb/f1": 2, "fb/f2": 2, "fb/f3": 2}
    # Every label the base knew has 3 rows (replay_per_class) in all, its feedback copies included: the corrected
    # labels get less replay, so the mix teaches no prior that favours them; the new label keeps its copies.
    totals = train["label"].value_counts().to_dict()
    assert totals.pop("cooking") == 2
    assert set(totals.values()) == {3} and {"space", "autos"} <= set(totals)
    replayed = train[~train["id"].str.startswith("fb/")]["label"].value_counts()
    assert replayed["space"] == 1 and replayed["autos"] == 1
    validation = m.read_parquet(store, channels["validation"] + "validation.parquet")
    assert not set(validation["id"]) & set(train["id"])
    assert set(validation["label"]) <= set(train["label"])
    again = m.build_warm_trainset(store, version, base, replay_per_class=3, validation_per_class=2,
                                  feedback_repeat=2, seed=0)
    assert again == channels


def test_a_label_corrected_more_than_the_replay_size_sets_the_size_for_every_known_label():
    changed = pd.DataFrame({"label": ["space"] * 4 + ["cooking"] * 9})
    counts = m.balanced_replay_counts(changed, {"space", "autos", "hockey"}, {"space", "autos", "hockey"},
                                      replay_per_class=3, feedback_repeat=2)
    assert counts == {"autos": 8, "hockey": 8, "space": 0}  # 4 corrections x 2 copies: 8 rows for each known label
    assert m.balanced_replay_counts(changed, {"space", "autos"}, {"space", "autos"}, replay_per_class=0,
                                    feedback_repeat=2) == {"autos": 0, "space": 0}


def test_the_unmerged_count_ignores_idempotency_markers(store):
    add_feedback(store, "f1", "a rocket", "space")
    store.put_bytes(layout.feedback_marker("f1"), json.dumps({"id": "f1"}).encode())
    assert datasets.unmerged_feedback_count(store) == 1
