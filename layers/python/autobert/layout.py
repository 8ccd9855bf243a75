"""Key layout of the bucket (S3 on AWS; ``<home>/bucket/`` locally, same keys).

    datasets/<version>/{dataset.parquet,labels.json,manifest.json}   dataset versions; feedback is merged into new ones
    datasets/current.json                                           {"version": ...} of the dataset training uses
    holdout/<version>/{holdout.parquet,labels.json,manifest.json}     fixed evaluation set feedback never leaks into
    feedback/date=YYYY-MM-DD/<id>.json                               one object per feedback item, never rewritten
    feedback/_ids/<id>.json                                          idempotency marker: id -> item key
    models/<version>/...                                             model artifact + record.json (registry entry)
    models/live.json                                                 {"version": ...} of the model serving now
    runs/<run_id>/run.json                                           one retraining run (training job name, result)
    code/sourcedir.tar.gz                                            training code for SageMaker
    batch/<job>/{input/part-N.jsonl,job.json,output/part-N.jsonl.out}  a Batch Transform of `autobert predict-batch`
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

DATASETS = "datasets/"
CURRENT_DATASET = "datasets/current.json"
HOLDOUT = "holdout/"
FEEDBACK = "feedback/"
FEEDBACK_IDS = "feedback/_ids/"
MODELS = "models/"
LIVE_MODEL = "models/live.json"
RUNS = "runs/"
TRAINING_CODE = "code/sourcedir.tar.gz"
BATCH = "batch/"
# runs/_slots/<n>.json: the AWS one-run-at-a-time lock; a starter owns run slot n by creating it (conditional write)
RUN_SLOTS = "runs/_slots/"


def _key(prefix: str, suffix: str) -> Callable[[str], str]:
    """The key helper ``name -> prefix + name + suffix``: every per-name key of the bucket is one of these."""

    def key(name: str) -> str:
        return f"{prefix}{name}{suffix}"

    return key


def feedback_key(item_id: str, day: date) -> str:
    return f"{FEEDBACK}date={day.isoformat()}/{item_id}.json"


def feedback_item_id(key: str) -> str:
    """The feedback id of the item stored at ``key`` (a ``feedback_key``)."""
    return key.rsplit("/", 1)[-1].removesuffix(".json")


def run_slot(number: int) -> str:
    return f"{RUN_SLOTS}{number:08d}.json"


dataset_prefix = _key(DATASETS, "/")
holdout_prefix = _key(HOLDOUT, "/")
feedback_marker = _key(FEEDBACK_IDS, ".json")
model_prefix = _key(MODELS, "/")
model_record = _key(MODELS, "/record.json")
run_record = _key(RUNS, "/run.json")
batch_prefix = _key(BATCH, "/")


# --- Retraining workflow (issue 4) ------------------------------------------------------------------------------------
# datasets/<version>/merged.json      every feedback id this version has seen (merged, duplicate or invalid)
# trainsets/<version>/<base>/{train,validation}/   warm-start training channels (new feedback + replay sample)
# triggers/<id>.json, triggers/_served/<id>.json   retraining requests and which run served each one
# runs/<run_id>/history/<n>.jsonl     the execution's event history (local runs), JSON lines, one chunk per save
# runs/<run_id>/history.json          a history written whole (runs recorded before the chunks)
TRAINSETS = "trainsets/"
TRIGGERS = "triggers/"
TRIGGERS_SERVED = "triggers/_served/"
INFERENCE_CODE = "code/inference.tar.gz"  # inference/ for the SageMaker model (SAGEMAKER_SUBMIT_DIRECTORY)


dataset_merged_ids = _key(DATASETS, "/merged.json")
trigger_key = _key(TRIGGERS, ".json")
trigger_served_key = _key(TRIGGERS_SERVED, ".json")
run_history = _key(RUNS, "/history.json")
run_history_chunks = _key(RUNS, "/history/")


def run_history_chunk(run_id: str, index: int) -> str:
    return f"{run_history_chunks(run_id)}{index:08d}.jsonl"  # zero-padded: the keys sort in writing order


def trainset_prefix(version: str, base: str) -> str:
    return f"{TRAINSETS}{version}/{base}/"


# --- Hyperparameter tuning (issue 7) ----------------------------------------------------------------------------------
# tuning/<study_id>/study.json        one local tuning study: budget, space, every trial, best params
# tuning/defaults.json                best params saved by `autobert tune apply`: defaults of the next training runs
TUNING = "tuning/"
TUNING_DEFAULTS = "tuning/defaults.json"


tuning_study = _key(TUNING, "/study.json")
