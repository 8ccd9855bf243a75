"""20 Newsgroups loading and preprocessing (the seed's "Dataset Collection" and "Data Preprocessing").

The cleaned export (``dataset.parquet`` + ``labels.json`` + ``manifest.json``) is what the training job consumes and
what feedback is later merged into. Each row keeps the message's ``date`` (UTC, from its ``Date:`` header; NaT where
there is none), which ``temporal_split`` uses to hold out the newest documents.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import re
import shutil
import tarfile
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from autobert.config import CANONICAL_20NG_URL, LOCAL_20NG_CANDIDATES
from autobert.errors import DataError

logger = logging.getLogger("autobert.data")

# `20news-bydate-train/<group>/<id>`; the archive may hold the train split, the test split or both.
_MEMBER_RE = re.compile(r"(?:^|/)20news-bydate-(?P<split>train|test)/(?P<group>[^/]+)/(?P<doc>[^/]+)$")
_QUOTE_RE = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")
_DATE_HEADER_RE = re.compile(r"^Date:[ \t]*(?P<value>\S.*)$", re.MULTILINE | re.IGNORECASE)
# A 20NG id: `<split>/<group>/<article number>`; Usenet article numbers grow with arrival time within a group.
_ARTICLE_ID_RE = re.compile(r"^(?:train|test)/[^/]+/(?P<number>\d+)$")

DATASET_FILE = "dataset.parquet"
LABELS_FILE = "labels.json"
MANIFEST_FILE = "manifest.json"
COLUMNS = ["id", "text", "label", "source_split", "date"]
DATE_DTYPE = "datetime64[ns, UTC]"


# ---------------------------------------------------------------------------------------------------------- loading
def resolve_source(source: str | None, cache_dir: Path) -> Path:
    """Turn the configured source into a local path: an explicit path, a URL (downloaded once into the cache), or
    by default a local copy of the corpus if one is found, else the canonical public archive."""
    if source is None:
        for candidate in LOCAL_20NG_CANDIDATES:
            if candidate.exists():
                return candidate
        source = CANONICAL_20NG_URL
    if source.startswith(("http://", "https://")):
        return _download(source, cache_dir)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path}: dataset source not found")
    return path


def _download(url: str, cache_dir: Path) -> Path:
    target = cache_dir / Path(url.split("?")[0]).name
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"{url}: download failed ({exc}); set AUTOBERT_DATA_SOURCE to a local copy") from exc
    partial.replace(target)
    return target


def decode_document(raw: bytes) -> str:
    """Raw 20NG files are latin-1; a few carry CR bytes (DOS line ends) and other control characters."""
    text = raw.decode("latin-1")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Drop control characters other than tab/newline (form feeds, DOS ^Z, NULs) that only add noise to tokenizers.
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", text)


def header_date(text: str) -> pd.Timestamp:
    """The UTC time of a message's ``Date:`` header (RFC 2822, as email.utils reads it; a date without a zone is
    taken as UTC); NaT when the header block (up to the first blank line) has none or it cannot be parsed."""
    match = _DATE_HEADER_RE.search(text.partition("\n\n")[0])
    if match is None:
        return pd.NaT
    try:
        when = email.utils.parsedate_to_datetime(match["value"].strip())
        stamp = pd.Timestamp(when)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    except (TypeError, ValueError, IndexError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        return pd.NaT


def dates_column(values) -> pd.Series:
    """Any sequence of times, date strings or NaT/None as the ``date`` column's dtype (nanoseconds, UTC); what
    cannot be read as a time, or lies outside the nanosecond range (years 1678-2261), becomes NaT."""
    parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="mixed")
    lowest, highest = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
    return parsed.where((parsed >= lowest) & (parsed <= highest)).astype(DATE_DTYPE).reset_index(drop=True)


def _iter_archive(path: Path) -> Iterator[tuple[str, str, str, bytes]]:
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                match = _MEMBER_RE.search(member.name)
                if not member.isfile() or not match:
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    raise DataError(f"{path}: cannot read member {member.name}")
                yield match["split"], match["group"], match["doc"], handle.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{path}: corrupt or unreadable archive ({exc})") from exc


def _iter_folder(path: Path) -> Iterator[tuple[str, str, str, bytes]]:
    for file in sorted(path.rglob("*")):
        match = _MEMBER_RE.search(file.relative_to(path.parent).as_posix())
        if file.is_dir() or not match:
            continue
        try:  # a dangling link or an unreadable file is an error, never a silently smaller dataset
            raw = file.read_bytes()
        except OSError as exc:
            raise DataError(f"{file}: unreadable file ({exc})") from exc
        yield match["split"], match["group"], match["doc"], raw


def load_20newsgroups(path: Path, splits: tuple[str, ...] = ("train", "test")) -> pd.DataFrame:
    """Load the bydate distribution (``.tar.gz`` or extracted folder) into a DataFrame with columns
    ``id`` (``<split>/<group>/<doc>``), ``text``, ``label`` (the group), ``source_split`` and ``date`` (the
    ``Date:`` header, UTC; NaT where missing or unparseable: the bydate distribution itself strips that header)."""
    if not path.exists():
        raise DataError(f"{path}: dataset source not found")
    records = _iter_folder(path) if path.is_dir() else _iter_archive(path)
    rows = [
        (f"{split}/{group}/{doc}", decode_document(raw), group, split)
        for split, group, doc, raw in records
        if split in splits
    ]
    if not rows:
        raise DataError(f"{path}: no documents found (expected 20news-bydate-{{train,test}}/<group>/<id>)")
    df = pd.DataFrame(rows, columns=COLUMNS[:-1])
    df["date"] = dates_column(df["text"].map(header_date))
    return df[COLUMNS]


# ---------------------------------------------------------------------------------------------------- preprocessing
# Optional cleaning, after scikit-learn's fetch_20newsgroups(remove=...): models otherwise learn from the headers.
def strip_header(text: str) -> str:
    _, _, after = text.partition("\n\n")
    return after


def strip_quoting(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if not _QUOTE_RE.search(line))


def strip_footer(text: str) -> str:
    lines = text.strip().split("\n")
    for line_num in range(len(lines) - 1, 0, -1):
        if lines[line_num].strip().strip("-") == "":
            return "\n".join(lines[:line_num])
    return text


def clean_text(text: str) -> str:
    return strip_footer(strip_quoting(strip_header(text)))


@dataclass(frozen=True)
class PreprocessReport:
    documents_in: int
    empty_dropped: int
    duplicates_dropped: int
    classes_dropped: dict[str, int]
    documents_out: int


def preprocess(
    df: pd.DataFrame, *, min_class_count: int = 10, clean: bool = False, seed: int = 42
) -> tuple[pd.DataFrame, list[str], PreprocessReport]:
    """Clean, drop empty rows and exact duplicates, drop rare categories, shuffle with a fixed seed and encode labels.

    Returns the frame (with an integer ``label_id`` column), the label list (index = id) and a report.
    """
    if min_class_count < 1:
        raise DataError(f"min_class_count must be >= 1, got {min_class_count}")
    missing = {"text", "label"} - set(df.columns)
    if missing:
        raise DataError(f"dataset lacks column(s) {sorted(missing)}")
    out = df.copy()
    if "id" not in out.columns:
        out["id"] = [_content_id(t, lbl) for t, lbl in zip(out["text"], out["label"], strict=True)]
    out["text"] = out["text"].fillna("").astype(str)
    out["label"] = out["label"].fillna("").astype(str).str.strip()
    out["date"] = _date_values(out)
    if clean:
        out["text"] = out["text"].map(clean_text)
    out["text"] = out["text"].str.strip()
    n_in = len(out)
    out = out[(out["text"] != "") & (out["label"] != "")]
    n_empty = n_in - len(out)
    before_dedup = len(out)
    out = out.drop_duplicates(subset=["text", "label"])
    n_dups = before_dedup - len(out)
    counts = out["label"].value_counts()
    rare = counts[counts < min_class_count]
    out = out[~out["label"].isin(rare.index)]
    labels = sorted(out["label"].unique())
    if len(labels) < 2:
        raise DataError(
            f"dataset has {len(labels)} class(es) after preprocessing (min_class_count={min_class_count}); "
            "at least 2 are needed to train a classifier"
        )
    out = out.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    out["label_id"] = out["label"].map({label: i for i, label in enumerate(labels)}).astype("int64")
    report = PreprocessReport(
        documents_in=n_in,
        empty_dropped=n_empty,
        duplicates_dropped=n_dups,
        classes_dropped={str(k): int(v) for k, v in rare.items()},
        documents_out=len(out),
    )
    return out, labels, report


def _date_values(df: pd.DataFrame):
    """The frame's ``date`` column in its one dtype (UTC), all NaT when it has none (feedback, own data without)."""
    return dates_column(df["date"] if "date" in df.columns else [pd.NaT] * len(df)).array


