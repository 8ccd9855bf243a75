"""Mapping botocore errors to the workflow's error classes (whose names the state machine's Retry/Catch match)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from autobert.workflow.errors import TransientError, WorkflowError

TRANSIENT_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "ProvisionedThroughputExceededException", "SlowDown", "ServiceUnavailable", "InternalFailure", "InternalError",
    "InternalServerError", "RequestTimeout", "RequestTimeoutException",
})


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


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
