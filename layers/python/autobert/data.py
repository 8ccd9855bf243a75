"""20 Newsgroups loading and preprocessing (the seed's "Dataset Collection" and "Data Preprocessing").

The cleaned export (``dataset.parquet`` + ``labels.json`` + ``manifest.json``) is what the training job consumes and
what feedback is later merged into. Each row keeps the message's ``date`` (UTC, from its ``Date:`` header; NaT where
there is none), which ``temporal_split`` uses to hold out the newest documents.
"""

from __future__ import annotations

import email.utils
import hashlib
import io
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

from autobert.config import CANONICAL_20NG_URL, LOCAL_20NG_CANDIDATES, Settings
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


# ------------------------------------------------------------------------------------------------------ own data
TABLE_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
_20NG_FOLDER_RE = re.compile(r"^20news-bydate-(train|test)$")


def is_20newsgroups(path: Path) -> bool:
    """A 20 Newsgroups archive (any tar) or an extracted ``20news-bydate-{train,test}`` folder (or their parent)."""
    if path.is_dir():
        return bool(_20NG_FOLDER_RE.match(path.name)) or any(
            (path / f"20news-bydate-{split}").is_dir() for split in ("train", "test"))
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def load_source(path: Path, *, text_column: str = "text", label_column: str = "label") -> pd.DataFrame:
    """Any supported source as a frame with ``text``, ``label`` and ``date``: a 20 Newsgroups archive or folder
    (``load_20newsgroups``), a CSV / JSON lines / Parquet file with a text and a label column (named
    ``text_column`` / ``label_column``; an optional ``date`` column is kept), or a folder with one subfolder per
    label holding one text file per document. Every failure is a one-line DataError naming the file."""
    if is_20newsgroups(path):
        return load_20newsgroups(path)
    if path.is_dir():
        return load_label_folders(path)
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported data file: expected .csv, .jsonl/.ndjson, .parquet, a folder with "
                        "one subfolder per label, or a 20 Newsgroups .tar.gz")
    return load_table(path, kind, text_column=text_column, label_column=label_column)


def _utf8(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        data = exc.object  # without a byte-order mark, which exc.start does not count
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(f"{path}: line {line} is not valid UTF-8 (byte {data[exc.start]:#04x} at column {column}); "
                        "save the file as UTF-8") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _read_table(path: Path, kind: str) -> pd.DataFrame:
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file")
        if kind == "parquet":
            return pd.read_parquet(path)
        text = _utf8(path.read_bytes(), path)
    except OSError as exc:
        raise DataError(f"{path}: unreadable file ({exc})") from exc
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise DataError(f"{path}: unreadable Parquet file ({_one_line(exc)})") from exc
    if not text.strip():
        raise DataError(f"{path}: empty file")
    if kind == "csv":
        try:  # every cell a string; an empty cell stays "" (not NaN), so "NA" or "null" texts stay themselves
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, ValueError) as exc:
            raise DataError(f"{path}: not a valid CSV file ({_one_line(exc)})") from exc
    try:
        return pd.read_json(io.StringIO(text), lines=True, dtype=False)
    except ValueError as exc:
        for number, line in enumerate(text.split("\n"), start=1):  # the error path only: which line is it?
            try:
                if line.strip() and not isinstance(json.loads(line), dict):
                    raise DataError(f"{path}: line {number} is not a JSON object")
            except json.JSONDecodeError as bad:
                raise DataError(f"{path}: line {number} is not valid JSON ({bad.msg})") from exc
        raise DataError(f"{path}: not valid JSON lines ({_one_line(exc)})") from exc


def _as_strings(values: pd.Series, path: Path, column: str) -> pd.Series:
    """A column as strings: missing values as "", whole floats as integers (a JSON label column with a gap is read
    as floats: 1.0 means label "1"), bytes decoded as UTF-8."""
    if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
        values = values.astype("Int64")
    out = []
    for row, value in enumerate(values.tolist(), start=1):
        if isinstance(value, bytes | bytearray):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}: row {row}, column {column!r} is not valid UTF-8 (byte "
                                f"{value[exc.start]:#04x} at offset {exc.start})") from None
        out.append("" if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
                   else str(value))
    return pd.Series(out, index=values.index, dtype=object)


def load_table(path: Path, kind: str, *, text_column: str = "text", label_column: str = "label") -> pd.DataFrame:
    """A CSV (UTF-8, a header row), JSON lines (UTF-8, one object per line) or Parquet file as ``text``, ``label``
    and ``date`` (from an optional ``date`` column; NaT where absent or unreadable). Other columns are ignored."""
    raw = _read_table(path, kind)
    found = [str(c) for c in raw.columns]
    for column, setting in ((text_column, "TEXT"), (label_column, "LABEL")):
        if column not in found:
            raise DataError(f"{path}: no column {column!r} (columns found: {', '.join(found) or 'none'}); name "
                            f"yours with AUTOBERT_{setting}_COLUMN or --{setting.lower()}-column")
    if raw.empty:
        raise DataError(f"{path}: no rows (only a header)" if kind == "csv" else f"{path}: no rows")
    raw.columns = found
    df = pd.DataFrame({"text": _as_strings(raw[text_column], path, text_column),
                       "label": _as_strings(raw[label_column], path, label_column).str.strip()})
    df["date"] = dates_column(raw["date"] if "date" in found and "date" not in (text_column, label_column)
                              else [pd.NaT] * len(raw)).array
    _check_labels(df, path, lambda row: f"{path}: row {row}")
    return df


