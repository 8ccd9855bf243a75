"""Metric definitions: how a tuner reads training progress from the training job's log.

training/train.py logs one line per epoch in a fixed form (through Python logging, on stderr)::

    2026-11-25 10:58:02,036 INFO autobert.train: epoch=1 train_loss=1.0984 val_accuracy=0.3333 val_macro_f1=0.1667 ...

SageMaker applies each ``Regex`` to the job's log and keeps the first capture group as the metric's value; the local
tuner applies the very same regexes to the lines of its training process, so both tuners see the same numbers.
Each regex is anchored on ``epoch=<n>`` so no other line (e.g. ``done: ... test_macro_f1=...``) can match. After
training, the kept (best) epoch's line is logged once more as ``kept: epoch=...``, so SageMaker's last value of the
objective is the kept model's; the local tuner reports per epoch and skips that repeat (``parse_epoch``).
"""

from __future__ import annotations

import re

# A number as the training script prints it; ``nan`` (no validation split) deliberately does not match.
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_EPOCH_LINE = r"\bepoch=[0-9]+ .*"

OBJECTIVE_METRIC = "validation:macro_f1"
OBJECTIVE_TYPE = "Maximize"

METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "epoch", "Regex": r"\bepoch=([0-9]+) train_loss="},
    {"Name": "train:loss", "Regex": _EPOCH_LINE.replace(" .*", " ") + r"train_loss=" + _NUMBER},
    {"Name": "validation:accuracy", "Regex": _EPOCH_LINE + r"\bval_accuracy=" + _NUMBER},
    {"Name": OBJECTIVE_METRIC, "Regex": _EPOCH_LINE + r"\bval_macro_f1=" + _NUMBER},
    {"Name": "train:samples_per_second", "Regex": _EPOCH_LINE + r"\bsamples_per_second=" + _NUMBER},
]
_COMPILED = [(d["Name"], re.compile(d["Regex"])) for d in METRIC_DEFINITIONS]


def parse_metrics(line: str) -> dict[str, float]:
    """Every defined metric found in one log line (empty for lines that are not epoch reports)."""
    found = {}
    for name, regex in _COMPILED:
        match = regex.search(line)
        if match:
            found[name] = float(match.group(1))
    return found


def parse_epoch(line: str) -> tuple[int, float] | None:
    """``(epoch, validation macro-F1)`` if the line is an epoch report with a validation score, else None."""
    if "kept: epoch=" in line:
        return None
    found = parse_metrics(line)
    if "epoch" in found and OBJECTIVE_METRIC in found:
        return int(found["epoch"]), found[OBJECTIVE_METRIC]
    return None
