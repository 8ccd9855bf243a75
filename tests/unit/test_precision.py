"""train.py's precision choice (a pure function of the device's capability) and its training step's loss scaler."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, get_linear_schedule_with_warmup

from autobert.errors import TrainingConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training"))
import train  # noqa: E402


@pytest.mark.parametrize(("capability", "name"), [
    ((9, 0), "bf16"),  # H100
    ((8, 9), "bf16"),  # L4 (ml.g6)
    ((8, 6), "bf16"),  # A10G (ml.g5)
    ((8, 0), "bf16"),  # A100
    ((7, 5), "fp16"),  # T4 (ml.g4dn): torch.cuda.is_bf16_supported() says True there, through slow emulation
    ((7, 0), "fp16"),  # V100 (ml.p3)
    ((6, 0), "fp16"),  # P100
])
def test_auto_on_a_gpu_is_bf16_from_compute_capability_8_and_fp16_with_a_scaler_below(capability, name):
    precision = train.choose_precision("auto", "cuda", capability)
    assert precision.name == name
    assert precision.scaler is (name == "fp16")
    assert precision.autocast
    assert precision.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[name]


@pytest.mark.parametrize(("cpu_bf16", "name"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_cpu_is_bf16_only_where_it_pays_off(cpu_bf16, name):
    precision = train.choose_precision("auto", "cpu", cpu_bf16=cpu_bf16)
    assert precision.name == name and not precision.scaler
    assert precision.autocast is (name == "bf16")


def test_an_explicit_precision_is_kept_and_fp16_needs_a_gpu():
    assert train.choose_precision("fp32", "cuda", (9, 0)).name == "fp32"
    assert not train.choose_precision("fp32", "cuda", (9, 0)).autocast
    assert train.choose_precision("bf16", "cpu", cpu_bf16=False).name == "bf16"
    fp16 = train.choose_precision("fp16", "cuda", (9, 0))
    assert fp16.name == "fp16" and fp16.scaler
    with pytest.raises(TrainingConfigError, match="--precision fp16 needs a CUDA GPU"):
        train.choose_precision("fp16", "cpu")


def test_the_command_line_accepts_fp16():
    args = train.parse_args(["--train", "d", "--model-dir", "m", "--precision", "fp16"])
    assert args.precision == "fp16"


def tiny_model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)
    return BertForSequenceClassification(config)


def step_once(scaler: torch.amp.GradScaler, precision: train.Precision) -> tuple[torch.nn.Module, torch.Tensor]:
    model = tiny_model()
    before = model.classifier.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, 10)
    batch = {"input_ids": torch.tensor([[2, 5, 7, 3], [2, 9, 4, 3]]),
             "attention_mask": torch.ones(2, 4, dtype=torch.long), "labels": torch.tensor([0, 1])}
    loss = train.training_step(model, batch, optimizer, scheduler, scaler, precision, torch.device("cpu"))
    assert torch.isfinite(loss)
    return model, before


def test_the_training_step_goes_through_the_loss_scaler():
    # A CPU GradScaler stands in for the CUDA one (same class, same calls): a step through it updates the scale
    # (growth_interval=1 doubles it after one finite step) and the weights.
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0, growth_interval=1)
    model, before = step_once(scaler, train.Precision("fp32"))
    assert scaler.get_scale() == 8.0
    assert not torch.equal(model.classifier.weight, before)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
def test_a_step_with_overflowing_gradients_is_skipped():
    scaler = torch.amp.GradScaler("cpu", init_scale=float("inf"), growth_interval=1, backoff_factor=0.5)
    model, before = step_once(scaler, train.Precision("fp32"))
    assert torch.equal(model.classifier.weight, before)  # inf/NaN gradients: the optimizer step was skipped


def test_a_disabled_scaler_is_a_plain_step():
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    model, before = step_once(scaler, train.Precision("fp32"))
    assert not torch.equal(model.classifier.weight, before)


# ------------------------------------------------------------------------ the CPU's bf16: measured, not assumed
def test_a_cpu_without_a_native_bf16_instruction_set_never_autocasts(monkeypatch):
    from autobert import modeling

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    modeling.cpu_bf16_speedup.cache_clear()
    try:
        assert modeling.cpu_bf16_speedup() == 0.0
        assert not modeling.bf16_supported(torch.device("cpu"))
    finally:
        modeling.cpu_bf16_speedup.cache_clear()


def test_the_speedup_is_measured_where_the_flags_promise_bf16(monkeypatch):
    from autobert import modeling

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    modeling.cpu_bf16_speedup.cache_clear()
    try:
        speedup = modeling.cpu_bf16_speedup(reps=1)  # whatever this CPU does: a real timing, fp32 over bf16
        assert 0 < speedup < float("inf")
    finally:
        modeling.cpu_bf16_speedup.cache_clear()


@pytest.mark.parametrize(("speedup", "chosen"), [(1.27, True), (1.1, True), (1.05, False), (0.55, False)])
def test_a_cpu_autocasts_only_where_bf16_measured_faster_by_the_minimum(monkeypatch, speedup, chosen):
    from autobert import modeling

    monkeypatch.setattr(modeling, "cpu_bf16_speedup", lambda: speedup)
    assert modeling.bf16_supported(torch.device("cpu")) is chosen
