"""Spike detection on hand-made series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from riskengine.analytics.alerts import spikes

HOURS = [datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(48)]


def test_flat_history_does_not_alert_on_noise() -> None:
    logins = [100] * 48
    stepups = [5, 6, 4, 5, 7, 5, 3, 5] * 6
    failures = [2, 3, 1, 2] * 12
    assert spikes(HOURS, logins, stepups, failures).is_empty()


def test_challenge_rate_spike_is_reported_with_its_size() -> None:
    stepups = [5] * 48
    stepups[40] = 40
    out = spikes(HOURS, [100] * 48, stepups, [0] * 48)
    assert out["bucket"].to_list() == [HOURS[40]]
    row = out.row(0, named=True)
    assert row["metric"] == "challenge_rate" and row["value"] == 0.4 and row["baseline"] == pytest.approx(0.05)
    # sd = max(0 spread, sqrt(.05*.95/100)) = 0.021794; z = 0.35 / 0.021794
    assert row["zscore"] == pytest.approx(0.35 / (0.05 * 0.95 / 100) ** 0.5)
    assert row["severity"] == "critical"


def test_small_buckets_and_short_history_are_ignored() -> None:
    stepups = [0] * 48
    stepups[40] = 10
    assert spikes(HOURS, [10] * 48, stepups, [0] * 48, min_logins=50).is_empty()
    assert spikes(HOURS[:3], [100] * 3, [5, 5, 90], [0] * 3).is_empty()  # no baseline yet


def test_bad_window() -> None:
    with pytest.raises(ValueError, match="window must be >= 1"):
        spikes(HOURS, [1] * 48, [0] * 48, [0] * 48, window=0)


def test_series_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="must have one length"):
        spikes(HOURS, [1] * 48, [0] * 47, [0] * 48)


def _reference_spikes(logins: list[int], stepups: list[int], failures: list[int], window: int, z: float,
                      min_logins: int) -> list[tuple[int, str, float]]:
    """The documented rule, written plainly (every bucket's trailing spread computed)."""
    import math
    import statistics

    def sd(xs: list[float]) -> float:
        return statistics.stdev(xs) if len(xs) >= 2 else 0.0

    need, out = max(3, window // 4), []
    for i in range(len(logins)):
        lo = max(0, i - window)
        hist = [(stepups[j], logins[j]) for j in range(lo, i) if logins[j] >= min_logins]
        if logins[i] >= min_logins and len(hist) >= need:
            base = sum(s for s, _ in hist) / sum(n for _, n in hist)
            spread = max(sd([s / n for s, n in hist]), math.sqrt(max(base * (1 - base), 1e-9) / logins[i]))
            if (stepups[i] / logins[i] - base) / spread >= z:
                out.append((i, "challenge_rate", (stepups[i] / logins[i] - base) / spread))
        if i - lo >= need:
            past = [float(x) for x in failures[lo:i]]
            base_f = sum(past) / len(past)
            spread_f = max(sd(past), math.sqrt(base_f), 1.0)
            if (failures[i] - base_f) / spread_f >= z:
                out.append((i, "failures", (failures[i] - base_f) / spread_f))
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("z", [0.5, 2.0, 4.0])
def test_spikes_equal_the_plain_rule(seed: int, z: float) -> None:
    """Skipping the trailing spread where the noise floor alone rules a spike out changes no
    answer: noisy series with waves, against the rule computed in full for every bucket."""
    import random

    rng = random.Random(seed)
    n = 400
    logins = [rng.choice([0, 20, 60, 120, 300]) + rng.randrange(40) for _ in range(n)]
    stepups = [int(x * min(1.0, rng.betavariate(2, 20) + (0.5 if rng.random() < 0.03 else 0))) for x in logins]
    failures = [rng.randrange(6) + (rng.randrange(50, 200) if rng.random() < 0.03 else 0) for _ in range(n)]
    hours = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(n)]
    got = spikes(hours, logins, stepups, failures, window=24, z=z, min_logins=50)
    want = _reference_spikes(logins, stepups, failures, 24, z, 50)
    assert [(hours.index(b), m) for b, m in zip(got["bucket"], got["metric"], strict=True)] == [
        (i, m) for i, m, _ in want]
    assert got["zscore"].to_list() == pytest.approx([s for _, _, s in want], rel=1e-12)
    assert len(want) > 5
