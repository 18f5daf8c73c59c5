"""local_hour_at / local_hour against an independent oracle: zoneinfo converting each instant.

The oracle is ``datetime.fromtimestamp(second, ZoneInfo(name)).hour``, computed here and never
through riskengine. The module answers with the hour in force at the start of the login's UTC
quarter-hour; that is the oracle's answer everywhere except in the minutes after the few
transitions that were not on a quarter-hour (see OFF_QUARTER_ZONES).
"""

from __future__ import annotations

import random
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskengine.core.enrich import timezone as tzmod
from riskengine.core.enrich.timezone import local_hour, local_hour_at

Y2000 = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())
Y2040 = int(datetime(2040, 1, 1, tzinfo=UTC).timestamp())
HOUR = 3600
DAY = 86_400

# DST of 30 minutes (Lord_Howe), odd offsets (Kolkata, Kathmandu, St_Johns, Chatham), Ramadan
# suspensions (Casablanca, Gaza), southern hemisphere (Santiago), permanent changes (Moscow
# 2011/2014) and a skipped calendar day (Apia, 2011-12-30)
SAMPLE_ZONES = (
    "Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Asia/Kathmandu",
    "America/St_Johns", "Pacific/Chatham", "Africa/Casablanca", "America/Santiago", "Europe/Moscow",
    "Pacific/Apia", "Asia/Gaza",
)

# Zones whose offset changed at hh:01 rather than on a quarter-hour between 2000 and 2040
# (Newfoundland/Labrador/New Brunswick switched at 00:01 local until 2006-2011, Gaza and Hebron
# in 2010-2011, Casey in 2020-2022). Within such a quarter-hour local_hour_at keeps the hour in
# force at the quarter's start, as it always has; the oracle moves at the transition itself.
OFF_QUARTER_ZONES = frozenset({
    "America/St_Johns", "Canada/Newfoundland", "America/Goose_Bay", "America/Moncton",
    "Antarctica/Casey", "Asia/Gaza", "Asia/Hebron",
})


def _loadable(name: str) -> bool:
    try:
        ZoneInfo(name)
    except Exception:  # noqa: BLE001 - any zone the oracle cannot load is simply skipped
        return False
    return True


ALL_ZONES = tuple(sorted(
    name for name in resources.files("tzdata").joinpath("zones").read_text().split() if _loadable(name)
))


def oracle_hour(name: str, second: int) -> int:
    return datetime.fromtimestamp(second, ZoneInfo(name)).hour


def oracle_offset(name: str, second: int) -> float:
    offset = datetime.fromtimestamp(second, ZoneInfo(name)).utcoffset()
    assert offset is not None
    return offset.total_seconds()


def expected_hour(name: str, second: int) -> int:
    if name in OFF_QUARTER_ZONES:
        return oracle_hour(name, second - second % 900)
    return oracle_hour(name, second)


@cache
def transitions(name: str, step: int) -> tuple[int, ...]:
    """Instants in [2000, 2040) at which ``name``'s UTC offset changes: scan every ``step``
    seconds, then bisect each change to the second."""
    found = []
    previous, previous_offset = Y2000, oracle_offset(name, Y2000)
    for probe in range(Y2000 + step, Y2040 + step, step):
        offset = oracle_offset(name, probe)
        if offset != previous_offset:
            before, after = previous, probe  # offset(before) == previous_offset != offset(after)
            while after - before > 1:
                middle = (before + after) // 2
                if oracle_offset(name, middle) == previous_offset:
                    before = middle
                else:
                    after = middle
            found.append(after)
        previous, previous_offset = probe, offset
    return tuple(found)


def around(instants: tuple[int, ...]) -> list[int]:
    """Every instant ±1 s and ±15 min, and the instant itself."""
    return [t + delta for t in instants for delta in (-900, -1, 0, 1, 899, 900)]


def mismatches(points: list[tuple[str, int]]) -> list[tuple[str, str, int | None, int]]:
    """Calls local_hour_at in the given order; every disagreement with the oracle."""
    wrong = []
    for name, second in points:
        got = local_hour_at(second, name, None)
        want = expected_hour(name, second)
        if got != want:
            wrong.append((name, datetime.fromtimestamp(second, UTC).isoformat(), got, want))
    return wrong


