"""Data sources: the 20 Newsgroups `Date:` header and the temporal split; your own data (CSV, JSON lines, Parquet, a
folder per label) and each of its errors. Small files in tmp_path, the real shared archive where it matters; no
training."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from autobert.adapters.local_store import LocalObjectStore
from autobert.data import (
    DATASET_FILE,
    LABELS_FILE,
    dates_column,
    export_dataset,
    header_date,
    load_20newsgroups,
    preprocess,
    read_labels,
    temporal_split,
)
from autobert.errors import DataError
from autobert.feedback import FeedbackStore
from autobert.workflow.merge import import_initial_dataset, merge_feedback, read_version


def write_tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def utc(*args) -> pd.Timestamp:
    return pd.Timestamp(datetime(*args, tzinfo=UTC))


# ------------------------------------------------------------------------------------------- the Date: header
def test_the_shared_bydate_archive_carries_no_date_header_so_every_date_is_nat(newsgroups):
    # The bydate distribution keeps From/Subject/Organization/Lines... but strips Date: (the issue assumed it had one).
    assert newsgroups["date"].dtype == "datetime64[ns, UTC]"
    assert newsgroups["date"].isna().all()
    headers = newsgroups["text"].str.partition("\n\n")[0]
    assert not headers.str.contains(r"(?im)^Date:").any()


DATE_FORMS = {  # Date: values in the forms Usenet software wrote them -> the UTC time they mean
    "Mon, 5 Apr 1993 14:23:12 GMT": utc(1993, 4, 5, 14, 23, 12),
    "5 Apr 93 14:23:12 GMT": utc(1993, 4, 5, 14, 23, 12),
    "Tue, 20 Apr 1993 01:02:03 -0400": utc(1993, 4, 20, 5, 2, 3),
    "Thu, 15 Apr 1993 23:10:00 EDT": utc(1993, 4, 16, 3, 10, 0),
    "Wed, 14 Apr 1993 08:00:00 -0000": utc(1993, 4, 14, 8, 0, 0),  # "no zone information": taken as UTC
}


def test_real_messages_with_a_date_header_get_its_utc_time_and_bad_or_missing_ones_nat(newsgroups, tmp_path):
    real = newsgroups[newsgroups["label"] == "sci.space"]["text"].head(len(DATE_FORMS) + 3).tolist()
    values = [*DATE_FORMS, "sometime in April", "Fri, 31 Feb 1993 99:99:99 GMT"]
    members = {}
    for n, (text, value) in enumerate(zip(real, [*values, None], strict=True), start=1):
        header, _, body = text.partition("\n\n")
        lines = header.split("\n")  # the header as the archive has it, with a Date: line after From:/Subject:
        if value is not None:
            lines.insert(2, f"Date: {value}")
        members[f"20news-bydate-train/sci.space/{n}"] = ("\n".join(lines) + "\n\n" + body).encode("latin-1")
    df = load_20newsgroups(write_tar(tmp_path / "20news-bydate.tar.gz", members)).set_index("id")
    got = [df.loc[f"train/sci.space/{n}", "date"] for n in range(1, len(values) + 2)]
    assert got[: len(DATE_FORMS)] == list(DATE_FORMS.values())
    assert pd.isna(got[-3]) and pd.isna(got[-2]) and pd.isna(got[-1])  # unparseable, impossible, missing


def test_only_the_header_block_counts_and_absurd_dates_are_nat():
    assert pd.isna(header_date("From: a\nSubject: b\n\nDate: Mon, 5 Apr 1993 14:23:12 GMT\n"))
    assert header_date("date:   Mon, 5 Apr 1993 14:23:12 GMT\n\nbody") == utc(1993, 4, 5, 14, 23, 12)
    far = header_date("Date: Mon, 5 Apr 9999 14:23:12 GMT\n\nbody")
    assert dates_column([far, "2020-01-01"]).isna().tolist() == [True, False]  # beyond the column's range
    assert pd.isna(header_date("Date:\n\nbody"))


def test_the_date_column_survives_preprocess_and_export_and_the_merge_tolerates_it(tmp_path):
    rows = [(f"a{i}", f"text about autos {i}", "autos", utc(1993, 4, 1 + i)) for i in range(6)]
    rows += [(f"s{i}", f"text about space {i}", "space", pd.NaT) for i in range(6)]
    df, labels, _ = preprocess(pd.DataFrame(rows, columns=["id", "text", "label", "date"]), min_class_count=1)
    out = export_dataset(df, labels, tmp_path / "prepared")
    exported = pd.read_parquet(out / DATASET_FILE).set_index("id")
    assert exported["date"].dtype == "datetime64[ns, UTC]"
    assert exported.loc["a2", "date"] == utc(1993, 4, 3) and pd.isna(exported.loc["s0", "date"])
    # The workflow imports the export and merges feedback (which has no date) into a new version.
    store = LocalObjectStore(tmp_path / "bucket")
    import_initial_dataset(store, exported.reset_index(), read_labels(out / LABELS_FILE), holdout_fraction=0.2,
                           seed=1)
    FeedbackStore(store).submit("a brand new text about autos", "autos")
    result = merge_feedback(store)
    merged, _ = read_version(store, result.dataset_version)
    assert result.merged and "a brand new text about autos" in set(merged["text"])


# -------------------------------------------------------------------------------------------- temporal split
def dated_frame(dates, ids=None, labels=None) -> pd.DataFrame:
    n = len(dates)
    return pd.DataFrame({"id": ids or [f"r{i:02d}" for i in range(n)], "text": [f"t{i}" for i in range(n)],
                         "label": labels or ["a", "b"] * (n // 2) + ["a"] * (n % 2), "date": dates})


def test_the_newest_fraction_by_date_is_the_newer_part_in_the_frames_order():
    dates = [utc(2020, 1, d) for d in (5, 1, 9, 3, 7, 2, 10, 4, 8, 6)]
    df = dated_frame(dates)
    older, newer = temporal_split(df, 0.3)
    assert newer["id"].tolist() == ["r02", "r06", "r08"]  # the 9th, 10th, 8th: in the frame's order
    assert len(older) == 7 and older["date"].max() < newer["date"].min()
    assert set(older["id"]) | set(newer["id"]) == set(df["id"])


def test_rows_without_a_date_stay_older_and_ties_break_by_id():
    dates = [pd.NaT, utc(2020, 1, 2), utc(2020, 1, 2), pd.NaT, utc(2020, 1, 1), pd.NaT]
    df = dated_frame(dates, ids=["n1", "tie-b", "tie-a", "n2", "early", "n3"])
    older, newer = temporal_split(df, 0.5)  # 3 rows asked, 3 dated: every dated row, no undated one
    assert sorted(newer["id"]) == ["early", "tie-a", "tie-b"]
    _, newest = temporal_split(df, 1 / 6)  # one row: of the two tied, the larger id
    assert newest["id"].tolist() == ["tie-b"]
    _, capped = temporal_split(dated_frame([pd.NaT] * 9 + [utc(2020, 1, 1)]), 0.5)
    assert len(capped) == 1  # never an undated row in the newer part


def test_a_repeated_index_and_date_strings_split_by_position():
    df = dated_frame(["2020-01-03", "2020-01-01", "not a date", "2020-01-02"]).set_axis([0, 0, 1, 1])
    older, newer = temporal_split(df, 0.25)
    assert newer["id"].tolist() == ["r00"] and older["id"].tolist() == ["r01", "r02", "r03"]


def test_without_dates_20ng_ids_split_each_group_by_article_number(newsgroups):
    older, newer = temporal_split(newsgroups, 0.2)
    assert len(older) + len(newer) == len(newsgroups) == 11314
    number = lambda part: part["id"].str.rsplit("/", n=1).str[1].astype(int)  # noqa: E731
    for group, total in newsgroups["label"].value_counts().items():
        old_numbers, new_numbers = number(older[older["label"] == group]), number(newer[newer["label"] == group])
        assert len(new_numbers) == round(total * 0.2)
        assert old_numbers.max() < new_numbers.min()
    assert len(newer) == 2264


def test_a_temporal_split_without_any_time_or_with_a_bad_fraction_is_a_clear_error():
    with pytest.raises(DataError, match="no row has a date"):
        temporal_split(dated_frame([pd.NaT] * 4, ids=["fb/1", "x", "y", "z"]))
    with pytest.raises(DataError, match="test_fraction must be between 0 and 1"):
        temporal_split(dated_frame([utc(2020, 1, 1)] * 2), 1.0)


def test_feedback_rows_without_a_date_stay_older_in_an_article_number_split():
    ids = ["train/g1/10", "train/g1/20", "train/g2/5", "train/g2/7", "fb/abc", "fb/def"]
    df = dated_frame([pd.NaT] * 6, ids=ids, labels=["g1", "g1", "g2", "g2", "g1", "g2"])
    older, newer = temporal_split(df, 0.5)
    assert sorted(newer["id"]) == ["train/g1/20", "train/g2/7"]
    assert np.isin(["fb/abc", "fb/def"], older["id"]).all()
