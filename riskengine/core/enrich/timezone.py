"""Local hour of a login: the attempt's or GeoIP's time zone, else the country's main zone.

The hour is the one in force at the start of the login's UTC quarter-hour. Every UTC offset
in use is a multiple of 15 minutes, so that is the login's own hour except in the minutes
after a transition that is not on a quarter-hour (Newfoundland, Labrador and New Brunswick
switched at 00:01 local time until 2006-2011, Gaza and Hebron in 2010-2011, Casey in 2020-2022).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_SECONDS_PER_HOUR: Final = 3600
_SECONDS_PER_DAY: Final = 86_400
_QUARTER_HOUR: Final = timedelta(minutes=15)
_ONE_SECOND: Final = timedelta(seconds=1)

_UNIX_EPOCH: Final = datetime(1970, 1, 1)
# Where, after its first second, _offset_throughout_day samples a UTC day's offset: every
# whole hour and the day's last second. No tz database has two transitions less than an hour
# apart that cancel out (tests/enrich/test_timezone.py checks the installed data), so equal
# offsets at all of these mean no transition during the day.
_DAY_PROBES: Final = tuple(
    timedelta(seconds=s) for s in (*range(_SECONDS_PER_HOUR, _SECONDS_PER_DAY, _SECONDS_PER_HOUR), _SECONDS_PER_DAY - 1)
)

# Both caches are keyed by strings an attacker controls: past this many keys they are
# emptied rather than grown. Realistic traffic has a few hundred (zone, country) pairs.
_MAX_CACHED_KEYS: Final = 4096

_MAX_DAY_OFFSETS: Final = 65_536
"""The (zone, day) cache's bound: a few hundred zones times the days a replay spans (each
partition of a replay walks the whole period again, so keeping only each zone's latest day
recomputed every day's offset once per partition)."""

_ZoneKey = tuple[str | None, str | None]

# (name, country, UTC day number) -> the offset in seconds that holds for that whole day, or
# None when the offset changes during the day or is not whole quarter-hours. Only plain
# dict get/set: atomic under the GIL, so score() threads need no lock.
_day_offsets: dict[tuple[str | None, str | None, int], int | None] = {}
# (name, country) pairs zone() resolves to None
_unresolvable: set[_ZoneKey] = set()


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
            except (ZoneInfoNotFoundError, ValueError, OSError):
                # OSError: a name that is a folder of the zone database ("Europe") is read
                # as a file and fails with IsADirectoryError, not ZoneInfoNotFoundError
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
    return local_hour_at(ts.timestamp(), name, country)


def local_hour_at(epoch_s: float, name: str | None, country: str | None) -> int | None:
    """:func:`local_hour` for epoch seconds (the engine already has them).

    >>> local_hour_at(1_782_894_600, "Asia/Kathmandu", None)  # 2026-07-01 08:30 UTC, +05:45
    14
    >>> local_hour_at(1_782_894_600, "Not/A_Zone", "ZZ") is None
    True
    """
    # Hot path of every score(): logins are spread over many zones, so a cache per
    # (zone, quarter-hour) almost always misses. Most zones keep one offset all day, so
    # remember it per (zone, UTC day) and the hour is integer arithmetic.
    second = int(epoch_s)
    offset = _day_offsets.get((name, country, second // _SECONDS_PER_DAY))
    if offset is not None:
        # the offset is whole quarter-hours, so this equals the hour at the quarter's start
        return (second + offset) // _SECONDS_PER_HOUR % 24
    return _local_hour_uncached(second, name, country)


def _local_hour_uncached(second: int, name: str | None, country: str | None) -> int | None:
    """:func:`local_hour_at` when the (zone, day) offset is not cached or varies that day."""
    key = (name, country)
    if key in _unresolvable:
        return None
    tz = zone(name, country)
    if tz is None:
        if len(_unresolvable) >= _MAX_CACHED_KEYS:
            _unresolvable.clear()
        _unresolvable.add(key)
        return None
    day = second // _SECONDS_PER_DAY
    day_key = (name, country, day)
    try:  # not `in` then `[]`: another thread may clear the cache between the two
        offset = _day_offsets[day_key]
    except KeyError:
        offset = _offset_throughout_day(tz, day)
        if len(_day_offsets) >= _MAX_DAY_OFFSETS:
            _day_offsets.clear()
        _day_offsets[day_key] = offset
    if offset is None:
        # a transition day, an offset that is not whole quarter-hours or a day out of
        # datetime's range: convert exactly, once per quarter-hour
        return _hour_in_quarter(name, country, second // 900)
    return (second + offset) // _SECONDS_PER_HOUR % 24


def _offset_throughout_day(tz: ZoneInfo, day: int) -> int | None:
    """The UTC offset in seconds that holds for all of UTC day ``day`` in ``tz``, or None
    when it changes during the day, is not whole quarter-hours, or cannot be computed
    (the day is out of datetime's range: the exact path then fails the way it always has)."""
    try:
        # tz.fromutc() of a datetime holding UTC time is what fromtimestamp(t, tz) does after
        # converting t; starting from datetimes makes the 25 probes ~40% cheaper
        midnight = (_UNIX_EPOCH + timedelta(days=day)).replace(tzinfo=tz)
        first = tz.fromutc(midnight).utcoffset()
        for probe in _DAY_PROBES:
            if tz.fromutc(midnight + probe).utcoffset() != first:
                return None
    except (OverflowError, ValueError):
        return None
    if first is None or first % _QUARTER_HOUR:
        return None
    return first // _ONE_SECOND


@lru_cache(maxsize=8192)
def _hour_in_quarter(name: str | None, country: str | None, quarter: int) -> int | None:
    """The hour at the start of UTC quarter-hour ``quarter``, converted exactly."""
    tz = zone(name, country)
    if tz is None:
        return None
    return datetime.fromtimestamp(quarter * 900, tz).hour


def _clear_caches() -> None:
    """Forget every cached offset and zone (tests use it to start from a cold cache)."""
    _day_offsets.clear()
    _unresolvable.clear()
    _hour_in_quarter.cache_clear()
    zone.cache_clear()
