"""Spike detection against a trailing baseline (e.g. a credential-stuffing wave).

Pure functions over a complete per-bucket series; db.py fetches the series.
"""

from __future__ import annotations

import math
from datetime import datetime
from itertools import accumulate

import polars as pl

ALERT_SCHEMA: dict[str, pl.DataType] = {"bucket": pl.Datetime("us", "UTC"), "metric": pl.Utf8(), "value": pl.Float64(),
                                         "baseline": pl.Float64(), "zscore": pl.Float64(), "severity": pl.Utf8()}


def spikes(
    buckets: list[datetime],
    logins: list[int],
    stepups: list[int],
    failures: list[int],
    *,
    window: int = 24,
    z: float = 4.0,
    min_logins: int = 50,
) -> pl.DataFrame:
    """Buckets whose challenge rate or failure count is ``z`` standard deviations above the
    previous ``window`` buckets.

    The spread is the larger of the trailing buckets' own spread and the sampling noise
    expected at this bucket's size (binomial for the rate, Poisson for counts), so a flat
    history does not turn every wobble into an alert. A bucket needs ``min_logins`` logins
    for its rate to count, and at least ``max(3, window // 4)`` usable trailing buckets.
    ``severity`` is "critical" at twice the threshold, else "warning".

    >>> from datetime import timedelta, UTC
    >>> t = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(30)]
    >>> f = [2] * 29 + [80]
    >>> spikes(t, [100] * 30, [5] * 30, f)["metric"].to_list()
    ['failures']
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    need = max(3, window // 4)
    n = len(buckets)
    if not len(logins) == len(stepups) == len(failures) == n:
        raise ValueError("spikes: buckets, logins, stepups and failures must have one length")
    # The noise floor rules out almost every bucket, and it needs only sums over the trailing
    # window: integer prefix sums give them exactly (the same floats as summing the window), in
    # O(1) per bucket. The trailing spread — a loop over the window — is computed only for the
    # buckets that pass the floor (two years of hours: 17,520 buckets, a handful pass).
    usable = [x >= min_logins for x in logins]
    k_sum = list(accumulate(usable, initial=0))
    s_sum = list(accumulate((s if u else 0 for s, u in zip(stepups, usable, strict=True)), initial=0))
    n_sum = list(accumulate((m if u else 0 for m, u in zip(logins, usable, strict=True)), initial=0))
    f_sum = list(accumulate(failures, initial=0))
    rows: list[tuple[datetime, str, float, float, float, str]] = []
    for i in range(n):
        lo = max(0, i - window)
        # challenge rate
        if usable[i] and k_sum[i] - k_sum[lo] >= need:
            base = (s_sum[i] - s_sum[lo]) / (n_sum[i] - n_sum[lo])
            value = stepups[i] / logins[i]
            floor = math.sqrt(max(base * (1 - base), 1e-9) / logins[i])
            # the spread is at least `floor`, so below z against it is below z against any
            # spread (division is monotonic in floating point too): skip the trailing std
            if z <= 0 or (value - base) / floor >= z:
                hist = [stepups[j] / logins[j] for j in range(lo, i) if usable[j]]
                sd = max(_std(hist), floor)
                score = (value - base) / sd
                if score >= z:
                    rows.append((buckets[i], "challenge_rate", value, base, score, _severity(score, z)))
        # failed passwords
        if i - lo >= need:
            base_f = (f_sum[i] - f_sum[lo]) / (i - lo)
            floor_f = max(math.sqrt(base_f), 1.0)
            if z <= 0 or (failures[i] - base_f) / floor_f >= z:
                sd_f = max(_std([float(x) for x in failures[lo:i]]), floor_f)
                score_f = (failures[i] - base_f) / sd_f
                if score_f >= z:
                    rows.append((buckets[i], "failures", float(failures[i]), base_f, score_f, _severity(score_f, z)))
    return pl.DataFrame(rows, schema=ALERT_SCHEMA, orient="row")


PUMPING_SCHEMA: dict[str, pl.DataType] = {
    "bucket": pl.Datetime("us", "UTC"), "dest_country": pl.Utf8(), "sends": pl.Float64(), "verified": pl.Float64(),
    "verify_ratio": pl.Float64(), "baseline": pl.Float64(), "zscore": pl.Float64(), "severity": pl.Utf8()}


def pumping_waves(
    buckets: list[datetime],
    countries: list[str],
    sends: list[int],
    verified: list[int],
    *,
    window: int = 24,
    z: float = 4.0,
    min_sends: int = 20,
    max_verify_ratio: float = 0.5,
) -> pl.DataFrame:
    """SMS pumping waves: buckets where one destination country's send attempts are ``z``
    standard deviations above its previous ``window`` buckets **and** at most
    ``max_verify_ratio`` of them were verified (a marketing campaign or a login peak verifies;
    toll fraud does not). The series are per country, in bucket order, one row per bucket
    (complete grids). The spread is at least the Poisson noise of the baseline (and 1), as in
    :func:`spikes`; a bucket needs ``min_sends`` attempts. ``severity`` is "critical" at twice
    the threshold or when nothing at all was verified, else "warning".

    >>> from datetime import timedelta, UTC
    >>> t = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(30)]
    >>> w = pumping_waves(t, ["GB"] * 30, [10] * 29 + [200], [9] * 29 + [4])
    >>> w["dest_country"].to_list(), w["severity"].to_list()
    (['GB'], ['critical'])
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not len(buckets) == len(countries) == len(sends) == len(verified):
        raise ValueError("pumping_waves: buckets, countries, sends and verified must have one length")
    rows: list[tuple[datetime, str, float, float, float, float, float, str]] = []
    start = 0
    for i in range(len(buckets) + 1):
        if i < len(buckets) and countries[i] == countries[start]:
            continue
        for j in range(start, i):  # one country's run
            n = sends[j]
            if n < min_sends:
                continue
            ratio = verified[j] / n
            if ratio > max_verify_ratio:
                continue
            hist = [float(x) for x in sends[max(start, j - window):j]]
            base = sum(hist) / len(hist) if hist else 0.0
            sd = max(_std(hist), math.sqrt(base), 1.0)
            score = (n - base) / sd
            if score >= z:
                severity = "critical" if score >= 2 * z or verified[j] == 0 else "warning"
                rows.append((buckets[j], countries[j], float(n), float(verified[j]), ratio, base, score, severity))
        start = i
    return pl.DataFrame(rows, schema=PUMPING_SCHEMA, orient="row")


def _std(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _severity(score: float, z: float) -> str:
    return "critical" if score >= 2 * z else "warning"


__all__ = ["ALERT_SCHEMA", "PUMPING_SCHEMA", "pumping_waves", "spikes"]
