"""Distance from the user's usual places, not only from the last login.

Impossible travel compares with the last accepted login only: an attacker who waits a day is
never "too fast". The profile keeps a few decayed location centroids (where the user usually
is); ``FAR_FROM_USUAL_PLACES`` fires when the login is more than ``far_km`` from every one of
them, graded from 0.5 there to 1.0 at ``full_km``.

The usual places also tell impossible travel apart from a user who is at two of them: a VPN
user alternates between home and the VPN's exit, a carrier's gateway can be geolocated far
from the subscriber. A jump between two places where the user has logged in on several days
(:func:`between_usual_places`) is not two parties at once, and ``IMPOSSIBLE_TRAVEL`` does not
fire for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from riskengine.core import reasons
from riskengine.core.profile import UsualPlace
from riskengine.core.signals.base import SignalResult
from riskengine.core.signals.geo import EARTH_RADIUS_KM, haversine_km

_NEAR = SignalResult(reasons.FAR_FROM_USUAL_PLACES, 0.0, "near one of the user's usual places")
_NO_PLACES = SignalResult(reasons.FAR_FROM_USUAL_PLACES, 0.0, "no usual places yet or location unknown")
_KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180.0
_SAFE = 1.0 - 1e-9
"""Keeps the shortcut strictly inside the bound, clear of floating-point rounding."""


def far_from_usual_places(
    lat: float | None, lon: float | None, places: Sequence[UsualPlace], far_km: float, full_km: float,
) -> SignalResult:
    """How far this login is from the nearest usual place, 0 within ``far_km``.

    >>> london, leeds = UsualPlace(51.51, -0.13, 20.0, 0), UsualPlace(53.80, -1.55, 5.0, 0)
    >>> far_from_usual_places(51.45, -2.59, [london, leeds], 300, 2000).value   # Bristol
    0.0
    >>> round(far_from_usual_places(57.15, -2.09, [london, leeds], 300, 2000).value, 2)  # Aberdeen
    0.52
    >>> far_from_usual_places(40.71, -74.0, [london, leeds], 300, 2000).value      # New York
    1.0
    """
    if lat is None or lon is None or not places:
        return _NO_PLACES
    nearest = math.inf
    for p in places:
        # The great circle is the shortest path, so it is no longer than going along the
        # meridian and then along a parallel: d <= R·(|dlat| + |dlon|) (radians). When that
        # bound is already within far_km (a login from the usual city, the common case), the
        # place is near whatever haversine says, and the trigonometry is skipped.
        dlon = abs(lon - p.lon)
        if (abs(lat - p.lat) + dlon) * _KM_PER_DEGREE <= far_km * _SAFE and dlon <= 180.0:
            return _NEAR
        km = haversine_km(p.lat, p.lon, lat, lon)
        if km <= far_km:
            return _NEAR  # near one is enough: the usual case stops at the first place
        if km < nearest:
            nearest = km
    span = max(full_km - far_km, 1.0)
    value = min(1.0, 0.5 + 0.5 * (nearest - far_km) / span)
    return SignalResult(reasons.FAR_FROM_USUAL_PLACES, round(value, 4),
                        f"{nearest:.0f} km from the nearest of the user's {len(places)} usual places")


def _usual(lat: float, lon: float, places: Sequence[UsualPlace], radius_km: float, min_days: float,
           now: float, half_life_s: float) -> bool:
    return any(haversine_km(p.lat, p.lon, lat, lon) <= radius_km and p.weight_at(now, half_life_s) >= min_days
               for p in places)


def between_usual_places(
    sig: SignalResult, lat: float | None, lon: float | None, last_lat: float | None, last_lon: float | None,
    places: Sequence[UsualPlace], radius_km: float, min_days: float, half_life_s: float, now: float,
) -> SignalResult:
    """``sig`` (an ``IMPOSSIBLE_TRAVEL`` result) unfired when this login and the last one are
    both within ``radius_km`` of a usual place with at least ``min_days`` of (decayed) logins:
    the user is at two of their own places (home and a VPN exit), not two parties at once.

    >>> home, vpn = UsualPlace(51.51, -0.13, 20.0, 0), UsualPlace(52.37, 4.90, 4.0, 0)
    >>> travel = SignalResult("IMPOSSIBLE_TRAVEL", 1.0, "358 km in 0.1 h (3580 km/h) since the last login")
    >>> between_usual_places(travel, 51.5, -0.1, 52.4, 4.9, [home, vpn], 50, 3, 1e9, 0).value
    0.0
    >>> between_usual_places(travel, 51.5, -0.1, 52.4, 4.9, [home], 50, 3, 1e9, 0) is travel
    True
    >>> between_usual_places(travel, 51.5, -0.1, 52.4, 4.9, [home, vpn._replace(weight=2.0)], 50, 3, 1e9, 0).value
    1.0
    """
    if sig.value <= 0.0 or lat is None or lon is None or last_lat is None or last_lon is None:
        return sig
    if _usual(lat, lon, places, radius_km, min_days, now, half_life_s) \
            and _usual(last_lat, last_lon, places, radius_km, min_days, now, half_life_s):
        return SignalResult(sig.code, 0.0, f"{sig.detail}, but between two of the user's usual places")
    return sig


__all__ = ["between_usual_places", "far_from_usual_places"]
