"""POST /feedback: validate, store the item durably (once per id), answer 202 with its id."""

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from autobert.api_models import FeedbackAccepted, FeedbackRequest, observability, rest_app
from autobert.bootstrap import bootstrap
from autobert.feedback import FeedbackStore, LiveLabels

services = bootstrap()
settings = services.settings
logger, tracer, metrics = observability("feedback", settings)
app = rest_app({"/feedback": {"POST"}})
FeedbackBody = FeedbackRequest.limited(settings)  # the request model with this deployment's text cap
feedback = FeedbackStore(services.store, LiveLabels(services.store, settings.labels_cache_seconds),
                         allow_new_labels=settings.allow_new_labels)


@app.post("/feedback")
@tracer.capture_method
def post_feedback(request: FeedbackBody) -> Response[FeedbackAccepted]:
    stored = feedback.submit(request.text, request.label, predicted_label=request.predicted_label,
                             item_id=request.id)
    logger.info("feedback stored", extra={"id": stored.id, "key": stored.key, "duplicate": stored.duplicate})
    metrics.add_metric(name="FeedbackDuplicate" if stored.duplicate else "FeedbackStored", unit=MetricUnit.Count,
                       value=1)
    body = FeedbackAccepted(id=stored.id, duplicate=stored.duplicate,
                            message="already received" if stored.duplicate else "feedback stored")
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body.model_dump())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
