"""Statistics for experiment readouts: pure functions of counts, standard library only.

Counts in, numbers out: ``conversions``/``n`` of a variant (suffix 1) and of the control
(suffix 0). Every function is tested against scipy on the same numbers (tests/analytics/
test_stats.py) and on a case worked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

_N = NormalDist()


def z_for(level: float) -> float:
    """Two-sided critical value: ``z_for(0.95)`` ≈ 1.96.

    >>> round(z_for(0.95), 4)
    1.96
    """
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return _N.inv_cdf(0.5 + level / 2)


def _check(c: int, n: int) -> None:
    if n < 0 or c < 0 or c > n:
        raise ValueError(f"need 0 <= conversions <= n, got conversions={c}, n={n}")


def two_proportion_ztest(c1: int, n1: int, c0: int, n0: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of equal rates: ``(z, two-sided p)``; ``(0, 1)`` if undefined.

    Worked by hand: 60/100 vs 50/100 → pooled p = 0.55, se = sqrt(.55·.45·(1/100+1/100))
    = 0.070356, z = 0.10/0.070356 = 1.4213, p = 2·(1 − Φ(1.4213)) = 0.1552.

    >>> z, p = two_proportion_ztest(60, 100, 50, 100); round(z, 4), round(p, 4)
    (1.4213, 0.1552)
    """
    _check(c1, n1)
    _check(c0, n0)
    if n1 == 0 or n0 == 0:
        return 0.0, 1.0
    pooled = (c1 + c0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    if se == 0:
        return 0.0, 1.0
    z = (c1 / n1 - c0 / n0) / se
    return z, 2 * _N.cdf(-abs(z))


def wilson_ci(c: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of one proportion (no continuity correction).

    >>> tuple(round(x, 4) for x in wilson_ci(56, 70))
    (0.6918, 0.877)
    """
    _check(c, n)
    if n == 0:
        return 0.0, 1.0
    z = z_for(level)
    p = c / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_diff_ci(c1: int, n1: int, c0: int, n0: int, level: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) for ``rate1 − rate0``.

    Newcombe (1998), example (a): 56/70 − 48/80 → 0.0524 to 0.3339.

    >>> tuple(round(x, 4) for x in newcombe_diff_ci(56, 70, 48, 80))
    (0.0524, 0.3339)
    """
    if n1 == 0 or n0 == 0:
        return -1.0, 1.0
    p1, p0 = c1 / n1, c0 / n0
    l1, u1 = wilson_ci(c1, n1, level)
    l0, u0 = wilson_ci(c0, n0, level)
    d = p1 - p0
    return (d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2))


def wald_diff_ci(c1: int, n1: int, c0: int, n0: int, level: float = 0.95) -> tuple[float, float]:
    """Unpooled Wald interval for ``rate1 − rate0`` (what the confidence sequence widens)."""
    _check(c1, n1)
    _check(c0, n0)
    if n1 == 0 or n0 == 0:
        return -1.0, 1.0
    p1, p0 = c1 / n1, c0 / n0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    z = z_for(level)
    return p1 - p0 - z * se, p1 - p0 + z * se


def relative_lift(c1: int, n1: int, c0: int, n0: int) -> float | None:
    """``rate1 / rate0 − 1``; None when the control rate is 0 (or an arm is empty)."""
    if n1 == 0 or n0 == 0 or c0 == 0:
        return None
    return (c1 / n1) / (c0 / n0) - 1


def relative_lift_ci(c1: int, n1: int, c0: int, n0: int, level: float = 0.95) -> tuple[float, float] | None:
    """Delta-method interval of the relative lift, built on the log of the rate ratio
    (Katz): ``exp(log(r1/r0) ± z·sqrt((1−r1)/c1 + (1−r0)/c0)) − 1``. Asymmetric, never below −1.
    None when a rate is 0 (the log is undefined).

    >>> tuple(round(x, 4) for x in relative_lift_ci(60, 100, 50, 100))
    (-0.0683, 0.5455)
    """
    _check(c1, n1)
    _check(c0, n0)
    if c1 == 0 or c0 == 0:
        return None
    ratio = (c1 / n1) / (c0 / n0)
    se = math.sqrt(1 / c1 - 1 / n1 + 1 / c0 - 1 / n0)
    z = z_for(level)
    return ratio * math.exp(-z * se) - 1, ratio * math.exp(z * se) - 1


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x): series below a+1, continued fraction above."""
    if x <= 0:
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    # modified Lentz for the continued fraction of Q
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, math.exp(log_prefix) * h)


def chi2_sf(x: float, df: int) -> float:
    """Survival function of the chi-square distribution.

    >>> round(chi2_sf(3.841458820694124, 1), 6)
    0.05
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _gamma_q(df / 2, x / 2)


