"""The names the project's parts agree on across a process or service boundary: the training job's report files and
metric lines, the retraining state machine's execution-state keys, trigger kinds. Plain constants (no imports):
``train.py`` in its container, the Lambdas and the local stack all read them from here, never type them again.

One concept, one name:

- **model version**: the name of the training job that produced the model (SageMaker's ``TrainingJobName``, the
  local training job's folder). The execution state, the run record and the registry call it ``model_version``
  (``version`` is the registry record's own key); there is no separate "training job" or "candidate version" field.
  On the tuning path the job that is polled is the tuning job (``training.job_name``); its best training job's name is
  the candidate's ``model_version``.
- **holdout report** (:data:`HOLDOUT_REPORT_FILE`): what the training job measured on the fixed holdout — the
  candidate and, when a model is live, the live model — the gate's only input.
- **gate decision** (:data:`GATE`): what the gate made of it (``autobert.workflow.gate.Decision``): promote or not,
  and why. The execution state, the run record and the registry record all call it ``gate``.
- **feedback id**: the id of one stored feedback item (the client's ``id`` or, without one, a hash of text + label);
  ``autobert.layout.feedback_item_id`` reads it back from the item's key.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------- the training job's reports
# Written by training/train.py into the model folder and the job's output (output.tar.gz on SageMaker).
METRICS_FILE = "metrics.json"  # what training measured (test/validation scores, labels, hyperparameters, timings)
HOLDOUT_REPORT_FILE = "holdout.json"  # candidate (and live) scored on the fixed holdout: the gate's input

# The metric lines of the training job's log, as SageMaker's MetricDefinitions (CloudWatch metrics, a tuning job's
# objective) and the local tuner (autobert.tuning.metrics) read them. training/train.py logs one line per epoch::
#
#     2026-11-25 10:58:02,036 INFO autobert.train: epoch=1 train_loss=1.0984 val_accuracy=0.3333 val_macro_f1=0.1667 ...
#
# SageMaker keeps each ``Regex``'s first capture group as the metric's value. Each regex is anchored on ``epoch=<n>``
# so no other line (e.g. ``done: ... test_macro_f1=...``) matches; after training the kept (best) epoch's line is
# logged once more as ``kept: epoch=...``, so SageMaker's last value of the objective is the kept model's. A number as
# the training script prints it; ``nan`` (no validation split) deliberately does not match.
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

# ------------------------------------------------------------------------------- the execution state's keys
# The retraining state machine's state (statemachines/retrain.asl.json), as it grows. The input: RUN_ID, TRIGGERS,
# FULL (a full retrain, no warm start) and, on AWS, TUNE (the tuning path). Then each task's ResultPath.
RUN_ID, TRIGGERS, FULL, TUNE = "run_id", "triggers", "full", "tune"
MERGE = "merge"  # MergeData: the new dataset version and the training channels
TRAINING = "training"  # StartTraining / StartTuning: the job that is polled
TRAINING_STATUS = "training_status"  # CheckTraining: the job's status, the candidate's model artifact
GATE = "gate"  # Evaluate: the gate decision
DEPLOY = "deploy"  # UpdateEndpoint: the swap that was started
ENDPOINT = "endpoint"  # CheckEndpoint: the endpoint's status
ERROR = "error"  # a caught error: {"Error", "Cause"}
FAILURE = "failure"  # RecordFailure's result
INPUT_KEYS = (RUN_ID, TRIGGERS, FULL, TUNE)
RESULT_KEYS = (MERGE, TRAINING, TRAINING_STATUS, GATE, DEPLOY, ENDPOINT, ERROR, FAILURE)

# ------------------------------------------------------------------------------------------------- triggers
# What starts a run. A person asking (CLI, console, POST /retrain) is "manual"; where they asked from is the
# trigger's ``source``.
TRIGGER_KINDS = ("manual", "threshold", "schedule", "bootstrap")
