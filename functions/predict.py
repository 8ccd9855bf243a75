"""POST /predict: validate, call the endpoint (SageMaker, or the local endpoint), return its predictions."""

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from autobert.api_models import PredictRequest, error, observability, rest_app
from autobert.bootstrap import bootstrap
from autobert.ports import EndpointUnavailable

services = bootstrap()
settings = services.settings
logger, tracer, metrics = observability("predict", settings)
app = rest_app({"/predict": {"POST"}})
PredictBody = PredictRequest.limited(settings)  # the request model with this deployment's limits


@app.post("/predict")
@tracer.capture_method
def predict(request: PredictBody) -> dict:
    texts = request.texts()
    result = services.endpoint_client.invoke(request.model_dump(exclude_none=True))
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(texts))
    return result


@app.exception_handler(EndpointUnavailable)
def endpoint_unavailable(exc: EndpointUnavailable):
    logger.warning("endpoint unavailable: %s", exc)
    metrics.add_metric(name="EndpointUnavailable", unit=MetricUnit.Count, value=1)
    response = error(503, f"the model endpoint is unavailable, try again shortly ({exc})")
    if exc.retry_after:  # saturated: when to try again (autoscaling adds instances meanwhile)
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
