"""The state machine's task handlers: each takes the execution state (a small dict) and returns a small dict that
the ASL stores under its ResultPath. ``functions/<name>.py`` wraps each one as a Lambda handler; the local runner
calls them directly. Errors are raised as exceptions whose class names the ASL's Retry/Catch list.

Execution state, as it grows: ``{"run_id", "triggers", "full"}`` (AWS: optional ``"tune": true``) → ``merge`` →
``training`` → ``training_status`` → ``gate`` → ``deploy`` → ``endpoint``; on a caught error
``error: {"Error", "Cause"}`` (the keys: ``autobert.contracts``). On the tuning path
(``autobert.workflow.tuning_steps``) ``training`` holds the tuning job and ``training_status`` the model version of
its best training job, whose model then takes the same Evaluate → UpdateEndpoint path.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from autobert import layout
from autobert.bootstrap import Services
from autobert.contracts import ENCODER_KINDS, HOLDOUT_REPORT_FILE, METRICS_FILE, MODEL_KIND, TRAINING_PROGRESS
from autobert.ports import ObjectNotFound, ObjectStore, TrainingJobs, TrainingJobSpec, TuningJobs
from autobert.tuning.records import load_defaults_record
from autobert.workflow.errors import DeploymentError, TransientError, WorkflowError
from autobert.workflow.gate import Margins, decide
from autobert.workflow.registry import ModelRegistry, now_iso
from autobert.workflow.runs import RunStore, UnknownRun
from autobert.workflow.triggers import mark_served

logger = logging.getLogger("autobert.workflow")


def new_job_name() -> str:
    # A fresh name per call: a retried StartTraining never collides with the job of the failed attempt.
    return f"ab-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


# ------------------------------------------------------------------------------------------------------ MergeData
def merge_data(services: Services, event: dict) -> dict:
    from autobert.workflow import merge as merging  # pandas: only this step needs it

    store, settings = services.store, services.settings
    run_id = event["run_id"]
    runs = RunStore(store)
    mark_served(store, event.get("triggers", []), run_id)
    runs.update(run_id, status="running", triggers=event.get("triggers", []), full=bool(event.get("full")))
    result = merging.merge_feedback(store)
    live = ModelRegistry(store).live_record()
    model_kind = requested_model_kind(store, event.get("triggers", []))
    warm = (bool(live) and not event.get("full") and bool(live.get("dataset_version"))
            and continues_encoder(model_kind, live))
    if warm:
        channels = merging.build_warm_trainset(
            store, result.dataset_version, live["dataset_version"], replay_per_class=settings.replay_per_class,
            validation_per_class=settings.replay_validation_per_class, feedback_repeat=settings.feedback_repeat,
            seed=settings.seed)
    else:
        channels = {"train": layout.dataset_prefix(result.dataset_version), "validation": None}
    out = {**result.summary(), "warm": warm, "init_version": live["version"] if live else None,
           "channels": channels, MODEL_KIND: model_kind}
    runs.update(run_id, dataset_version=result.dataset_version, merge=result.summary(), warm=warm,
                **{MODEL_KIND: model_kind})
    return out


def requested_model_kind(store: ObjectStore, trigger_ids: list[str]) -> str:
    """What the run trains (``autobert.contracts.MODEL_KINDS``): "linear" only when every trigger it serves asks
    for it (the first model of a stack); a trigger that names no kind asks for BERT."""
    kinds = set()
    for trigger_id in trigger_ids:
        with suppress(ObjectNotFound):
            kinds.add(store.get_json(layout.trigger_key(trigger_id)).get(MODEL_KIND, "bert"))
    return "linear" if kinds == {"linear"} else "bert"


def continues_encoder(model_kind: str, live: dict) -> bool:
    """Whether a run training ``model_kind`` can warm-start from the ``live`` registry record: both must have an
    encoder (a linear-only live model has none to continue: BERT then trains from the base model on everything)."""
    return model_kind in ENCODER_KINDS and live.get(MODEL_KIND, "bert") in ENCODER_KINDS


# -------------------------------------------------------------------------------------------------- StartTraining
# A warm start fine-tunes the live model briefly: the epochs and learning rate tuned for a full training from the
# base model would overshoot it, so those stay the warm-start settings.
FULL_TRAINING_ONLY = ("epochs", "learning-rate")
# Set by the workflow itself; a tuned defaults record never overrides them.
WORKFLOW_OWNED = ("model-version", "model-kind", "init-model", "progress", "test-fraction")


def tuned_defaults(services: Services, warm: bool) -> tuple[dict[str, str], dict | None]:
    """The hyperparameters saved by `autobert tune apply` that apply to this run, and where they came from."""
    record = load_defaults_record(services.store) or {}
    params = {str(k): str(v) for k, v in (record.get("hyperparameters") or {}).items()
              if k not in WORKFLOW_OWNED and not (warm and k in FULL_TRAINING_ONLY)}
    return params, (record.get("source") if params else None)


def training_hyperparameters(services: Services, job_name: str, warm: bool, init_path: str | None,
                             tuned: dict[str, str] | None = None,
                             model_kind: str = "bert") -> dict[str, str]:
    """Settings defaults, then the tuned defaults (``tuned``, else read from the bucket), then
    AUTOBERT_TRAIN_HYPERPARAMETERS (explicit settings win)."""
    s = services.settings
    hp = {
        "model-name": s.model_name,
        "epochs": str(s.warm_epochs if warm else s.train_epochs),
        "learning-rate": str(s.warm_learning_rate if warm else s.train_learning_rate),
        "seed": str(s.seed),
    }
    hp.update(tuned_defaults(services, warm)[0] if tuned is None else tuned)
    hp.update({"model-version": job_name, "model-kind": model_kind, "progress": "false"})
    if warm and init_path:
        hp["init-model"] = init_path
    # Every run has the fixed holdout channel, which the gate scores: an internal test split would only take 10 %
    # of the documents away from training (on a warm start every changed row must train, too).
    hp["test-fraction"] = "0"
    hp.update({k: str(v) for k, v in s.train_hyperparameters.items()})
    return hp


@dataclass
class TrainingInputs:
    """What one training job of a run gets (a tuning job's trials get the same): its channels and
    hyperparameters, and where the tuned defaults among them came from."""

    channels: dict[str, str]
    hyperparameters: dict[str, str]
    tuned_from: dict | None


def training_inputs(services: Services, merge: dict, job_name: str, jobs: TrainingJobs | TuningJobs) -> TrainingInputs:
    """The channels (``train``, ``holdout``, ``validation`` and ``fusion`` on a warm start, ``live`` once a model is
    live) and hyperparameters of a run's training, from MergeData's result ``merge`` (``channels``, ``warm``,
    ``dataset_version``, ``holdout_version``). ``jobs``: who runs the training (training or tuning jobs), which says
    where its jobs find the live model."""
    store = services.store
    channels = {"train": store.uri(merge["channels"]["train"]),
                "holdout": store.uri(layout.holdout_prefix(merge["holdout_version"]))}
    if merge["channels"].get("validation"):
        channels["validation"] = store.uri(merge["channels"]["validation"])
    if merge["warm"]:
        # BERT warm-starts on the changes + a replay sample; the fused TF-IDF model refits on the whole dataset.
        channels["fusion"] = store.uri(layout.dataset_prefix(merge["dataset_version"]))
    init_path = None
    live = ModelRegistry(store).live()
    if live:
        # The live model is scored on the holdout beside the candidate (and is the warm start's init model).
        channels["live"] = live["model_uri"]
        init_path = jobs.init_model_path("live", live["model_uri"])
    tuned, tuned_from = tuned_defaults(services, merge["warm"])
    hp = training_hyperparameters(services, job_name, merge["warm"], init_path, tuned,
                                  merge.get(MODEL_KIND, "bert"))
    return TrainingInputs(channels, hp, tuned_from)


def start_training(services: Services, event: dict) -> dict:
    store, settings = services.store, services.settings
    merge, run_id = event["merge"], event["run_id"]
    job_name = new_job_name()
    inputs = training_inputs(services, merge, job_name, services.training_jobs)
    spec = TrainingJobSpec(job_name=job_name, hyperparameters=inputs.hyperparameters, channels=inputs.channels,
                           output_uri=store.uri(layout.MODELS), extra={"run_id": run_id})
    services.training_jobs.start(spec)
    RunStore(store).update(run_id, model_version=job_name, training_started_at=now_iso(),
                           hyperparameters=inputs.hyperparameters, tuned_defaults=inputs.tuned_from)
    started = time.time()
    return {"job_name": job_name, "model_version": job_name, "warm": merge["warm"], "started_at": started,
            "deadline": started + settings.training_max_wait_seconds, "tuned_defaults": inputs.tuned_from}


# -------------------------------------------------------------------------------------------------- CheckTraining
def check_training(services: Services, event: dict) -> dict:
    training = event["training"]
    if training.get("tuning_job"):  # StartTuning ran instead of StartTraining: the same loop polls the tuning job
        from autobert.workflow.tuning_steps import check_tuning

        return check_tuning(services, event)
    state = services.training_jobs.describe(training["job_name"])
    record_progress(services, event["run_id"], training["job_name"])
    timed_out = state.status == "InProgress" and time.time() > training["deadline"]
    if timed_out:
        services.training_jobs.stop(training["job_name"])
    return {"status": state.status, "failure_reason": state.failure_reason or (
                f"training job {training['job_name']} ended {state.status}" if state.status in ("Failed", "Stopped")
                else None),
            "timed_out": timed_out, "model_uri": state.model_uri, "output_uri": state.output_uri}


def record_progress(services: Services, run_id: str, job_name: str) -> None:
    """The job's progress (epoch, step, samples/s, ETA, the finished epochs' scores) into the run record, where the
    console and `autobert retrain --wait` read it; written only when it changed. Not in the execution state: the
    state machine does not need it and each pass would grow the history."""
    progress = services.training_jobs.progress(job_name)
    if progress is None:
        return
    runs = RunStore(services.store)
    try:
        stored = runs.get(run_id).get(TRAINING_PROGRESS) or {}
    except UnknownRun:
        stored = {}  # a run started outside our starters: update() creates its record
    current = {**progress, "job_name": job_name}
    if {k: v for k, v in stored.items() if k != "observed_at"} != current:
        runs.update(run_id, **{TRAINING_PROGRESS: {**current, "observed_at": now_iso()}})


# ------------------------------------------------------------------------------------------------------- Evaluate
def evaluate(services: Services, event: dict) -> dict:
    store, s = services.store, services.settings
    run_id, training, status, merge = event["run_id"], event["training"], event["training_status"], event["merge"]
    # The tuning path: the candidate is the tuning job's best training job (its name is the model version).
    version = status.get("model_version") or training["model_version"]
    holdout = services.training_jobs.read_report(status["output_uri"], HOLDOUT_REPORT_FILE)
    metrics = services.training_jobs.read_report(status["output_uri"], METRICS_FILE)
    registry = ModelRegistry(store)
    live = registry.live_record()
    decision = decide(holdout, Margins(s.gate_accuracy_margin, s.gate_macro_f1_margin, s.gate_class_f1_margin,
                                     s.gate_class_significance),
                      live_labels=live.get("labels") if live else None, candidate_labels=metrics.get("labels"))
    test = metrics.get("test") or metrics.get("validation") or {}
    registry.register(
        version, status="candidate" if decision.promote else "rejected",
        run_id=run_id, dataset_version=merge["dataset_version"], holdout_version=merge["holdout_version"],
        model_uri=status["model_uri"], labels=metrics.get("labels", []), warm=training["warm"],
        model_kind=metrics.get(MODEL_KIND, "bert"),
        init_version=merge.get("init_version"),
        metrics={"accuracy": test.get("accuracy"), "macro_f1": test.get("macro_f1"),
                 "training": metrics.get("training", {})},
        gate={**decision.to_dict(), "holdout_rows": holdout.get("holdout_rows"),
              "live_version": holdout.get("live_version")},
        # Which parameters made this model: what train.py ran with, and the tuning that chose them.
        hyperparameters=metrics.get("hyperparameters", {}), tuned_defaults=training.get("tuned_defaults"),
        tuning=tuning_summary(training, status))
    fields: dict[str, Any] = {"gate": {"promote": decision.promote, "reasons": decision.reasons}}
    if training.get("tuning_job"):
        fields["model_version"] = version
    if not decision.promote:
        fields["status"] = "rejected"
    RunStore(store).update(run_id, **fields)
    return {"promote": decision.promote, "model_version": version, "model_uri": status["model_uri"],
            "reasons": decision.reasons, "new_labels": decision.new_labels}


def tuning_summary(training: dict, status: dict) -> dict | None:
    if not training.get("tuning_job"):
        return None
    return {"job": training["tuning_job"], "objective": status.get("best_objective"),
            "tuned_hyperparameters": status.get("tuned_hyperparameters") or {}}


# ------------------------------------------------------------------------------------------ UpdateEndpoint & check
def update_endpoint(services: Services, event: dict) -> dict:
    target = event["gate"]
    services.deployer.deploy(target["model_version"], target["model_uri"])
    RunStore(services.store).update(event["run_id"], deploy_started_at=now_iso())
    started = time.time()
    return {"model_version": target["model_version"], "started_at": started,
            "deadline": started + services.settings.endpoint_max_wait_seconds}


def check_endpoint(services: Services, event: dict) -> dict:
    deploy = event["deploy"]
    status = services.deployer.status()
    if status == "InService":
        current = services.deployer.serving_version() or deploy["model_version"]
        if current != deploy["model_version"]:
            # The guardrails rolled the update back: the endpoint is healthy but serves the previous model, whose
            # scaling an update to another instance type had deregistered: it comes back first.
            ensure_scaling(services, event["run_id"])
            raise DeploymentError(f"endpoint update to {deploy['model_version']} was rolled back; "
                                  f"{current} keeps serving")
        # The endpoint serves the new model: the registry says so before anything else can fail.
        finish_promotion(services, event["run_id"], deploy["model_version"])
        return {"status": status, "timed_out": False, "scaling": ensure_scaling(services, event["run_id"])}
    return {"status": status, "timed_out": time.time() > deploy["deadline"]}


def ensure_scaling(services: Services, run_id: str | None) -> dict | None:
    """The endpoint's scaling as the settings say (``EndpointDeployer.ensure_scaling``: upserts, so a retried check
    repeats it harmlessly). A transient error is raised for the state machine to retry; any other failure (a
    permission, a limit) cannot undo the swap that happened: it is logged and kept on the run record
    (``scaling_error``), and the endpoint serves at its configured instance count until the next promotion."""
    try:
        return services.deployer.ensure_scaling()
    except TransientError:
        raise
    except WorkflowError as exc:
        logger.warning("endpoint scaling not applied: %s", exc)
        if run_id:
            RunStore(services.store).update(run_id, scaling_error=str(exc))
        return {"error": str(exc)}


def finish_promotion(services: Services, run_id: str | None, version: str) -> None:
    ModelRegistry(services.store).mark_live(version)
    if run_id:
        RunStore(services.store).update(run_id, status="succeeded", live_version=version)


# -------------------------------------------------------------------------------------------------- RecordFailure
def record_failure(services: Services, event: dict) -> dict:
    error = event.get("error") or {}
    name, cause = error.get("Error", "Unknown"), error.get("Cause", "")
    with suppress(ValueError, TypeError, AttributeError):  # Lambda reports a Python exception's cause as a JSON
        cause = json.loads(cause).get("errorMessage", cause)  # document; keep just its message
    gate = event.get("gate") or {}
    version = gate.get("model_version")
    registry = ModelRegistry(services.store)
    live = registry.live()
    # A version the endpoint already serves (the run failed after the swap) stays live, whatever failed after it.
    if version and gate.get("promote") and not (live and live["version"] == version):
        registry.set_status(version, "rejected", deploy_error=f"{name}: {cause}")
        live = registry.live()
    RunStore(services.store).update(event["run_id"], status="failed", error=name, cause=cause,
                                    live_version=live["version"] if live else None)
    return {"error": name, "cause": cause}
