"""SageMaker Automatic Model Tuning over training/train.py: the CreateHyperParameterTuningJob request (plain boto3
shapes), start, and describe → status + best training job (name, objective value, tuned hyperparameters, model
artifact). The retraining workflow runs a tuning job where it would run one training job; the best training job's
model then takes the same evaluate → update-endpoint path as any candidate.

Objective: ``validation:macro_f1`` (Maximize), read from the training job's epoch lines by the regexes of
``autobert.tuning.metrics``; early stopping ``Auto`` (SageMaker stops a training job whose objective after an epoch is
worse than the median of earlier jobs at that epoch, as the local tuner's pruner does).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from autobert.adapters.sagemaker_training import training_job_definition
from autobert.contracts import OBJECTIVE_METRIC, OBJECTIVE_TYPE
from autobert.tuning.errors import TuningConfigError, TuningError
from autobert.tuning.space import SearchSpace

# CreateHyperParameterTuningJob: HyperParameterTuningJobName is at most 32 characters.
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
MAX_RANGES = 30  # SageMaker: at most 30 tuned hyperparameters
TERMINAL = {"Completed", "Failed", "Stopped"}


@dataclass
class TuningJobConfig:
    """What a tuning job needs beyond the search space: the training job every trial runs, and the budget."""

    job_name: str
    role_arn: str
    image_uri: str
    channels: Mapping[str, str]  # channel name -> s3:// prefix
    output_uri: str  # s3:// prefix; each training job's artifacts land under <output_uri>/<training job name>/
    static_hyperparameters: Mapping[str, str] = field(default_factory=dict)
    instance_type: str = "ml.g4dn.xlarge"
    instance_count: int = 1
    volume_gb: int = 30
    max_jobs: int = 12
    max_parallel_jobs: int = 2
    use_spot: bool = True
    max_run_seconds: int = 3 * 3600
    max_wait_seconds: int | None = None  # spot: how long a job may wait for capacity + run; default 2 x max_run
    strategy: Literal["Bayesian", "Random"] = "Bayesian"
    early_stopping: Literal["Auto", "Off"] = "Auto"
    tags: Mapping[str, str] = field(default_factory=dict)
    # The whole tuning job's limit (ResourceLimits.MaxRuntimeInSeconds): SageMaker stops it after this, so a tuning
    # job never outlives the run that started it.
    max_total_seconds: int | None = None


def new_tuning_job_name() -> str:
    # Tuning job names have at most 32 characters; SageMaker names each trial "<name>-<NNN>-<hash>".
    return f"abt-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def validate(config: TuningJobConfig, space: SearchSpace) -> None:
    if not space.params:
        raise TuningConfigError("search space is empty: give at least one hyperparameter range")
    if len(space.params) > MAX_RANGES:
        raise TuningConfigError(f"SageMaker tunes at most {MAX_RANGES} hyperparameters, got {len(space.params)}")
    space.check_static(config.static_hyperparameters)
    if not JOB_NAME.match(config.job_name):
        raise TuningConfigError(f"tuning job name {config.job_name!r}: 1-32 letters, digits or hyphens, starting "
                                "with a letter or digit")
    if isinstance(config.max_jobs, bool) or not isinstance(config.max_jobs, int) or config.max_jobs < 1:
        raise TuningConfigError(f"max jobs must be an integer >= 1, got {config.max_jobs!r}")
    if (isinstance(config.max_parallel_jobs, bool) or not isinstance(config.max_parallel_jobs, int)
            or not 1 <= config.max_parallel_jobs <= config.max_jobs):
        raise TuningConfigError(f"max parallel jobs must be an integer in [1, max jobs={config.max_jobs}], got "
                                f"{config.max_parallel_jobs!r}")
    if config.max_run_seconds < 1:
        raise TuningConfigError(f"max run seconds must be >= 1, got {config.max_run_seconds}")
    if config.use_spot and config.max_wait_seconds is not None and config.max_wait_seconds < config.max_run_seconds:
        raise TuningConfigError(f"spot training: max wait ({config.max_wait_seconds} s) must be >= max run "
                                f"({config.max_run_seconds} s)")
    if config.max_total_seconds is not None and config.max_total_seconds < 120:
        raise TuningConfigError(f"the tuning job's overall limit must be >= 120 s, got {config.max_total_seconds}")
    if config.strategy not in ("Bayesian", "Random"):
        raise TuningConfigError(f"strategy must be Bayesian or Random, got {config.strategy!r}")
    if config.early_stopping not in ("Auto", "Off"):
        raise TuningConfigError(f"early stopping must be Auto or Off, got {config.early_stopping!r}")
    if not config.channels or "train" not in config.channels:
        raise TuningConfigError("the tuning job needs a 'train' channel")
    for name, uri in {**config.channels, "output": config.output_uri}.items():
        if not str(uri).startswith("s3://"):
            raise TuningConfigError(f"{name}: SageMaker needs an s3:// URI, got {uri!r}")


def build_request(config: TuningJobConfig, space: SearchSpace) -> dict[str, Any]:
    """Keyword arguments of ``sagemaker.create_hyper_parameter_tuning_job``."""
    validate(config, space)
    definition = training_job_definition(
        image_uri=config.image_uri, role_arn=config.role_arn, channels=config.channels, output_uri=config.output_uri,
        instance_type=config.instance_type, instance_count=config.instance_count, volume_gb=config.volume_gb,
        max_run_seconds=config.max_run_seconds, use_spot=config.use_spot, max_wait_seconds=config.max_wait_seconds,
        # No checkpoints for the trials: a tuning job's definition takes one S3Uri for all its training jobs, SageMaker
        # does not document keeping them apart, and train.py refuses (rightly) a checkpoint of another trial. An
        # interrupted spot trial reruns from the start instead.
        checkpoint_uri=None, hyperparameters=config.static_hyperparameters,
        hyperparameters_key="StaticHyperParameters")
    request = {
        "HyperParameterTuningJobName": config.job_name,
        "HyperParameterTuningJobConfig": {
            "Strategy": config.strategy,
            "HyperParameterTuningJobObjective": {"Type": OBJECTIVE_TYPE, "MetricName": OBJECTIVE_METRIC},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": config.max_jobs,
                               "MaxParallelTrainingJobs": config.max_parallel_jobs,
                               **({"MaxRuntimeInSeconds": config.max_total_seconds}
                                  if config.max_total_seconds else {})},
            "ParameterRanges": space.parameter_ranges(),
            "TrainingJobEarlyStoppingType": config.early_stopping,
        },
        "TrainingJobDefinition": definition,
    }
    if config.tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in config.tags.items()]
    return request


def start_tuning_job(client, request: Mapping[str, Any]) -> str:
    """Create the tuning job; return its ARN. A retry after a lost response finds the job it already created."""
    from botocore.exceptions import ClientError

    try:
        return client.create_hyper_parameter_tuning_job(**request)["HyperParameterTuningJobArn"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("ResourceInUse", "ResourceInUseException"):
            name = request["HyperParameterTuningJobName"]
            return client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
                "HyperParameterTuningJobArn"]
        raise


@dataclass
class TuningJobState:
    job_name: str
    status: Literal["InProgress", "Completed", "Failed", "Stopped"]  # the TrainingJobs port's vocabulary
    sagemaker_status: str
    failure_reason: str | None = None
    best_training_job: str | None = None
    best_objective: float | None = None
    best_hyperparameters: dict[str, str] = field(default_factory=dict)
    model_uri: str | None = None  # the best training job's model.tar.gz
    output_uri: str | None = None  # ...and its output.tar.gz (metrics.json, holdout.json)
    counters: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_tuning_job(client, job_name: str) -> TuningJobState:
    """Status and best training job of a tuning job, in the shape the workflow's wait loop uses for training."""
    d = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=job_name)
    return state_from_description(d)


