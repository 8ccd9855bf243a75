"""Classification metrics, in the JSON shape every report of this project uses (metrics.json, holdout.json)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "n": int(len(y_true)),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "labels": list(labels),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def summary(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def paired_class_errors(y_true: np.ndarray, candidate: np.ndarray, live: np.ndarray, labels: list[str]) -> dict:
    """Per class, the documents whose error involves it (true label or predicted label the class, prediction wrong)
    for one model and not the other: ``candidate_only_errors`` and ``live_only_errors``, the discordant pairs of
    the gate's sign test (both models scored on the same documents)."""
    out = {}
    for i, label in enumerate(labels):
        wrong_c = ((y_true == i) | (candidate == i)) & (candidate != y_true)
        wrong_l = ((y_true == i) | (live == i)) & (live != y_true)
        out[label] = {"candidate_only_errors": int((wrong_c & ~wrong_l).sum()),
                      "live_only_errors": int((wrong_l & ~wrong_c).sum())}
    return out
