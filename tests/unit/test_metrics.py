"""Per-class paired error counts: the discordant documents of the gate's sign test."""

from __future__ import annotations

import numpy as np

from autobert.metrics import paired_class_errors


def test_paired_class_errors_count_the_documents_each_model_alone_gets_wrong_per_class():
    labels = ["x", "y", "z"]
    truth = np.array([0, 0, 1, 1, 2, 2])
    live = np.array([0, 1, 1, 1, 2, 0])       # wrong: doc 1 (x->y), doc 5 (z->x)
    candidate = np.array([0, 0, 0, 1, 2, 2])  # wrong: doc 2 (y->x)
    counts = paired_class_errors(truth, candidate, live, labels)
    # x: the candidate alone errs on doc 2 (predicted x); live alone on docs 1 (true x) and 5 (predicted x).
    assert counts["x"] == {"candidate_only_errors": 1, "live_only_errors": 2}
    assert counts["y"] == {"candidate_only_errors": 1, "live_only_errors": 1}
    assert counts["z"] == {"candidate_only_errors": 0, "live_only_errors": 1}