def srm_test(observed: Sequence[int], weights: Sequence[float]) -> tuple[float, float]:
    """Sample-ratio-mismatch chi-square goodness of fit: ``(statistic, p)``; ``(0, 1)`` when
    fewer than two arms or no units.

    >>> s, p = srm_test([5100, 4900], [0.5, 0.5]); round(s, 2), round(p, 4)
    (4.0, 0.0455)
    """
    if len(observed) != len(weights):
        raise ValueError("observed and weights must have one entry per variant")
    total = sum(observed)
    wsum = sum(weights)
    if len(observed) < 2 or total == 0 or wsum <= 0:
        return 0.0, 1.0
    stat = 0.0
    for o, w in zip(observed, weights, strict=True):
        expected = total * w / wsum
        if expected == 0:
            if o:
                return math.inf, 0.0
            continue
        stat += (o - expected) ** 2 / expected
    return stat, chi2_sf(stat, len(observed) - 1)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def chance_to_beat(c1: int, n1: int, c0: int, n0: int, prior: tuple[float, float] = (1.0, 1.0),
                   exact_terms: int = 50_000) -> float:
    """P(rate1 > rate0) under independent Beta posteriors (Beta(1, 1) prior by default).

    Exact finite sum (Evan Miller's closed form) over the smaller side when that needs at
    most ``exact_terms`` terms; otherwise both posteriors are near-normal and that is used.

    >>> round(chance_to_beat(60, 100, 50, 100), 4)
    0.9214
    """
    _check(c1, n1)
    _check(c0, n0)
    a1, b1 = prior[0] + c1, prior[1] + n1 - c1
    a0, b0 = prior[0] + c0, prior[1] + n0 - c0
    integral = float(prior[0]).is_integer()
    if integral and min(a1, a0) <= exact_terms:
        if a1 <= a0:
            return _miller(a0, b0, a1, b1)
        return 1.0 - _miller(a1, b1, a0, b0)
    m1, m0 = a1 / (a1 + b1), a0 / (a0 + b0)
    v1 = a1 * b1 / ((a1 + b1) ** 2 * (a1 + b1 + 1))
    v0 = a0 * b0 / ((a0 + b0) ** 2 * (a0 + b0 + 1))
    return _N.cdf((m1 - m0) / math.sqrt(v1 + v0))


def _miller(a_a: float, b_a: float, a_b: float, b_b: float) -> float:
    """P(B > A) for A ~ Beta(a_a, b_a), B ~ Beta(a_b, b_b), integer a_b; a_b terms."""
    total = 0.0
    base = _log_beta(a_a, b_a)
    for i in range(int(a_b)):
        total += math.exp(_log_beta(a_a + i, b_a + b_b) - math.log(b_b + i)
                          - _log_beta(1 + i, b_b) - base)
    return min(1.0, max(0.0, total))


def confidence_sequence_diff(
    c1: int, n1: int, c0: int, n0: int, alpha: float = 0.05, tuned_n: int = 10_000,
) -> tuple[float, float]:
    """Always-valid (time-uniform) interval for ``rate1 − rate0``: it may be looked at after
    every new unit and still covers the true difference with probability ≥ 1 − alpha at all
    looks at once (asymptotically), unlike the fixed-n interval.

    It is the normal-mixture boundary of Howard et al. (2021), in the asymptotic form of
    Waudby-Smith et al. (2024): with t = n1 + n0 units and the fixed-n standard error s,
    radius = s·√t · sqrt(2(tρ²+1)/(t²ρ²) · log(√(tρ²+1)/alpha)); ρ is fixed in advance so
    the boundary is tightest near ``tuned_n`` units.

    >>> lo, hi = confidence_sequence_diff(600, 1000, 500, 1000); wl, wh = wald_diff_ci(600, 1000, 500, 1000)
    >>> lo < wl < 0.1 < wh < hi
    True
    """
    _check(c1, n1)
    _check(c0, n0)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n1 == 0 or n0 == 0:
        return -1.0, 1.0
    p1, p0 = c1 / n1, c0 / n0
    # a rate of exactly 0 or 1 would give zero variance: use the Wilson-style floor of 1/(n+1)
    var1 = max(p1 * (1 - p1), 1 / (n1 + 1) ** 2) / n1
    var0 = max(p0 * (1 - p0), 1 / (n0 + 1) ** 2) / n0
    s = math.sqrt(var1 + var0)
    t = n1 + n0
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuned_n
    radius = s * math.sqrt(t) * math.sqrt(
        2 * (t * rho2 + 1) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1) / alpha))
    d = p1 - p0
    return d - radius, d + radius


__all__ = [
    "chance_to_beat", "chi2_sf", "confidence_sequence_diff", "newcombe_diff_ci", "relative_lift",
    "relative_lift_ci", "srm_test", "two_proportion_ztest", "wald_diff_ci", "wilson_ci", "z_for",
]
