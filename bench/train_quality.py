#!/usr/bin/env python
"""Benchmark: honest quality on new data. A random split and a temporal split of the 20 Newsgroups train split, side
by side in one run, for TF-IDF + linear SVM, BERT alone and the served (fused) model.

    python bench/train_quality.py                                   # full: over an hour on a 2-core CPU
    python bench/train_quality.py --max-train-samples 300 --epochs 1 --max-length 64 --throughput-steps 5  # smoke

Both splits hold out 20 % of the 20NG train split as the test set: ``random`` a stratified sample (seed 42),
``temporal`` the newest 20 % (``autobert.data.temporal_split``: by each message's ``Date:`` header, or, where the
distribution stripped it, by Usenet article number within each group, which a server assigns in arrival order). On
each split the same training part feeds TF-IDF + linear SVM (``LinearTextModel`` on word unigrams,
``BASELINE_FEATURES``: the classic baseline) and the real local training job (``training/train.py``: 10 % of the
training part for validation, no internal test split), whose model is scored on the test part three times: BERT
alone, its linear half alone (``SERVED_FEATURES``: word 1-2-grams and character 3-5-grams; it shows how much of the
lead is the richer features' and how much BERT's), and as the endpoint serves it (BERT fused with that linear half).
``--max-train-samples`` caps the training documents of both models alike.

Printed and written to ``bench/results/train_quality.json`` (``train_quality.smoke.json`` with small settings):
accuracy and macro-F1 per model and split, the served model's lead over TF-IDF + SVM on the temporal split (target:
>= 2 points), training samples/s and precision, and the training loop's throughput at 128 tokens (target: >= 9
samples/s on a 2-core AVX2 machine), beside the CPU model, its threads and load. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "training"))

from benchlib import cpu_flags, cpu_model, load_average, write_result  # noqa: E402
from train import stratified_split  # noqa: E402  (the very split the training job makes)

from autobert.config import get_settings  # noqa: E402
from autobert.data import DATASET_FILE, prepare, read_dataset, temporal_split  # noqa: E402
from autobert.linear import BASELINE_FEATURES, LinearTextModel  # noqa: E402
from autobert.metrics import summary  # noqa: E402
from autobert.modeling import TextClassifier  # noqa: E402

TEST_FRACTION = 0.2
SEED = 42
ISA_VARIABLES = ("MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS")


def machine() -> dict:
    flags = cpu_flags()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_tile" in flags,
            "isa_environment": {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ},
            "load_average_at_start": load_average()}


def splits(df: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """(train, test) per split kind, over the same documents."""
    random_train, random_test = stratified_split(df, (TEST_FRACTION,), SEED)
    older, newer = temporal_split(df, TEST_FRACTION)
    return {"random": (random_train, random_test),
            "temporal": (older.reset_index(drop=True), newer.reset_index(drop=True))}


def ordered_by(df: pd.DataFrame) -> str:
    return "date" if "date" in df.columns and df["date"].notna().any() else "usenet article number within each group"


def baseline(train: pd.DataFrame, test: pd.DataFrame, labels: list[str]) -> dict:
    ids = {label: i for i, label in enumerate(labels)}
    start = time.perf_counter()
    model = LinearTextModel.fit(train["text"].tolist(), train["label"].map(ids).to_numpy(), len(labels),
                                features=BASELINE_FEATURES, seed=SEED)
    fit_seconds = time.perf_counter() - start
    pred = model.decision_function(test["text"].tolist()).argmax(1)
    return {**summary(test["label"].map(ids).to_numpy(), pred), "fit_seconds": round(fit_seconds, 2),
            "train_documents": len(train)}


def train_job(args: argparse.Namespace, channel: Path, model_dir: Path, **extra: str) -> dict:
    cmd = [sys.executable, str(REPO / "training" / "train.py"), "--train", str(channel), "--model-dir",
           str(model_dir), "--model-name", args.model_name, "--epochs", args.epochs, "--max-length", args.max_length,
           "--batch-size", args.batch_size, "--learning-rate", args.learning_rate, "--truncation", args.truncation,
           "--precision", args.precision, "--max-train-minutes", args.max_train_minutes, "--validation-fraction",
           "0.1", "--test-fraction", "0", "--seed", str(SEED), "--progress", "false"]
    if args.max_train_samples:
        cmd += ["--max-train-samples", str(args.max_train_samples)]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", value]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    metrics["training"]["job_wall_seconds"] = round(time.perf_counter() - start, 1)
    return metrics


def score(model_dir: Path, test: pd.DataFrame) -> dict:
    """BERT alone and the model as the endpoint serves it (``predict_proba``), on the test part."""
    model = TextClassifier.load(model_dir)
    index = {label: i for i, label in enumerate(model.labels)}
    y = test["label"].map(index).to_numpy()
    texts = test["text"].tolist()
    start = time.perf_counter()
    served = model.predict_proba(texts).argmax(1)
    seconds = time.perf_counter() - start
    return {"bert_alone": summary(y, model.bert_probs(texts).argmax(1)),
            "linear_half_alone": summary(y, model.linear.decision_function(texts).argmax(1)),
            "served_fused": {**summary(y, served), "predict_docs_per_second": round(len(texts) / seconds, 1)},
            "fusion": {"weight": model.meta.fusion_weight, "temperature": model.meta.fusion_temperature}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=None, help="20NG source (default: the configured/local/canonical one)")
    p.add_argument("--model-name", default="offline-default")
    p.add_argument("--epochs", default="3")
    p.add_argument("--max-length", default="128",
                   help="Tokens BERT reads (default: train.py's, what the workflow serves).")
    p.add_argument("--batch-size", default="16")
    p.add_argument("--learning-rate", default="1e-4")
    p.add_argument("--truncation", default="head_tail")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="train.py --precision; fp32 with MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 "
                        "approximates an AVX2-only machine on one with AVX-512/AMX")
    p.add_argument("--max-train-minutes", default="0", help="Cap per training job (0 = none).")
    p.add_argument("--max-train-samples", type=int, default=0,
                   help="Train both models on at most this many documents per split (smoke runs).")
    p.add_argument("--throughput-steps", type=int, default=40,
                   help="Optimizer steps of the extra 128-token throughput measurement (0 = skip).")
    p.add_argument("--split", choices=("random", "temporal"), action="append",
                   help="Only this split (repeatable; default both).")
    p.add_argument("--keep-model", type=Path, default=None,
                   help="Copy the last split's trained model folder here (e.g. for bench/serving.py --model-dir).")
    p.add_argument("--out", type=Path, default=None,
                   help="Result JSON (default: bench/results/train_quality[.smoke].json).")
    args = p.parse_args(argv)
    smoke = bool(args.max_train_samples) or float(args.epochs) < 1 or int(args.max_length) < 128
    out = args.out or REPO / "bench" / "results" / ("train_quality.smoke.json" if smoke else "train_quality.json")
    settings = get_settings()
    result: dict = {"machine": machine(), "smoke": smoke,
                    "config": {k: v for k, v in vars(args).items()
                               if k not in ("out", "source", "split", "keep_model")},
                    "test_fraction": TEST_FRACTION, "splits": {}}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset_dir, _ = prepare(args.source or settings.data_source, tmp / "dataset", settings.cache_dir)
        df = read_dataset(dataset_dir / DATASET_FILE)
        df = df[df["id"].astype(str).str.startswith("train/")].reset_index(drop=True)  # the 20NG train split
        labels = sorted(df["label"].unique())
        result["documents"] = len(df)
        for name, (train, test) in splits(df).items():
            if args.split and name not in args.split:
                continue
            print(f"\n=== {name} split: {len(train)} training, {len(test)} test documents", flush=True)
            channel = tmp / name / "train"
            channel.mkdir(parents=True)
            train.to_parquet(channel / DATASET_FILE, index=False)
            fit_on = (train.sample(n=min(args.max_train_samples, len(train)), random_state=SEED)
                      if args.max_train_samples else train)
            base = baseline(fit_on, test, labels)
            metrics = train_job(args, channel, tmp / name / "model")
            scores = score(tmp / name / "model", test)
            if args.keep_model:
                shutil.copytree(tmp / name / "model", args.keep_model, dirs_exist_ok=True)
            t = metrics["training"]
            result["splits"][name] = {
                "documents": {"train": len(train), "test": len(test)},
                "test_period": ordered_by(test) if name == "temporal" else "random 20 % per group",
                "tfidf_linear_svm": base, **scores,
                "training": {k: t.get(k) for k in ("samples", "steps", "epochs_run", "best_epoch", "samples_per_second",
                                                    "train_seconds", "job_wall_seconds", "precision", "documents")},
                "history": metrics["history"],
            }
        if args.throughput_steps:
            # The training loop's own rate at the target's sequence length, on the first split's training part.
            name = next(iter(result["splits"]))
            at128 = train_job(args, tmp / name / "train", tmp / "model128", max_length="128",
                              max_steps=str(args.throughput_steps), fusion="false",
                              validation_fraction="0.01")["training"]
            result["throughput_at_128_tokens"] = {"samples_per_second": at128["samples_per_second"],
                                                  "steps": at128["steps"], "precision": at128["precision"],
                                                  "target": 9.0}
    result["machine"]["load_average_at_end"] = load_average()
    temporal = result["splits"].get("temporal")
    if temporal:
        lead = 100 * (temporal["served_fused"]["accuracy"] - temporal["tfidf_linear_svm"]["accuracy"])
        result["temporal_served_minus_tfidf_points"] = round(lead, 2)
        result["temporal_target_met"] = lead >= 2.0
    write_result(out, result)

    m = result["machine"]
    print(f"\nmachine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, "
          f"AVX512-BF16 {m['avx512_bf16']}, AMX {m['amx']}"
          f"{', ' + str(m['isa_environment']) if m['isa_environment'] else ''}"
          f"; load {m['load_average_at_start']} -> {m['load_average_at_end']}{'  (SMOKE settings)' if smoke else ''}")
    print(f"{'split':<9} {'model':<22} {'accuracy':>9} {'macro-F1':>9}")
    for name, r in result["splits"].items():
        for label, key in (("TF-IDF + linear SVM", "tfidf_linear_svm"), ("BERT alone", "bert_alone"),
                           ("served linear half", "linear_half_alone"), ("served (fused)", "served_fused")):
            print(f"{name:<9} {label:<22} {r[key]['accuracy']:>9.4f} {r[key]['macro_f1']:>9.4f}")
        t = r["training"]
        print(f"{name:<9} training: {t['samples_per_second']:.1f} samples/s at {args.max_length} tokens, precision "
              f"{t['precision']}, {t['train_seconds'] / 60:.1f} min ({t['job_wall_seconds'] / 60:.1f} min job); "
              f"test period: {r['test_period']}")
    if "throughput_at_128_tokens" in result:
        th = result["throughput_at_128_tokens"]
        print(f"training throughput at 128 tokens: {th['samples_per_second']:.1f} samples/s ({th['steps']} steps, "
              f"{th['precision']}; target >= 9 on the 2-core AVX2 machine)")
    if temporal:
        print(f"temporal split: served model - TF-IDF + SVM = {result['temporal_served_minus_tfidf_points']:+.2f} "
              f"points of accuracy (target >= +2)")
    print(f"results: {out}")
    return 0 if all(np.isfinite(r["training"]["samples_per_second"]) for r in result["splits"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
