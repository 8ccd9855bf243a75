"""Task handlers of the optional tuning path of the retraining state machine (AWS): ``StartTuning`` runs a SageMaker
tuning job where ``StartTraining`` would run one training job (the same channels and hyperparameters:
``autobert.workflow.steps.training_inputs``, the searched ones replaced by ranges), and ``CheckTuning`` is polled by
the same Wait/Choice loop as ``CheckTraining``. Their results have the shapes of ``start_training`` /
``check_training``, plus the best training job, so the best model goes through the same Evaluate → UpdateEndpoint
path as any candidate.

Errors: ``TrainingStartError`` / ``TransientError`` as for training (the same Retry/Catch entries apply),
``TuningConfigError`` for a bad space or budget, or where no tuning jobs run (locally; not retryable).
"""

from __future__ import annotations

import math
import time

from autobert import layout
from autobert.bootstrap import Services
from autobert.tuning.records import save_study
from autobert.tuning.sagemaker import tuning_job_record
from autobert.tuning.service import resolve_space, tuning_job_config
from autobert.workflow.registry import now_iso
from autobert.workflow.runs import RunStore
from autobert.workflow.steps import training_inputs


def start_tuning(services: Services, event: dict) -> dict:
    """Input: the execution state after MergeData (``run_id``, ``merge``). Output (ResultPath ``$.training``):
    ``{"job_name", "tuning_job", "model_version": None, "warm", "started_at", "deadline"}``."""
    store, settings, jobs = services.store, services.settings, services.tuning_jobs
    merge, run_id = event["merge"], event["run_id"]
    job_name = jobs.new_job_name()
    inputs = training_inputs(services, merge, job_name, jobs)
    config = tuning_job_config(settings, job_name=job_name, channels=inputs.channels,
                               output_uri=store.uri(layout.MODELS), static_hyperparameters=inputs.hyperparameters)
    config.tags = {"autobert:run": str(run_id)}
    jobs.start(config, resolve_space(settings))
    RunStore(store).update(run_id, tuning_job=job_name, training_started_at=now_iso())
    started = time.time()
    # Jobs run in waves of max-parallel; each wave may take as long as one training job may.
    waves = math.ceil(settings.tuning_max_jobs / settings.tuning_max_parallel_jobs)
    return {"job_name": job_name, "tuning_job": job_name, "model_version": None, "warm": merge["warm"],
            "started_at": started,
            "deadline": started + min(waves * settings.training_max_wait_seconds, settings.tuning_budget_seconds)}


def check_tuning(services: Services, event: dict) -> dict:
    """Input: ``$.training`` from StartTuning. Output (ResultPath ``$.training_status``): check_training's shape
    ``{"status", "failure_reason", "timed_out", "model_uri", "output_uri"}`` plus ``"model_version"`` (the best
    training job's name: the candidate's version), ``"best_objective"`` and
    ``"tuned_hyperparameters"``. A completed job's result is saved as ``tuning/<job>/study.json``."""
    training = event["training"]
    name = training["tuning_job"]
    state = services.tuning_jobs.describe(name)
    timed_out = state.status == "InProgress" and time.time() > training["deadline"]
    if timed_out:
        services.tuning_jobs.stop(name)
    if state.status == "Completed":
        save_study(services.store, tuning_job_record(state, resolve_space(services.settings), {}))
        if event.get("run_id"):
            RunStore(services.store).update(event["run_id"], tuning={
                "job": name, "model_version": state.best_training_job, "objective": state.best_objective,
                "hyperparameters": state.best_hyperparameters, "counters": state.counters})
    return {"status": state.status, "failure_reason": state.failure_reason, "timed_out": timed_out,
            "model_uri": state.model_uri, "output_uri": state.output_uri,
            "model_version": state.best_training_job,
            "best_objective": state.best_objective, "tuned_hyperparameters": state.best_hyperparameters}
