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
"""

from __future__ import annotations

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


def dataset_prefix(version: str) -> str:
    return f"{DATASETS}{version}/"


def holdout_prefix(version: str) -> str:
    return f"{HOLDOUT}{version}/"


def feedback_key(item_id: str, day: date) -> str:
    return f"{FEEDBACK}date={day.isoformat()}/{item_id}.json"


def feedback_marker(item_id: str) -> str:
    return f"{FEEDBACK_IDS}{item_id}.json"


def model_prefix(version: str) -> str:
    return f"{MODELS}{version}/"


def model_record(version: str) -> str:
    return f"{MODELS}{version}/record.json"


def run_record(run_id: str) -> str:
    return f"{RUNS}{run_id}/run.json"
