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
# The media type of a Batch Transform's records: the inference script reads and answers it, the job is created with it
JSON_LINES = "application/jsonlines"

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
# While an epoch runs, train.py also logs a progress line every PROGRESS_SECONDS (the environment variable
# AUTOBERT_PROGRESS_SECONDS overrides it; tests lower it)::
#
#     ... INFO autobert.train: progress: epoch=1/3 step=120/1530 loss=0.9512 samples_per_second=5.21 eta_seconds=4512
#
# ``step`` counts optimizer steps over the whole job, ``loss`` is the epoch's mean so far and
# ``eta_seconds`` the training steps left at the epoch's rate (validation and the final evaluation come on top). The
# epoch lines' regexes need ``epoch=<n> `` (a space after the number) and never match it; these match nothing else.
# The same definitions give SageMaker's console its graphs and the run record its ``training_progress``
# (``autobert.training_log``).
PROGRESS_SECONDS = 30.0
_PROGRESS_LINE = r"\bprogress: epoch=[0-9]+/[0-9]+ step=[0-9]+/[0-9]+ .*"
METRIC_DEFINITIONS += [
    {"Name": "progress:epoch", "Regex": r"\bprogress: epoch=([0-9]+)/[0-9]+ step="},
    {"Name": "progress:epochs", "Regex": r"\bprogress: epoch=[0-9]+/([0-9]+) step="},
    {"Name": "progress:step", "Regex": r"\bprogress: epoch=[0-9]+/[0-9]+ step=([0-9]+)/[0-9]+ "},
    {"Name": "progress:steps", "Regex": r"\bprogress: epoch=[0-9]+/[0-9]+ step=[0-9]+/([0-9]+) "},
    {"Name": "progress:loss", "Regex": _PROGRESS_LINE + r"\bloss=" + _NUMBER},
    {"Name": "progress:samples_per_second", "Regex": _PROGRESS_LINE + r"\bsamples_per_second=" + _NUMBER},
    {"Name": "progress:eta_seconds", "Regex": _PROGRESS_LINE + r"\beta_seconds=" + _NUMBER},
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
# The run record's field with the running training job's progress (``autobert.training_log.TrainingProgress``):
# CheckTraining stores it on every pass, so the console and `autobert retrain --wait` read it from the run record.
TRAINING_PROGRESS = "training_progress"

# ------------------------------------------------------------------------------------------------- triggers
# What starts a run. A person asking (CLI, console, POST /retrain) is "manual"; where they asked from is the
# trigger's ``source``.
TRIGGER_KINDS = ("manual", "threshold", "schedule", "bootstrap")

# ---------------------------------------------------------------------------------------------- model kinds
# What a model folder holds: train.py's ``--model-kind``, ``autobert.json``'s ``kind``, the registry record's and a
# trigger's ``model_kind``. "bert": a fine-tuned encoder (with ``--fusion`` the TF-IDF linear model fused in);
# "linear": the TF-IDF linear model alone, trained in seconds with no fine-tuning (the first model `autobert up`
# serves). A run trains "linear" only when every trigger it serves asks for it. A warm start continues the live
# model's encoder, so it needs a live model of a kind that has one (ENCODER_KINDS); otherwise BERT trains from the
# base model on the whole dataset.
MODEL_KIND, MODEL_KINDS, ENCODER_KINDS = "model_kind", ("bert", "linear"), ("bert",)