def temporal_split(df: pd.DataFrame, test_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(older, newer)``: the newest ``test_fraction`` of the rows by ``date`` as ``newer`` (ties broken by ``id``;
    rows without a date stay in ``older``), each part in the frame's own row order.

    Where no row has a date but the ids are 20 Newsgroups ids (``<split>/<group>/<article number>``), as in the
    bydate distribution, whose maker stripped the ``Date:`` header: the newest ``test_fraction`` of each group by
    Usenet article number, which a news server assigns in arrival order within a group (numbers of different
    groups are not comparable). Rows of other ids (feedback) then stay in ``older``."""
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    if "id" not in df.columns:
        raise DataError("a temporal split needs an id column")
    # Positions, not index labels: a frame's index may repeat.
    ids = pd.Series(df["id"].astype(str).to_numpy())
    dates = pd.Series(_date_values(df))
    if dates.notna().any():
        dated = pd.DataFrame({"date": dates, "id": ids})[dates.notna()]
        n_newer = min(len(dated), int(round(len(df) * test_fraction)))
        newest = dated.sort_values(["date", "id"], kind="stable").index[len(dated) - n_newer:]
    else:
        numbers = pd.to_numeric(ids.str.extract(_ARTICLE_ID_RE)["number"], errors="coerce")
        if numbers.isna().all():
            raise DataError("no row has a date (nor a 20 Newsgroups article id): cannot split by time")
        logger.warning("no row has a date: the newest %.0f %% of each group by Usenet article number instead",
                       100 * test_fraction)
        keyed = pd.DataFrame({"label": df["label"].astype(str).to_numpy(), "number": numbers, "id": ids})
        keyed = keyed[numbers.notna()].sort_values(["label", "number", "id"], kind="stable")
        newest = [i for _, group in keyed.groupby("label", sort=True)
                  for i in group.index[len(group) - int(round(len(group) * test_fraction)):]]
    mask = np.isin(np.arange(len(df)), np.asarray(newest, dtype=np.int64))
    return df[~mask], df[mask]


def _content_id(text: str, label: str) -> str:
    return hashlib.sha256(f"{label}\x00{text}".encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------- export
def export_dataset(df: pd.DataFrame, labels: list[str], out_dir: Path, extra_manifest: dict | None = None) -> Path:
    """Write the cleaned dataset (Parquet), its label encoder and a manifest into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    df.assign(date=_date_values(df))[["id", "text", "label", "label_id", "date"]].to_parquet(
        out_dir / DATASET_FILE, index=False)
    write_labels(labels, out_dir / LABELS_FILE)
    manifest = {
        "documents": len(df),
        "classes": len(labels),
        "counts_per_label": {str(k): int(v) for k, v in df["label"].value_counts().sort_index().items()},
        "sha256": hashlib.sha256((out_dir / DATASET_FILE).read_bytes()).hexdigest(),
        **(extra_manifest or {}),
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir


def write_labels(labels: list[str], path: Path) -> None:
    path.write_text(json.dumps({"labels": list(labels)}, indent=2) + "\n")


def read_labels(path: Path) -> list[str]:
    try:
        labels = json.loads(path.read_text())["labels"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable label map ({exc})") from exc
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise DataError(f"{path}: label map must be a list of strings")
    return labels


def read_dataset(channel: Path) -> pd.DataFrame:
    """Read every Parquet file of a channel folder (or one file) into one frame with ``text`` and ``label``."""
    if channel.is_file():
        files = [channel]
    elif channel.is_dir():
        files = sorted(channel.rglob("*.parquet"))
    else:
        raise DataError(f"{channel}: data channel not found")
    if not files:
        raise DataError(f"{channel}: no .parquet files in data channel")
    frames = []
    for file in files:
        try:
            frames.append(pd.read_parquet(file))
        except Exception as exc:  # pyarrow raises several unrelated types for a broken file
            raise DataError(f"{file}: unreadable Parquet file ({exc})") from exc
    df = pd.concat(frames, ignore_index=True)
    missing = {"text", "label"} - set(df.columns)
    if missing:
        raise DataError(f"{channel}: dataset lacks column(s) {sorted(missing)}")
    if df.empty:
        raise DataError(f"{channel}: dataset is empty")
    return df


def prepare(source: str | None, out_dir: Path, cache_dir: Path, *, min_class_count: int = 10, clean: bool = False,
            seed: int = 42) -> tuple[Path, PreprocessReport]:
    """Load + preprocess + export: the whole seed pipeline in one call (``autobert prepare``)."""
    path = resolve_source(source, cache_dir)
    raw = load_20newsgroups(path)
    df, labels, report = preprocess(raw, min_class_count=min_class_count, clean=clean, seed=seed)
    export_dataset(df, labels, out_dir, {"source": str(path), "clean": clean, "min_class_count": min_class_count,
                                         "seed": seed, "preprocess": report.__dict__})
    return out_dir, report
