"""Data sources: the 20 Newsgroups `Date:` header and the temporal split; your own data (CSV, JSON lines, Parquet, a
folder per label) and each of its errors. Small files in tmp_path, the real shared archive where it matters; no
training."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from data_helpers import write_tar

from autobert import cli
from autobert.adapters.local_store import LocalObjectStore
from autobert.bootstrap import bootstrap
from autobert.config import Settings
from autobert.data import (
    DATASET_FILE,
    LABELS_FILE,
    dates_column,
    export_dataset,
    header_date,
    load_20newsgroups,
    load_source,
    prepare,
    prepare_configured,
    prepare_first_dataset,
    preprocess,
    read_labels,
    temporal_split,
)
from autobert.errors import DataError
from autobert.feedback import FeedbackStore
from autobert.workflow.merge import import_initial_dataset, merge_feedback, read_version


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


# ------------------------------------------------------------------------------------------------- own data
CSV = 'text,label\n"I love this phone",positive\n"Terrible battery",negative\n"Screen, sound:\ngreat",positive\n'


def write(path, content: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def rows(df: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(zip(df["text"], df["label"], strict=True))


def test_a_csv_with_text_and_label_columns_loads_as_written(tmp_path):
    df = load_source(write(tmp_path / "reviews.csv", CSV + "NA,negative\n"))
    assert rows(df) == [("I love this phone", "positive"), ("NA", "negative"), ("Screen, sound:\ngreat", "positive"),
                        ("Terrible battery", "negative")]  # quoting, a newline in a cell and "NA" kept
    assert df["date"].dtype == "datetime64[ns, UTC]" and df["date"].isna().all()
    bom = load_source(write(tmp_path / "bom.csv", b"\xef\xbb\xbf" + CSV.encode()))
    assert rows(bom) == [("I love this phone", "positive"), ("Screen, sound:\ngreat", "positive"),
                         ("Terrible battery", "negative")]  # a byte-order mark does not hide the 'text' column


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_json_lines_keep_an_optional_date_column_and_read_integer_labels_as_text(tmp_path, suffix):
    lines = ['{"text": "spam spam", "label": 1, "date": "2024-03-01T10:00:00+01:00"}',
             '{"text": "hello friend", "label": 0}', '', '{"text": "caf\\u00e9 au lait", "label": 0, "date": "?"}']
    df = load_source(write(tmp_path / f"mail{suffix}", "\n".join(lines) + "\n"))
    assert rows(df) == [("café au lait", "0"), ("hello friend", "0"), ("spam spam", "1")]
    by_text = df.set_index("text")["date"]
    assert by_text["spam spam"] == utc(2024, 3, 1, 9, 0) and by_text.isna().sum() == 2


def test_parquet_with_other_column_names_loads_with_the_configured_columns(tmp_path):
    frame = pd.DataFrame({"body": ["a", "b", "c"], "category": ["x", "y", "x"], "extra": [1, 2, 3]})
    frame.to_parquet(tmp_path / "data.parquet")
    df = load_source(tmp_path / "data.parquet", text_column="body", label_column="category")
    assert rows(df) == [("a", "x"), ("b", "y"), ("c", "x")] and list(df.columns) == ["text", "label", "date"]


def test_a_folder_per_label_loads_every_text_file_utf8_else_latin1(tmp_path, caplog):
    root = tmp_path / "tickets"
    write(root / "billing" / "1.txt", "Invoice wrong\r\ntwice")
    write(root / "billing" / "2020" / "deep.txt", "nested file")
    write(root / "billing" / ".hidden", "skipped")
    write(root / "outage" / "a.txt", "Caf\xe9 down".encode("latin-1"))
    write(root / "outage" / "b.txt", "naïve outage".encode())
    write(root / ".git" / "HEAD", "not a label")
    write(root / "README.txt", "no label: ignored")
    with caplog.at_level("WARNING", logger="autobert.data"):
        df = load_source(root)
    assert rows(df) == [("Café down", "outage"), ("Invoice wrong\ntwice", "billing"), ("naïve outage", "outage"),
                        ("nested file", "billing")]
    assert "1 file(s) not valid UTF-8, read as latin-1" in caplog.text
    assert "1 file(s) outside the label subfolders ignored (README.txt)" in caplog.text


def test_prepare_cleans_dedups_and_filters_own_data_and_logs_what_it_dropped(tmp_path, caplog):
    lines = ["text,label"] + [f"positive review number {i},pos" for i in range(12)]
    lines += [f"negative review number {i},neg" for i in range(12)] + ["positive review number 1,pos"]
    lines += [",pos", "   ,neg", '"Subject: kept\n\nbody",neg'] + [f"rare {i},rare" for i in range(3)]
    source = write(tmp_path / "reviews.csv", "\n".join(lines))
    with caplog.at_level("INFO", logger="autobert.data"):
        out, report = prepare(str(source), tmp_path / "prepared", tmp_path / "cache")
    assert (report.documents_in, report.empty_dropped, report.duplicates_dropped) == (31, 2, 1)
    assert report.classes_dropped == {"rare": 3} and report.documents_out == 25
    assert read_labels(out / LABELS_FILE) == ["neg", "pos"]
    exported = pd.read_parquet(out / DATASET_FILE)
    assert "Subject: kept\n\nbody" in set(exported["text"])  # no 20NG header stripping unless configured
    assert "dropped 2 document(s) with an empty text or label" in caplog.text
    assert "fewer than 10 documents (min_class_count): rare (3)" in caplog.text


def test_the_settings_name_the_columns_and_the_source(tmp_path, monkeypatch):
    source = write(tmp_path / "d.csv", "msg,tag\n" + "".join(f"m{i},{'ab'[i % 2]}\n" for i in range(20)))
    for name, value in {"DATA_SOURCE": source, "TEXT_COLUMN": "msg", "LABEL_COLUMN": "tag"}.items():
        monkeypatch.setenv(f"AUTOBERT_{name}", str(value))
    _, report = prepare_configured(Settings(home=tmp_path), tmp_path / "prepared")
    assert report.documents_out == 20
    manifest = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    assert (manifest["source"], manifest["text_column"], manifest["label_column"]) == (str(source), "msg", "tag")


ERRORS = [  # file name, content, the one-line message expected
    ("cols.csv", "body,cat\nx,a\n", r"cols.csv: no column 'text' \(columns found: body, cat\); name yours with "
                                    r"AUTOBERT_TEXT_COLUMN or --text-column"),
    ("nolabel.jsonl", '{"text": "x", "tag": "a"}\n', r"no column 'label' \(columns found: text, tag\)"),
    ("zero.csv", "", r"zero.csv: empty file"),
    ("blank.jsonl", "\n \n", r"blank.jsonl: empty file"),
    ("header.csv", "text,label\n", r"header.csv: no rows \(only a header\)"),
    ("one.csv", "text,label\nx,spam\ny,spam\n,ham\n", r"one.csv: only one label \('spam'\) among the documents with a "
                                                      r"text: a classifier needs at least 2"),
    ("latin.csv", b"text,label\nok,a\nCaf\xe9,b\n", r"latin.csv: line 3 is not valid UTF-8 \(byte 0xe9 at column 4\); "
                                                    r"save the file as UTF-8"),
    ("bom.csv", b"\xef\xbb\xbftext,label\nok,a\nx\xff,b\n",  # a byte-order mark counts for no column
     r"bom.csv: line 3 is not valid UTF-8 \(byte 0xff at column 2\)"),
    ("latin.jsonl", b'{"text": "ok", "label": "a"}\n{"text": "\xff", "label": "b"}\n',
     r"latin.jsonl: line 2 is not valid UTF-8 \(byte 0xff at column 11\)"),
    ("broken.jsonl", '{"text": "ok", "label": "a"}\n{"text": "x" "label": "b"}\n',
     r"broken.jsonl: line 2 is not valid JSON \(Expecting ',' delimiter\)"),
    ("list.jsonl", '{"text": "ok", "label": "a"}\n["x", "b"]\n', r"list.jsonl: line 2 is not a JSON object"),
    ("labels.csv", "text,label\nx,good\ny,not good\n", r"labels.csv: row 2: label 'not good': not a valid label: "
                                                       r"1-64 characters, letters, digits"),
    ("slash.jsonl", '{"text": "x", "label": "a"}\n{"text": "y", "label": "a/b"}\n',
     r"slash.jsonl: row 2: label 'a/b': not a valid label"),
    ("table.xlsx", b"PK\x03\x04", r"table.xlsx: unsupported data file: expected .csv, .jsonl/.ndjson, .parquet"),
    ("bad.parquet", b"PAR1 not really", r"bad.parquet: unreadable Parquet file"),
    ("ragged.csv", "text,label\nx,a\ny,b,c,d\n", r"ragged.csv: not a valid CSV file \(Error tokenizing data"),
]


@pytest.mark.parametrize("name, content, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_each_bad_file_is_one_clear_line_naming_it(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message) as caught:
        prepare(str(write(tmp_path / name, content)), tmp_path / "out", tmp_path / "cache", min_class_count=1)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_bad_parquet_cells_and_label_folders_are_clear_errors(tmp_path):
    pd.DataFrame({"text": [b"ok", b"\xe9t\xe9"], "label": ["a", "b"]}).to_parquet(tmp_path / "bytes.parquet")
    with pytest.raises(DataError, match=r"bytes.parquet: row 2, column 'text' is not valid UTF-8 \(byte 0xe9"):
        load_source(tmp_path / "bytes.parquet")
    write(tmp_path / "folders" / "good" / "1.txt", "x")
    write(tmp_path / "folders" / "bad label" / "1.txt", "y")
    with pytest.raises(DataError, match=r"folders/bad label: label 'bad label': not a valid label"):
        load_source(tmp_path / "folders")
    (tmp_path / "nothing" / "empty-label").mkdir(parents=True)
    with pytest.raises(DataError, match=r"nothing: no text files found \(expected one subfolder per label"):
        load_source(tmp_path / "nothing")


def test_too_few_documents_per_label_says_how_many_and_what_to_change(tmp_path):
    source = write(tmp_path / "tiny.csv", "text,label\na,x\nb,x\nc,y\n")
    with pytest.raises(DataError, match=r"tiny.csv: dataset has 0 class\(es\) after preprocessing \(min_class_count="
                                        r"10; documents per label: x 2, y 1\).*lower AUTOBERT_MIN_CLASS_COUNT"):
        prepare(str(source), tmp_path / "out", tmp_path / "cache")


def test_the_first_dataset_is_prepared_once_and_another_source_later_is_refused(tmp_path):
    first = write(tmp_path / "first.csv", "text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(20)))
    other = write(tmp_path / "other.csv", "text,label\n" + "".join(f"o{i},{'cd'[i % 2]}\n" for i in range(20)))
    settings = Settings(home=tmp_path, data_source=str(first))
    folder = tmp_path / "prepared"
    assert prepare_first_dataset(settings, folder, imported=None) == folder
    written = (folder / DATASET_FILE).read_bytes()
    assert prepare_first_dataset(settings, folder, imported="d-123") == folder  # the same source: nothing to do
    assert (folder / DATASET_FILE).read_bytes() == written
    with pytest.raises(DataError, match=r"other.csv: the first dataset is already imported \(version d-123, from "
                                        r".*first.csv\); --data chooses the first dataset only"):
        prepare_first_dataset(settings.model_copy(update={"data_source": str(other)}), folder, imported="d-123")


# ---------------------------------------------------------------------------------------------------- the CLI
@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOBERT_HOME", str(tmp_path / "home"))
    for name in ("DATA_SOURCE", "TEXT_COLUMN", "LABEL_COLUMN", "SEED_DATASET"):
        monkeypatch.delenv(f"AUTOBERT_{name}", raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize("command", ["prepare", "up"])
def test_prepare_and_up_with_a_bad_file_exit_2_with_one_line(home, tmp_path, capsys, command):
    bad = write(tmp_path / "bad.csv", "body,cat\nx,a\n")
    assert cli.main([command, "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"autobert: error: {bad}: no column 'text' (columns found: body, cat); name yours with "
                       "AUTOBERT_TEXT_COLUMN or --text-column")
    assert not any("Traceback" in line for line in err)
    assert not (home / "prepared").exists() and not (home / "bucket").exists()


def test_prepare_takes_the_column_options(home, tmp_path, capsys):
    source = write(tmp_path / "d.csv", "msg,tag\n" + "".join(f"m{i},{'ab'[i % 2]}\n" for i in range(20)))
    assert cli.main(["prepare", "--data", str(source), "--text-column", "msg", "--label-column", "tag"]) == 0
    assert json.loads(capsys.readouterr().out)["documents_out"] == 20
    assert read_labels(home / "prepared" / LABELS_FILE) == ["a", "b"]


def test_up_with_data_for_a_home_that_has_another_dataset_exits_2_before_starting(home, tmp_path, capsys):
    first = write(tmp_path / "first.csv", "text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(20)))
    other = write(tmp_path / "other.csv", "text,label\n" + "".join(f"o{i},{'ab'[i % 2]}\n" for i in range(20)))
    settings = Settings(home=home, data_source=str(first))
    prepare_configured(settings, home / "prepared")
    store = bootstrap(settings).store
    df = pd.read_parquet(home / "prepared" / DATASET_FILE)
    version = import_initial_dataset(store, df, ["a", "b"], holdout_fraction=0.1, seed=1)["version"]
    assert cli.main(["up", "--data", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"autobert: error: {other}: the first dataset is already imported (version {version}")
