"""The promotion gate: plain Python over the holdout report (``holdout.json``) the training job wrote (no torch in
Lambdas).

Both models were scored on the same fixed holdout. The candidate is promoted only if it is not worse than the live
model by more than a margin on accuracy and macro-F1, and not worse beyond a margin on any class the live model
knew. A label the live model did not know is allowed in when the rest holds. Without a live model (the first run)
the gate passes.

A class's F1 on a holdout of ~50 of its documents moves by 0.05 when a handful of documents move, so a class drop
beyond its margin fails the gate only when it is also unlikely by chance: the one-sided sign test over the holdout
documents whose error involves the class (true or predicted label), counting those only the candidate gets wrong
against those only the live model gets wrong (``paired`` in the report). On the feedback benchmark a warm start that
moved 4 old documents into one class (equal holdout accuracy, +1.1 points on newer data) had p = 0.06 and passes; one
that moved 8 had p = 0.02 and fails. A report without ``paired`` counts fails on the drop alone, as before.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from autobert.workflow.errors import EvaluationError


@dataclass(frozen=True)
class Margins:
    accuracy: float = 0.01
    macro_f1: float = 0.01
    class_f1: float = 0.05
    class_significance: float = 0.05  # a class drop beyond class_f1 fails only if its sign test p is below this


@dataclass
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    candidate: dict = field(default_factory=dict)  # accuracy, macro_f1 (over holdout classes), per-class f1
    live: dict | None = None
    new_labels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(report: dict) -> dict:
    """Accuracy, macro-F1 over the classes present in the holdout (a label with no holdout rows, such as one just
    added by feedback, would otherwise count as F1 0 for both models) and per-class F1."""
    try:
        per_class = report["per_class"]
        present = {label: m["f1"] for label, m in per_class.items() if m["support"] > 0}
        macro = sum(present.values()) / len(present) if present else 0.0
        return {"accuracy": float(report["accuracy"]), "macro_f1": float(macro),
                "per_class_f1": {k: float(v) for k, v in present.items()}}
    except (KeyError, TypeError, ZeroDivisionError) as exc:
        raise EvaluationError(f"malformed classification report ({exc!r})") from exc


def sign_test_p(candidate_only: int, live_only: int) -> float:
    """One-sided exact sign test: the chance of ``candidate_only`` or more of the discordant documents going against
    the candidate if either model were as likely to be the one wrong."""
    n = candidate_only + live_only
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(candidate_only, n + 1)) / 2 ** n


def decide(holdout: dict, margins: Margins, live_labels: list[str] | None = None,
           candidate_labels: list[str] | None = None) -> GateDecision:
    if not isinstance(holdout, dict) or "candidate" not in holdout:
        raise EvaluationError("the holdout report has no candidate report")
    candidate = summarize(holdout["candidate"])
    new_labels = sorted(set(candidate_labels or []) - set(live_labels or [])) if live_labels is not None else []
    if holdout.get("live") is None:
        return GateDecision(True, ["no live model: the first model goes live"], candidate, None, new_labels)
    live = summarize(holdout["live"])
    reasons: list[str] = []
    for metric, margin in (("accuracy", margins.accuracy), ("macro_f1", margins.macro_f1)):
        drop = live[metric] - candidate[metric]
        if drop > margin + 1e-12:
            reasons.append(f"{metric} {candidate[metric]:.4f} is {drop:.4f} below live {live[metric]:.4f} "
                           f"(margin {margin})")
    known = set(live_labels) if live_labels is not None else set(live["per_class_f1"])
    paired = holdout.get("paired") or {}
    within_chance: list[str] = []
    for label in sorted(known & set(live["per_class_f1"])):
        drop = live["per_class_f1"][label] - candidate["per_class_f1"].get(label, 0.0)
        if drop <= margins.class_f1 + 1e-12:
            continue
        what = (f"class {label!r} F1 {candidate['per_class_f1'].get(label, 0.0):.4f} is {drop:.4f} below live "
                f"{live['per_class_f1'][label]:.4f} (margin {margins.class_f1})")
        counts = paired.get(label)
        if counts is None:
            reasons.append(what)
            continue
        b, a = int(counts["candidate_only_errors"]), int(counts["live_only_errors"])
        p = sign_test_p(b, a)
        test = f"sign test p={p:.3f}: {b} holdout errors on it the candidate's alone, {a} live's alone"
        if p < margins.class_significance:
            reasons.append(f"{what}; {test}")
        else:
            within_chance.append(f"{what} but within chance ({test}; p >= {margins.class_significance})")
    promote = not reasons
    if promote:
        reasons.append("not worse than live beyond the margins")
    return GateDecision(promote, reasons + within_chance, candidate, live, new_labels)
