"""A training job's progress from its log lines (autobert.training_log): the progress line and the epoch lines of
training/train.py, read with the metric definitions of autobert.contracts (no I/O; the real script's output is read
in tests/integration/test_workflow_local_training.py)."""

from __future__ import annotations

import re

from autobert.contracts import METRIC_DEFINITIONS
from autobert.training_log import training_progress
from autobert.tuning import parse_epoch, parse_metrics

PREFIX = "2026-12-02 05:10:02,036 INFO autobert.train: "
PROGRESS_1 = PREFIX + "progress: epoch=1/3 step=120/1530 loss=0.9512 samples_per_second=5.21 eta_seconds=4512"
EPOCH_1 = PREFIX + "epoch=1 train_loss=1.0984 val_accuracy=0.3333 val_macro_f1=0.1667 samples_per_second=5.04"
PROGRESS_2 = PREFIX + "progress: epoch=2/3 step=800/1530 loss=0.4128 samples_per_second=6.50 eta_seconds=1797"
KEPT_1 = PREFIX + "kept: epoch=1 train_loss=1.0984 val_accuracy=0.3333 val_macro_f1=0.1667 samples_per_second=5.04"


def test_the_progress_line_yields_its_own_metrics_and_none_of_the_epoch_lines():
    assert parse_metrics(PROGRESS_1) == {
        "progress:epoch": 1, "progress:epochs": 3, "progress:step": 120, "progress:steps": 1530,
        "progress:loss": 0.9512, "progress:samples_per_second": 5.21, "progress:eta_seconds": 4512}
    assert parse_epoch(PROGRESS_1) is None  # the local tuner never takes it for an epoch report
    assert not any(name.startswith("progress:") for name in parse_metrics(EPOCH_1))


def test_the_metric_definitions_fit_sagemakers_limits():
    # CreateTrainingJob / a tuning job's definition: at most 40 definitions, a regex of at most 500 characters.
    assert len(METRIC_DEFINITIONS) <= 40
    assert all(1 <= len(d["Regex"]) <= 500 and re.compile(d["Regex"]).groups >= 1 for d in METRIC_DEFINITIONS)


def test_progress_holds_the_last_progress_line_and_every_finished_epoch_once():
    progress = training_progress([PREFIX + "documents: train=96 validation=12 test=12 labels=3", PROGRESS_1,
                                  EPOCH_1, PROGRESS_2])
    assert progress == {
        "epoch": 2, "epochs": 3, "step": 800, "steps": 1530, "loss": 0.4128, "samples_per_second": 6.5,
        "eta_seconds": 1797.0,
        "history": [{"epoch": 1, "train_loss": 1.0984, "val_accuracy": 0.3333, "val_macro_f1": 0.1667,
                     "samples_per_second": 5.04}]}
    # After training the kept epoch's line is repeated: still one record per epoch.
    assert training_progress([PROGRESS_1, EPOCH_1, KEPT_1])["history"] == progress["history"]


def test_an_epoch_without_validation_has_no_scores_and_a_log_without_progress_gives_none():
    no_validation = EPOCH_1.replace("val_accuracy=0.3333 val_macro_f1=0.1667", "val_accuracy=nan val_macro_f1=nan")
    progress = training_progress([no_validation])
    assert progress["epoch"] is None and progress["step"] is None  # no progress line yet
    assert progress["history"] == [{"epoch": 1, "train_loss": 1.0984, "val_accuracy": None, "val_macro_f1": None,
                                    "samples_per_second": 5.04}]
    assert training_progress([PREFIX + "documents: train=96 validation=12 test=12 labels=3"]) is None
    assert training_progress([]) is None
