"""The AWS EndpointClient: InvokeEndpoint through moto (canned answers) and, where moto cannot express a failure
(model errors, an endpoint that is missing or throttled), through botocore's Stubber."""

from __future__ import annotations

import json

import boto3
import pytest
import requests
from botocore.stub import Stubber
from moto import mock_aws

from autobert.adapters.sagemaker_runtime import SageMakerEndpointClient
from autobert.ports import EndpointRequestError, EndpointUnavailable


def test_invoke_sends_json_to_the_named_endpoint_and_returns_its_json(aws_credentials):
    answer = {"predictions": [{"label": "sci.space", "score": 0.9, "top_k": []}], "model_version": "v3"}
    with mock_aws():
        requests.post("http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
                      json={"results": [{"Body": json.dumps(answer), "ContentType": "application/json"}]}, timeout=5)
        client = SageMakerEndpointClient(boto3.client("sagemaker-runtime", region_name="us-east-1"), "autobert")
        assert client.invoke({"text": "orbit"}) == answer


def stubbed(code: str, message: str, status: int, **modeled) -> SageMakerEndpointClient:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("invoke_endpoint", service_error_code=code, service_message=message,
                             http_status_code=status, modeled_fields=modeled or None)
    stubber.activate()
    return SageMakerEndpointClient(client, "autobert")


def test_a_model_error_for_bad_input_becomes_a_request_error_with_the_container_message(aws_credentials):
    client = stubbed("ModelError", "Received client error (400)", 424, OriginalStatusCode=400,
                     OriginalMessage=json.dumps({"message": '"text" must not be empty or whitespace'}))
    with pytest.raises(EndpointRequestError) as info:
        client.invoke({"text": " "})
    assert info.value.status == 400 and str(info.value) == '"text" must not be empty or whitespace'


@pytest.mark.parametrize(("code", "message", "status", "modeled"), [
    # InvokeEndpoint's modelled code for a missing endpoint (or one still being created), as AWS answers it.
    ("ValidationError", "Endpoint autobert of account 123456789012 not found.", 400, {}),
    ("ModelNotReadyException", "Model is not ready", 429, {}),
    ("ServiceUnavailable", "Service unavailable", 503, {}),
    ("ThrottlingException", "Rate exceeded", 400, {}),
    ("ModelError", "Received server error (500)", 424, {"OriginalStatusCode": 500, "OriginalMessage": "boom"}),
])
def test_an_endpoint_that_cannot_serve_is_unavailable(aws_credentials, code, message, status, modeled):
    with pytest.raises(EndpointUnavailable):
        stubbed(code, message, status, **modeled).invoke({"text": "hello"})


def test_another_validation_error_is_not_taken_for_a_missing_endpoint(aws_credentials):
    from botocore.exceptions import ClientError

    client = stubbed("ValidationError", "1 validation error detected: Value at 'contentType' failed to satisfy "
                     "constraint: Member must have length less than or equal to 1024", 400)
    with pytest.raises(ClientError) as info:
        client.invoke({"text": "hello"})
    assert not isinstance(info.value, EndpointUnavailable)