@pytest.fixture(autouse=True)
def cold_cache() -> Iterator[None]:
    tzmod._clear_caches()
    yield
    tzmod._clear_caches()


@pytest.mark.parametrize("name", SAMPLE_ZONES)
def test_every_transition_2000_2040_agrees_with_the_oracle(name: str) -> None:
    instants = transitions(name, HOUR)
    assert instants or name in {"Asia/Kolkata", "Asia/Kathmandu"}, "the scan found no transition"
    points = [(name, second) for second in around(instants)]
    assert mismatches(points) == []


def test_every_zone_agrees_with_the_oracle() -> None:
    # Every zone: transitions found on a 6-day scan (the closest pair of offset changes that
    # cancel out since 2000 is 6.96 days apart), plus instants walking through all times of day
    # (and a second login five hours later on the same day).
    walk = [second + later for second in range(Y2000 + 1234, Y2040, 45 * DAY + 7 * HOUR + 13 * 60 + 17)
            for later in (0, 5 * HOUR)]
    points = [(name, second) for name in ALL_ZONES
              for second in sorted([*around(transitions(name, 6 * DAY)), *walk])]
    assert len(ALL_ZONES) > 500
    assert mismatches(points) == []


def test_answers_do_not_depend_on_call_order() -> None:
    points = [(name, second) for name in SAMPLE_ZONES
              for t in transitions(name, HOUR)[::3]
              for second in (t - DAY, t - HOUR, t - 1, t, t + 1, t + HOUR, t + DAY)]
    points += [(name, midnight + delta) for name in SAMPLE_ZONES
               for midnight in range(Y2000, Y2040, 397 * DAY) for delta in (-1, 0, 1)]
    in_time_order = sorted(points, key=lambda point: point[1])
    half = len(in_time_order) // 2
    # the same zone's calls jump between distant days on every call
    zigzag = [p for pair in zip(in_time_order[:half], reversed(in_time_order[half:]), strict=False) for p in pair]
    shuffled = in_time_order.copy()
    random.Random(20260701).shuffle(shuffled)
    for order in (in_time_order, in_time_order[::-1], zigzag, shuffled):
        tzmod._clear_caches()
        assert mismatches(order) == []


def test_a_cached_day_is_not_used_for_another_day() -> None:
    def at(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> int:
        return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())

    calls = [
        (at(2026, 7, 1, 12), "Europe/London", 13),
        (at(2026, 1, 1, 12), "Europe/London", 12),
        (at(2026, 7, 1, 12), "Europe/London", 13),
        (at(2026, 3, 28, 12), "Europe/London", 12),   # the day before the change
        (at(2026, 3, 29, 0, 59, 59), "Europe/London", 0),
        (at(2026, 3, 29, 1), "Europe/London", 2),      # BST starts at 01:00 UTC
        (at(2026, 3, 29, 12), "Europe/London", 13),
        (at(2026, 3, 28, 23, 59, 59), "Europe/London", 23),
        (at(2011, 12, 29, 12), "Pacific/Apia", 2),     # UTC-10 then
        (at(2011, 12, 30, 9, 59, 59), "Pacific/Apia", 23),
        (at(2011, 12, 30, 10), "Pacific/Apia", 0),     # 31 December 00:00, UTC+14
        (at(2011, 12, 29, 12), "Pacific/Apia", 2),
        (at(2026, 7, 1, 8, 40), "Asia/Kolkata", 14),
        (at(2026, 7, 1, 18, 29, 59), "Asia/Kolkata", 23),
        (at(2026, 7, 1, 18, 30), "Asia/Kolkata", 0),
        (at(2026, 7, 1, 18, 14, 59), "Asia/Kathmandu", 23),
        (at(2026, 7, 1, 18, 15), "Asia/Kathmandu", 0),
    ]
    for second, name, hour in calls:
        assert local_hour_at(second, name, None) == hour == oracle_hour(name, second), (name, second)


