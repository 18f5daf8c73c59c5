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
