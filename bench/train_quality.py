#!/usr/bin/env python
"""Benchmark: BERT fine-tune (the real local training job) vs a TF-IDF + linear SVM baseline on the same split.

    python bench/train_quality.py                   # offline default model, the shared/canonical train split
    python bench/train_quality.py --epochs 1 --max-length 128

Both models see the same stratified train split and are scored on the same held-out test split (10%, seed 42).
Prints accuracy and macro-F1 of both, training samples/s, wall time and peak memory; writes them to
``bench/results/train_quality.json``. Not a test: it takes about half an hour on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "training"))

from train import stratified_split  # noqa: E402  (the very split the training job makes)

from autobert.config import get_settings  # noqa: E402
from autobert.data import DATASET_FILE, prepare, read_dataset  # noqa: E402
from autobert.linear import LinearTextModel  # noqa: E402
from autobert.metrics import summary  # noqa: E402


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=None, help="20NG source (default: the configured/local/canonical one)")
    p.add_argument("--model-name", default="offline-default")
    p.add_argument("--epochs", default="3")
    p.add_argument("--max-length", default="256")
    p.add_argument("--batch-size", default="16")
    p.add_argument("--learning-rate", default="1e-4")
    p.add_argument("--truncation", default="head_tail")
    p.add_argument("--max-train-minutes", default="30")
    p.add_argument("--keep-model", type=Path, default=None,
                   help="Copy the trained model folder here (e.g. for bench/serving.py --model-dir).")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_quality.json")
    args = p.parse_args()
    settings = get_settings()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset_dir, _ = prepare(args.source or settings.data_source, tmp / "dataset", settings.cache_dir)
        df = read_dataset(dataset_dir / DATASET_FILE)
        train_df, val_df, test_df = stratified_split(df, (0.1, 0.1), 42)

        # Baseline: same train split, same test split.
        labels = sorted(df["label"].unique())
        ids = {label: i for i, label in enumerate(labels)}
        start = time.perf_counter()
        baseline = LinearTextModel.fit(train_df["text"].tolist(), train_df["label"].map(ids).to_numpy(), len(labels))
        fit_seconds = time.perf_counter() - start
        pred = baseline.decision_function(test_df["text"].tolist()).argmax(1)
        base = summary(test_df["label"].map(ids).to_numpy(), pred)
        base.update(fit_seconds=fit_seconds, train_docs_per_second=len(train_df) / fit_seconds)
        base_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        cmd = [sys.executable, str(REPO / "training" / "train.py"), "--train", str(dataset_dir),
               "--model-dir", str(tmp / "model"), "--model-name", args.model_name, "--epochs", args.epochs,
               "--max-length", args.max_length, "--batch-size", args.batch_size, "--learning-rate",
               args.learning_rate, "--truncation", args.truncation, "--max-train-minutes", args.max_train_minutes,
               "--validation-fraction", "0.1", "--test-fraction", "0.1", "--seed", "42"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
        bert_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        metrics = json.loads((tmp / "model" / "metrics.json").read_text())
        if args.keep_model:
            shutil.copytree(tmp / "model", args.keep_model, dirs_exist_ok=True)
        # Throughput at the target's sequence length (128), measured by the same training loop over 40 steps.
        subprocess.run([*cmd, "--max-length", "128", "--max-steps", "40", "--fusion", "false", "--progress", "false",
                        "--model-dir", str(tmp / "model128")], check=True)
        at128 = json.loads((tmp / "model128" / "metrics.json").read_text())["training"]["samples_per_second"]

    test = metrics["components"]["test"]
    result = {
        "machine": machine(),
        "documents": {"train": len(train_df), "validation": len(val_df), "test": len(test_df)},
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "source", "keep_model")},
        "tfidf_linear_svm": {**base, "peak_rss_mb": base_rss_mb},
        "bert_alone": test["bert"],
        "bert_fused": {**test["fused"], "fusion": metrics["fusion"]},
        "training": {**metrics["training"], "job_wall_seconds": wall, "peak_rss_mb": bert_rss_mb,
                     "samples_per_second_at_128_tokens": at128},
        "history": metrics["history"],
    }
    result["fused_beats_baseline"] = bool(result["bert_fused"]["accuracy"] > base["accuracy"]
                                          and result["bert_fused"]["macro_f1"] > base["macro_f1"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    rows = [("TF-IDF + linear SVM", base), ("BERT alone", test["bert"]), ("BERT + TF-IDF fused", test["fused"])]
    print(f"\nmachine: {result['machine']}")
    print(f"test documents: {len(test_df)}")
    print(f"{'model':<22} {'accuracy':>9} {'macro-F1':>9}")
    for name, r in rows:
        print(f"{name:<22} {r['accuracy']:>9.4f} {r['macro_f1']:>9.4f}")
    t = result["training"]
    print(f"BERT training: {t['samples_per_second']:.1f} samples/s at {args.max_length} tokens, "
          f"{t['train_seconds'] / 60:.1f} min training, {wall / 60:.1f} min job wall time, "
          f"peak RSS {bert_rss_mb:.0f} MB, bf16={t['bf16']}")
    print(f"BERT training throughput at 128 tokens: {at128:.1f} samples/s")
    print(f"baseline fit: {base['fit_seconds']:.1f} s, peak RSS {base_rss_mb:.0f} MB")
    print(f"fused model beats the baseline: {result['fused_beats_baseline']}")
    print(f"results: {args.out}")
    return 0 if np.isfinite(t["samples_per_second"]) else 1


if __name__ == "__main__":
    sys.exit(main())
