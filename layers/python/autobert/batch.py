"""Bulk predictions: ``autobert predict-batch INPUT OUTPUT``, the live model over a whole file.

INPUT is JSON lines, CSV or Parquet with a text column (``--text-column``, default ``text``) and optionally an id
column (``--id-column``, default ``id``, kept as given). OUTPUT is JSON lines, one line per input row, in input order::

    {"row": 1, "id": "a-17", "label": "sci.space", "score": 0.93, "top_k": [...], "model_version": "..."}
    {"row": 2, "id": "a-18", "error": "text is 160,000 characters: the limit is 100,000"}

``row`` is the 1-based position in INPUT; ``id`` is there when INPUT has an id column. A row the API would refuse
(empty text, a text over ``AUTOBERT_MAX_TEXT_CHARS``, a lone surrogate) gets an ``error`` line with the API's own
message (``autobert.api_models``), not a crash. A second run with the same INPUT and OUTPUT resumes: the rows already
written are checked against INPUT and skipped, and the rest are predicted by the model version OUTPUT began with.

Where the predictions come from is an adapter (``autobert.bootstrap.Services.batch_predictor``): locally the inference
script's own hooks (``model_fn`` / ``predict_fn`` of ``inference/inference.py``) over the live model folder, in
batches; on AWS a SageMaker Batch Transform job over the live model (the same script in the serving container, the
input as JSON lines, ``SplitType: Line``), recorded in the bucket under ``batch/<job>/``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from autobert.api_models import PredictRequest, RequestRejected, validate
from autobert.config import Settings
from autobert.data import TABLE_SUFFIXES, _as_strings, _read_table
from autobert.errors import AutobertError, DataError
from autobert.workflow.registry import ModelRegistry

logger = logging.getLogger("autobert.batch")


class BatchError(AutobertError):
    """A batch prediction that cannot go on (the job failed, the output belongs to another input)."""


@dataclass(frozen=True)
class BatchInput:
    """The rows of INPUT: ``texts[i]`` is row ``i + 1``; ``ids`` is None without an id column; ``errors[i]`` the
    API's message for a row it would refuse (None for a row to predict)."""

    path: Path
    texts: list[str]
    ids: list[str] | None
    errors: list[str | None]

    def __len__(self) -> int:
        return len(self.texts)

    def key(self, index: int) -> dict[str, Any]:
        """What an output line for row ``index`` (0-based) starts with."""
        return {"row": index + 1, **({"id": self.ids[index]} if self.ids is not None else {})}


def read_batch_input(path: Path, settings: Settings, *, text_column: str = "text",
                     id_column: str = "id") -> BatchInput:
    """INPUT as rows; every failure of the file as a whole is a one-line DataError (a bad row is not one)."""
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported input file: expected .jsonl/.ndjson, .csv or .parquet")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = _read_table(path, kind)
    raw.columns = [str(c) for c in raw.columns]
    if text_column not in raw.columns:
        raise DataError(f"{path}: no column {text_column!r} (columns found: {', '.join(raw.columns) or 'none'}); "
                        "name yours with --text-column")
    if raw.empty:
        raise DataError(f"{path}: no rows")
    model = PredictRequest.limited(settings)
    texts, errors = [], []
    for value in raw[text_column].tolist():
        text = value if isinstance(value, str) else None
        error = None
        if text is None:
            error = f"{text_column!r} is {'missing' if value is None or pd.isna(value) else 'not a string'}"
        else:
            try:
                validate(model, {"text": text})
            except RequestRejected as exc:
                error = exc.message
        texts.append(text if error is None else "")
        errors.append(error)
    ids = _as_strings(raw[id_column], path, id_column).tolist() if id_column in raw.columns else None
    return BatchInput(path, texts, ids, errors)


class BatchPredictor(Protocol):
    """Predictions for texts, by one model version: the adapters of ``autobert predict-batch``."""

    def predict(self, texts: list[str], version: str, top_k: int | None) -> Iterator[list[dict[str, Any]]]:
        """One prediction per text, in order, in consecutive chunks (their concatenation has ``len(texts)``)."""