def test_off_quarter_transition_keeps_the_hour_of_the_quarter_start() -> None:
    # St John's sprang forward at 00:01 NST (03:31 UTC) on 2006-04-02: the oracle says 01:01
    # NDT, local_hour_at answers for 03:30 UTC (00:00 NST) until the next quarter-hour.
    change = int(datetime(2006, 4, 2, 3, 31, tzinfo=UTC).timestamp())
    assert change in transitions("America/St_Johns", HOUR)
    assert oracle_hour("America/St_Johns", change) == 1
    assert local_hour_at(change, "America/St_Johns", None) == 0
    assert local_hour_at(change + 14 * 60 - 1, "America/St_Johns", None) == 0
    assert local_hour_at(change + 14 * 60, "America/St_Johns", None) == 1


def test_hourly_probing_assumption_holds_for_the_installed_data() -> None:
    # A day's offset is trusted when it is equal at every whole UTC hour and the last second:
    # sound only if no zone has offset changes less than an hour apart that cancel out.
    for name in ALL_ZONES:
        initial, changes = _tzif_offsets(_tzif_bytes(name))
        offsets = [initial] + [offset for _, offset in changes]
        for i, (start, _) in enumerate(changes):
            for j in range(i + 1, len(changes)):
                if changes[j][0] - start >= HOUR:
                    break
                assert offsets[j + 1] != offsets[i], (name, start)


def _tzif_bytes(name: str) -> bytes:
    # the file ZoneInfo reads: the first match on TZPATH, else the tzdata package
    for root in TZPATH:
        path = Path(root, name)
        if path.is_file():
            return path.read_bytes()
    return resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).read_bytes()