def load_label_folders(path: Path) -> pd.DataFrame:
    """A folder with one subfolder per label (its name), each holding one text file per document (any name, any
    depth; hidden files skipped). Texts are read as UTF-8, else as latin-1 (every byte is a latin-1 character)."""
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    rows, latin1 = [], 0
    for folder in folders:
        for file in sorted(folder.rglob("*")):
            if file.is_dir() or any(part.startswith(".") for part in file.relative_to(folder).parts):
                continue
            try:
                raw = file.read_bytes()
            except OSError as exc:
                raise DataError(f"{file}: unreadable file ({exc})") from exc
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                text, latin1 = raw.decode("latin-1"), latin1 + 1
            rows.append((folder.name, text.replace("\r\n", "\n").replace("\r", "\n")))
    if not rows:
        raise DataError(f"{path}: no text files found (expected one subfolder per label, one file per document)")
    if latin1:
        logger.warning("%s: %d file(s) not valid UTF-8, read as latin-1", path, latin1)
    outside = [p.name for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    if outside:
        logger.warning("%s: %d file(s) outside the label subfolders ignored (%s)", path, len(outside),
                       ", ".join(sorted(outside)[:3]) + (", ..." if len(outside) > 3 else ""))
    df = pd.DataFrame(rows, columns=["label", "text"])[["text", "label"]]
    df["date"] = _date_values(df)
    _check_labels(df, path, lambda row: str(path / df["label"].iloc[row - 1]))
    return df


def _check_labels(df: pd.DataFrame, path: Path, where) -> None:
    """Every label passes the API's label rule (``autobert.api_models.Label``: feedback can name it, the model can
    answer it); at least two labels among the rows with a text. ``where(row)`` names the first offending row."""
    from pydantic import TypeAdapter, ValidationError

    from autobert.api_models import Label

    adapter = TypeAdapter(Label)
    labels = df["label"].to_numpy()
    for value in pd.unique(labels[labels != ""]):
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            row = int(np.flatnonzero(labels == value)[0]) + 1
            raise DataError(f"{where(row)}: label {value!r}: {exc.errors()[0]['msg']}") from None
    present = pd.unique(labels[(labels != "") & (df["text"].str.strip() != "").to_numpy()])
    if len(present) < 2:
        found = f"only one label ({present[0]!r})" if len(present) else "no label"
        raise DataError(f"{path}: {found} among the documents with a text: a classifier needs at least 2")


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
        largest = ", ".join(f"{k} {v}" for k, v in counts.head(5).items()) or "none"
        raise DataError(
            f"dataset has {len(labels)} class(es) after preprocessing (min_class_count={min_class_count}; documents "
            f"per label: {largest}); at least 2 are needed to train a classifier: add documents or lower "
            "AUTOBERT_MIN_CLASS_COUNT (--min-class-count)"
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
            seed: int = 42, text_column: str = "text", label_column: str = "label") -> tuple[Path, PreprocessReport]:
    """Load (``load_source``: 20 Newsgroups or your own data) + preprocess + export: the whole seed pipeline in one
    call (``autobert prepare``). ``clean`` strips 20 Newsgroups-style headers, quotes and signatures, from any
    source: leave it off for other data. What preprocessing drops is logged."""
    path = resolve_source(source, cache_dir)
    raw = load_source(path, text_column=text_column, label_column=label_column)
    try:
        df, labels, report = preprocess(raw, min_class_count=min_class_count, clean=clean, seed=seed)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    if report.empty_dropped:
        logger.warning("%s: dropped %d document(s) with an empty text or label", path, report.empty_dropped)
    if report.duplicates_dropped:
        logger.info("%s: dropped %d exact duplicate(s)", path, report.duplicates_dropped)
    if report.classes_dropped:
        logger.warning("%s: dropped label(s) with fewer than %d documents (min_class_count): %s", path,
                       min_class_count, ", ".join(f"{k} ({v})" for k, v in report.classes_dropped.items()))
    export_dataset(df, labels, out_dir, {"source": str(path), "clean": clean, "min_class_count": min_class_count,
                                         "seed": seed, "text_column": text_column, "label_column": label_column,
                                         "preprocess": report.__dict__})
    return out_dir, report


def prepare_configured(settings: Settings, out_dir: Path) -> tuple[Path, PreprocessReport]:
    """``prepare`` with the settings' data options (``AUTOBERT_DATA_SOURCE``, ``_TEXT_COLUMN``, ``_LABEL_COLUMN``,
    ``_MIN_CLASS_COUNT``, ``_CLEAN``, ``_SEED``)."""
    return prepare(settings.data_source, out_dir, settings.cache_dir, min_class_count=settings.min_class_count,
                   clean=settings.clean, seed=settings.seed, text_column=settings.text_column,
                   label_column=settings.label_column)


def prepare_first_dataset(settings: Settings, out_dir: Path, *, imported: str | None) -> Path:
    """What ``--data`` does (``autobert up``, ``autobert aws bootstrap``): prepare ``settings.data_source`` into
    ``out_dir`` for the first import. The first dataset is imported once; ``imported`` is the version the store
    already holds (None: none yet), and then the source must be the one ``out_dir`` was prepared from."""
    if imported is None:
        return prepare_configured(settings, out_dir)[0]
    path = resolve_source(settings.data_source, settings.cache_dir)
    try:
        prepared_from = json.loads((out_dir / MANIFEST_FILE).read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        prepared_from = None
    if prepared_from != str(path):
        raise DataError(f"{path}: the first dataset is already imported (version {imported}, from "
                        f"{prepared_from or 'another source'}); --data chooses the first dataset only: use a fresh "
                        "AUTOBERT_HOME (or stack), or send new documents as feedback")
    return out_dir
