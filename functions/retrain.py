"""Start a retraining run: POST /retrain (manual, from the API), the EventBridge schedule (low-traffic window), the
feedback-count threshold (an EventBridge rate rule sends ``{"action": "check-threshold"}``) and the end of a run
(serves the triggers that came in during it).

A run starts unless one is running; then the trigger is recorded and the next run serves it (202 either way).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from autobert.api_models import RetrainRequest, error, rest_app
from autobert.bootstrap import bootstrap
from autobert.workflow.errors import NoDatasetError
from autobert.workflow.start import after_feedback, on_execution_end, request_run

services = bootstrap()
logger = Logger(service="retrain")
app = rest_app({"/retrain": {"POST"}})


@app.post("/retrain")
def post_retrain(request: RetrainRequest) -> Response[dict]:
    result = request_run(services, "manual", full=request.full, source="api")
    body = {"status": result["status"], "trigger": result["trigger"]["id"], "run_id": result.get("run_id")}
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body)


@app.exception_handler(NoDatasetError)
def not_bootstrapped(exc: NoDatasetError):
    return error(409, str(exc))


def scheduled(event: dict) -> dict:
    if event.get("detail-type") == "Step Functions Execution Status Change":
        return on_execution_end(services, event.get("detail") or {})  # serve the triggers that came in meanwhile
    s = services.settings
    tune = {"tune": True} if s.schedule_tune else {}
    try:
        return request_run(services, "schedule", full=s.schedule_full_retrain, **tune)
    except NoDatasetError as exc:  # the stack is deployed but not bootstrapped yet: nothing to retrain
        logger.info("scheduled run skipped: %s", exc)
        return {"status": "not-bootstrapped", "message": str(exc)}


def check_threshold() -> dict:
    threshold = services.settings.feedback_threshold
    running = services.workflow_runs.running()
    if running:
        # The running run merges what was unmerged when it started; a trigger recorded now would queue a second run
        # for the same items. The next check after it ends counts what it left.
        return {"status": "running", "running": [e["name"] for e in running], "threshold": threshold}
    result = after_feedback(services)
    logger.info("feedback threshold check", extra={"threshold": threshold, "result": result and result["status"]})
    # None: fewer unmerged items than the threshold, or a threshold trigger already waits for a run.
    return result or {"status": "not-triggered", "threshold": threshold}


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    if event.get("action") == "check-threshold":
        return check_threshold()
    return scheduled(event) if event.get("source") in ("aws.events", "aws.states") else app.resolve(event, context)
