"""The training job's speed levers (issue 12): the word-embedding matrix stays fixed by default and the optimizer,
fused, updates only what trains. Checked on the tiny BERT through the real training job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "training"))
import train  # noqa: E402

pytestmark = pytest.mark.slow

WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
STILL_TRAINED = ("bert.embeddings.position_embeddings.weight", "bert.embeddings.LayerNorm.weight",
                 "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.1.output.dense.weight",
                 "bert.pooler.dense.weight")


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def run_train(tiny_bert: Path, data: Path, out: Path, *extra: str) -> dict[str, torch.Tensor]:
    train.train(train.parse_args([
        "--model-name", str(tiny_bert), "--train", str(data), "--model-dir", str(out),
        "--epochs", "1", "--batch-size", "8", "--max-length", "32", "--learning-rate", "1e-3",
        "--fusion", "false", "--progress", "false", *extra]))
    return weights(out)


def test_by_default_the_word_embeddings_stay_fixed_and_everything_else_trains(tiny_bert, small_dataset, tmp_path):
    before = weights(tiny_bert)
    after = run_train(tiny_bert, small_dataset, tmp_path / "model")
    assert torch.equal(after[WORD_EMBEDDINGS], before[WORD_EMBEDDINGS])
    for name in STILL_TRAINED:
        assert not torch.allclose(after[name], before[name]), f"{name} did not train"


def test_freeze_embeddings_false_trains_the_word_embeddings_too(tiny_bert, small_dataset, tmp_path):
    before = weights(tiny_bert)
    after = run_train(tiny_bert, small_dataset, tmp_path / "model", "--freeze-embeddings", "false")
    assert not torch.allclose(after[WORD_EMBEDDINGS], before[WORD_EMBEDDINGS])


def test_the_optimizer_is_fused_and_holds_only_the_trainable_parameters(tiny_bert):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    train.freeze_embeddings(model)
    optimizer = train.make_optimizer(model, argparse.Namespace(weight_decay=0.01, learning_rate=1e-4))
    held = [p for group in optimizer.param_groups for p in group["params"]]
    assert {id(p) for p in held} == {id(p) for p in model.parameters() if p.requires_grad}
    assert len(held) == len(list(model.parameters())) - 1
    assert all(p is not model.get_input_embeddings().weight for p in held)
    assert optimizer.defaults["fused"] is True
    # Weight decay stays off biases and LayerNorm weights.
    decayed = {id(p) for p in optimizer.param_groups[0]["params"]}
    named = dict(model.named_parameters())
    assert id(named["bert.encoder.layer.0.attention.self.query.bias"]) not in decayed
    assert id(named["bert.encoder.layer.0.attention.self.query.weight"]) in decayed
