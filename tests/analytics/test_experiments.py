"""Experiment readouts from counts: control handling, SRM flag, sample guard, scipy cross-checks."""

from __future__ import annotations

import pytest
from scipy import stats
from scipy.stats.contingency import relative_risk

from riskengine.analytics.experiments import SRM_ALPHA, readout


def test_readout_numbers_match_scipy() -> None:
    r = readout("e", {"control": (5000, 500), "b": (5000, 560)}, control="control")
    b = r.variants["b"]
    assert b.rate == pytest.approx(0.112) and b.lift == pytest.approx(0.12)
    rr = relative_risk(560, 5000, 500, 5000).confidence_interval(0.95)
    assert b.lift_ci == (pytest.approx(rr.low - 1), pytest.approx(rr.high - 1))
    _, p, _, _ = stats.chi2_contingency([[560, 4440], [500, 4500]], correction=False)
    assert b.p_value == pytest.approx(p)
    assert b.diff_ci is not None and b.diff_ci[0] < 0.012 < b.diff_ci[1]
    assert b.sequential_ci is not None and b.sequential_ci[0] < b.diff_ci[0]
    assert b.chance_to_beat_control is not None and 0.9 < b.chance_to_beat_control < 1


def test_srm_flag_uses_the_design_weights() -> None:
    balanced = readout("e", {"a": (5000, 10), "b": (5000, 10)}, control="a", weights={"a": 0.5, "b": 0.5})
    assert not balanced.srm_flag
    skewed = readout("e", {"a": (5000, 10), "b": (5000, 10)}, control="a", weights={"a": 0.8, "b": 0.2})
    assert skewed.srm_flag and skewed.srm_p_value < SRM_ALPHA
    ref = stats.chisquare([5000, 5000], [8000, 2000])
    assert skewed.srm_p_value == pytest.approx(ref.pvalue, abs=1e-300)


def test_guard_and_missing_control() -> None:
    r = readout("e", {"b": (150, 10)}, control="a", min_samples=100)
    assert r.variants["a"].n == 0 and not r.enough_data
    assert r.variants["b"].lift is None and r.variants["b"].p_value is None
    d = r.to_dict()
    assert d["control"] == "a" and d["variants"]["b"]["lift_ci"] is None
