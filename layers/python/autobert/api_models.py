"""The predict and feedback requests: one pydantic model each, with every limit, used wherever a request is checked.

``PredictRequest`` is checked by the predict Lambda (``functions/predict.py``, through Powertools' validation) and by
the model server's ``input_fn`` (``inference/inference.py``, in SageMaker's container and the local endpoint), so a
request the API lets through is one the container accepts. ``FeedbackRequest`` is the body of ``POST /feedback``;
``FeedbackItem`` is the stored object (``feedback/date=.../<id>.json``) that ``FeedbackStore`` writes and the merge
(``workflow/merge.py``) validates again when it reads it. Limits come from the settings: ``Model.limited(settings)`` is
the model with this deployment's ``max_batch`` / ``max_text_chars``. This module imports no Powertools (the
SageMaker container has none): the Lambda's error mapping imports it when a handler installs it.

One answer per rule, JSON ``{"message": ...}`` (plus ``errors`` for field-level detail), the same from the API, the
container and the local endpoint:

- 400 the body is not UTF-8, not JSON, nested too deeply to parse, not a JSON object, or missing;
- 413 a text over ``max_text_chars`` characters, or a predict request whose body, as the predict function sends
  it on to the endpoint, is over ``PAYLOAD_LIMIT_BYTES`` (and, before any of this, a body over the API's 10 MB or
  the endpoint's 6 MB payload limit);
- 415 a content type other than JSON;
- 422 a field fails validation: missing, wrong type, unknown, empty or whitespace text, text with a lone surrogate
  (``"\\ud800"``: no UTF-8 form, so no model could read it), a label or id of the wrong syntax (label: 1-64 letters,
  digits, ``.``, ``_``, ``-``, starting with a letter or digit; id: the same up to 128, no ``..``), ``top_k`` out of
  1..1000, more than ``max_batch`` texts in one request; also a label the live model does not know when new labels are
  refused;
- 404 unknown route, 405 wrong method, 409 a feedback id reused for other feedback, 503 endpoint down or updating.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from functools import cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from autobert.errors import RequestRefused

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

    from autobert.config import Settings

logger = logging.getLogger("autobert.api")

LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$"  # ids become object keys: no slashes, no dot-dot tricks
_LABEL_RE = re.compile(LABEL_PATTERN)
_ID_RE = re.compile(ID_PATTERN)
TOO_LONG = "text_too_long"  # a text over the cap: answered 413, not 422
TOO_LARGE = "payload_too_large"  # a predict body over the endpoint's payload limit: 413 too
_TOO_BIG = {TOO_LONG, TOO_LARGE}

# The payload limits on a request's path (AWS quotas that cannot be raised): API Gateway REST APIs 10 MB; the Lambda
# function's synchronous invocation 6 MB, i.e. 6,291,456 bytes (its RequestEntityTooLargeException says so), for the
# whole event API Gateway builds, in which the body is escaped once more as a JSON string; SageMaker InvokeEndpoint
# on a real-time endpoint 6 MB (botocore's model: Body at most 6,291,456 bytes) for the body the predict function
# sends on. The smallest one binds.
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
# The rest of a proxy event: headers twice (headers and multiValueHeaders; API Gateway allows 10 KB of request line
# and headers) and the requestContext.
EVENT_ENVELOPE_BYTES = 64 * 1024
# The most bytes one character can take in that event: a character outside the BMP sent as a JSON escape pair
# ("\ud83d\ude00", 12 bytes, as Python's json and requests send it), each backslash escaped again in the event (14).
WORST_CASE_EVENT_BYTES_PER_CHAR = 14
# The longest text that reaches the handlers however its client encodes it (444,708 characters; the longest post of
# the 20 Newsgroups corpus has about 160,000). A batch of long texts is bounded by its measured size instead.
MAX_TEXT_CHARS = (PAYLOAD_LIMIT_BYTES - EVENT_ENVELOPE_BYTES) // WORST_CASE_EVENT_BYTES_PER_CHAR


class RequestRejected(RequestRefused):
    """A request (or stored item) that fails its model: ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message, status)
        self.message = message


# ------------------------------------------------------------------------------------------------------- the body
def parse_json(body: bytes | bytearray | str) -> Any:
    """The body as JSON. Not UTF-8 → UnicodeDecodeError; not JSON, or nested deeper than the parser's stack →
    json.JSONDecodeError (so Powertools' validation answers either as ``json_invalid``)."""
    text = bytes(body).decode("utf-8") if isinstance(body, bytes | bytearray) else body
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def not_utf8(exc: UnicodeDecodeError) -> str:
    return f"the body is not valid UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start})"


def check(model: type[BaseModel], body: bytes | bytearray | str) -> Any:
    """Parse and validate ``body`` against ``model``; RequestRejected with the status and message of the rule."""
    try:
        data = parse_json(body)
    except UnicodeDecodeError as exc:
        raise RequestRejected(400, not_utf8(exc)) from None
    except json.JSONDecodeError as exc:
        raise RequestRejected(400, f"invalid JSON body: {exc.msg}") from None
    return validate(model, data)