def _tzif_offsets(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(offset before the first transition, [(transition, offset from then on)]) of a TZif file
    (RFC 8536); the transitions after the last listed one come from its POSIX TZ footer, whose
    rules change the offset twice a year at most, and are not read here."""
    header = struct.Struct(">4sc15x6l")
    magic, version, isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt = header.unpack_from(data)
    assert magic == b"TZif"
    at, time_code = header.size, "l"
    if version != b"\0":  # version 2+ repeats the data with 64-bit times after the 32-bit block
        at += timecnt * 5 + typecnt * 6 + charcnt + leapcnt * 8 + isstdcnt + isutcnt
        magic, version, isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt = header.unpack_from(data, at)
        at, time_code = at + header.size, "q"
    times = struct.unpack_from(f">{timecnt}{time_code}", data, at)
    at += struct.calcsize(f">{timecnt}{time_code}")
    type_indices = data[at:at + timecnt]
    at += timecnt
    utoffs = [struct.unpack_from(">l", data, at + 6 * k)[0] for k in range(typecnt)]
    return utoffs[0], [(t, utoffs[i]) for t, i in zip(times, type_indices, strict=True)]


COUNTRY_ZONES = {  # first zone of each country in IANA's zone.tab
    "GB": "Europe/London", "US": "America/New_York", "IN": "Asia/Kolkata", "NP": "Asia/Kathmandu",
    "AU": "Australia/Lord_Howe", "CA": "America/St_Johns", "NZ": "Pacific/Auckland",
    "RU": "Europe/Kaliningrad", "CL": "America/Santiago", "MA": "Africa/Casablanca",
    "WS": "Pacific/Apia", "FR": "Europe/Paris",
}


@pytest.mark.parametrize("country", sorted(COUNTRY_ZONES))
def test_country_only_lookups_use_the_countrys_zone(country: str) -> None:
    zone_name = COUNTRY_ZONES[country]
    seconds = [*around(transitions(zone_name, 6 * DAY)), *range(Y2000 + 555, Y2040, 29 * DAY + 5 * HOUR + 11)]
    for second in seconds:
        want = expected_hour(zone_name, second)
        assert local_hour_at(second, None, country) == want, (country, second)
        # an unknown zone name falls back to the country
        assert local_hour_at(second, "Not/A_Zone", country) == want, (country, second)


@pytest.mark.parametrize(("name", "country"), [
    ("Not/A_Zone", None), (None, "ZZ"), ("Not/A_Zone", "ZZ"), (None, None), ("", ""), ("../etc/passwd", None),
    ("Europe/London ", None),
])
def test_unknown_zones_and_countries_give_none(name: str | None, country: str | None) -> None:
    for second in (Y2000, Y2000 + 1, Y2040 - 1, Y2000 + DAY):
        assert local_hour_at(second, name, country) is None


def test_a_zone_directory_name_gives_none() -> None:
    assert local_hour_at(Y2000, "Europe", None) is None
    assert local_hour_at(Y2000, "America/Argentina", "AR") == local_hour_at(Y2000, None, "AR")


def test_an_unknown_zone_is_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str | None, str | None]] = []
    real_zone = tzmod.zone

    def counting_zone(name: str | None, country: str | None) -> ZoneInfo | None:
        calls.append((name, country))
        return real_zone(name, country)

    monkeypatch.setattr(tzmod, "zone", counting_zone)
    for day in range(50):
        assert local_hour_at(Y2000 + day * DAY, "Not/A_Zone", "ZZ") is None
    assert calls == [("Not/A_Zone", "ZZ")]


def test_attacker_controlled_names_do_not_grow_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    assert 1000 <= tzmod._MAX_CACHED_KEYS <= 10_000
    bound = 100  # the same code path as the real bound, in less time
    monkeypatch.setattr(tzmod, "_MAX_CACHED_KEYS", bound)
    monkeypatch.setattr(tzmod, "_MAX_DAY_OFFSETS", bound)
    for i in range(3 * bound):
        assert local_hour_at(Y2000 + i, f"Evil/{i}", None) is None
        # unknown name, known country: resolves to Europe/London and caches an offset per key
        assert local_hour_at(Y2000 + 12 * HOUR, f"Evil/{i}", "GB") == 12
    assert len(tzmod._unresolvable) <= bound
    assert len(tzmod._day_offsets) <= bound


def test_threads_get_the_oracle_answers_while_the_cache_is_emptied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tzmod, "_MAX_CACHED_KEYS", 4)  # empties the cache every few keys
    points = [(name, second) for name in SAMPLE_ZONES for second in around(transitions(name, HOUR)[:40])]
    failures: list[object] = []

    def worker(seed: int) -> None:
        order = points.copy()
        random.Random(seed).shuffle(order)
        failures.extend(mismatches(order))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_fractions_are_truncated_and_local_hour_agrees() -> None:
    assert local_hour_at(-0.5, "UTC", None) == 0     # int() truncates towards zero
    assert local_hour_at(-1.5, "UTC", None) == 23
    assert local_hour_at(1_782_894_600.999, "Asia/Kathmandu", None) == 14
    for second in around(transitions("Europe/London", HOUR)[:10]):
        ts = datetime.fromtimestamp(second, UTC)
        assert local_hour(ts, "Europe/London", None) == local_hour_at(second, "Europe/London", None)


@pytest.mark.parametrize(("epoch_s", "name", "error"), [
    (float("nan"), "Europe/London", ValueError),
    (float("inf"), "Europe/London", OverflowError),
    (1e20, "Europe/London", OverflowError),
    (253_402_300_799, "Pacific/Kiritimati", OverflowError),  # 9999-12-31 23:59:59 UTC is year 10000 there
    (-62_135_596_800, "America/New_York", OverflowError),   # 0001-01-01 00:00 UTC is year 0 there
])
def test_out_of_range_instants_fail_as_before(epoch_s: float, name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        local_hour_at(epoch_s, name, None)


def test_the_last_representable_day_still_answers() -> None:
    assert local_hour_at(253_402_300_799, "Europe/London", None) == 23
    assert local_hour_at(1e20, "Not/A_Zone", None) is None


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(ALL_ZONES), st.integers(Y2000, Y2040 - 1), st.floats(0, 1, exclude_max=True))
def test_random_instants_agree_with_the_oracle(name: str, second: int, fraction: float) -> None:
    epoch_s = second + fraction  # may round up to the next second: the oracle gets what int() gives
    assert local_hour_at(epoch_s, name, None) == expected_hour(name, int(epoch_s))

