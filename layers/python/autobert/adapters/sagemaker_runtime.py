"""EndpointClient for AWS: sagemaker-runtime InvokeEndpoint on the configured endpoint name."""

from __future__ import annotations

import contextlib
import json

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from autobert.adapters.aws_errors import invoked_endpoint_missing
from autobert.ports import EndpointClient, EndpointRequestError, EndpointUnavailable

# API Gateway ends every integration at 29 s; the predict Lambda keeps a margin for its own work and the answer.
API_GATEWAY_LIMIT_SECONDS = 29.0
LAMBDA_MARGIN_SECONDS = 2.0
ATTEMPTS = 2  # one retry: a throttled call or a dropped connection gets a second chance
CONNECT_TIMEOUT_SECONDS = 1.0


def max_backoff_seconds(attempts: int) -> float:
    """The longest botocore's standard retry mode waits in all: random() * 2**(n - 1) s (at most 20) before retry n."""
    return sum(min(2.0 ** (n - 1), 20.0) for n in range(1, attempts))


def invoke_config(read_timeout: float) -> Config:
    """The sagemaker-runtime client's timeouts and retries, sized so every attempt together ends within API
    Gateway's limit: the Lambda answers 503 with a message instead of the gateway's bare 504."""
    budget = API_GATEWAY_LIMIT_SECONDS - LAMBDA_MARGIN_SECONDS - max_backoff_seconds(ATTEMPTS)
    read = min(read_timeout, budget / ATTEMPTS - CONNECT_TIMEOUT_SECONDS)
    return Config(connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=read,
                  retries={"total_max_attempts": ATTEMPTS, "mode": "standard"})


def worst_case_seconds(config: Config) -> float:
    """How long an InvokeEndpoint call may take with ``config`` before it gives up."""
    # botocore: total_max_attempts counts the first call, max_attempts only the retries (standard mode default: 2)
    attempts = config.retries.get("total_max_attempts") or config.retries.get("max_attempts", 2) + 1
    return attempts * (config.connect_timeout + config.read_timeout) + max_backoff_seconds(attempts)


# Errors that mean "cannot serve now, try again later" rather than "your input is wrong".
_UNAVAILABLE = {"ServiceUnavailable", "ThrottlingException", "ModelNotReadyException", "InternalFailure",
                "InternalDependencyException", "ModelStreamError"}


# Errors that mean the endpoint is saturated (more requests than its instances take): answered 503 with a short
# Retry-After, while autoscaling adds instances.
_SATURATED = {"ThrottlingException", "ServiceUnavailable"}
SATURATED_RETRY_AFTER = 1


def _model_error_message(error: dict) -> tuple[int, str]:
    """ModelError: the container answered non-2xx; its status and body come back as OriginalStatusCode/Message.

    The PyTorch serving container (sagemaker-inference's ``Transformer.handle_error``) answers an error as
    ``"<message>\\n<Python traceback>"``; the local endpoint answers ``{"message": ...}``. Either way only the
    one-line message goes on: a traceback never reaches an API client."""
    status = int(error.get("OriginalStatusCode") or 500)
    original = error.get("OriginalMessage") or error.get("Message") or ""
    with contextlib.suppress(ValueError, KeyError, TypeError):  # our container's {"message"}; else keep the text
        original = json.loads(original)["message"]
    lines = str(original).strip().splitlines()
    return status, lines[0].strip() if lines else f"the model answered {status}"


class SageMakerEndpointClient(EndpointClient):
    def __init__(self, client, endpoint_name: str):
        self.client = client
        self.endpoint_name = endpoint_name

    def invoke(self, payload: dict) -> dict:
        try:
            response = self.client.invoke_endpoint(EndpointName=self.endpoint_name, ContentType="application/json",
                                                   Accept="application/json", Body=json.dumps(payload).encode())
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", str(exc))
            if code == "ModelError":
                status, original = _model_error_message({**error, **exc.response})
                if 400 <= status < 500:
                    raise EndpointRequestError(status, original) from exc
                # 503 from the container: its model server's queue is full (saturated), worth a retry soon
                raise EndpointUnavailable(f"the model failed ({status}): {original}",
                                          SATURATED_RETRY_AFTER if status == 503 else None) from exc
            if invoked_endpoint_missing(exc):  # no endpoint (yet): "Endpoint x of account y not found."
                raise EndpointUnavailable(f"endpoint {self.endpoint_name} cannot serve: {message}") from exc
            if code in _UNAVAILABLE or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                retry = SATURATED_RETRY_AFTER if code in _SATURATED else None
                raise EndpointUnavailable(f"endpoint {self.endpoint_name} unavailable ({code}): {message}",
                                          retry) from exc
            raise
        except BotoCoreError as exc:  # connection errors, read timeouts
            raise EndpointUnavailable(f"endpoint {self.endpoint_name} unreachable: {exc}") from exc
        body = response["Body"].read()
        try:
            return json.loads(body)
        except ValueError as exc:
            raise EndpointUnavailable(f"endpoint {self.endpoint_name} answered non-JSON: {body[:200]!r}") from exc