def validate(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        status, message, _ = describe(exc.errors(include_url=False, include_input=False))
        raise RequestRejected(status, message) from None


def describe(errors: Iterable[Mapping[str, Any]]) -> tuple[int, str, list[dict]]:
    """Status, one-line message and per-field detail for pydantic's errors (Powertools' carry ``body`` first)."""
    errors = list(errors)
    for e in errors:
        if e.get("type") == "json_invalid":
            return 400, f"invalid JSON body: {(e.get('ctx') or {}).get('error', 'JSON decode error')}", []
    at_body = [e for e in errors if tuple(e.get("loc", ())) in ((), ("body",))]
    if any(e.get("type") == "missing" for e in at_body):
        return 400, "a JSON body is required", []
    if any(e.get("type") in ("model_type", "model_attributes_type", "dict_type") for e in at_body):
        return 400, "the body must be a JSON object", []
    detail = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        detail.append({"field": loc, "message": str(e.get("msg", "invalid")).removeprefix("Value error, ")})
    status = 413 if all(e.get("type") in _TOO_BIG for e in errors) else 422
    return status, "; ".join(f"{d['field']}: {d['message']}" for d in detail), detail


# ------------------------------------------------------------------------------------------------------ the fields
def _unicode_text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError("text_not_unicode", "not valid Unicode: a lone surrogate \\u{code} at position {at}",
                                  {"code": f"{ord(value[exc.start]):04x}", "at": exc.start}) from None
    if not value.strip():
        raise PydanticCustomError("text_blank", "must not be empty or whitespace")
    return value


def _label(value: str) -> str:
    if not _LABEL_RE.fullmatch(value):
        raise PydanticCustomError("label_syntax", "not a valid label: 1-64 characters, letters, digits, '.', '_' or "
                                                  "'-', starting with a letter or digit")
    return value


def _item_id(value: str) -> str:
    if not _ID_RE.fullmatch(value) or ".." in value:
        raise PydanticCustomError("id_syntax", "not a valid id: 1-128 characters, letters, digits, '.', '_' or '-', "
                                               "starting with a letter or digit, no '..'")
    return value


def _at_most(limit: int) -> AfterValidator:
    def within(value: str) -> str:
        if len(value) > limit:
            raise PydanticCustomError(TOO_LONG, "too long: {length} > {limit} characters",
                                      {"length": len(value), "limit": limit})
        return value

    return AfterValidator(within)


Text = Annotated[StrictStr, AfterValidator(_unicode_text)]
Label = Annotated[StrictStr, AfterValidator(_label), Field(json_schema_extra={"pattern": LABEL_PATTERN})]
ItemId = Annotated[StrictStr, AfterValidator(_item_id), Field(json_schema_extra={"pattern": ID_PATTERN})]


def _capped(max_text_chars: int) -> Any:
    return Annotated[Text, _at_most(max_text_chars)]


# ------------------------------------------------------------------------------------------------------- predict
class PredictRequest(BaseModel):
    """``{"text": "..."}`` or ``{"instances": ["...", ...]}``, optional ``top_k``. Unlimited as it stands: check with
    ``PredictRequest.limited(settings)``."""

    model_config = ConfigDict(extra="forbid")
    max_batch: ClassVar[int | None] = None
    max_payload_bytes: ClassVar[int | None] = None

    text: Text | None = Field(None, description="One document.")
    instances: list[Text] | None = Field(None, min_length=1, description="Several documents (a batch).")
    top_k: StrictInt | None = Field(None, ge=1, le=1000, description="Alternatives per prediction.")

    @field_validator("instances", mode="before")
    @classmethod
    def within_the_batch_limit(cls, value: Any) -> Any:
        if cls.max_batch is not None and isinstance(value, list) and len(value) > cls.max_batch:
            raise PydanticCustomError("too_many_texts", "too many instances: {count} > {limit} in one request",
                                      {"count": len(value), "limit": cls.max_batch})
        return value

    @model_validator(mode="after")
    def one_of_text_or_instances(self) -> Self:
        if (self.text is None) == (self.instances is None):
            raise ValueError('send exactly one of "text" (one document) or "instances" (a list of documents)')
        return self

    @model_validator(mode="after")
    def within_the_payload_limit(self) -> Self:
        # Measured as the predict function sends it on (json.dumps, ASCII escapes: the largest form), so a request
        # let through here is never refused by InvokeEndpoint for its size.
        if self.max_payload_bytes is None:
            return self
        size = len(json.dumps(self.model_dump(exclude_none=True)).encode())
        if size > self.max_payload_bytes:
            raise PydanticCustomError(TOO_LARGE, "request too large: {size} bytes as sent to the model > {limit}; "
                                      "send fewer or shorter texts", {"size": size, "limit": self.max_payload_bytes})
        return self

    def texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.instances or [])

    @classmethod
    def limited(cls, settings: Settings) -> type[PredictRequest]:
        return _limited_predict(settings.max_batch, settings.max_text_chars)


