"""Glue between settings, the bucket and the tuners: what the CLI, the benchmark and the workflow call."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autobert import layout
from autobert.adapters.sagemaker_training import distribution_hyperparameters
from autobert.bootstrap import Services
from autobert.config import Settings
from autobert.contracts import OBJECTIVE_METRIC
from autobert.ports import ObjectNotFound, ObjectStore
from autobert.tuning.errors import TuningConfigError, TuningError
from autobert.tuning.records import load_defaults
from autobert.tuning.sagemaker import TuningJobConfig
from autobert.tuning.space import TUNABLE, SearchSpace, format_value


def resolve_space(settings: Settings, path: str | Path | None = None) -> SearchSpace:
    """The search space from ``--space FILE``, else AUTOBERT_TUNING_SPACE, else the default space."""
    if path is not None:
        try:
            spec = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise TuningConfigError(f"--space {path}: cannot read a JSON object ({exc})") from exc
        return SearchSpace.from_dict(spec)
    if settings.tuning_space is not None:
        return SearchSpace.from_dict(settings.tuning_space)
    return SearchSpace.default()


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """``--set key=value`` pairs (train.py option names without the dashes)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key:
            raise TuningConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. max-length=128")
        out[key] = value.strip()
    return out


def resolve_train_channel(services: Services, explicit: str | Path | None = None) -> Path:
    """Training data of a local study: ``--train``, else the current dataset version in the local bucket (holdout
    already removed), else ``<home>/prepared`` from `autobert prepare`."""
    if explicit is not None:
        path = Path(explicit)
        if not path.exists():
            raise TuningConfigError(f"--train {path}: no such file or folder")
        return path
    store = services.store
    if store.local_path(layout.CURRENT_DATASET) is not None:  # a local bucket: its current version is a folder
        try:
            current = store.get_json(layout.CURRENT_DATASET)
            path = store.local_path(layout.dataset_prefix(current["version"]))
            if path.is_dir():
                return path
        except (ObjectNotFound, KeyError, TypeError):
            pass
    prepared = services.settings.home / "prepared"
    if prepared.is_dir():
        return prepared
    raise TuningError("no training data: pass --train <folder>, or run `autobert prepare` first")


def current_defaults(settings: Settings, store: ObjectStore) -> dict[str, str]:
    """The hyperparameters the next full training run would use: the training script's defaults, the workflow's
    full-retrain settings, the tuned defaults (`autobert tune apply`), then AUTOBERT_TRAIN_HYPERPARAMETERS."""
    values = {name: format_value(b.default) for name, b in TUNABLE.items()}
    values.update({"epochs": format_value(settings.train_epochs),
                   "learning-rate": format_value(settings.train_learning_rate)})
    values.update(load_defaults(store))
    values.update({k: str(v) for k, v in settings.train_hyperparameters.items()})
    return values


def tuning_job_config(settings: Settings, *, job_name: str, channels: Mapping[str, str], output_uri: str,
                      static_hyperparameters: Mapping[str, str]) -> TuningJobConfig:
    """A SageMaker tuning job configured from settings; the caller (the workflow) gives the data, the output
    location and the static hyperparameters it would give one training job (sagemaker_program, model-name, ...)."""
    if not settings.sagemaker_role_arn or not settings.training_image_uri:
        raise TuningConfigError("AUTOBERT_SAGEMAKER_ROLE_ARN and AUTOBERT_TRAINING_IMAGE_URI must be set for a "
                                "SageMaker tuning job")
    static = {**static_hyperparameters, **distribution_hyperparameters(settings),
              **settings.tuning_static_hyperparameters}
    space = resolve_space(settings)
    # Tuned values win over fixed ones; and each training job of a tuning job must version its model by its own
    # name (train.py's default: SageMaker's TRAINING_JOB_NAME), not by one name shared by every trial.
    static = {k: v for k, v in static.items() if k not in space.names and k != "model-version"}
    return TuningJobConfig(
        job_name=job_name, role_arn=settings.sagemaker_role_arn, image_uri=settings.training_image_uri,
        channels=dict(channels), output_uri=output_uri, static_hyperparameters=static,
        instance_type=settings.training_instance_type, instance_count=settings.training_instance_count,
        max_jobs=settings.tuning_max_jobs,
        max_parallel_jobs=settings.tuning_max_parallel_jobs, use_spot=settings.tuning_use_spot,
        max_run_seconds=settings.training_max_run_seconds, max_wait_seconds=settings.tuning_max_wait_seconds,
        strategy=settings.tuning_strategy, early_stopping=settings.tuning_early_stopping,
        max_total_seconds=settings.tuning_budget_seconds)


# ------------------------------------------------------------------------------------------------------ display
def _params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def format_trial(trial: Mapping[str, Any], objective: str = OBJECTIVE_METRIC) -> str:
    value = f"{trial['value']:.4f}" if trial.get("value") is not None else "-"
    seconds = f"{trial['seconds']:.1f} s" if trial.get("seconds") is not None else "-"
    line = f"trial {trial['number']:>3} {trial['state']:<8} {objective}={value:<7} ({seconds}) "
    line += _params(trial["params"])
    if trial.get("reason"):
        line += f"  [{trial['reason']}]"
    return line


def format_study(record: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> str:
    trials = record.get("trials", [])
    states = {s: sum(t["state"] == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    budget = record.get("budget") or {}
    lines = [
        f"study {record['study_id']} ({record.get('backend', 'local')}, {record.get('status')}"
        + (f", stopped by {record['stopped_by']}" if record.get("stopped_by") else "") + ")",
        f"objective: {record.get('objective')} ({record.get('direction', 'maximize')}); "
        + (f"budget: {budget.get('trials')} trials / {budget.get('timeout_seconds')} s; " if budget else "")
        + f"{len(trials)} trials: {states['COMPLETE']} complete, {states['PRUNED']} pruned, {states['FAIL']} failed"
        + (f"; {record['wall_seconds']:.1f} s" if record.get("wall_seconds") is not None else ""),
    ]
    if record.get("static_hyperparameters"):
        lines.append(f"fixed: {_params(record['static_hyperparameters'])}")
    for trial in trials:
        line = format_trial(trial, record.get("objective", "value"))
        if trial.get("intermediate"):
            line += "  epochs: " + " ".join(f"{k}:{v:.4f}" for k, v in trial["intermediate"].items())
        lines.append("  " + line)
    best = record.get("best")
    if best:
        lines.append(f"best: trial {best['number']} {record.get('objective')}={best['value']:.4f} "
                     f"{_params(best['params'])}")
        lines.append(f"save as training defaults: autobert tune apply --study {record['study_id']}")
    else:
        lines.append("best: none (no trial completed)")
    if defaults is not None:
        lines.append(_defaults_line(defaults))
    return "\n".join(lines)


def _defaults_line(defaults: Mapping[str, Any]) -> str:
    params = defaults.get("hyperparameters") or {}
    if not params:
        return "training defaults: none tuned (train.py / settings defaults)"
    source = defaults.get("source") or {}
    return (f"training defaults: {_params(params)} (from study {source.get('study_id')} trial {source.get('trial')}, "
            f"applied {defaults.get('applied_at')})")
