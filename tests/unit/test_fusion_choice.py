"""train.py's choice of the fusion weight and temperature on validation (pure functions of the two models' outputs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from autobert.modeling import fuse

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training"))
import train  # noqa: E402


def test_among_equally_accurate_settings_the_lowest_log_loss_wins_not_the_smallest_weight():
    # A warm start's small validation set: BERT is barely right on every document, the linear model is right and
    # sure. Every weight scores 100 % accuracy; the old tie-break kept weight 0 (BERT alone), which then lost the
    # gate on the holdout where the linear model carries the fused model.
    y = np.array([0, 1, 2, 0, 1, 2])
    bert = np.full((6, 3), 0.3)
    bert[np.arange(6), y] = 0.4
    scores = np.full((6, 3), -1.0)
    scores[np.arange(6), y] = 1.0
    weight, temperature, info = train.choose_fusion(bert, scores, y)
    assert info["validation_accuracy"] == 1.0
    chosen = train.log_loss(fuse(bert, scores, weight, temperature), y)
    assert weight > 0.5 and chosen < train.log_loss(bert, y) / 2
    grid = [train.log_loss(fuse(bert, scores, w, t), y) for w in np.linspace(0, 1, 21) for t in train.TEMPERATURES]
    assert chosen == min(grid) == info["validation_log_loss"]


def test_accuracy_comes_before_log_loss():
    # The linear model is confidently wrong on one document of three: BERT alone is more accurate, so it is kept even
    # though mixing in the linear model would lower the log-loss on the other two.
    y = np.array([0, 1, 2])
    bert = np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]])
    scores = np.array([[9.0, -9.0, -9.0], [-9.0, 9.0, -9.0], [-9.0, 9.0, -9.0]])
    weight, _, info = train.choose_fusion(bert, scores, y)
    assert info["validation_accuracy"] == 1.0
    assert weight < 0.5  # with weight >= 0.5 the third document flips to the linear model's wrong label
