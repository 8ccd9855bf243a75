#!/usr/bin/env python
"""Benchmark: does reading more of long documents at inference help? Several 128-token windows per document, BERT's
probabilities pooled (mean), against the served head_tail truncation, on the newer part of a temporal split.

    python bench/windows_pooling.py --model-dir HOME/bucket/models/<version>/model

The model should be one trained on the older part only: `bench/feedback_learning.py --first-model-only --home HOME`
trains one on the older 80 % of 19 groups (``data.temporal_split``); this script scores the newer 20 % of the groups
the model knows. Windows: the document's tokens cut into consecutive 126-token pieces (each with [CLS]/[SEP]); a
document with more than K pieces reads K of them spread evenly from the first to the last. Reported for K = 1..4:
BERT alone and the served fusion (the model's own weight and temperature), pooled windows alone and pooled windows
averaged with the head_tail read. Inference only: the model was trained on head_tail reads. Not a test; writes
``bench/results/windows_pooling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from benchlib import cpu_model, write_result  # noqa: E402

from autobert.config import get_settings  # noqa: E402
from autobert.data import DATASET_FILE, prepare, read_dataset, temporal_split  # noqa: E402
from autobert.modeling import TextClassifier, fuse  # noqa: E402


def windows(ids: list[list[int]], body: int, k_max: int, cls: int, sep: int):
    out, owner, position = [], [], []
    for doc, tokens in enumerate(ids):
        pieces = [tokens[j:j + body] for j in range(0, max(len(tokens), 1), body)]
        if len(pieces) > k_max:
            keep = np.unique(np.round(np.linspace(0, len(pieces) - 1, k_max)).astype(int))
            pieces = [pieces[k] for k in keep]
        for k, piece in enumerate(pieces):
            out.append([cls, *piece, sep])
            owner.append(doc)
            position.append(k)
    return out, np.array(owner), np.array(position)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--source", default=None, help="20NG source (default: the configured/local/canonical one)")
    p.add_argument("--max-windows", type=int, default=4)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "windows_pooling.json")
    args = p.parse_args(argv)

    model = TextClassifier.load(args.model_dir)
    settings = get_settings()
    folder, _ = prepare(args.source or settings.data_source, Path(os.environ.get("TMPDIR", "/tmp")) /
                        "autobert-windows-prepared", settings.cache_dir)
    df = read_dataset(folder / DATASET_FILE)
    df = df[df["id"].astype(str).str.startswith("train/") & df["label"].isin(model.labels)]
    _, newer = temporal_split(df, 0.2)
    texts = newer["text"].tolist()
    y = newer["label"].map({label: i for i, label in enumerate(model.labels)}).to_numpy()
    tok = model.tokenizer
    ids = tok(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    wins, owner, position = windows(ids, model.meta.max_length - 2, args.max_windows, tok.cls_token_id,
                                    tok.sep_token_id)
    start = time.perf_counter()
    per_window = model.probs_for_ids(wins)
    seconds = time.perf_counter() - start
    head_tail = model.bert_probs(texts)
    scores = model.linear.decision_function(texts)
    w, t = model.meta.fusion_weight, model.meta.fusion_temperature

    def acc(probs: np.ndarray) -> float:
        return round(float((probs.argmax(1) == y).mean()), 4)

    result = {"model": str(args.model_dir), "documents": len(texts), "windows_read": len(wins),
              "window_seconds": round(seconds, 1), "cpu": cpu_model(),
              "fusion": {"weight": w, "temperature": t},
              "head_tail": {"bert": acc(head_tail), "served": acc(fuse(head_tail, scores, w, t))},
              "linear_alone": acc(fuse(None, scores, 1.0, t))}
    for k in range(1, args.max_windows + 1):
        sel = position < k
        pooled = np.zeros_like(head_tail)
        count = np.zeros(len(texts))
        np.add.at(pooled, owner[sel], per_window[sel])
        np.add.at(count, owner[sel], 1)
        pooled /= count[:, None]
        mixed = (pooled + head_tail) / 2
        result[f"windows_{k}"] = {"windows_per_document": round(float(count.mean()), 2), "bert": acc(pooled),
                                  "served": acc(fuse(pooled, scores, w, t)), "bert_with_head_tail": acc(mixed),
                                  "served_with_head_tail": acc(fuse(mixed, scores, w, t))}
    print(json.dumps(result, indent=2))
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
