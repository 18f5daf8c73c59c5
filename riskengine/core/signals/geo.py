"""Geo signals: new country / region / network, and impossible travel."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import TypeVar

from riskengine.core import reasons
from riskengine.core.signals.base import SignalResult

K = TypeVar("K", str, int)

# results that did not fire carry constant details: formatting them would be wasted work
_NEAR = SignalResult(reasons.IMPOSSIBLE_TRAVEL, 0.0, "within the tolerance of the last login")
_PLAUSIBLE = SignalResult(reasons.IMPOSSIBLE_TRAVEL, 0.0, "plausible speed since the last login")
_NO_LOCATION = SignalResult(reasons.IMPOSSIBLE_TRAVEL, 0.0, "no previous location")

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (mean Earth radius).

    >>> round(haversine_km(51.5142, -0.0931, 43.88, 125.3228))  # London → Changchun
    8182
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def novelty(
    code: str, label: str, value: K | None, seen: Mapping[K, int], now: float,
    history_days: float,
) -> SignalResult:
    """Whether ``value`` is absent from the user's history (or older than ``history_days``).

    An unknown value (no GeoIP answer) says nothing, so it does not fire.

    >>> novelty("NEW_COUNTRY", "country", "FR", {"GB": 10}, 20, 365).value
    1.0
    >>> novelty("NEW_COUNTRY", "country", None, {"GB": 10}, 20, 365).value
    0.0
    """
    if value is None:
        return _quiet(code, "unknown")
    last = seen.get(value)
    if last is None or (now - last) / 86400.0 > history_days:
        return SignalResult(code, 1.0, f"first login from {label} {value}")
    return _quiet(code, "seen before")


@lru_cache(maxsize=64)
def _quiet(code: str, detail: str) -> SignalResult:
    """Results that did not fire are shared constants: nothing to format, nothing to allocate."""
    return SignalResult(code, 0.0, detail)


def impossible_travel(
    lat: float | None, lon: float | None, now: float,
    last_lat: float | None, last_lon: float | None, last_ts: float,
    max_speed_kmh: float, tolerance_km: float,
) -> SignalResult:
    """Fires when reaching here from the last accepted login needs more than ``max_speed_kmh``.

    ``tolerance_km`` absorbs GeoIP error (a city centroid vs the real place); the speed is
    computed on the distance beyond it. Value grows from 0.5 at the limit to 1 at 2×.

    >>> impossible_travel(43.88, 125.32, 3600, 51.51, -0.09, 0, 1000, 100).code
    'IMPOSSIBLE_TRAVEL'
    >>> impossible_travel(51.6, -0.1, 3600, 51.51, -0.09, 0, 1000, 100).value
    0.0
    """
    if lat is None or lon is None or last_lat is None or last_lon is None or not last_ts:
        return _NO_LOCATION
    distance = haversine_km(last_lat, last_lon, lat, lon)
    excess = distance - tolerance_km
    if excess <= 0:
        return _NEAR
    hours = max(now - last_ts, 1.0) / 3600.0
    speed = excess / hours
    if speed <= max_speed_kmh:
        return _PLAUSIBLE
    value = min(1.0, 0.5 + 0.5 * (speed / max_speed_kmh - 1.0))
    return SignalResult(
        reasons.IMPOSSIBLE_TRAVEL, value,
        f"{distance:.0f} km in {hours:.1f} h ({speed:.0f} km/h) since the last login",
    )
