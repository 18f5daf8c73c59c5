"""riskengine.analytics.stats at its edges: other confidence levels, empty arms, the
branch points of the numerical code, each against scipy (the independent oracle)."""

from __future__ import annotations

import math

import pytest
from scipy import integrate, stats
from scipy.stats.contingency import relative_risk

from riskengine.analytics import stats as S

LEVELS = [0.8, 0.9, 0.99]
CASES = [(60, 100, 50, 100), (5, 40, 9, 45), (480, 5000, 530, 5100)]


@pytest.mark.parametrize("level", [0.5, *LEVELS, 0.999])
def test_z_for_matches_scipy_normal_quantile(level: float) -> None:
    assert S.z_for(level) == pytest.approx(stats.norm.ppf(0.5 + level / 2), rel=1e-12)


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1, 1.5])
def test_z_for_rejects_levels_outside_the_open_unit_interval(level: float) -> None:
    with pytest.raises(ValueError, match="confidence level must be in"):
        S.z_for(level)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(("c", "n"), [(56, 70), (0, 20), (20, 20), (3, 7)])
def test_wilson_at_other_levels_matches_scipy(c: int, n: int, level: float) -> None:
    ci = stats.binomtest(c, n).proportion_ci(level, method="wilson")
    assert S.wilson_ci(c, n, level) == pytest.approx((ci.low, ci.high), abs=1e-12)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(("c1", "n1", "c0", "n0"), CASES)
def test_newcombe_at_other_levels_from_scipy_wilson_limits(c1: int, n1: int, c0: int, n0: int,
                                                           level: float) -> None:
    w1 = stats.binomtest(c1, n1).proportion_ci(level, method="wilson")
    w0 = stats.binomtest(c0, n0).proportion_ci(level, method="wilson")
    p1, p0 = c1 / n1, c0 / n0
    expected = (p1 - p0 - math.hypot(p1 - w1.low, w0.high - p0),
                p1 - p0 + math.hypot(w1.high - p1, p0 - w0.low))
    assert S.newcombe_diff_ci(c1, n1, c0, n0, level) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("level", [0.95, *LEVELS])
@pytest.mark.parametrize(("c1", "n1", "c0", "n0"), CASES)
def test_relative_lift_ci_at_other_levels_matches_scipy(c1: int, n1: int, c0: int, n0: int,
                                                        level: float) -> None:
    ci = relative_risk(c1, n1, c0, n0).confidence_interval(level)
    got = S.relative_lift_ci(c1, n1, c0, n0, level)
    assert got is not None
    assert got == pytest.approx((ci.low - 1, ci.high - 1), rel=1e-9)


@pytest.mark.parametrize("level", [0.95, *LEVELS])
@pytest.mark.parametrize(("c1", "n1", "c0", "n0"), CASES)
def test_wald_interval_matches_scipy_normal_interval(c1: int, n1: int, c0: int, n0: int,
                                                     level: float) -> None:
    p1, p0 = c1 / n1, c0 / n0
    sd = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    lo, hi = stats.norm.interval(level, loc=p1 - p0, scale=sd)
    assert S.wald_diff_ci(c1, n1, c0, n0, level) == pytest.approx((lo, hi), abs=1e-12)


def test_an_empty_arm_gives_the_uninformative_answer_everywhere() -> None:
    for args in [(0, 0, 5, 10), (5, 10, 0, 0)]:
        assert S.two_proportion_ztest(*args) == (0.0, 1.0)
        assert S.newcombe_diff_ci(*args) == (-1.0, 1.0)
        assert S.wald_diff_ci(*args) == (-1.0, 1.0)
        assert S.confidence_sequence_diff(*args) == (-1.0, 1.0)
        assert S.relative_lift(*args) is None
    assert S.wilson_ci(0, 0) == (0.0, 1.0)


def test_ztest_without_variance_is_undefined_not_a_division_error() -> None:
    assert S.two_proportion_ztest(0, 10, 0, 12) == (0.0, 1.0)
    assert S.two_proportion_ztest(10, 10, 12, 12) == (0.0, 1.0)


def test_relative_lift_none_only_when_a_rate_is_zero() -> None:
    assert S.relative_lift(0, 10, 3, 10) == pytest.approx(-1.0)
    assert S.relative_lift_ci(3, 10, 0, 10) is None
    assert S.relative_lift_ci(1, 10, 1, 10) is not None
    assert S.relative_lift(3, 10, 1, 1) == pytest.approx(-0.7)  # a control of one unit is a rate


@pytest.mark.parametrize(("c", "n"), [(0, 0), (0, 5), (5, 5)])
def test_counts_at_their_limits_are_accepted(c: int, n: int) -> None:
    lo, hi = S.wilson_ci(c, n)
    assert 0.0 <= lo <= hi <= 1.0