@cache
def _limited_predict(max_batch: int, max_text_chars: int) -> type[PredictRequest]:
    text = _capped(max_text_chars)
    model = create_model("PredictRequest", __base__=PredictRequest, __doc__=PredictRequest.__doc__,
                         text=(text | None, Field(None, description="One document.")),
                         instances=(list[text] | None, Field(None, min_length=1, description="Several documents.")))
    model.max_batch = max_batch
    model.max_payload_bytes = PAYLOAD_LIMIT_BYTES
    return model


class LabelScore(BaseModel):
    label: str
    score: float


class Prediction(LabelScore):
    top_k: list[LabelScore]


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str | None = None


# ------------------------------------------------------------------------------------------------------ feedback
class FeedbackFields(BaseModel):
    """What a user says about a text: the fields a request and a stored item share."""

    text: Text = Field(description="The text that was classified.")
    label: Label = Field(description="The correct label.")
    predicted_label: Label | None = Field(None, description="What the model said.")
    id: ItemId | None = Field(None, description="Idempotency key; default: hash of text+label.")


class FeedbackRequest(FeedbackFields):
    """The body of ``POST /feedback``; check with ``FeedbackRequest.limited(settings)`` (the text length cap)."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def limited(cls, settings: Settings) -> type[FeedbackRequest]:
        return _limited_feedback(settings.max_text_chars)


@cache
def _limited_feedback(max_text_chars: int) -> type[FeedbackRequest]:
    return create_model("FeedbackRequest", __base__=FeedbackRequest, __doc__=FeedbackRequest.__doc__,
                        text=(_capped(max_text_chars), Field(description="The text that was classified.")))


class FeedbackItem(FeedbackFields):
    """A stored feedback object. Read back leniently (unknown fields ignored, ``received_at`` may be missing), so an
    item is refused by the merge only for what the API would have refused (the text cap aside: the item was accepted
    under the cap of its day)."""

    model_config = ConfigDict(extra="ignore")

    id: ItemId
    received_at: StrictStr | None = None
    model_version: StrictStr | None = None

    def to_json(self) -> dict[str, Any]:
        item = self.model_dump(exclude={"model_version"} if self.model_version is None else set())
        return {"id": item.pop("id"), **item}


class FeedbackAccepted(BaseModel):
    id: str
    duplicate: bool
    message: str


class RetrainRequest(BaseModel):
    """The body of ``POST /retrain`` (``{}`` for a warm-start retrain)."""

    model_config = ConfigDict(extra="forbid")

    full: bool = Field(False, description="Retrain from the base model on the whole dataset instead of a warm "
                       "start from the live model.")


# ------------------------------------------------------------------------------------------------ Lambda errors
def observability(service: str, settings: Settings) -> tuple[Logger, Tracer, Metrics]:
    """Powertools' logger, tracer and metrics of one API handler. The metrics are the instance's own metric set: the
    local API runs several copies of a handler module at once (like concurrent Lambda containers), and Powertools'
    default ``Metrics`` share one class-level dict."""
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    return (Logger(service=service), Tracer(service=service, disabled=settings.trace_disabled),
            Metrics(provider=AmazonCloudWatchEMFProvider(namespace="autobert", service=service)))


def rest_app(routes: Mapping[str, set[str]]) -> APIGatewayRestResolver:
    """The resolver of every API Lambda: request models validated by Powertools over bodies parsed by
    ``parse_json``, every refusal a JSON ``{"message"}`` (``install_error_handlers``). ``routes``: the function's
    paths and methods (serverless.yml's http events), for 404 vs 405."""
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json)
    install_error_handlers(app, routes)
    return app


def error(status: int, message: str, **extra: Any) -> Response:
    from aws_lambda_powertools.event_handler import Response, content_types

    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body={"message": message, **extra})


def install_error_handlers(app: APIGatewayRestResolver, routes: Mapping[str, set[str]]) -> None:
    """JSON ``{"message"}`` errors for validation failures, unknown routes (404), wrong methods (405), powertools'
    ``ServiceError``s and our ``RequestRefused``. The app must parse bodies with ``parse_json``
    (``json_body_deserializer=parse_json``)."""
    from aws_lambda_powertools.event_handler import Response, content_types
    from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
    from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    def validation_failed(exc: RequestValidationError) -> Response:
        status, message, detail = describe(exc.errors())
        return error(status, message, **({"errors": detail} if detail else {}))

    @app.exception_handler(ServiceError)
    def service_error(exc: ServiceError) -> Response:
        return error(exc.status_code, exc.msg)

    @app.exception_handler(RequestRefused)
    def refused(exc: RequestRefused) -> Response:
        return error(exc.status, str(exc))

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response:
        # A fault of ours (storage down, a bug): logged with its trace, answered as JSON without one.
        logger.exception("unhandled error")
        return error(500, f"internal error ({type(exc).__name__}); nothing was acknowledged, please retry")

    @app.exception_handler(UnicodeDecodeError)
    def body_not_utf8(exc: UnicodeDecodeError) -> Response:
        # Powertools decodes the (base64) body before parse_json sees it; any other decode failure is a fault of ours.
        event = app.current_event
        try:
            event.decoded_body  # noqa: B018 — raises again if it is the body that cannot be decoded
        except UnicodeDecodeError as again:
            return error(400, not_utf8(again))
        return unexpected(exc)

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
