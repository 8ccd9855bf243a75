"""Helpers for the runs console tests: run records and event histories written through the workflow's own stores
(``RunStore``, ``ModelRegistry``), shaped as the local runner records them (aws-local-stepfunctions events)."""

from __future__ import annotations

from autobert.workflow.registry import ModelRegistry
from autobert.workflow.runs import RunStore, state_timings

STATE_TYPES = {"MergeData": "Task", "StartTraining": "Task", "WaitForTraining": "Wait", "CheckTraining": "Task",
               "TrainingStatus": "Choice", "Evaluate": "Task", "PromoteOrReject": "Choice",
               "CandidateRejected": "Succeed", "UpdateEndpoint": "Task", "WaitForEndpoint": "Wait",
               "CheckEndpoint": "Task", "EndpointStatus": "Choice", "Succeeded": "Succeed", "RecordFailure": "Task",
               "RunFailed": "Fail", "TrainingFailed": "Pass"}
HAPPY_PATH = ["MergeData", "StartTraining", "WaitForTraining", "CheckTraining", "TrainingStatus", "Evaluate",
              "PromoteOrReject", "UpdateEndpoint", "WaitForEndpoint", "CheckEndpoint", "EndpointStatus", "Succeeded"]
JOB = "ab-20261125-101502-a1b2c3"
RESULTS = {  # what each state adds to the execution state (its ResultPath), as the step handlers return it
    "MergeData": ("merge", {"dataset_version": "d-7c1e9a0b22f4", "merged": 42, "warm": True}),
    "StartTraining": ("training", {"job_name": JOB, "model_version": JOB}),
    "CheckTraining": ("training_status", {"status": "Completed", "timed_out": False}),
    "Evaluate": ("gate", {"promote": True, "model_version": JOB}),
    "UpdateEndpoint": ("deploy", {"model_version": JOB}),
    "CheckEndpoint": ("endpoint", {"status": "InService", "timed_out": False}),
}


def events_through(run_id: str, states: list[str], t0: int = 1_795_600_000_000, step_ms: int = 700,
                   end: str | None = None, overrides: dict | None = None) -> list[dict]:
    """ExecutionStarted, then StateEntered/StateExited for each state in order (inputs and outputs threaded through
    like ResultPath does), then ExecutionSucceeded when ``end == "succeeded"``. ``overrides`` replaces the result a
    state returns."""
    overrides = overrides or {}
    document: dict = {"run_id": run_id, "triggers": ["t-1"], "full": False}
    events = [{"type": "ExecutionStarted", "timestamp": t0, "input": dict(document)}]
    t = t0 + 1
    for name in states:
        kind = STATE_TYPES[name]
        events.append({"type": "StateEntered", "timestamp": t,
                       "state": {"name": name, "type": kind, "input": dict(document)}})
        t += step_ms
        if name in RESULTS:
            path, result = RESULTS[name]
            document = {**document, path: overrides.get(name, result)}
        events.append({"type": "StateExited", "timestamp": t,
                       "state": {"name": name, "type": kind, "input": events[-1]["state"]["input"],
                                 "output": dict(document)}})
        t += 2
    if end == "succeeded":
        events.append({"type": "ExecutionSucceeded", "timestamp": t, "output": document})
    return events


def write_run(services, run_id: str, states: list[str], *, status: str, end: str | None = None,
              overrides: dict | None = None, **fields) -> dict:
    """A run record and its history through RunStore, the way the local runner keeps them while a run goes on."""
    runs = RunStore(services.store)
    events = events_through(run_id, states, end=end, overrides=overrides)
    try:
        runs.get(run_id)
    except Exception:  # noqa: BLE001 — UnknownRun: first write
        runs.create(run_id, trigger=fields.pop("trigger", "manual"), executor="local", full=False)
    runs.put_history(run_id, events)
    if end:  # the executor's last write: the run is over
        fields["execution_status"] = end.upper()
    return runs.update(run_id, status=status, states=state_timings(events), **fields)


def register_evaluated(services, version: str, run_id: str, *, promote: bool, before: tuple[float, float] | None,
                       after: tuple[float, float], status: str, model_uri: str = "", **fields) -> dict:
    """A registry record with the gate decision, as the Evaluate step writes it."""
    summary = lambda acc, f1: {"accuracy": acc, "macro_f1": f1, "per_class_f1": {}}  # noqa: E731
    return ModelRegistry(services.store).register(
        version, status=status, run_id=run_id, model_uri=model_uri,
        dataset_version=fields.pop("dataset_version", "d-7c1e9a0b22f4"), labels=fields.pop("labels", ["a", "b"]),
        metrics={"accuracy": after[0], "macro_f1": after[1]},
        gate={"promote": promote, "reasons": ["not worse than live beyond the margins"] if promote else
              ["accuracy 0.5000 is 0.3000 below live 0.8000 (margin 0.01)"],
              "candidate": summary(*after), "live": summary(*before) if before else None, "new_labels": [],
              "holdout_rows": 120, "live_version": fields.pop("live_version", None)},
        **fields)
