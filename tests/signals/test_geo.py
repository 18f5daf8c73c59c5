from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics.pairwise import haversine_distances

from riskengine.core.signals.geo import EARTH_RADIUS_KM, haversine_km, impossible_travel, novelty

lat = st.floats(-90, 90, allow_nan=False)
lon = st.floats(-180, 180, allow_nan=False)


@given(lat, lon, lat, lon)
def test_haversine_matches_scikit_learn(a: float, b: float, c: float, d: float) -> None:
    oracle = haversine_distances(np.radians([[a, b]]), np.radians([[c, d]]))[0, 0] * EARTH_RADIUS_KM
    assert haversine_km(a, b, c, d) == pytest.approx(oracle, abs=1e-6, rel=1e-9)


def test_london_changchun_known_distance() -> None:
    # MaxMind test DB locations of 81.2.69.160 and 175.16.199.0 (README: 8,182 km)
    assert round(haversine_km(51.5142, -0.0931, 43.88, 125.3228)) == 8182


def test_impossible_travel_thresholds() -> None:
    # 1,100 km in one hour: 1,000 km beyond the 100 km tolerance = exactly the limit → fine
    lat2 = 51.5142 + 1100 / (EARTH_RADIUS_KM * math.pi / 180)
    at_limit = impossible_travel(lat2, -0.0931, 3601, 51.5142, -0.0931, 1, 1000, 100)
    assert at_limit.value == 0.0
    faster = impossible_travel(lat2, -0.0931, 3000, 51.5142, -0.0931, 1, 1000, 100)
    assert faster.code == "IMPOSSIBLE_TRAVEL" and 0.5 < faster.value < 0.7
    within_tolerance = impossible_travel(51.6, -0.0931, 2, 51.5142, -0.0931, 1, 1000, 100)
    assert within_tolerance.value == 0.0


def test_impossible_travel_needs_both_locations() -> None:
    assert impossible_travel(None, None, 10, 51.0, 0.0, 1, 1000, 100).value == 0.0
    assert impossible_travel(51.0, 0.0, 10, None, None, 0, 1000, 100).value == 0.0


def test_novelty_history_window() -> None:
    day = 86400
    assert novelty("NEW_COUNTRY", "country", "GB", {"GB": 0}, 364 * day, 365).value == 0.0
    assert novelty("NEW_COUNTRY", "country", "GB", {"GB": 0}, 366 * day, 365).value == 1.0


def test_novelty_exact_results_and_history_boundary() -> None:
    day = 86400.0
    assert novelty("NEW_COUNTRY", "country", None, {"GB": 0}, 10, 365) == ("NEW_COUNTRY", 0.0, "unknown")
    assert novelty("NEW_COUNTRY", "country", "GB", {"GB": 0}, 10, 365) == ("NEW_COUNTRY", 0.0, "seen before")
    assert novelty("NEW_ASN", "network", 64500, {}, 10, 365) == ("NEW_ASN", 1.0, "first login from network 64500")
    # seen exactly history_days ago: still known; one second later: new again
    assert novelty("NEW_COUNTRY", "country", "GB", {"GB": 0}, 365 * day, 365).value == 0.0
    assert novelty("NEW_COUNTRY", "country", "GB", {"GB": 0}, 365 * day + 1, 365).value == 1.0


@pytest.mark.parametrize("missing", range(5))
def test_impossible_travel_needs_both_places_and_a_last_time(missing: int) -> None:
    args: list[float | None] = [43.88, 125.32, 3600.0, 51.51, -0.09, 1.0]
    args[[0, 1, 3, 4, 5][missing]] = None if missing < 4 else 0.0
    lat, lon, now, last_lat, last_lon, last_ts = args
    assert now is not None and last_ts is not None
    assert impossible_travel(lat, lon, now, last_lat, last_lon, last_ts, 1000, 100) == (
        "IMPOSSIBLE_TRAVEL", 0.0, "no previous location")
    full = impossible_travel(43.88, 125.32, 3600.0, 51.51, -0.09, 1.0, 1000, 100)
    assert full.code == "IMPOSSIBLE_TRAVEL" and full.value > 0.5


def test_impossible_travel_tolerance_boundary_and_detail() -> None:
    d = haversine_km(51.51, -0.09, 51.6, -0.1)
    # exactly the tolerance away: within it; 0.5 km beyond it at walking pace: plausible
    assert impossible_travel(51.6, -0.1, 3600, 51.51, -0.09, 1, 1000, d).detail == (
        "within the tolerance of the last login")
    assert impossible_travel(51.6, -0.1, 3600, 51.51, -0.09, 1, 1000, d - 0.5).detail == (
        "plausible speed since the last login")
    # 1.5 s apart: the time is taken as is (only floored at 1 s)
    fast = impossible_travel(43.88, 125.32, 1.5, 51.51, -0.09, 0.000001, 1000, 100)
    hours = (1.5 - 0.000001) / 3600
    excess = haversine_km(51.51, -0.09, 43.88, 125.32) - 100
    assert fast.value == 1.0
    assert fast.detail == (f"{excess + 100:.0f} km in {hours:.1f} h ({excess / hours:.0f} km/h) since the last login")
