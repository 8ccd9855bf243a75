"""Task handlers of the optional tuning path of the retraining state machine (AWS): ``StartTuning`` runs a SageMaker
tuning job where ``StartTraining`` would run one training job (same channels, same hyperparameters, the searched
ones replaced by ranges), and ``CheckTuning`` is polled by the same Wait/Choice loop as ``CheckTraining``. Their
results have the shapes of ``start_training`` / ``check_training`` (``autobert.workflow.steps``), plus the best
training job, so the best model goes through the same Evaluate → UpdateEndpoint path as any candidate.

Errors: ``TrainingStartError`` / ``TransientError`` as for training (the same Retry/Catch entries apply),
``TuningConfigError`` for a bad space or budget (not retryable).
"""

from __future__ import annotations

import math
import secrets
import time
from datetime import UTC, datetime

from autobert import layout
from autobert.bootstrap import Services
from autobert.tuning.errors import TuningConfigError
from autobert.tuning.records import save_study
from autobert.tuning.sagemaker import (
    build_request,
    describe_tuning_job,
    start_tuning_job,
    stop_tuning_job,
    tuning_job_record,
)
from autobert.tuning.service import resolve_space, tuning_job_config


def new_tuning_job_name() -> str:
    # Tuning job names have at most 32 characters; SageMaker names each trial "<name>-<NNN>-<hash>".
    return f"abt-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def start_tuning(services: Services, event: dict) -> dict:
    """Input: the execution state after MergeData (``run_id``, ``merge``). Output (ResultPath ``$.training``):
    ``{"job_name", "tuning_job", "model_version": None, "warm", "started_at", "deadline"}``."""
    from autobert.adapters.aws_errors import aws_errors
    from autobert.adapters.sagemaker_training import code_uri
    from autobert.workflow.errors import TrainingStartError
    from autobert.workflow.registry import ModelRegistry, now_iso
    from autobert.workflow.runs import RunStore
    from autobert.workflow.steps import SAGEMAKER_CHANNEL_ROOT, training_hyperparameters

    if not services.aws:
        raise TuningConfigError("the tuning path runs SageMaker tuning jobs (AUTOBERT_MODE=aws); locally use "
                                "`autobert tune` and `autobert tune apply`")
    store, settings = services.store, services.settings
    merge, run_id = event["merge"], event["run_id"]
    job_name = new_tuning_job_name()
    channels = {"train": store.uri(merge["channels"]["train"]),
                "holdout": store.uri(layout.holdout_prefix(merge["holdout_version"]))}
    if merge["channels"].get("validation"):
        channels["validation"] = store.uri(merge["channels"]["validation"])
    init_path = None
    live = ModelRegistry(store).live()
    if live:
        channels["live"] = live["model_uri"]
        init_path = f"{SAGEMAKER_CHANNEL_ROOT}/live"
    static = training_hyperparameters(services, job_name, merge["warm"], init_path, "validation" in channels)
    static.update({"sagemaker_program": "train.py", "sagemaker_submit_directory": code_uri(store)})
    config = tuning_job_config(settings, job_name=job_name, channels=channels, output_uri=store.uri(layout.MODELS),
                               static_hyperparameters=static)
    config.tags = {"autobert:run": str(run_id)}
    request = build_request(config, resolve_space(settings))
    with aws_errors(TrainingStartError, f"CreateHyperParameterTuningJob {job_name}"):
        start_tuning_job(services.client("sagemaker"), request)
    RunStore(store).update(run_id, tuning_job=job_name, training_started_at=now_iso())
    started = time.time()
    # Jobs run in waves of max-parallel; each wave may take as long as one training job may.
    waves = math.ceil(settings.tuning_max_jobs / settings.tuning_max_parallel_jobs)
    return {"job_name": job_name, "tuning_job": job_name, "model_version": None, "warm": merge["warm"],
            "started_at": started,
            "deadline": started + min(waves * settings.training_max_wait_seconds, settings.tuning_budget_seconds)}


def check_tuning(services: Services, event: dict) -> dict:
    """Input: ``$.training`` from StartTuning. Output (ResultPath ``$.training_status``): check_training's shape
    ``{"status", "failure_reason", "timed_out", "model_uri", "output_uri"}`` plus ``"model_version"`` and
    ``"best_training_job"`` (the best training job's name: the candidate's version), ``"best_objective"`` and
    ``"tuned_hyperparameters"``. A completed job's result is saved as ``tuning/<job>/study.json``."""
    from autobert.adapters.aws_errors import aws_errors
    from autobert.workflow.errors import TrainingStartError
    from autobert.workflow.runs import RunStore

    training = event["training"]
    name = training["tuning_job"]
    client = services.client("sagemaker")
    with aws_errors(TrainingStartError, f"DescribeHyperParameterTuningJob {name}"):
        state = describe_tuning_job(client, name)
    timed_out = state.status == "InProgress" and time.time() > training["deadline"]
    if timed_out:
        with aws_errors(TrainingStartError, f"StopHyperParameterTuningJob {name}"):
            stop_tuning_job(client, name)
    if state.status == "Completed":
        save_study(services.store, tuning_job_record(state, resolve_space(services.settings), {}))
        if event.get("run_id"):
            RunStore(services.store).update(event["run_id"], tuning={
                "job": name, "best_training_job": state.best_training_job, "objective": state.best_objective,
                "hyperparameters": state.best_hyperparameters, "counters": state.counters})
    return {"status": state.status, "failure_reason": state.failure_reason, "timed_out": timed_out,
            "model_uri": state.model_uri, "output_uri": state.output_uri,
            "model_version": state.best_training_job, "best_training_job": state.best_training_job,
            "best_objective": state.best_objective, "tuned_hyperparameters": state.best_hyperparameters}
