"""Hyperparameter tuning: one search space and the metric regexes of ``autobert.contracts``, shared by SageMaker
Automatic Model Tuning (``autobert.tuning.sagemaker``) and the local Optuna tuner (``autobert.tuning.local``);
study records and the saved defaults the next training runs start from (``autobert.tuning.records``). See
docs/tuning.md.

Optuna is imported only when a local study runs, so the Lambda layer does not need it.
"""

from autobert.tuning.errors import TuningConfigError, TuningError
from autobert.tuning.metrics import parse_epoch, parse_metrics
from autobert.tuning.records import apply_defaults, load_defaults, load_defaults_record, load_study, save_study
from autobert.tuning.space import DEFAULT_SPACE, SearchSpace, validate_budget

__all__ = [
    "DEFAULT_SPACE", "SearchSpace", "TuningConfigError", "TuningError",
    "apply_defaults", "load_defaults", "load_defaults_record", "load_study", "parse_epoch", "parse_metrics",
    "save_study", "validate_budget",
]
