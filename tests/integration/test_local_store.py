"""The local bucket: same keys and semantics as the S3 store."""

import threading

import pytest

from autobert.adapters.local_store import LocalObjectStore
from autobert.ports import ObjectNotFound


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "bucket")


def test_objects_round_trip_and_list_under_a_prefix_in_key_order(store):
    store.put_json("feedback/date=2026-11-25/b.json", {"id": "b"})
    store.put_bytes("feedback/date=2026-11-24/a.json", b"{}")
    store.put_bytes("models/live.json", b"{}")
    assert store.get_json("feedback/date=2026-11-25/b.json") == {"id": "b"}
    assert store.list_keys("feedback/") == ["feedback/date=2026-11-24/a.json", "feedback/date=2026-11-25/b.json"]
    assert store.list_keys("feedback/date=2026-11-25") == ["feedback/date=2026-11-25/b.json"]
    assert store.list_keys("nothing/") == []
    assert store.exists("models/live.json") and not store.exists("models/other.json")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("models/other.json")


def test_a_relative_root_lists_the_same_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = LocalObjectStore(".autobert/bucket")  # AUTOBERT_HOME defaults to a relative folder
    store.put_bytes("triggers/t-1.json", b"{}")
    assert store.list_keys("triggers/") == ["triggers/t-1.json"]
    assert store.list_keys("") == ["triggers/t-1.json"]


def test_if_absent_writes_exactly_once_under_concurrent_writers(store):
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(store.put_bytes("k.json", b"%d" % i,
                                                                                if_absent=True)))
               for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert store.get_bytes("k.json") in {b"%d" % i for i in range(16)}
    assert store.list_keys("") == ["k.json"]  # no temp files left behind


def test_a_key_cannot_escape_the_bucket(store):
    with pytest.raises(ValueError, match="escapes the store"):
        store.put_bytes("../outside.json", b"{}")
