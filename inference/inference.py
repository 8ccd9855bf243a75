"""SageMaker inference script: the model server's four hooks, used unchanged by the local endpoint.

SageMaker's PyTorch serving container imports this module from ``code/`` inside ``model.tar.gz`` and calls, per request,
``input_fn(body, content_type)`` → ``predict_fn(data, model)`` → ``output_fn(prediction, accept)`` with the model that
``model_fn(model_dir)`` loaded once. The local endpoint (``autobert.endpoint_server``) imports this same file and calls
the same functions; it may merge the inputs of concurrent requests into one ``predict_fn`` call (``merge_inputs`` /
``split_prediction``), which changes nothing a client can see.

Request (``application/json``)::

    {"text": "one document"}                    or    {"instances": ["doc 1", "doc 2"]}
    optional: "top_k": 1..number of labels (default AUTOBERT_DEFAULT_TOP_K, capped at the label count)

Response::

    {"predictions": [{"label": "sci.space", "score": 0.93, "top_k": [{"label": ..., "score": ...}, ...]}],
     "model_version": "..."}                     one prediction per input, in input order

JSON lines (``application/jsonlines``), as a SageMaker Batch Transform job sends them (``SplitType: Line``,
``BatchStrategy: MultiRecord``: several lines of the input file in one request): one ``{"text": ...}`` object per line
(optional ``top_k``, the same on every line), each checked like a single-text request; no ``AUTOBERT_MAX_BATCH``
(the request's size is bounded by the job's ``MaxPayloadInMB``). Answered with ``Accept: application/jsonlines``: one
prediction object per line, in input order, so ``AssembleWith: Line`` gives one output line per input line.

Long documents are truncated to the model's ``max_length`` tokens (``autobert.json``; 128 by default) the way the model
was trained: ``head`` keeps the first tokens, ``head_tail`` keeps the start and the end. Nothing is rejected for being
long in tokens; only texts over ``AUTOBERT_MAX_TEXT_CHARS`` characters are refused (413). A batch may hold at most
``AUTOBERT_MAX_BATCH`` texts. The request is checked by the predict Lambda's own model (``autobert.api_models``), so
each rule has the same status here and in the API: 400 a body that is not UTF-8 / JSON / a JSON object, 413 a text too
long, 415 content type, 422 a field that fails validation (lone surrogates and batches over the limit included).

Errors are ``InferenceError`` with an HTTP status (those above, and 406 accept) and a one-line message. The local
endpoint answers that status with ``{"message": ...}``. On SageMaker they subclass sagemaker-inference-toolkit's
``BaseInferenceToolkitError``: the toolkit answers that status with the message followed by a Python traceback
(``Transformer.handle_error``), and the predict Lambda passes on only the message (``autobert.adapters.
sagemaker_runtime``), so no traceback reaches an API client.

Packaging for SageMaker (done by the deployment packaging step): ``model.tar.gz`` holds the model folder at its root
plus ``code/inference.py``, ``code/requirements.txt`` and a copy of the ``autobert`` package as ``code/autobert/``
(``layers/python/autobert``). The container puts ``code/`` on ``sys.path``; the line below makes that explicit so the
import works however the server loads this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # code/ (with code/autobert/) on SageMaker; harmless locally

from autobert.api_models import PredictRequest, RequestRejected, check, not_utf8  # noqa: E402
from autobert.config import get_settings  # noqa: E402
from autobert.contracts import JSON_LINES  # noqa: E402
from autobert.errors import AutobertError  # noqa: E402
from autobert.modeling import TextClassifier  # noqa: E402

JSON = "application/json"
JSON_LINES_TYPES = (JSON_LINES, "application/jsonl", "application/x-jsonlines")

try:  # present inside SageMaker's serving containers; its model server maps these errors to HTTP responses
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitError
except ImportError:  # local endpoint and tests: the same shape, handled by autobert.endpoint_server

    class _ToolkitError(Exception):  # type: ignore[no-redef]
        def __init__(self, status_code: int, message: str, phrase: str):
            super().__init__(status_code, message, phrase)
            self.status_code = status_code
            self.message = message
            self.phrase = phrase


class InferenceError(_ToolkitError):
    """A request the model server answers with ``status_code`` and ``message`` (client faults are 4xx)."""

    def __init__(self, status_code: int, message: str):
        super().__init__(status_code, message, message)

    def __str__(self) -> str:
        return self.message


# ------------------------------------------------------------------------------------------------------- the hooks
def model_fn(model_dir: str) -> TextClassifier:
    """Load the self-contained model folder that training/train.py wrote (safetensors, tokenizer, labels.json)."""
    try:
        return TextClassifier.load(model_dir)
    except AutobertError as exc:
        raise InferenceError(500, f"cannot load model: {exc}") from exc


def input_fn(body: bytes | bytearray | str, content_type: str | None) -> dict[str, Any]:
    """Parse and validate a request (``autobert.api_models.PredictRequest``, the model the predict Lambda checks
    with) into ``{"texts": [...], "top_k": int | None, "single": bool}``."""
    media_type = (content_type or JSON).split(";")[0].strip().lower()
    if media_type in JSON_LINES_TYPES:
        return _json_lines_input(body)
    if media_type != JSON:
        raise InferenceError(415, f"unsupported content type {content_type!r}: send application/json or "
                                  f"{JSON_LINES}")
    try:
        request = check(PredictRequest.limited(get_settings()), body)
    except RequestRejected as exc:
        raise InferenceError(exc.status, exc.message) from None
    return {"texts": request.texts(), "top_k": request.top_k, "single": request.text is not None}


def _json_lines_input(body: bytes | bytearray | str) -> dict[str, Any]:
    """A JSON lines request: each non-blank line one ``{"text": ...}`` (its ``top_k`` the same on every line)."""
    try:
        text = bytes(body).decode("utf-8") if isinstance(body, bytes | bytearray) else body
    except UnicodeDecodeError as exc:
        raise InferenceError(400, not_utf8(exc)) from None
    model = PredictRequest.limited(get_settings())
    texts, top_ks = [], set()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            request = check(model, line)
        except RequestRejected as exc:
            raise InferenceError(exc.status, f"line {number}: {exc.message}") from None
        if request.text is None:
            raise InferenceError(422, f'line {number}: a JSON lines request holds one {{"text": ...}} per line')
        texts.append(request.text)
        top_ks.add(request.top_k)
    if not texts:
        raise InferenceError(400, "the JSON lines body holds no line")
    if len(top_ks) > 1:
        raise InferenceError(422, "a JSON lines request takes one top_k for all its lines")
    return {"texts": texts, "top_k": top_ks.pop(), "single": False}


def predict_fn(data: dict[str, Any], model: TextClassifier) -> dict[str, Any]:
    """One prediction per text, in order; ``top_k`` alternatives each (capped at the number of labels)."""
    texts = data["texts"]
    top_k = min(data.get("top_k") or get_settings().default_top_k, len(model.labels))
    probs = model.predict_proba(texts)
    order = probs.argsort(axis=1)[:, ::-1][:, :top_k]
    predictions = []
    for row, idx in zip(probs, order, strict=True):
        alternatives = [{"label": model.labels[j], "score": round(float(row[j]), 6)} for j in idx]
        predictions.append({**alternatives[0], "top_k": alternatives})
    return {"predictions": predictions, "model_version": model.version}


def output_fn(prediction: dict[str, Any], accept: str | None) -> tuple[bytes, str]:
    """JSON body and its content type (a tuple, so the toolkit labels the response application/json even when the
    client accepted ``*/*``)."""
    media_types = [part.split(";")[0].strip().lower() for part in (accept or JSON).split(",")]
    if any(m in (JSON, "*/*", "application/*", "") for m in media_types):
        return json.dumps(prediction).encode(), JSON
    if any(m in JSON_LINES_TYPES for m in media_types):
        return "".join(json.dumps(p) + "\n" for p in prediction["predictions"]).encode(), JSON_LINES
    raise InferenceError(406, f"cannot answer in {accept!r}: accept application/json or {JSON_LINES}")


# -------------------------------------------------------- request merging (used by the local endpoint's batching)
def merge_inputs(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several parsed requests as one ``predict_fn`` input (the largest ``top_k`` wins; each is trimmed after)."""
    ks = [d.get("top_k") or get_settings().default_top_k for d in inputs]
    return {"texts": [t for d in inputs for t in d["texts"]], "top_k": max(ks), "single": False}


def split_prediction(prediction: dict[str, Any], inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Undo ``merge_inputs``: each request's own predictions, with its own ``top_k``."""
    out, start = [], 0
    for data in inputs:
        k = data.get("top_k") or get_settings().default_top_k
        chunk = prediction["predictions"][start : start + len(data["texts"])]
        start += len(data["texts"])
        out.append({"predictions": [{**p, "top_k": p["top_k"][:k]} for p in chunk],
                    "model_version": prediction["model_version"]})
    return out
