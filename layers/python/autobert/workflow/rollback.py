"""Rollback: put a previous model version back live through the same update path as a run (UpdateEndpoint, wait
until InService and serving it, then the registry), recorded as a run of kind ``rollback``."""

from __future__ import annotations

import time

from autobert.bootstrap import Services
from autobert.workflow import steps
from autobert.workflow.errors import DeploymentError, UnknownModelVersion
from autobert.workflow.registry import ModelRegistry
from autobert.workflow.runs import RunStore, new_run_id


def rollback(services: Services, version: str, *, poll_seconds: float = 2.0) -> dict:
    registry = ModelRegistry(services.store)
    record = registry.get(version)
    live = registry.live()
    if live and live["version"] == version:
        raise UnknownModelVersion(f"{version} is already live")
    if not record.get("model_uri"):
        raise UnknownModelVersion(f"{version} has no model artifact")
    runs = RunStore(services.store)
    run_id = new_run_id()
    runs.create(run_id, trigger="rollback", status="running", model_version=version,
                live_version_before=live["version"] if live else None)
    state = {"run_id": run_id, "gate": {"model_version": version, "model_uri": record["model_uri"]}}
    try:
        state["deploy"] = steps.update_endpoint(services, state)
        while True:
            result = steps.check_endpoint(services, state)
            if result["status"] == "InService":
                break
            if result["status"] == "Failed" or result["timed_out"]:
                raise DeploymentError(f"rollback to {version}: endpoint {result['status']}"
                                      f"{' (timed out)' if result['timed_out'] else ''}")
            time.sleep(poll_seconds)
    except Exception as exc:
        runs.update(run_id, status="failed", error=type(exc).__name__, cause=str(exc))
        raise
    return registry.get(version)
