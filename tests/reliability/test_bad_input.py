"""Bad input, generated: every LoginAttempt either fails validation with an error that names
the field, or gets a valid Decision — and the stored profile is never corrupted."""

from __future__ import annotations

import os
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
from riskengine.core.attempt import LoginAttempt
from riskengine.core.decision import Decision
from riskengine.core.profile import UserProfile
from riskengine.testing import CHROME_WIN, offline_settings

REPO = Path(__file__).resolve().parents[2]
CITY_TEST_DB = REPO.parent / "shared" / "data" / "maxmind-test" / "GeoIP2-City-Test.mmdb"
FIELDS = set(LoginAttempt.model_fields)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    # the real GeoIP path: IPs are looked up for real in the MaxMind test database. Without
    # ../shared the suite would quietly test less, so it says so (and fails in CI)
    if not CITY_TEST_DB.exists():
        message = f"MaxMind test database not found at {CITY_TEST_DB}: bad input is tested through GeoIP"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with Engine(offline_settings(geo={"city_db": str(CITY_TEST_DB)}), sink=MemorySink()) as e:
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


# -- the RBA CSV reader of `riskengine replay` ----------------------------------------------------
RBA_HEADER = ["index", "Login Timestamp", "User ID", "Round-Trip Time [ms]", "IP Address", "Country",
              "Region", "City", "ASN", "User Agent String", "Browser Name and Version",
              "OS Name and Version", "Device Type", "Login Successful", "Is Attack IP",
              "Is Account Takeover"]
rba_times = st.one_of(
    st.datetimes(min_value=datetime(2020, 2, 1), max_value=datetime(2021, 3, 1)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]),
    st.sampled_from(["2020-03-29 01:30:00.000", "2020-10-25 01:30:00.000+01:00", "0001-01-01 00:00:00",
                     "9999-12-31 23:59:59", "yesterday", "", "2020-02-30 10:00:00"]),
)
rba_rows = st.lists(st.fixed_dictionaries({
    "ts": rba_times, "user": st.one_of(st.integers(-5, 5).map(str), st.text(max_size=12)),
    "ip": ips, "country": st.sampled_from(["NO", "US", "", "XX", "NOR"]),
    "asn": st.one_of(st.integers(0, 70_000).map(str), st.sampled_from(["", "-", "AS123"])),
    "ua": st.one_of(st.just(CHROME_WIN), st.text(max_size=300), st.integers(2040, 5000).map(lambda n: "U" * n)),
    "ok": st.sampled_from(["True", "False", "true", "maybe"]),
}), min_size=1, max_size=25)


def _write_rba(path: Path, rows: list[dict[str, str]], raw_tail: bytes = b"") -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(RBA_HEADER)
    for i, r in enumerate(rows):
        w.writerow([i, r["ts"], r["user"], 100, r["ip"], r["country"], "Oslo", "Oslo", r["asn"], r["ua"],
                    "Chrome 80", "Windows 10", "desktop", r["ok"], "False", "False"])
    path.write_bytes(buf.getvalue().encode("utf-8", "surrogatepass") + raw_tail)


def _replay_or_clear_error(path: Path) -> Any:
    from riskengine.offline.replay import replay

    try:
        return replay(path, "rba", config=offline_settings(), baseline=False, outcomes="verified")
    except ValueError as exc:  # pydantic ValidationError and pyarrow's ArrowInvalid are ValueErrors
        assert str(exc).strip()
        return None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rba_rows, shuffle=st.randoms(use_true_random=False), duplicate=st.booleans())
def test_rba_csv_reader_decides_or_fails_clearly(rows: list[dict[str, str]], shuffle: Any,
                                                  duplicate: bool, tmp_path_factory: pytest.TempPathFactory) -> None:
    if duplicate:
        rows = rows + rows[: max(1, len(rows) // 2)]
    shuffle.shuffle(rows)  # out-of-order timestamps
    path = tmp_path_factory.mktemp("rba") / "logins.csv"
    _write_rba(path, rows)
    out = _replay_or_clear_error(path)
    if out is not None:  # one output row per input row, in input order
        assert out["index"].to_list() == list(range(len(rows)))
        for decision, risk in zip(out["decision"].to_list(), out["risk_score"].to_list(), strict=True):
            assert decision in ("allow", "challenge", "deny", "", None)
            assert risk is None or 0.0 <= risk <= 1.0


def test_rba_well_formed_rows_get_decisions(tmp_path: Path) -> None:
    """The fuzz's generator reaches the scorer: well-formed rows are decided, not rejected."""
    good = [{"ts": f"2020-02-03 10:0{i}:00.000", "user": "7", "ip": "81.2.69.160", "country": "NO",
             "asn": "29695", "ua": CHROME_WIN, "ok": "True"} for i in range(5)]
    path = tmp_path / "good.csv"
    _write_rba(path, good)
    out = _replay_or_clear_error(path)
    assert out is not None and out["decision"].to_list()[0] == "allow"


def test_rba_csv_with_non_utf8_bytes_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "logins.csv"
    _write_rba(path, [{"ts": "2020-02-03 10:00:00.000", "user": "1", "ip": "10.0.0.1", "country": "NO",
                       "asn": "29695", "ua": CHROME_WIN, "ok": "True"}],
               raw_tail=b'1,2020-02-03 10:01:00.000,1,100,10.0.0.1,NO,Oslo,Oslo,29695,Mozilla/5.0 \xff\xfe,'
                        b'Chrome 80,Windows 10,desktop,True,False,False\n')
    _replay_or_clear_error(path)
