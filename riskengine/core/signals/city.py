"""A city the user has never logged in from, inside a region they use.

Between "region" and "network": a domestic attacker in the victim's region is often in
another city. ``NEW_CITY`` fires only when the region is known to the user: a new region
already fires ``NEW_REGION`` (the same novelty is not counted twice).
"""

from __future__ import annotations

from collections.abc import Mapping

from riskengine.core import reasons
from riskengine.core.signals.base import SignalResult

_SEEN = SignalResult(reasons.NEW_CITY, 0.0, "city seen before")
_COARSER = SignalResult(reasons.NEW_CITY, 0.0, "the region is new: NEW_REGION says it")
_UNKNOWN = SignalResult(reasons.NEW_CITY, 0.0, "city unknown")


def city_key(country: str | None, region: str | None, city: str | None) -> str | None:
    """How cities are keyed in the profile: names are only unique within a region.

    >>> city_key("GB", "ENG", "Leeds")
    'GB/ENG/Leeds'
    >>> city_key("GB", "ENG", None) is None
    True
    """
    if not city:
        return None
    return f"{country or '??'}/{region or '?'}/{city}"[:64]


def new_city(
    key: str | None, region_new: bool, cities: Mapping[str, int], now: float, history_days: float,
) -> SignalResult:
    """1.0 for a city absent from the user's history (or older than ``history_days``), unless
    the region itself is new (``region_new``).

    >>> new_city("GB/ENG/Leeds", False, {"GB/ENG/York": 10}, 20, 365).value
    1.0
    >>> new_city("GB/ENG/Leeds", True, {"GB/ENG/York": 10}, 20, 365).value
    0.0
    """
    if key is None:
        return _UNKNOWN
    if region_new:
        return _COARSER
    last = cities.get(key)
    if last is None or (now - last) / 86400.0 > history_days:
        return SignalResult(reasons.NEW_CITY, 1.0, f"first login from {key.rsplit('/', 1)[-1]}")
    return _SEEN


__all__ = ["city_key", "new_city"]
