"""Rollback: put a previous model version back live through the same update path as a run (UpdateEndpoint, wait
until InService and serving it, then the registry), recorded as a run of kind ``rollback``."""

from __future__ import annotations

import time
from collections.abc import Callable

from autobert.bootstrap import Services
from autobert.workflow import steps
from autobert.workflow.errors import DeploymentError, UnknownModelVersion
from autobert.workflow.registry import ModelRegistry
from autobert.workflow.runs import RunStore, open_run


def rollback(services: Services, version: str, *, poll_seconds: float = 2.0,
             sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> dict:
    """Put ``version`` back live and return its registry record. The run is opened like any other
    (``runs.open_run``, kind "rollback"); the endpoint is checked every ``poll_seconds`` (``sleep``) until it serves
    the version, for at most ``endpoint_max_wait_seconds`` by ``clock``."""
    registry = ModelRegistry(services.store)
    record = registry.get(version)
    live = registry.live()
    if live and live["version"] == version:
        raise UnknownModelVersion(f"{version} is already live")
    if not record.get("model_uri"):
        raise UnknownModelVersion(f"{version} has no model artifact")
    run_id = open_run(services.store, [], kind="rollback", executor="in-process", status="running",
                      model_version=version)["run_id"]
    state = {"run_id": run_id, "gate": {"model_version": version, "model_uri": record["model_uri"]}}
    try:
        state["deploy"] = steps.update_endpoint(services, state)
        deadline = clock() + services.settings.endpoint_max_wait_seconds
        while True:
            result = steps.check_endpoint(services, state)
            if result["status"] == "InService":
                break
            timed_out = result["timed_out"] or clock() > deadline
            if result["status"] == "Failed" or timed_out:
                raise DeploymentError(f"rollback to {version}: endpoint {result['status']}"
                                      f"{' (timed out)' if timed_out else ''}")
            sleep(poll_seconds)
    except Exception as exc:
        RunStore(services.store).update(run_id, status="failed", error=type(exc).__name__, cause=str(exc))
        raise
    return registry.get(version)
