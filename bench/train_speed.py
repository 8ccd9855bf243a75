#!/usr/bin/env python
"""Benchmark: fine-tuning speed (samples/s) of the training job's step, before and after issue 12's levers.

    python bench/train_speed.py                    # this CPU as it is, fp32
    python bench/train_speed.py --avx2             # approximate an AVX2-only CPU (no AVX-512, no AMX) on a newer one
    python bench/train_speed.py --precision bf16   # for the record, where the CPU has AVX512-BF16/AMX

The real training step of ``training/train.py`` (``training_step``) on real 20 Newsgroups documents at 128 tokens
(head_tail truncation, batch 16, all-MiniLM-L6-v2 by default), for two set-ups from the same initial weights on the
same batches: ``baseline`` (the optimizer as it was: the per-tensor AdamW over every parameter, the 30522x384 word
embeddings included) and ``defaults`` (the job's defaults now: ``freeze_embeddings`` + ``make_optimizer``). Rounds of
a few steps alternate between them, so a CPU shared with other work slows both alike: the ratios (of the medians, and
the median of each round's ratio) are the figures to read; the absolute rates hold only on a quiet machine (the
load average is recorded). Writes ``bench/results/train_speed.json``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Set before torch loads MKL/oneDNN: they read these once. ATEN_CPU_CAPABILITY picks ATen's own vector kernels
# (GELU, LayerNorm, AdamW...) for AVX2 too.
AVX2_ENV = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
if "--avx2" in sys.argv and any(os.environ.get(k) != v for k, v in AVX2_ENV.items()):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ENV})

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import get_linear_schedule_with_warmup  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "training"))

import train  # noqa: E402  (the training job's own step, optimizer and model set-up)
from benchlib import cpu_flags, cpu_model, write_result  # noqa: E402

from autobert.config import get_settings  # noqa: E402
from autobert.data import DATASET_FILE, prepare, read_dataset  # noqa: E402
from autobert.modeling import encode  # noqa: E402


def baseline_optimizer(model, args):
    """The optimizer before issue 12: AdamW's default per-tensor loop over every parameter."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": args.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=args.learning_rate)


def setup(base, name: str, hp: argparse.Namespace, total_steps: int):
    model = copy.deepcopy(base).train()
    if name == "defaults":
        train.freeze_embeddings(model)
        optimizer = train.make_optimizer(model, hp)
    else:
        optimizer = baseline_optimizer(model, hp)
    return model, optimizer, get_linear_schedule_with_warmup(optimizer, 1, total_steps)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--avx2", action="store_true", help=f"Run with {' '.join(f'{k}={v}' for k, v in AVX2_ENV.items())}")
    p.add_argument("--model-name", default="offline-default")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5, help="Alternating rounds per set-up.")
    p.add_argument("--steps-per-round", type=int, default=2)
    p.add_argument("--source", default=None, help="20NG source (default: the configured/local/canonical one)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_speed.json")
    args = p.parse_args()
    settings = get_settings()
    load_before = os.getloadavg()

    n_batches = args.rounds * args.steps_per_round + 2
    with tempfile.TemporaryDirectory() as tmp:
        dataset_dir, _ = prepare(args.source or settings.data_source, Path(tmp) / "dataset", settings.cache_dir)
        df = read_dataset(dataset_dir / DATASET_FILE).sample(n=n_batches * args.batch_size, random_state=42)
    hp = argparse.Namespace(model_name=args.model_name, init_model=None, weight_decay=0.01, learning_rate=1e-4)
    base, tokenizer, labels, *_ = train.load_base(hp, df["label"].astype(str).tolist())
    train.set_attention_dropout(base, 0.0)  # the job's default
    ids = encode(tokenizer, df["text"].astype(str).tolist(), args.max_length, "head_tail")
    y = df["label"].astype(str).map({label: i for i, label in enumerate(labels)}).to_numpy(dtype=np.int64)
    collate = train.make_collate(tokenizer.pad_token_id or 0)
    batches = [collate([(ids[i], int(y[i])) for i in range(s, s + args.batch_size)])
               for s in range(0, len(ids), args.batch_size)]
    tokens = float(np.mean([int(b["attention_mask"].sum()) / b["attention_mask"].shape[0] for b in batches]))

    device, precision = torch.device("cpu"), train.Precision(args.precision)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    names = ("baseline", "defaults")
    runs = {name: setup(base, name, hp, n_batches) for name in names}
    for model, optimizer, scheduler in runs.values():  # warm-up: first-call allocations, optimizer state
        for batch in batches[:2]:
            train.training_step(model, batch, optimizer, scheduler, scaler, precision, device)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        chunk = batches[2 + r * args.steps_per_round: 2 + (r + 1) * args.steps_per_round]
        for name in (names if r % 2 == 0 else names[::-1]):
            model, optimizer, scheduler = runs[name]
            start = time.perf_counter()
            for batch in chunk:
                train.training_step(model, batch, optimizer, scheduler, scaler, precision, device)
            rates[name].append(sum(len(b["labels"]) for b in chunk) / (time.perf_counter() - start))
        print(f"round {r + 1}/{args.rounds}: " + "  ".join(f"{n} {rates[n][-1]:.2f}" for n in names), flush=True)

    medians = {name: statistics.median(v) for name, v in rates.items()}
    params = {name: sum(p.numel() for g in runs[name][1].param_groups for p in g["params"]) for name in names}
    result = {
        "cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "precision": args.precision,
        "isa_env": {k: os.environ[k] for k in AVX2_ENV if k in os.environ} or "none (the CPU's own ISA)",
        "model": args.model_name, "max_length": args.max_length, "batch_size": args.batch_size,
        "mean_tokens_per_sample": round(tokens, 1), "truncation": "head_tail",
        "samples_per_second_median": {k: round(v, 2) for k, v in medians.items()},
        "speedup_defaults_over_baseline": round(medians["defaults"] / medians["baseline"], 3),
        # Each round's pair ran back to back: the median of their ratios shrugs off load that came and went.
        "speedup_per_round_median": round(statistics.median(
            d / b for d, b in zip(rates["defaults"], rates["baseline"], strict=True)), 3),
        "per_round_samples_per_second": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        "optimizer_parameters": params,
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
    }
    print(f"{result['cpu']} ({', '.join(result['cpu_flags'])}), {result['threads']} threads, torch "
          f"{result['torch']}, {args.precision}, ISA env: {result['isa_env']}")
    print(f"{args.model_name} at {args.max_length} tokens, batch {args.batch_size}: baseline "
          f"{medians['baseline']:.2f} samples/s, defaults {medians['defaults']:.2f} samples/s, "
          f"x{result['speedup_defaults_over_baseline']:.3f} "
          f"(per-round median x{result['speedup_per_round_median']:.3f}; "
          f"load average {load_before[0]:.2f} -> "
          f"{result['load_average_1min']['after']:.2f})")
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
