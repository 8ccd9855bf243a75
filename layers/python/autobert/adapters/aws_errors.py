"""Mapping botocore errors to the workflow's error classes (whose names the state machine's Retry/Catch match), and
the one place that tells AWS errors apart: by their error code, and by the message only where AWS gives a case no
code of its own (then always after the code check, so an unrelated error with a similar text never matches)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from autobert.workflow.errors import TransientError, WorkflowError

TRANSIENT_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "ProvisionedThroughputExceededException", "SlowDown", "ServiceUnavailable", "InternalFailure", "InternalError",
    "InternalServerError", "RequestTimeout", "RequestTimeoutException",
    "ConcurrentUpdateException",  # Application Auto Scaling: another update of the scalable target is in flight
})


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def is_error(exc: BaseException, *codes: str, message: str | None = None) -> bool:
    """``exc`` is a ClientError with one of ``codes`` and, when given, ``message`` in its message (ignoring case)."""
    if not isinstance(exc, ClientError) or error_code(exc) not in codes:
        return False
    return message is None or message.lower() in error_message(exc).lower()


def stack_missing(exc: BaseException) -> bool:
    """CloudFormation DescribeStacks on a missing stack: ``ValidationError`` "Stack with id X does not exist". The
    code is shared with every other invalid request, so the message tells this case apart."""
    return is_error(exc, "ValidationError", message="does not exist")


def endpoint_missing(exc: BaseException) -> bool:
    """SageMaker DescribeEndpoint on a missing endpoint: ``ValidationException`` 'Could not find endpoint "arn"'. No
    code of its own (DescribeEndpoint models no errors), so the message tells it from other validation errors."""
    return is_error(exc, "ValidationException", message="could not find endpoint")


def invoked_endpoint_missing(exc: BaseException) -> bool:
    """sagemaker-runtime InvokeEndpoint on an endpoint that does not exist (or is still being created): the modelled
    ``ValidationError`` "Endpoint X of account Y not found." Other ValidationErrors (a bad request) are not this."""
    return is_error(exc, "ValidationError", message="not found")


def already_exists(exc: BaseException) -> bool:
    """SageMaker Create* of a name that exists: ``ResourceInUse`` where the API has it; CreateModel and
    CreateEndpointConfig answer ``ValidationException`` 'Cannot create already existing model "arn"' (no code of
    their own), so for that code the message decides."""
    return is_error(exc, "ResourceInUse") or is_error(exc, "ValidationException", message="already exist")


@contextmanager
def aws_errors(failure: type[WorkflowError], what: str) -> Iterator[None]:
    """Throttling and 5xx become TransientError (retried with backoff); anything else ``failure``."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT_CODES or status >= 500:
            raise TransientError(f"{what}: {code}: {exc}") from exc
        raise failure(f"{what}: {code}: {exc.response.get('Error', {}).get('Message', exc)}") from exc
    except (ConnectionError, ReadTimeoutError) as exc:
        raise TransientError(f"{what}: {exc}") from exc
