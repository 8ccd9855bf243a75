"""The promotion gate: plain Python over the holdout report (``holdout.json``) the training job wrote (no torch in
Lambdas).

Both models were scored on the same fixed holdout. The candidate is promoted only if it is not worse than the live
model by more than a margin on accuracy and macro-F1, and not worse beyond a margin on any class the live model
knew. A label the live model did not know is allowed in when the rest holds. Without a live model (the first run)
the gate passes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from autobert.workflow.errors import EvaluationError


@dataclass(frozen=True)
class Margins:
    accuracy: float = 0.01
    macro_f1: float = 0.01
    class_f1: float = 0.05


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
    for label in sorted(known & set(live["per_class_f1"])):
        drop = live["per_class_f1"][label] - candidate["per_class_f1"].get(label, 0.0)
        if drop > margins.class_f1 + 1e-12:
            reasons.append(f"class {label!r} F1 {candidate['per_class_f1'].get(label, 0.0):.4f} is {drop:.4f} "
                           f"below live {live['per_class_f1'][label]:.4f} (margin {margins.class_f1})")
    promote = not reasons
    if promote:
        reasons.append("not worse than live beyond the margins")
    return GateDecision(promote, reasons, candidate, live, new_labels)
