"""riskengine.model.metrics: the one definition of "stepped up" (score >= threshold), shared by
``riskengine evaluate`` (curves, operating point) and the model metrics (tradeoff, compare)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from riskengine import evaluate as evaluate_module
from riskengine.evaluate import evaluate
from riskengine.model import compare
from riskengine.model.metrics import curve, stepped_up, stepped_up_rate, threshold_for_step_up, tradeoff


def test_a_score_exactly_at_the_threshold_is_stepped_up() -> None:
    t = 0.4
    assert stepped_up([t], t).tolist() == [True]
    assert stepped_up([math.nextafter(t, 0.0)], t).tolist() == [False]
    assert stepped_up_rate([t, 0.1], [t]).tolist() == [0.5]
    assert stepped_up([float("nan"), float("-inf")], -math.inf).tolist() == [False, False]  # never


def test_stepped_up_rate_is_the_mean_of_stepped_up() -> None:
    rng = np.random.default_rng(7)
    scores = np.round(rng.random(300), 2)  # ties on purpose
    scores[:5] = [np.nan, -np.inf, np.inf, 0.0, 1.0]
    thresholds = np.concatenate([[np.inf, -np.inf, 0.5], np.unique(scores[np.isfinite(scores)])])
    got = stepped_up_rate(scores, thresholds)
    want = [stepped_up(scores, t).mean() for t in thresholds]
    assert got == pytest.approx(want)


def test_curve_counts_the_boundary_as_stepped_up() -> None:
    legit = np.array([0.1, 0.2, 0.3, 0.4])
    score = np.concatenate([legit, [0.3]])
    attack = np.array([False] * 4 + [True])
    c = curve(score, attack, np.ones(5, dtype=bool), [None] * 4 + ["takeover"], ["takeover"])
    assert c.at_target(0.25) == (0.4, 0.25, {"takeover": 0.0})
    # at 0.3 the legitimate 0.3 and 0.4 and the attack at exactly 0.3 are all stepped up
    assert c.at_target(0.5) == (0.3, 0.5, {"takeover": 1.0})


def test_threshold_for_step_up_keeps_ties_together() -> None:
    t = threshold_for_step_up([0.5, 0.5, 0.5, 0.1], 0.5)
    assert stepped_up([0.5, 0.1], t).tolist() == [False, False]
    assert stepped_up([math.nextafter(0.5, 1.0)], t).tolist() == [True]
    assert threshold_for_step_up([0.2, 0.3], 1.0) == -math.inf


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evaluate_curve_and_model_tradeoff_agree(seed: int) -> None:
    """The operating point evaluate reports and the one training reports step up the same logins."""
    rng = np.random.default_rng(seed)
    n = 800
    scores = np.round(rng.random(n), 2)
    attack = rng.random(n) < 0.15
    scores[attack] = np.minimum(scores[attack] + 0.3, 1.0)
    est = rng.random(n) < 0.8
    family = ["takeover" if a else None for a in attack]
    c = curve(scores, attack, est, family, ["takeover"])
    for target in (0.0, 0.01, 0.02, 0.05, 0.2):
        t_eval, rate_eval, caught = c.at_target(target)
        (pt,) = tradeoff(scores, attack, est, family, targets=(target,))
        assert pt.step_up == pytest.approx(rate_eval)
        assert pt.catch == pytest.approx(caught["takeover"])
        assert (stepped_up(scores, t_eval) == stepped_up(scores, pt.threshold)).all()


def test_evaluate_and_compare_use_the_shared_definition() -> None:
    from riskengine.model import metrics

    assert evaluate_module.curve is metrics.curve and evaluate_module.Curve is metrics.Curve
    assert compare.curve is metrics.curve


def test_evaluate_counts_a_risk_at_the_operating_threshold() -> None:
    # four legitimate established logins, one attack scored exactly like the second-riskiest one
    decisions = pl.DataFrame({
        "index": [0, 1, 2, 3, 4], "decision": ["allow", "allow", "allow", "challenge", "challenge"],
        "risk_score": [0.1, 0.2, 0.3, 0.4, 0.3], "reasons": [[], [], [], ["NEW_DEVICE"], ["NEW_DEVICE"]]})
    labels = pl.DataFrame({
        "index": [0, 1, 2, 3, 4], "is_attack": [False, False, False, False, True],
        "attack_family": [None, None, None, None, "takeover"], "established": [True] * 5})
    ev = evaluate(decisions, labels, target_stepup=0.5)
    row = ev.table.row(0, named=True)
    assert (row["threshold"], row["legit_stepup_established"], row["catch_takeover"]) == (0.3, 0.5, 1.0)
