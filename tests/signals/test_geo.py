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
