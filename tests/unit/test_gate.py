"""The promotion gate over the holdout report (holdout.json) (plain Python, as the Evaluate Lambda runs it)."""

from __future__ import annotations

import pytest

from autobert.workflow.errors import EvaluationError
from autobert.workflow.gate import Margins, decide, sign_test_p, summarize


def report(per_class: dict[str, tuple[float, int]], accuracy: float) -> dict:
    return {"accuracy": accuracy, "macro_f1": 0.0,
            "per_class": {lbl: {"precision": f, "recall": f, "f1": f, "support": n}
                          for lbl, (f, n) in per_class.items()}}


LIVE = report({"a": (0.90, 10), "b": (0.80, 10), "c": (0.70, 10)}, accuracy=0.80)


def test_the_first_model_passes_when_there_is_no_live_model():
    decision = decide({"candidate": LIVE, "live": None}, Margins())
    assert decision.promote
    assert decision.live is None


def test_a_candidate_as_good_as_live_is_promoted():
    decision = decide({"candidate": LIVE, "live": LIVE}, Margins(), live_labels=["a", "b", "c"],
                      candidate_labels=["a", "b", "c"])
    assert decision.promote


def test_a_drop_within_the_margins_is_promoted():
    candidate = report({"a": (0.89, 10), "b": (0.80, 10), "c": (0.69, 10)}, accuracy=0.795)
    assert decide({"candidate": candidate, "live": LIVE}, Margins(0.01, 0.01, 0.05)).promote


def test_an_accuracy_drop_beyond_the_margin_is_rejected_with_the_reason():
    candidate = report({"a": (0.90, 10), "b": (0.80, 10), "c": (0.70, 10)}, accuracy=0.75)
    decision = decide({"candidate": candidate, "live": LIVE}, Margins(accuracy=0.01))
    assert not decision.promote
    assert any(r.startswith("accuracy") for r in decision.reasons)


def test_a_macro_f1_drop_beyond_the_margin_is_rejected():
    candidate = report({"a": (0.85, 10), "b": (0.75, 10), "c": (0.68, 10)}, accuracy=0.80)
    decision = decide({"candidate": candidate, "live": LIVE}, Margins(macro_f1=0.01, class_f1=0.5))
    assert not decision.promote
    assert any(r.startswith("macro_f1") for r in decision.reasons)


def test_a_class_the_live_model_knew_may_not_collapse_even_if_the_averages_hold():
    candidate = report({"a": (1.0, 10), "b": (1.0, 10), "c": (0.55, 10)}, accuracy=0.85)
    decision = decide({"candidate": candidate, "live": LIVE}, Margins(class_f1=0.05), live_labels=["a", "b", "c"])
    assert not decision.promote
    assert any("class 'c'" in r for r in decision.reasons)


def test_a_brand_new_label_is_allowed_in_when_the_rest_holds():
    # The new label has no holdout rows: its F1 0 must not dilute the candidate's macro-F1.
    candidate = report({"a": (0.90, 10), "b": (0.80, 10), "c": (0.70, 10), "new": (0.0, 0)}, accuracy=0.80)
    live = report({"a": (0.90, 10), "b": (0.80, 10), "c": (0.70, 10), "new": (0.0, 0)}, accuracy=0.80)
    decision = decide({"candidate": candidate, "live": live}, Margins(), live_labels=["a", "b", "c"],
                      candidate_labels=["a", "b", "c", "new"])
    assert decision.promote
    assert decision.new_labels == ["new"]


def test_macro_f1_counts_only_classes_present_in_the_holdout():
    assert summarize(report({"a": (1.0, 5), "b": (0.5, 5), "z": (0.0, 0)}, 0.75))["macro_f1"] == pytest.approx(0.75)


def test_a_malformed_evaluation_is_an_evaluation_error():
    with pytest.raises(EvaluationError):
        decide({"live": None}, Margins())
    with pytest.raises(EvaluationError):
        decide({"candidate": {"accuracy": 1.0}, "live": None}, Margins())


# ------------------------------------------------- a class drop must also be unlikely by chance (the sign test)
DROPPED_B = report({"a": (1.0, 10), "b": (0.70, 10), "c": (0.70, 10)}, accuracy=0.80)  # b 0.10 below, a 0.10 above


def paired(b_candidate_only: int, b_live_only: int) -> dict:
    return {"a": {"candidate_only_errors": 0, "live_only_errors": 0},
            "b": {"candidate_only_errors": b_candidate_only, "live_only_errors": b_live_only},
            "c": {"candidate_only_errors": 0, "live_only_errors": 0}}


@pytest.mark.parametrize(("candidate_only", "live_only", "p"), [
    (0, 0, 1.0), (1, 0, 0.5), (5, 0, 1 / 32), (6, 1, 8 / 128), (8, 1, 10 / 512), (1, 5, 63 / 64)])
def test_the_sign_test_is_the_exact_one_sided_binomial_tail(candidate_only, live_only, p):
    assert sign_test_p(candidate_only, live_only) == pytest.approx(p)


def test_a_class_drop_the_candidate_alone_is_to_blame_for_is_rejected_with_the_test():
    decision = decide({"candidate": DROPPED_B, "live": LIVE, "paired": paired(8, 1)}, Margins())
    assert not decision.promote
    assert decision.reasons == ["class 'b' F1 0.7000 is 0.1000 below live 0.8000 (margin 0.05); sign test p=0.020: "
                                "8 holdout errors on it the candidate's alone, 1 live's alone"]


def test_a_class_drop_within_chance_is_promoted_and_said_so():
    decision = decide({"candidate": DROPPED_B, "live": LIVE, "paired": paired(6, 1)}, Margins())
    assert decision.promote
    assert decision.reasons[0] == "not worse than live beyond the margins"
    assert decision.reasons[1].startswith("class 'b' F1 0.7000 is 0.1000 below live 0.8000 (margin 0.05) but within "
                                          "chance (sign test p=0.062")


def test_significance_one_rejects_every_class_drop_beyond_the_margin():
    decision = decide({"candidate": DROPPED_B, "live": LIVE, "paired": paired(6, 1)},
                      Margins(class_significance=1.0))
    assert not decision.promote


def test_a_report_without_paired_counts_rejects_on_the_drop_alone():
    assert not decide({"candidate": DROPPED_B, "live": LIVE}, Margins()).promote
