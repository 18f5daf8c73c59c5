"""Bad input, generated: every LoginAttempt either fails validation with an error that names
the field, or gets a valid Decision — and the stored profile is never corrupted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.decision import Decision
from riskengine.models import LoginAttempt
from riskengine.profile import UserProfile
from riskengine.testing import CHROME_WIN, offline_settings

REPO = Path(__file__).resolve().parents[2]
CITY_TEST_DB = REPO.parent / "shared" / "data" / "maxmind-test" / "GeoIP2-City-Test.mmdb"
FIELDS = set(LoginAttempt.model_fields)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    # the real GeoIP path when the MaxMind test database is around: IPs are looked up for real
    geo = {"city_db": str(CITY_TEST_DB)} if CITY_TEST_DB.exists() else {"city_db": None}
    with Engine(offline_settings(geo=geo), sink=MemorySink()) as e:
        yield e


def surrogateescaped(max_size: int) -> st.SearchStrategy[str]:
    """What an auth service gets decoding raw header bytes with errors='surrogateescape'."""
    return st.binary(max_size=max_size).map(lambda b: b.decode("utf-8", "surrogateescape"))


ipv4 = st.ip_addresses(v=4).map(str)
ips = st.one_of(
    ipv4,
    st.ip_addresses(v=6).map(str),
    ipv4.map(lambda a: f"::ffff:{a}"),  # IPv4-mapped IPv6
    st.ip_addresses(v=6).map(lambda a: f"{a}%eth0"),  # zone ids
    st.sampled_from(["fe80::1%25en0", "::1", "0.0.0.0", "255.255.255.255", "01.02.03.004",
                     "1.2.3", "1.2.3.4.5", "::ffff:999.1.1.1", " 81.2.69.160 ", "[::1]", "", "localhost",
                     "2001:db8::1/64", "1e100.net", "٣.٣.٣.٣"]),
    st.text(max_size=80),
)
user_agents = st.one_of(
    st.just(CHROME_WIN), st.text(max_size=3000), surrogateescaped(12_000),
    st.integers(2040, 12_000).map(lambda n: "Mozilla/5.0 " + "A" * n),
)
DST_EDGES = [
    datetime(2026, 3, 29, 0, 59, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # London springs forward
    datetime(2026, 10, 25, 1, 30, tzinfo=ZoneInfo("Europe/London")),  # ambiguous hour, fold=0
    datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=ZoneInfo("Europe/London")),
    datetime(2026, 3, 8, 2, 30, tzinfo=ZoneInfo("America/New_York")),  # does not exist
    datetime(2026, 4, 5, 2, 30, tzinfo=ZoneInfo("Australia/Lord_Howe")),  # half-hour DST
]
timestamps = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.timezones()),
    st.datetimes(timezones=st.timezones()),  # year 1 to 9999
    st.datetimes(),  # naive
    st.sampled_from(DST_EDGES),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 2)).map(
        lambda d: d.replace(tzinfo=timezone(timedelta(hours=14)))),
    st.datetimes(min_value=datetime(9999, 12, 31), max_value=datetime(9999, 12, 31, 23)).map(
        lambda d: d.replace(tzinfo=timezone(timedelta(hours=-12)))),
)
attempts = st.fixed_dictionaries(
    {"user_id": st.one_of(st.sampled_from(["alice", "bob"]), st.text(max_size=300), surrogateescaped(40)),
     "timestamp": timestamps, "ip": ips, "user_agent": user_agents},
    optional={
        "country": st.one_of(st.sampled_from(["GB", "fr", "XX", "", "GBR"]), st.text(max_size=3)),
        "region": st.text(max_size=200), "asn": st.integers(-5, 2**33),
        "latitude": st.floats(allow_nan=True), "longitude": st.floats(allow_infinity=True),
        "time_zone": st.one_of(st.sampled_from(["Europe/London", "Mars/Olympus", "UTC", ""]),
                               st.text(max_size=70)),
        "session_id": st.text(max_size=300), "device_id": st.text(max_size=300),
        "enrolled_factors": st.lists(st.sampled_from(["sms", "totp", "pigeon"]), max_size=3),
    })


def _check_outcome(engine: Engine, raw: dict[str, Any]) -> Decision | None:
    try:
        d = engine.score(raw)
    except ValidationError as exc:
        for err in exc.errors():
            assert err["loc"] and err["loc"][0] in FIELDS, err  # the error names the field
            assert err["msg"]
        return None
    assert isinstance(d, Decision)
    assert d.action in ("allow", "challenge", "deny")
    assert 0.0 <= d.risk <= 1.0
    assert not d.degraded, d.reasons  # bad input is not a store outage
    stored = engine.store.get(d.user_id)
    if stored is not None:
        assert UserProfile.from_bytes(stored.to_bytes()) == stored
    return d


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=attempts)
def test_any_attempt_gets_a_decision_or_a_clear_error(engine: Engine, raw: dict[str, Any]) -> None:
    _check_outcome(engine, raw)


@settings(max_examples=60, deadline=None)
@given(offsets=st.lists(st.integers(-400 * 86_400, 400 * 86_400), min_size=1, max_size=25),
       repeat=st.integers(1, 3))
def test_duplicate_and_out_of_order_logins_never_corrupt_the_profile(
        offsets: list[int], repeat: int) -> None:
    base = datetime(2026, 6, 1, 12, tzinfo=UTC)
    with Engine(offline_settings(), sink=MemorySink()) as engine:
        allowed: list[int] = []
        for off in offsets:
            for _ in range(repeat):  # the same login delivered again (retries)
                ts = base + timedelta(seconds=off)
                d = _check_outcome(engine, {"user_id": "alice", "timestamp": ts, "ip": "81.2.69.160",
                                            "user_agent": CHROME_WIN, "country": "GB",
                                            "region": "England", "latitude": 51.5, "longitude": -0.1})
                assert d is not None
                if d.action == "allow":
                    allowed.append(int(ts.timestamp()))
        profile = engine.store.get("alice")
        assert profile is not None
        assert profile.logins == len(allowed)
        assert profile.last_ts == max(allowed)  # an old login arriving late never rewinds it
        assert profile.created == allowed[0]
        (seen,) = profile.devices.values()
        assert (seen.first_seen, seen.last_seen, seen.count) == (allowed[0], max(allowed), len(allowed))


@given(ip=ips, ts=timestamps)
@settings(max_examples=150, deadline=None)
def test_failed_passwords_with_bad_input(engine: Engine, ip: str, ts: datetime) -> None:
    try:
        n = engine.record_failure("mallory", ip, ts)
    except ValidationError as exc:
        assert all(err["loc"][0] in ("ip", "timestamp", "user_id") for err in exc.errors())
        return
    assert n >= 1
