"""Every preprocessing rule of the seed's "Data Preprocessing", on small frames (no I/O)."""

import pandas as pd
import pytest

from autobert.data import clean_text, decode_document, preprocess, strip_footer, strip_header, strip_quoting
from autobert.errors import DataError


def frame(rows):
    return pd.DataFrame(rows, columns=["text", "label"])


def test_labels_are_encoded_in_sorted_order_and_ids_match_names():
    df, labels, _ = preprocess(frame([("b doc", "beta"), ("a doc", "alpha"), ("c doc", "beta"), ("d", "alpha")]),
                               min_class_count=1)
    assert labels == ["alpha", "beta"]
    assert all(labels[i] == name for i, name in zip(df["label_id"], df["label"], strict=True))


def test_empty_and_whitespace_rows_are_dropped_and_counted():
    df, _, report = preprocess(frame([("  ", "a"), ("", "b"), ("x", "a"), ("y", "b"), ("z", "")]),
                               min_class_count=1)
    assert sorted(df["text"]) == ["x", "y"]
    assert report.empty_dropped == 3


def test_exact_duplicates_are_dropped_once():
    df, _, report = preprocess(frame([("same", "a"), ("same", "a"), ("other", "b")]), min_class_count=1)
    assert len(df) == 2 and report.duplicates_dropped == 1


def test_categories_below_the_threshold_are_removed():
    rows = [(f"a{i}", "big") for i in range(5)] + [(f"b{i}", "mid") for i in range(3)] + [("c", "rare")]
    df, labels, report = preprocess(frame(rows), min_class_count=3)
    assert labels == ["big", "mid"]
    assert report.classes_dropped == {"rare": 1}
    assert "rare" not in set(df["label"])


def test_shuffle_is_fixed_by_the_seed_and_changes_with_it():
    rows = [(f"doc {i}", "ab"[i % 2]) for i in range(50)]
    first = preprocess(frame(rows), min_class_count=1, seed=1)[0]["text"].tolist()
    again = preprocess(frame(rows), min_class_count=1, seed=1)[0]["text"].tolist()
    other = preprocess(frame(rows), min_class_count=1, seed=2)[0]["text"].tolist()
    assert first == again
    assert first != other
    assert first != [r[0] for r in rows]


def test_fewer_than_two_classes_after_filtering_is_a_clear_error():
    rows = [(f"a{i}", "big") for i in range(5)] + [("b", "small")]
    with pytest.raises(DataError, match="1 class"):
        preprocess(frame(rows), min_class_count=2)


def test_cleaning_is_off_by_default_and_removes_header_quotes_and_signature_when_on():
    doc = ("From: someone@example.com\nSubject: engines\n\nIn article <1@x>, bob writes:\n> quoted line\n"
           "The V8 is great.\n\n--\nBob's signature")
    kept, _, _ = preprocess(frame([(doc, "a"), ("other", "b")]), min_class_count=1)
    assert "Subject: engines" in kept.loc[kept["label"] == "a", "text"].item()
    cleaned, _, _ = preprocess(frame([(doc, "a"), ("H: v\n\nother", "b")]), min_class_count=1, clean=True)
    assert cleaned.loc[cleaned["label"] == "a", "text"].item() == "The V8 is great."


def test_the_cleaning_helpers_each_do_one_thing():
    assert strip_header("H: v\n\nbody") == "body"
    assert strip_quoting("keep\n> drop\n| drop\nsomeone wrote:\nkeep2") == "keep\nkeep2"
    assert strip_footer("body\n\n--\nsig") == "body\n"
    assert clean_text("H: v\n\nbody") == "body"


def test_latin1_bytes_cr_line_ends_and_dos_control_characters_decode_cleanly():
    raw = "Caf\xe9 na\xefve\r\nline two\rline three\x1a\x00end".encode("latin-1")
    assert decode_document(raw) == "Café naïve\nline two\nline three  end"
