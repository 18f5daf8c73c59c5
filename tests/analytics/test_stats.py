"""riskengine.analytics.stats against scipy (independent oracle) and hand-checked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.stats.contingency import relative_risk

from riskengine.analytics import stats as S

CASES = [(60, 100, 50, 100), (120, 1000, 100, 1000), (5, 40, 9, 45), (480, 5000, 530, 5100),
         (1, 10, 3, 12), (9000, 100_000, 8800, 100_000)]


@pytest.mark.parametrize(("c1", "n1", "c0", "n0"), CASES)
def test_ztest_matches_scipy_chi2_contingency(c1: int, n1: int, c0: int, n0: int) -> None:
    # a 2x2 chi-square without continuity correction is the square of the pooled z-test
    chi2, p, _, _ = stats.chi2_contingency([[c1, n1 - c1], [c0, n0 - c0]], correction=False)
    z, p_ours = S.two_proportion_ztest(c1, n1, c0, n0)
    assert z * z == pytest.approx(chi2, rel=1e-9)
    assert p_ours == pytest.approx(p, rel=1e-9)
    assert math.copysign(1, z) == math.copysign(1, c1 / n1 - c0 / n0)


def test_ztest_hand_checked() -> None:
    # pooled 110/200 = .55; se = sqrt(.55*.45*(.01+.01)) = .0703562; z = .1/.0703562 = 1.42134
    z, p = S.two_proportion_ztest(60, 100, 50, 100)
    assert z == pytest.approx(1.42134, abs=1e-5)
    assert p == pytest.approx(0.155218, abs=1e-5)


@pytest.mark.parametrize(("c", "n"), [(56, 70), (48, 80), (0, 20), (20, 20), (1, 1000)])
def test_wilson_matches_scipy(c: int, n: int) -> None:
    ci = stats.binomtest(c, n).proportion_ci(0.95, method="wilson")
    lo, hi = S.wilson_ci(c, n)
    assert lo == pytest.approx(ci.low, abs=1e-12)
    assert hi == pytest.approx(ci.high, abs=1e-12)


def test_newcombe_published_example() -> None:
    # Newcombe (1998) Statistics in Medicine 17:873, example (a), method 10
    lo, hi = S.newcombe_diff_ci(56, 70, 48, 80)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


@pytest.mark.parametrize(("c1", "n1", "c0", "n0"), CASES)
def test_newcombe_from_scipy_wilson_limits(c1: int, n1: int, c0: int, n0: int) -> None:
    w1 = stats.binomtest(c1, n1).proportion_ci(0.95, method="wilson")
    w0 = stats.binomtest(c0, n0).proportion_ci(0.95, method="wilson")
    p1, p0 = c1 / n1, c0 / n0
    lo = p1 - p0 - math.hypot(p1 - w1.low, w0.high - p0)
    hi = p1 - p0 + math.hypot(w1.high - p1, p0 - w0.low)
    assert S.newcombe_diff_ci(c1, n1, c0, n0) == pytest.approx((lo, hi), abs=1e-12)


@pytest.mark.parametrize(("c1", "n1", "c0", "n0"), CASES)
def test_relative_lift_ci_matches_scipy_relative_risk(c1: int, n1: int, c0: int, n0: int) -> None:
    ci = relative_risk(c1, n1, c0, n0).confidence_interval(0.95)
    lo, hi = S.relative_lift_ci(c1, n1, c0, n0)  # type: ignore[misc]
    assert lo == pytest.approx(ci.low - 1, rel=1e-9, abs=1e-12)
    assert hi == pytest.approx(ci.high - 1, rel=1e-9, abs=1e-12)
    assert S.relative_lift(c1, n1, c0, n0) == pytest.approx(relative_risk(c1, n1, c0, n0).relative_risk - 1)


def test_lift_undefined_cases() -> None:
    assert S.relative_lift(3, 10, 0, 10) is None
    assert S.relative_lift_ci(0, 10, 3, 10) is None


@pytest.mark.parametrize(("x", "df"), [(0.5, 1), (3.84, 1), (10.0, 2), (25.0, 3), (1.0, 7), (60.0, 4), (1e-6, 2)])
def test_chi2_sf_matches_scipy(x: float, df: int) -> None:
    assert S.chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("observed", "weights"), [
    ([5100, 4900], [0.5, 0.5]), ([5200, 4800], [0.5, 0.5]), ([300, 650, 50], [0.3, 0.6, 0.1]),
    ([1000, 1000], [1, 3]),
])
def test_srm_matches_scipy_chisquare(observed: list[int], weights: list[float]) -> None:
    total = sum(observed)
    expected = [total * w / sum(weights) for w in weights]
    ref = stats.chisquare(observed, expected)
    stat, p = S.srm_test(observed, weights)
    assert stat == pytest.approx(ref.statistic, rel=1e-9)
    assert p == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-300)


def test_srm_hand_checked() -> None:
    # 5100/4900 at 50/50: (100²/5000)·2 = 4.0; P(chi2_1 > 4) = 2·(1 − Φ(2)) = 0.0455003
    stat, p = S.srm_test([5100, 4900], [0.5, 0.5])
    assert stat == pytest.approx(4.0)
    assert p == pytest.approx(0.0455003, abs=1e-6)


@pytest.mark.parametrize(("c1", "n1", "c0", "n0"), [(60, 100, 50, 100), (5, 40, 9, 45), (0, 30, 2, 30),
                                                     (120, 1000, 100, 1000)])
def test_chance_to_beat_matches_numerical_integration(c1: int, n1: int, c0: int, n0: int) -> None:
    b1 = stats.beta(1 + c1, 1 + n1 - c1)
    b0 = stats.beta(1 + c0, 1 + n0 - c0)
    ref, _ = integrate.quad(lambda x: b1.pdf(x) * b0.cdf(x), 0, 1, limit=200, epsabs=1e-12)
    assert S.chance_to_beat(c1, n1, c0, n0) == pytest.approx(ref, abs=1e-8)
    assert S.chance_to_beat(c0, n0, c1, n1) == pytest.approx(1 - ref, abs=1e-8)


def test_chance_to_beat_normal_branch_agrees_with_exact() -> None:
    exact = S.chance_to_beat(9000, 100_000, 8800, 100_000)
    approx = S.chance_to_beat(9000, 100_000, 8800, 100_000, exact_terms=10)
    assert approx == pytest.approx(exact, abs=2e-3)


def test_confidence_sequence_contains_the_fixed_interval() -> None:
    for c1, n1, c0, n0 in CASES:
        lo, hi = S.confidence_sequence_diff(c1, n1, c0, n0)
        wl, wh = S.wald_diff_ci(c1, n1, c0, n0)
        assert lo < wl and hi > wh


def test_confidence_sequence_keeps_false_positives_under_alpha_when_peeking() -> None:
    """A/A test looked at 100 times: the fixed 95 % interval excludes 0 at some look in far
    more than 5 % of runs; the confidence sequence does not."""
    rng = np.random.default_rng(7)
    runs, looks, per_look, rate = 300, 100, 100, 0.1
    a = rng.binomial(per_look, rate, size=(runs, looks)).cumsum(axis=1)
    b = rng.binomial(per_look, rate, size=(runs, looks)).cumsum(axis=1)
    ever_fixed = ever_cs = 0
    for r in range(runs):
        fixed_hit = cs_hit = False
        for k in range(looks):
            n = per_look * (k + 1)
            c1, c0 = int(a[r, k]), int(b[r, k])
            wl, wh = S.wald_diff_ci(c1, n, c0, n)
            fixed_hit |= wl > 0 or wh < 0
            lo, hi = S.confidence_sequence_diff(c1, n, c0, n)
            cs_hit |= lo > 0 or hi < 0
        ever_fixed += fixed_hit
        ever_cs += cs_hit
    assert ever_fixed / runs > 0.15
    assert ever_cs / runs <= 0.05


@pytest.mark.parametrize("bad", [(-1, 10, 1, 10), (11, 10, 1, 10)])
def test_bad_counts_are_named(bad: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError, match="conversions <= n"):
        S.two_proportion_ztest(*bad)