@pytest.mark.parametrize(("c", "n"), [(6, 5), (-1, 5), (0, -1)])
def test_counts_past_their_limits_are_named(c: int, n: int) -> None:
    for fn in (lambda: S.wilson_ci(c, n), lambda: S.wald_diff_ci(c, n, 1, 5),
               lambda: S.wald_diff_ci(1, 5, c, n), lambda: S.relative_lift_ci(c, n, 1, 5),
               lambda: S.chance_to_beat(c, n, 1, 5), lambda: S.confidence_sequence_diff(1, 5, c, n),
               lambda: S.two_proportion_ztest(1, 5, c, n)):
        with pytest.raises(ValueError, match=f"conversions={c}, n={n}"):
            fn()


# chi-square survival: both branches of the incomplete gamma (series below a + 1, continued
# fraction above), the crossover itself, tiny and huge tails, many degrees of freedom
@pytest.mark.parametrize(("x", "df"), [
    (0.001, 1), (1.0, 1), (2.9999, 1), (3.0, 1), (3.0001, 1), (8.0, 10), (11.99, 10), (12.0, 10),
    (12.01, 10), (150.0, 100), (250.0, 100), (400.0, 3), (0.2, 30), (55.5, 40),
])
def test_chi2_sf_matches_scipy_across_both_branches(x: float, df: int) -> None:
    assert S.chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-9, abs=1e-300)


def test_chi2_sf_at_zero_and_below_is_one() -> None:
    assert S.chi2_sf(0.0, 3) == 1.0
    assert S.chi2_sf(-2.0, 1) == 1.0


@pytest.mark.parametrize("df", [0, -1])
def test_chi2_sf_rejects_fewer_than_one_degree_of_freedom(df: int) -> None:
    with pytest.raises(ValueError, match="degrees of freedom"):
        S.chi2_sf(1.0, df)


def test_srm_edge_cases() -> None:
    with pytest.raises(ValueError, match=r"^observed and weights must have one entry per variant$"):
        S.srm_test([10, 20], [1.0])
    # one unit is already a sample: 1 vs 0 at 50/50 is chi2 = 1.0 on one degree of freedom
    stat, p = S.srm_test([1, 0], [0.5, 0.5])
    assert (stat, p) == pytest.approx((1.0, stats.chi2.sf(1.0, 1)))
    assert S.srm_test([100], [1.0]) == (0.0, 1.0)
    assert S.srm_test([0, 0], [0.5, 0.5]) == (0.0, 1.0)
    assert S.srm_test([10, 20], [0.0, 0.0]) == (0.0, 1.0)
    # an arm with weight 0 that received units is a certain mismatch ...
    assert S.srm_test([10, 20, 1], [0.5, 0.5, 0.0]) == (math.inf, 0.0)
    # ... and an empty arm with weight 0 is no evidence at all (one fewer term, same df)
    ref = stats.chisquare([10, 20], [15, 15])
    for observed, weights in [([10, 20, 0], [0.5, 0.5, 0.0]), ([0, 10, 20], [0.0, 0.5, 0.5])]:
        stat, p = S.srm_test(observed, weights)
        assert stat == pytest.approx(ref.statistic)
        assert p == pytest.approx(stats.chi2.sf(ref.statistic, 2), rel=1e-9)


def _integrated_chance(c1: int, n1: int, c0: int, n0: int, prior: tuple[float, float]) -> float:
    b1 = stats.beta(prior[0] + c1, prior[1] + n1 - c1)
    b0 = stats.beta(prior[0] + c0, prior[1] + n0 - c0)
    value, _ = integrate.quad(lambda x: b1.pdf(x) * b0.cdf(x), 0, 1, limit=200, epsabs=1e-12)
    return float(value)


@pytest.mark.parametrize("prior", [(2.0, 3.0), (1.0, 9.0)])
def test_chance_to_beat_with_another_integer_prior_is_exact(prior: tuple[float, float]) -> None:
    got = S.chance_to_beat(5, 40, 9, 45, prior=prior)
    assert got == pytest.approx(_integrated_chance(5, 40, 9, 45, prior), abs=1e-8)


def _normal_chance(c1: int, n1: int, c0: int, n0: int, prior: tuple[float, float]) -> float:
    b1 = stats.beta(prior[0] + c1, prior[1] + n1 - c1)
    b0 = stats.beta(prior[0] + c0, prior[1] + n0 - c0)
    return float(stats.norm.cdf((b1.mean() - b0.mean()) / math.sqrt(b1.var() + b0.var())))


def test_chance_to_beat_switches_to_the_normal_form_exactly_past_exact_terms() -> None:
    c1, n1, c0, n0 = 5, 40, 9, 45
    smaller_alpha = 1 + min(c1, c0)  # 6 terms in the exact sum
    exact = _integrated_chance(c1, n1, c0, n0, (1.0, 1.0))
    normal = _normal_chance(c1, n1, c0, n0, (1.0, 1.0))
    assert abs(exact - normal) > 1e-3  # the two forms are distinguishable on this case
    assert S.chance_to_beat(c1, n1, c0, n0, exact_terms=smaller_alpha) == pytest.approx(exact, abs=1e-8)
    assert S.chance_to_beat(c1, n1, c0, n0, exact_terms=smaller_alpha - 1) == pytest.approx(normal, abs=1e-12)


