"""Request/response models of the predict and feedback APIs, and the one error mapping both handlers install.

Error answers are always JSON ``{"message": ...}`` (plus ``errors`` for field-level detail):
400 malformed JSON or body, 413 text over the size limit, 415 non-JSON content type, 422 a field fails validation
(missing, wrong type, empty text, bad label), 404 unknown route, 405 wrong method, 503 endpoint down or updating.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator

from autobert.feedback import ID_PATTERN, LABEL_PATTERN

logger = logging.getLogger("autobert.api")


class PredictRequest(BaseModel):
    """``{"text": "..."}`` or ``{"instances": ["...", ...]}``, optional ``top_k``."""

    model_config = ConfigDict(extra="forbid")

    text: StrictStr | None = Field(None, description="One document.")
    instances: list[StrictStr] | None = Field(None, min_length=1, description="Several documents (a batch).")
    top_k: StrictInt | None = Field(None, ge=1, le=1000, description="Alternatives per prediction.")

    @model_validator(mode="after")
    def one_of_text_or_instances(self) -> PredictRequest:
        if (self.text is None) == (self.instances is None):
            raise ValueError('send exactly one of "text" (one document) or "instances" (a list of documents)')
        for text in self.texts():
            if not text.strip():
                raise ValueError("text must not be empty or whitespace")
        return self

    def texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.instances or [])


class LabelScore(BaseModel):
    label: str
    score: float


class Prediction(LabelScore):
    top_k: list[LabelScore]


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str | None = None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(description="The text that was classified.")
    label: StrictStr = Field(pattern=LABEL_PATTERN, description="The correct label.")
    predicted_label: StrictStr | None = Field(None, pattern=LABEL_PATTERN, description="What the model said.")
    id: StrictStr | None = Field(None, pattern=ID_PATTERN, description="Idempotency key; default: hash of text+label.")

    @field_validator("text")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty or whitespace")
        return value


class FeedbackAccepted(BaseModel):
    id: str
    duplicate: bool
    message: str


# ------------------------------------------------------------------------------------------------------ errors
def error(status: int, message: str, **extra: Any) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body={"message": message, **extra})


def _describe(errors: list[Mapping[str, Any]]) -> tuple[int, str, list[dict]]:
    types = {e.get("type") for e in errors}
    if "json_invalid" in types:
        return 400, "invalid JSON body", []
    at_body = [e for e in errors if tuple(e.get("loc", ())) == ("body",)]
    if any(e.get("type") == "missing" for e in at_body):
        return 400, "a JSON body is required", []
    if any(e.get("type") in ("model_type", "model_attributes_type", "dict_type") for e in at_body):
        return 400, "the body must be a JSON object", []
    detail = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        detail.append({"field": loc, "message": str(e.get("msg", "invalid")).removeprefix("Value error, ")})
    return 422, "; ".join(f"{d['field']}: {d['message']}" for d in detail), detail


def install_error_handlers(app: APIGatewayRestResolver, routes: Mapping[str, set[str]]) -> None:
    """JSON ``{"message"}`` errors for validation failures, unknown routes (404) and wrong methods (405)."""

    @app.exception_handler(RequestValidationError)
    def validation_failed(exc: RequestValidationError) -> Response:
        status, message, detail = _describe(exc.errors())
        return error(status, message, **({"errors": detail} if detail else {}))

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response:
        # A fault of ours (storage down, a bug): logged with its trace, answered as JSON without one.
        logger.exception("unhandled error")
        return error(500, f"internal error ({type(exc).__name__}); nothing was acknowledged, please retry")

    @app.exception_handler(NotImplementedError)
    def unsupported_content_type(exc: NotImplementedError) -> Response:
        # Powertools' request validation cannot read a body of another content type than JSON (or a form): the layer's
        # release (3.22.1) raises NotImplementedError, 3.25+ its subclass RequestUnsupportedContentType.
        content_type = app.current_event.headers.get("content-type", "").strip()
        if content_type and not content_type.startswith(content_types.APPLICATION_JSON):
            return error(415, f"unsupported content type {content_type.split(';')[0]!r}: send application/json")
        return unexpected(exc)

    @app.not_found
    def not_found(_: NotFoundError) -> Response:
        path, method = app.current_event.path, app.current_event.http_method
        allowed = routes.get(path)
        if allowed and method not in allowed:
            return Response(status_code=HTTPStatus.METHOD_NOT_ALLOWED, content_type=content_types.APPLICATION_JSON,
                            headers={"Allow": ", ".join(sorted(allowed))},
                            body={"message": f"method {method} not allowed on {path}; use {', '.join(allowed)}"})
        return error(404, f"no route {method} {path}")
