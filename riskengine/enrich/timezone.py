"""Local hour of a login: the attempt's or GeoIP's time zone, else the country's main zone."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=1)
def _country_zones() -> dict[str, str]:
    """First zone listed per country in IANA's zone.tab (shipped by the ``tzdata`` package)."""
    zones: dict[str, str] = {}
    text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        zones.setdefault(parts[0], parts[2])
    return zones


@lru_cache(maxsize=1024)
def zone(name: str | None, country: str | None) -> ZoneInfo | None:
    """The time zone to use, or None when neither is known/valid.

    >>> zone(None, "GB").key
    'Europe/London'
    """
    for candidate in (name, _country_zones().get(country or "")):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return None


def local_hour(ts: datetime, name: str | None, country: str | None) -> int | None:
    """Hour of day where the user is.

    >>> from datetime import timezone
    >>> local_hour(datetime(2026, 7, 1, 8, tzinfo=timezone.utc), None, "GB")
    9
    >>> local_hour(datetime(2026, 7, 1, 8, 40, tzinfo=timezone.utc), "Asia/Kolkata", None)
    14
    """
    # every UTC offset in use is a multiple of 15 minutes, so the local hour is constant
    # within a quarter-hour: cache per (zone, quarter) instead of converting every login
    return _hour_in_quarter(name, country, int(ts.timestamp()) // 900)


def local_hour_at(epoch_s: float, name: str | None, country: str | None) -> int | None:
    """:func:`local_hour` for epoch seconds (the engine already has them)."""
    return _hour_in_quarter(name, country, int(epoch_s) // 900)


@lru_cache(maxsize=8192)
def _hour_in_quarter(name: str | None, country: str | None, quarter: int) -> int | None:
    tz = zone(name, country)
    if tz is None:
        return None
    return datetime.fromtimestamp(quarter * 900, tz).hour