@pytest.mark.parametrize("prior", [(0.5, 0.5), (0.5, 2.0)])
def test_chance_to_beat_with_a_fractional_alpha_prior_uses_the_normal_form(prior: tuple[float, float]) -> None:
    # the exact sum runs over the alpha parameter, so only a whole alpha allows it (Jeffreys: none)
    assert S.chance_to_beat(60, 100, 50, 100, prior=prior) == pytest.approx(
        _normal_chance(60, 100, 50, 100, prior), abs=1e-12)


def test_chance_to_beat_with_a_whole_alpha_and_fractional_beta_is_exact() -> None:
    prior = (2.0, 0.5)
    assert S.chance_to_beat(5, 40, 9, 45, prior=prior) == pytest.approx(
        _integrated_chance(5, 40, 9, 45, prior), abs=1e-8)


def test_chance_to_beat_default_switches_to_normal_past_50_000_terms() -> None:
    # both posteriors' alpha is 50,001: one term past the default exact budget
    c1, n1, c0, n0 = 50_000, 100_000, 50_000, 100_400
    assert S.chance_to_beat(c1, n1, c0, n0) == pytest.approx(_normal_chance(c1, n1, c0, n0, (1.0, 1.0)), abs=1e-12)
    assert S.chance_to_beat(c1, n1, c0, n0) != S.chance_to_beat(c1, n1, c0, n0, exact_terms=50_001)


def test_chance_to_beat_is_symmetric_and_a_probability() -> None:
    for c1, n1, c0, n0 in [(0, 30, 30, 30), (30, 30, 0, 30), (7, 7, 7, 7)]:
        p = S.chance_to_beat(c1, n1, c0, n0)
        assert 0.0 <= p <= 1.0
        assert p + S.chance_to_beat(c0, n0, c1, n1) == pytest.approx(1.0, abs=1e-9)
    assert S.chance_to_beat(30, 30, 0, 30) > 0.999999
    assert S.chance_to_beat(7, 7, 7, 7) == pytest.approx(0.5, abs=1e-9)


def _mixture_radius(c1: int, n1: int, c0: int, n0: int, alpha: float, tuned_n: int) -> float:
    """Howard et al. (2021) normal-mixture boundary, written out from the paper's eq. for the
    sub-Gaussian case with intrinsic time V = t (variance folded into s): the radius at t
    units is s·sqrt((t·ρ² + 1)/ρ² · 2·log(sqrt(t·ρ² + 1)/α)) / sqrt(t)."""
    p1, p0 = c1 / n1, c0 / n0
    s = math.sqrt(max(p1 * (1 - p1), 1 / (n1 + 1) ** 2) / n1 + max(p0 * (1 - p0), 1 / (n0 + 1) ** 2) / n0)
    t = n1 + n0
    # ρ chosen so the boundary is tightest at tuned_n (Howard et al., eq. (3.7))
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / tuned_n
    return s * math.sqrt((t * rho2 + 1) / rho2 * 2 * math.log(math.sqrt(t * rho2 + 1) / alpha)) / math.sqrt(t)


@pytest.mark.parametrize(("alpha", "tuned_n"), [(0.05, 10_000), (0.01, 10_000), (0.1, 500)])
@pytest.mark.parametrize(("c1", "n1", "c0", "n0"), [*CASES, (0, 50, 3, 50), (50, 50, 49, 50), (3, 50, 0, 50),
                                                     (49, 50, 50, 50)])
def test_confidence_sequence_radius_matches_the_mixture_boundary(
        c1: int, n1: int, c0: int, n0: int, alpha: float, tuned_n: int) -> None:
    lo, hi = S.confidence_sequence_diff(c1, n1, c0, n0, alpha=alpha, tuned_n=tuned_n)
    d = c1 / n1 - c0 / n0
    radius = _mixture_radius(c1, n1, c0, n0, alpha, tuned_n)
    assert (lo, hi) == pytest.approx((d - radius, d + radius), rel=1e-12, abs=1e-15)


def test_confidence_sequence_narrows_near_its_tuning_point_and_with_alpha() -> None:
    args = (600, 1000, 500, 1000)
    # the documented default tuning point is 10,000 units
    assert S.confidence_sequence_diff(*args) == S.confidence_sequence_diff(*args, tuned_n=10_000)
    assert S.confidence_sequence_diff(*args) != S.confidence_sequence_diff(*args, tuned_n=10_001)
    wide = S.confidence_sequence_diff(*args, alpha=0.01)
    narrow = S.confidence_sequence_diff(*args, alpha=0.1)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.2])
def test_confidence_sequence_rejects_alpha_outside_the_unit_interval(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha must be in"):
        S.confidence_sequence_diff(6, 10, 5, 10, alpha=alpha)
