"""The 20 Newsgroups loader on the real shared archive, extracted folders and broken inputs."""

import hashlib

import pytest
from data_helpers import write_tar

from autobert.data import load_20newsgroups, prepare, read_dataset, read_labels, resolve_source
from autobert.errors import DataError

SHA256 = "da9b64bd7bf578602414e798a108eb6b86f8e6a22304cddcfaf4f9d3497791cf"


def test_the_shared_archive_is_the_expected_distribution(shared_archive):
    assert hashlib.sha256(shared_archive.read_bytes()).hexdigest() == SHA256


def test_the_shared_train_split_loads_with_its_canonical_counts(newsgroups):
    assert len(newsgroups) == 11314
    assert newsgroups["label"].nunique() == 20
    assert set(newsgroups["source_split"]) == {"train"}
    counts = newsgroups["label"].value_counts()
    assert counts["rec.sport.hockey"] == 600 and counts["talk.religion.misc"] == 377
    assert not newsgroups["text"].str.contains("\r").any()




def test_an_archive_with_both_splits_keeps_the_split_of_each_document(tmp_path):
    path = write_tar(tmp_path / "20news-bydate.tar.gz", {
        "20news-bydate-train/sci.space/1": b"orbit",
        "20news-bydate-test/sci.space/2": b"launch\r\n",
        "20news-bydate-train/rec.autos/3": b"engine \xe9",
        "README": b"not a document",
    })
    df = load_20newsgroups(path).sort_values("id")
    assert df["id"].tolist() == ["test/sci.space/2", "train/rec.autos/3", "train/sci.space/1"]
    assert df["text"].tolist() == ["launch\n", "engine é", "orbit"]
    assert load_20newsgroups(path, splits=("test",))["id"].tolist() == ["test/sci.space/2"]


def test_an_extracted_folder_loads_like_the_archive(tmp_path):
    for group, doc, text in [("sci.space", "1", b"orbit"), ("rec.autos", "2", b"engine")]:
        folder = tmp_path / "20news-bydate-train" / group
        folder.mkdir(parents=True)
        (folder / doc).write_bytes(text)
    df = load_20newsgroups(tmp_path / "20news-bydate-train")
    assert sorted(df["label"]) == ["rec.autos", "sci.space"]


def test_a_missing_source_names_the_path(tmp_path):
    with pytest.raises(DataError, match="nope.tar.gz: dataset source not found"):
        resolve_source(str(tmp_path / "nope.tar.gz"), tmp_path)


def test_a_corrupt_archive_is_a_clear_error_naming_the_file(tmp_path, shared_archive):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(shared_archive.read_bytes()[:200_000])
    with pytest.raises(DataError, match="broken.tar.gz: corrupt or unreadable archive"):
        load_20newsgroups(broken)
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="garbage.tar.gz"):
        load_20newsgroups(garbage)


def test_an_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no documents found"):
        load_20newsgroups(tmp_path / "empty")


def test_an_unreadable_file_is_named(tmp_path):
    folder = tmp_path / "20news-bydate-train" / "sci.space"
    folder.mkdir(parents=True)
    (folder / "1").mkdir()  # a folder where a document should be: skipped, not a document
    bad = folder / "2"
    bad.symlink_to(tmp_path / "missing-target")
    with pytest.raises(DataError, match="2: unreadable file"):
        load_20newsgroups(tmp_path / "20news-bydate-train")


def test_prepare_exports_parquet_label_map_and_manifest(shared_archive, tmp_path):
    out, report = prepare(str(shared_archive), tmp_path / "export", tmp_path / "cache", min_class_count=400)
    df = read_dataset(out)
    labels = read_labels(out / "labels.json")
    assert report.documents_in == 11314
    dropped = set(report.classes_dropped)
    assert "talk.religion.misc" in dropped and len(labels) == 20 - len(dropped)
    assert sorted(df["label"].unique()) == labels
    assert len(df) == report.documents_out
    manifest = (out / "manifest.json").read_text()
    assert '"min_class_count": 400' in manifest and str(shared_archive) in manifest