class OutputFile:
    """OUTPUT as it stands: the complete lines already written (a partial last line, from a run that was killed
    mid-write, is dropped), checked to be the first rows of ``source``."""

    def __init__(self, path: Path, source: BatchInput):
        self.path = path
        self.lines: list[dict[str, Any]] = []
        if path.exists():
            data = path.read_bytes()
            complete = data[: data.rfind(b"\n") + 1]
            if len(complete) < len(data):
                with path.open("r+b") as f:
                    f.truncate(len(complete))
            for number, line in enumerate(complete.decode("utf-8", errors="replace").splitlines(), start=1):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    raise BatchError(f"{path}: line {number} is not JSON: not an output of predict-batch; "
                                     "choose another OUTPUT") from None
                expected = source.key(number - 1) if number <= len(source) else None
                if not isinstance(entry, dict) or expected is None or \
                        {k: entry.get(k) for k in expected} != expected:
                    raise BatchError(f"{path}: line {number} does not belong to row {number} of {source.path}: "
                                     "OUTPUT holds the predictions of another input; choose another OUTPUT")
                self.lines.append(entry)

    @property
    def done(self) -> int:
        return len(self.lines)

    def version(self) -> str | None:
        """The model version the rows already written were predicted with."""
        return next((entry["model_version"] for entry in self.lines if entry.get("model_version")), None)

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Write ``entries`` and make them durable before returning: a resumed run trusts what it finds."""
        if not entries:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
            f.flush()
            os.fsync(f.fileno())
        self.lines.extend(entries)


@dataclass
class BatchReport:
    rows: int
    skipped: int  # already in OUTPUT (a resumed run)
    predicted: int
    errors: int
    model_version: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def live_version(registry: ModelRegistry) -> str:
    """The model version serving now: what a new OUTPUT is predicted with."""
    live = registry.live()
    if live is None:
        raise BatchError("no model is live yet: the first one is still training, or the stack has not been set up "
                         "(`make up` locally, `autobert aws status` on AWS)")
    return live["version"]


def predict_batch(source: BatchInput, output: Path, predictor: BatchPredictor, registry: ModelRegistry, *,
                  top_k: int | None = None, progress: Callable[[int], None] | None = None) -> BatchReport:
    """Predict the rows of ``source`` that ``output`` does not hold yet and append them, in input order."""
    out = OutputFile(output, source)
    pending = list(range(out.done, len(source)))
    todo = [i for i in pending if source.errors[i] is None]
    version = out.version() or (live_version(registry) if todo else None)
    if out.done:
        logger.info("%s already holds %d of %d rows: resuming with model %s", output, out.done, len(source),
                    version)
    position = 0  # into pending

    def flush(upto: int, predictions: dict[int, dict]) -> None:
        nonlocal position
        entries = []
        while position < len(pending) and pending[position] < upto:
            i = pending[position]
            error = source.errors[i]
            entries.append({**source.key(i), "error": error} if error is not None
                           else {**source.key(i), **predictions.pop(i)})
            position += 1
        out.append(entries)
        if progress:
            progress(len(entries))

    predicted = 0
    if todo:
        predictions: dict[int, dict] = {}
        chunks = predictor.predict([source.texts[i] for i in todo], version, top_k)
        for chunk in chunks:
            for prediction in chunk:
                if predicted >= len(todo):
                    raise BatchError("the predictor returned more predictions than texts")
                predictions[todo[predicted]] = {**prediction, "model_version": version}
                predicted += 1
            flush(todo[predicted - 1] + 1 if predicted else 0, predictions)
        if predicted != len(todo):
            raise BatchError(f"the predictor returned {predicted} predictions for {len(todo)} texts")
    flush(len(source), {})
    errors = sum(source.errors[i] is not None for i in pending)
    return BatchReport(len(source), len(source) - len(pending), predicted, errors, version)