def state_from_description(d: Mapping[str, Any]) -> TuningJobState:
    sm_status = d["HyperParameterTuningJobStatus"]
    best = d.get("BestTrainingJob") or {}
    best_name = best.get("TrainingJobName")
    objective = (best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
    counters = {k: int(v) for k, v in (d.get("TrainingJobStatusCounters") or {}).items()}
    status = {"Completed": "Completed", "Failed": "Failed", "Stopped": "Stopped"}.get(sm_status, "InProgress")
    if status == "Stopped" and best_name:
        # Stopped at its overall limit (ResourceLimits.MaxRuntimeInSeconds, inside the run's timeout) or by hand after
        # some trials finished: the best of them is still a candidate for the gate.
        status = "Completed"
    reason = d.get("FailureReason") or None
    if status in ("Failed", "Stopped") and not reason:
        reason = f"tuning job {d['HyperParameterTuningJobName']} ended {sm_status}"
    if status == "Completed" and not best_name:
        # Every training job failed or was stopped early: nothing to evaluate.
        status, reason = "Failed", reason or f"tuning job {d['HyperParameterTuningJobName']} finished without a " \
                                             f"successful training job (counters: {counters})"
    model_uri = output_uri = None
    if best_name:
        output_path = ((d.get("TrainingJobDefinition") or {}).get("OutputDataConfig") or {}).get("S3OutputPath")
        if output_path:
            # SageMaker's artifact layout: <S3OutputPath>/<training job name>/output/{model,output}.tar.gz
            base = f"{output_path.rstrip('/')}/{best_name}/output"
            model_uri, output_uri = f"{base}/model.tar.gz", f"{base}/output.tar.gz"
    return TuningJobState(
        job_name=d["HyperParameterTuningJobName"], status=status, sagemaker_status=sm_status,
        failure_reason=reason, best_training_job=best_name,
        best_objective=float(objective) if objective is not None else None,
        best_hyperparameters={k: str(v) for k, v in (best.get("TunedHyperParameters") or {}).items()},
        model_uri=model_uri, output_uri=output_uri, counters=counters)


def stop_tuning_job(client, job_name: str) -> None:
    client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=job_name)


def tuning_job_record(state: TuningJobState, space: SearchSpace, static: Mapping[str, str]) -> dict[str, Any]:
    """A finished tuning job as a study record (``tuning/<job name>/study.json``), so `autobert tune show` and
    `autobert tune apply --study <job name>` treat it like a local study."""
    if state.status != "Completed" or not state.best_training_job:
        raise TuningError(f"tuning job {state.job_name} is {state.sagemaker_status}: no best training job yet")
    best = {"number": 0, "value": state.best_objective, "params": dict(state.best_hyperparameters)}
    return {
        "study_id": state.job_name, "backend": "sagemaker", "objective": OBJECTIVE_METRIC, "direction": "maximize",
        "status": "completed", "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "space": space.to_dict(), "static_hyperparameters": dict(static),
        "counters": state.counters, "best_training_job": state.best_training_job, "model_uri": state.model_uri,
        "trials": [{"number": 0, "state": "COMPLETE", "params": dict(state.best_hyperparameters),
                    "value": state.best_objective, "training_job": state.best_training_job}],
        "best": best,
    }
