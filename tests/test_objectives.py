"""Evaluator arithmetic: gain, per-suite and weighted forgetting from before/after scores."""

from __future__ import annotations

import pytest

from recipe_opt.evaluate import Evaluation, Suite, compute_outcome, suite_score

NEW = Suite("new", ("mul", "txt"))
RETAIN = [Suite("arith", ("add",), weight=1.0), Suite("strings", ("rev", "copy"), weight=3.0)]


def ev(**acc: float) -> Evaluation:
    tasks = {k: {"acc": v} for k, v in acc.items()}
    return Evaluation(tasks=tasks, suites={s.name: suite_score(tasks, s) for s in [NEW, *RETAIN]})


def test_suite_score_is_macro_mean() -> None:
    assert ev(mul=0.2, txt=0.6, add=1, rev=1, copy=0.5).suites["strings"] == pytest.approx(0.75)
    assert ev(mul=0.2, txt=0.6, add=1, rev=1, copy=0.5).suites["new"] == pytest.approx(0.4)


def test_gain_and_weighted_forgetting() -> None:
    before = ev(mul=0.1, txt=0.1, add=1.0, rev=1.0, copy=1.0)
    after = ev(mul=0.9, txt=0.5, add=0.6, rev=0.9, copy=0.7)
    out = compute_outcome(before, after, NEW, RETAIN)
    assert out.gain == pytest.approx(0.7 - 0.1)
    assert out.forgetting_per_suite == pytest.approx({"arith": 0.4, "strings": 0.2})
    # (1 * 0.4 + 3 * 0.2) / 4
    assert out.forgetting == pytest.approx(0.25)


def test_backward_transfer_keeps_its_sign() -> None:
    before = ev(mul=0.0, txt=0.0, add=0.5, rev=1.0, copy=1.0)
    after = ev(mul=0.0, txt=0.0, add=0.9, rev=1.0, copy=1.0)
    out = compute_outcome(before, after, NEW, RETAIN)
    assert out.forgetting_per_suite["arith"] == pytest.approx(-0.4)
    assert out.forgetting == pytest.approx(-0.1)
    assert out.gain == 0.0


def test_suite_validation() -> None:
    with pytest.raises(ValueError, match="weight > 0"):
        Suite("x", ("a",), weight=0)
    with pytest.raises(ValueError, match="at least one task"):
        Suite("x", ())
