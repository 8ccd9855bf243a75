#!/usr/bin/env python
"""Benchmark: the TF-IDF linear model's feature sets (``autobert.linear.FEATURE_SETS``) alone, on the temporal split of
the 20NG train split (older 80 % to fit, newest 20 % to score): accuracy, features, non-zeros per scored document
(what a prediction multiplies), the weight matrix's size and fit seconds.

    python bench/linear_features.py

How much each set lifts the fused served model is ``bench/train_quality.py``'s to say (it fuses BERT with the
"words+chars" set and reports the linear half alone beside it). Writes ``bench/results/linear_features.json``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from benchlib import cpu_model, write_result

from autobert.config import get_settings
from autobert.data import DATASET_FILE, prepare, read_dataset, temporal_split
from autobert.linear import FEATURE_SETS, LinearTextModel
from autobert.metrics import summary

REPO = Path(__file__).resolve().parents[1]
UNCAPPED = tuple({k: v for k, v in params.items() if k != "max_features"} for params in FEATURE_SETS["words+chars"])


def main() -> int:
    settings = get_settings()
    with tempfile.TemporaryDirectory() as tmp:
        dataset_dir, _ = prepare(settings.data_source, Path(tmp) / "dataset", settings.cache_dir)
        df = read_dataset(dataset_dir / DATASET_FILE)
    df = df[df["id"].astype(str).str.startswith("train/")].reset_index(drop=True)
    older, newer = temporal_split(df, 0.2)
    labels = sorted(df["label"].unique())
    ids = {label: i for i, label in enumerate(labels)}
    y_old, y_new = older["label"].map(ids).to_numpy(), newer["label"].map(ids).to_numpy()
    result = {"cpu": cpu_model(), "documents": {"fit": len(older), "scored": len(newer)}, "feature_sets": {}}
    for name, features in {**FEATURE_SETS, "words+chars uncapped": UNCAPPED}.items():
        start = time.perf_counter()
        model = LinearTextModel.fit(older["text"].tolist(), y_old, len(labels), features=features)
        seconds = time.perf_counter() - start
        matrix = model.features(newer["text"].tolist())
        scores = summary(y_new, (matrix @ model.coef.T + model.intercept).argmax(1))
        result["feature_sets"][name] = {**scores, "features": int(model.coef.shape[1]),
                                        "non_zeros_per_document": round(matrix.nnz / matrix.shape[0]),
                                        "weights_mb": round(model.coef.nbytes / 2**20, 1),
                                        "fit_seconds": round(seconds, 1)}
        print(f"{name:<22} accuracy {scores['accuracy']:.4f}  macro-F1 {scores['macro_f1']:.4f}  "
              f"{model.coef.shape[1]:>7} features  {matrix.nnz / matrix.shape[0]:6.0f} non-zeros/doc  "
              f"fit {seconds:5.1f} s", flush=True)
    write_result(REPO / "bench" / "results" / "linear_features.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
