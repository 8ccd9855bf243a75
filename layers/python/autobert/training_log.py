"""The progress of a running training job, read from its log: the lines training/train.py prints (the form is
described in ``autobert.contracts``), matched with the metric definitions of ``autobert.contracts`` through
``autobert.tuning.metrics.parse_metrics``, the same regexes SageMaker applies to the same lines. Locally the lines
come from the job's ``train.log``, on AWS from its CloudWatch log stream; the run record keeps the result under
``contracts.TRAINING_PROGRESS``.

A progress (a plain dict, stored as JSON)::

    {"epoch": 2, "epochs": 3, "step": 260, "steps": 459, "loss": 0.4128, "samples_per_second": 5.2,
     "eta_seconds": 612.0, "history": [{"epoch": 1, "train_loss": 0.91, "val_accuracy": 0.74, "val_macro_f1": 0.72,
                                        "samples_per_second": 5.1}]}

``epoch`` ... ``eta_seconds`` come from the last progress line (None before the first one, logged after
``PROGRESS_SECONDS``); ``history`` holds one record per finished epoch (a value the job did not measure is None, e.g.
validation scores without a validation split).
"""

from __future__ import annotations

from collections.abc import Iterable

from autobert.contracts import OBJECTIVE_METRIC
from autobert.tuning.metrics import parse_metrics

# progress line metric -> key of the progress; epoch line metric -> key of a history record
_PROGRESS = {"progress:epoch": "epoch", "progress:epochs": "epochs", "progress:step": "step",
             "progress:steps": "steps", "progress:loss": "loss", "progress:samples_per_second": "samples_per_second",
             "progress:eta_seconds": "eta_seconds"}
_EPOCH = {"train:loss": "train_loss", "validation:accuracy": "val_accuracy", OBJECTIVE_METRIC: "val_macro_f1",
          "train:samples_per_second": "samples_per_second"}
_COUNTS = ("epoch", "epochs", "step", "steps")


def training_progress(lines: Iterable[str]) -> dict | None:
    """The progress the log ``lines`` show so far; None when they hold neither a progress line nor an epoch line
    (the job is still starting)."""
    # Only the last progress line and the epoch lines are parsed (a plain substring test skips the others): reading
    # a long job's log costs about the same on every pass.
    last_progress: str | None = None
    epochs: dict[int, dict] = {}
    for line in lines:
        if "epoch=" not in line or "kept: epoch=" in line:  # kept: the kept epoch's line again, not a new epoch
            continue
        if "progress: epoch=" in line:
            last_progress = line
            continue
        found = parse_metrics(line)
        if "epoch" in found:
            epoch = int(found["epoch"])
            epochs[epoch] = {"epoch": epoch, **{key: found.get(metric) for metric, key in _EPOCH.items()}}
    latest = parse_metrics(last_progress) if last_progress else {}
    if "progress:epoch" not in latest and not epochs:
        return None
    progress: dict = {key: latest.get(metric) for metric, key in _PROGRESS.items()}
    for key in _COUNTS:
        if progress[key] is not None:
            progress[key] = int(progress[key])
    progress["history"] = [epochs[e] for e in sorted(epochs)]
    return progress
