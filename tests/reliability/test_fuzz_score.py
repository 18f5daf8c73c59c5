"""Fuzzing a real Engine with sequences of calls: ``score`` / ``record_failure`` /
``record_outcome`` for the same few users, so profiles, failure counts and parked challenges
build up between the adversarial inputs.

The contract (DESIGN.md): bad input gets a clear error at the boundary — pydantic's
``ValidationError`` from ``LoginAttempt`` (``FailedPassword``, ``ChallengeOutcome``) — and
anything that passes the boundary gets a well-formed decision. Each call is checked against an
oracle: the boundary model validated on its own says whether the engine must raise
``ValidationError`` or answer, and a model of the parked challenges says whether
``record_outcome`` must raise ``UnknownDecisionError``. Any other exception, a risk outside
[0, 1], a degraded decision or a swallowed store/audit error (the memory store and the memory
sink never fail) is a bug — including one an earlier call planted in the profile.

Per GeoIP mode (off, and MaxMind's test City + ASN databases): a state machine that interleaves
the calls, and a table that puts every listed odd value, one at a time, into the login of an
established user (random generation reaches a given one of them only now and then). A last table
gives ``record_outcome`` one odd argument at a time.

``RISKENGINE_FUZZ_SCALE=10`` runs ten times the state machine's examples (a one-off deep run).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from dateutil import tz as dateutil_tz
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from pydantic import ValidationError

from riskengine import Decision, Engine, UnknownDecisionError
from riskengine.audit.base import MemorySink
from riskengine.core.attempt import ChallengeOutcome, FailedPassword, LoginAttempt
from riskengine.core.config import Settings
from riskengine.core.decision import FACTOR_STRENGTH, Reason
from riskengine.core.identity import normalize_user_id
from riskengine.core.profile import HOURS, UserProfile
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE, LONDON, T0, offline_settings

SCALE = int(os.environ.get("RISKENGINE_FUZZ_SCALE", "1"))
FIELDS = set(LoginAttempt.model_fields)
# Lower the history gates so a sequence of a few dozen calls reaches every signal (unusual
# hour, rare country for the service, the non-cold-start policy path); the weights and
# thresholds that decide are the defaults.
GATES: dict[str, dict[str, Any]] = {
    "coldstart": {"min_logins": 1},
    "hour": {"min_logins": 2},
    "geo": {"rare_country_min_logins": 3},
}
MISSING = object()  # an odd value for a required field: leave the field out


def mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], weight: int = 4) -> st.SearchStrategy[Any]:
    """``good`` about ``weight`` times as often as ``odd`` (and shrinking towards ``good``),
    so enough calls pass validation for profiles to build up."""

    def pick(index: int) -> st.SearchStrategy[Any]:
        return odd if index == weight else good

    return st.integers(0, weight).flatmap(pick)


def note(what: str) -> None:
    """A Hypothesis event (``--hypothesis-show-statistics``) when running under Hypothesis."""
    if currently_in_test_context():
        event(what)


def literals(values: list[Any]) -> st.SearchStrategy[Any]:
    """``sampled_from`` whose repr stays short: some values are kilobytes long, and Hypothesis
    puts strategy reprs in its messages."""

    def literal(index: int) -> Any:
        return values[index]

    return st.integers(0, len(values) - 1).map(literal)


# -- odd values, field by field: adversarial but plausible, valid or not ----------------------------
ZONES = ["Europe/London", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham",
         "Pacific/Kiritimati", "America/St_Johns", "Africa/Monrovia", "Antarctica/Troll", "Etc/GMT+12"]
REAL_UAS = [
    CHROME_WIN, FIREFOX_MAC, IPHONE, "",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "curl/8.5.0",
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
    "Mobile/15E148 Safari/604.1",
]
# addresses the MaxMind test databases know (City and/or ASN), so lookups answer
KNOWN_IPS = [
    "81.2.69.160", "81.2.69.142", "81.2.69.143", "81.2.69.150", "81.2.69.1", "2.125.160.216",
    "89.160.20.112", "89.160.20.130", "216.160.83.56", "216.160.83.64", "175.16.199.1",
    "67.43.156.1", "202.196.224.1", "149.101.100.1", "214.1.1.1", "214.78.120.5", "214.78.124.9",
    "1.0.0.1", "1.128.0.1", "12.81.92.1", "12.81.96.1", "23.32.0.1", "2001:218::1", "2001:220::1",
    "2a02:d3c0::1", "2a02:d500::1", "2a02:d0c0::1", "::ffff:81.2.69.160", "::81.2.69.160",
    "2001:1700::1",
]
ODD_LITERALS: dict[str, list[Any]] = {
    "user_id": [
        " alice ", "alice\n", "\u3000alice", "ALICE", "Ålice", "用户", "\u200balice", "al\x00ice", "al\x1bice",
        "\u202ealice", "😀", "a" * 256, "é" * 256, "😀" * 256, "a" * 257, "", "   ", "\t", "\udc80alice",
        b"alice", b"\xff", 42, None, MISSING,
    ],
    "ip": [
        # valid, at the edges
        "0.0.0.0", "255.255.255.255", "::", "::1", "127.0.0.1", "10.0.0.1", "192.0.2.1", "::ffff:1.2.3.4",
        "::ffff:0.0.0.0", "64:ff9b::1.2.3.4", "2002:5102:45a0::1", " 81.2.69.160 ", "81.2.69.160\n",
        # link-local zone ids, with anything in them
        "fe80::1%eth0", "fe80::1%25en0", "fe80::1%1", "::ffff:81.2.69.160%3", "2001:db8::1%x",
        "fe80::1%\x00", "2001:218::1%eth\x000", "fe80::1%\x7f", "fe80::1%é", "fe80::1%1.2.3.4", "fe80::1% x",
        # garbage
        "01.02.03.04", "1.2.3.04", "1.2.3", "1.2.3.4.5", "256.1.1.1", "::ffff:999.1.1.1", "[::1]",
        "1.2.3.4:80", "2001:db8::1/64", "1.2.3.4/32", "localhost", "", " ", "fe80::1%", "1.2.3.4%eth0",
        "fe80::1%a/b", "٣.٣.٣.٣", "１.２.３.４", "0x7f.0.0.1", "2130706433", "::ffff:1.2.3.4.5",
        "1:2:3:4:5:6:7:8:9", ":::", "fe80::1%" + "z" * 60, b"1.2.3.4", 16909060, None, MISSING,
    ],
    "timestamp": [
        datetime(2026, 10, 25, 1, 30, tzinfo=ZoneInfo("Europe/London")),  # ambiguous, fold=0
        datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=ZoneInfo("Europe/London")),
        datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/London")),  # does not exist
        datetime(2026, 3, 8, 2, 30, tzinfo=ZoneInfo("America/New_York")),  # does not exist
        datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),
        datetime(2026, 4, 5, 1, 45, fold=1, tzinfo=ZoneInfo("Australia/Lord_Howe")),  # half-hour DST
        datetime(2026, 10, 4, 2, 15, tzinfo=ZoneInfo("Australia/Lord_Howe")),
        datetime(1970, 1, 2, tzinfo=UTC),  # the earliest accepted instant
        datetime(1970, 1, 2, tzinfo=UTC) - timedelta(microseconds=1),
        datetime(1970, 1, 2, 13, 59, tzinfo=timezone(timedelta(hours=14))),
        datetime(1970, 1, 2, 23, tzinfo=ZoneInfo("Pacific/Kiritimati")),
        datetime(1970, 1, 3, tzinfo=ZoneInfo("Africa/Monrovia")),  # UTC-0:44:30 then
        datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # the latest accepted instant
        datetime(2199, 12, 31, 14, tzinfo=timezone(timedelta(hours=-12))),
        datetime(2200, 1, 1, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # overflows converting to UTC
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-12))),
        datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC),
        datetime(2026, 3, 2, 9),  # naive
        "2026-03-02T09:00:00.123456789Z", "2026-03-02T09:00:00.9999995+05:45", "2026-03-02T09:00:00+23:59",
        "2026-03-02T09:00:00", "2026-02-30T09:00:00Z", "yesterday", "", 1_780_000_000, 1.78e9,
        1_780_000_000_000, "1780000000", 86_400, 172_800.5, -1, math.nan, math.inf, True, None, MISSING,
        # what a service using pandas, numpy or dateutil hands over; pandas carries nanoseconds
        pd.Timestamp("2026-03-02 09:00:00.123456789", tz="UTC"),
        pd.Timestamp("2026-10-25 01:30:00.000000001").tz_localize("Europe/London", ambiguous=True),
        pd.Timestamp("2199-12-31 23:59:59.999999999", tz="UTC"), pd.NaT,
        np.datetime64("2026-03-02T09:00:00.123456789"), np.int64(1_780_000_000), np.float64(1.78e9),
        datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=dateutil_tz.gettz("Europe/London")),
        datetime(2026, 3, 2, 9, tzinfo=dateutil_tz.tzoffset(None, 14 * 3600)),
        datetime(1970, 1, 2, 9, tzinfo=dateutil_tz.tzoffset(None, 14 * 3600)),
    ],
    "user_agent": [
        "\x00" * 2048, "Mozilla/5.0 (" * 157, "Mozilla/5.0 (Linux; Android " + "1" * 2000, "(" * 2048,
        "Mozilla/5.0 " + "A" * 2036, "Mozilla/5.0 " + "A" * 2037, CHROME_WIN + "\x00", "\ufeff" + CHROME_WIN,
        " " * 3000, bytes(range(256)).decode("latin-1"), "\udcff", None, *REAL_UAS,
    ],
    "device_id": ["", " dev-1 ", "x" * 256, "x" * 257, "\x00", "é" * 256, "\udcff", 7],
    "country": ["gb", "fR", "ZZ", "XX", "", "GBR", "G", "1A", "ßa", "éé", "ﬀa", "İi", " gb ", None],
    "region": ["", "LONDON", "england", "x" * 128, "x" * 129, "é" * 128, "a\x00b", "  ", None],
    "city": ["", "LONDON", "london", "x" * 128, "x" * 129, "東京" * 64, "a\x00b", "  ", None],
    "asn": [0, -1, 2**32 - 1, 2**32, 2**63, -(2**63), 10**30, True, "12", 1.0, 1.5, None, np.int64(15169)],
    "latitude": [math.nan, math.inf, -math.inf, 90.0, -90.0, 90.0000001, -91.0, 91.0, -0.0, 5e-324, "51.5", None,
                 np.float64(math.nan), np.float32(51.5)],
    "longitude": [math.nan, math.inf, -math.inf, 180.0, -180.0, 180.0000001, -181.0, 181.0, -0.0, "-0.1", None],
    "time_zone": [
        "America", "Europe", "Etc", "US", "Antarctica", "Europe/", "Etc/GMT+14", "../etc/passwd", "/etc/localtime",
        "/UTC", "./UTC", "..", ".", "", "utc", "UTC", "EUROPE/LONDON", "Europe/London\x00", "\x00", "zone.tab",
        "zone1970.tab", "__init__.py", "__pycache__", "tzdata.zi", "leapseconds", "posixrules", "Factory",
        "localtime", "right/UTC", "posix/Europe/London", "Europe/London/x", "x" * 64, "x" * 65, None,
    ],
    "enrolled_factors": [["pigeon"], ["SMS"], [""], ["sms "], ["sms", "sms", "totp", "totp"], "sms", None, (),
                         list(FACTOR_STRENGTH) * 3],
    "session_id": ["", " s1 ", "x" * 256, "x" * 257, "\x00", "\udcff", 7],
}

# -- strategies ----------------------------------------------------------------------------------
GOOD_USERS = st.sampled_from(["alice", "alice", "bob", "carol"])
GOOD_IPS = st.one_of(st.just("81.2.69.160"), literals(KNOWN_IPS), st.ip_addresses(network="81.2.69.0/24").map(str))
ipv4 = st.ip_addresses(v=4).map(str)
ODD_IPS = st.one_of(
    literals(ODD_LITERALS["ip"]), ipv4, st.ip_addresses(v=6).map(str), ipv4.map(lambda a: f"::ffff:{a}"),
    st.tuples(st.sampled_from(["fe80::1", "2001:218::1", "::ffff:81.2.69.160", "::ffff:1.0.0.1"]),
              st.text(min_size=1, max_size=6)).map(lambda t: f"{t[0]}%{t[1]}"),  # zone ids, anything in them
    st.text(max_size=20),
)
# A timestamp is ("clock", step, render, zone, offset minutes): the running clock moved by
# `step` and rendered one of many ways (so profiles age), ("after", ...) the same relative to
# a challenge, or ("literal", value).
clock_steps = mostly(
    st.one_of(st.integers(0, 3600), st.integers(0, 3 * 86_400), st.integers(20 * 86_400, 400 * 86_400),
              st.integers(-3 * 86_400, 0)),  # late delivery, clock skew
    st.integers(-(10**10), 10**10),  # warps: to the ends of the accepted range and back (clamped)
    weight=20,
)
GOOD_TIMES = st.tuples(st.just("clock"), clock_steps, st.sampled_from(["utc", "utc", "zone", "offset"]),
                       st.sampled_from(ZONES), st.integers(-24 * 60 + 1, 24 * 60 - 1))
ODD_TIMES = st.one_of(
    st.tuples(st.just("clock"), clock_steps,
              st.sampled_from(["zone_fold", "epoch_int", "epoch_float", "epoch_ms", "iso", "iso_nanos", "naive"]),
              st.sampled_from(ZONES), st.just(0)),
    st.tuples(st.just("literal"), literals(ODD_LITERALS["timestamp"])),
    st.tuples(st.just("literal"), st.datetimes(timezones=st.timezones())),  # year 1 to 9999
)
ODD_USERS = st.one_of(literals(ODD_LITERALS["user_id"]), st.text(max_size=8),
                      st.integers(250, 260).map(lambda n: "u" * n))

GOOD: dict[str, st.SearchStrategy[Any]] = {
    "user_id": GOOD_USERS, "timestamp": GOOD_TIMES, "ip": GOOD_IPS,
    "user_agent": mostly(st.just(CHROME_WIN), literals(REAL_UAS)), "device_id": st.sampled_from([None, "dev-1"]),
    "country": st.sampled_from(["GB", "GB", "FR", "US", "JP", "CN", "SE", "BT"]),
    "region": st.sampled_from(["England", "Washington", "Östergötland County", "Île-de-France", "Jilin Sheng"]),
    "city": st.sampled_from(["London", "Boxford", "Linköping", "Milton", "Changchun", "東京"]),
    "asn": st.sampled_from([2856, 3215, 15169, 14061, 4837, 7018]),
    "latitude": st.floats(-90, 90), "longitude": st.floats(-180, 180),
    "time_zone": st.sampled_from([*ZONES, "UTC", "Etc/GMT-14", "Asia/Harbin"]),
    "enrolled_factors": st.lists(st.sampled_from(FACTOR_STRENGTH), max_size=3),
    "session_id": st.sampled_from([None, "s1", "s2"]),
}
ODD: dict[str, st.SearchStrategy[Any]] = {
    "user_id": ODD_USERS, "timestamp": ODD_TIMES, "ip": ODD_IPS,
    "user_agent": st.one_of(
        literals(ODD_LITERALS["user_agent"]), st.text(max_size=60),
        st.binary(max_size=80).map(lambda b: b.decode("latin-1")),  # raw header bytes read as latin-1
        st.integers(2040, 2060).map(lambda n: ("Mozilla/5.0 " + "A" * n)[:n])),  # around the 2048 limit
    "device_id": st.one_of(literals(ODD_LITERALS["device_id"]), st.text(max_size=8)),
    "country": st.one_of(literals(ODD_LITERALS["country"]), st.text(max_size=3)),
    "region": st.one_of(literals(ODD_LITERALS["region"]), st.text(max_size=20)),
    "city": st.one_of(literals(ODD_LITERALS["city"]), st.text(max_size=20)),
    "asn": st.one_of(literals(ODD_LITERALS["asn"]), st.integers(-10, 2**33)),
    "latitude": literals(ODD_LITERALS["latitude"]),
    "longitude": literals(ODD_LITERALS["longitude"]),
    "time_zone": st.one_of(literals(ODD_LITERALS["time_zone"]), st.text(max_size=12)),
    "enrolled_factors": st.one_of(
        literals(ODD_LITERALS["enrolled_factors"]),
        st.lists(st.sampled_from([*FACTOR_STRENGTH, "pigeon", "SMS", "", "sms "]), max_size=4)),
    "session_id": st.one_of(literals(ODD_LITERALS["session_id"]), st.text(max_size=8)),
}
REQUIRED = ("user_id", "timestamp", "ip")


def _with_odd(drawn: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    clean, odd = drawn
    return {k: v for k, v in {**clean, **odd}.items() if v is not MISSING}


# A plausible login with up to three fields made odd: most attempts pass the boundary and reach
# the scoring path with the odd value in them.
attempts = st.tuples(
    st.fixed_dictionaries({k: GOOD[k] for k in REQUIRED},
                          optional={k: v for k, v in GOOD.items() if k not in REQUIRED}),
    # any field can turn odd; the address, the time and the zone (parsed by the engine) most often
    st.lists(st.sampled_from([*sorted(ODD), "ip", "ip", "ip", "timestamp", "time_zone"]), max_size=3,
             unique=True).flatmap(lambda names: st.fixed_dictionaries({k: ODD[k] for k in names})),
).map(_with_odd)
users = mostly(GOOD_USERS, ODD_USERS, weight=2)
ips = mostly(GOOD_IPS, ODD_IPS, weight=2)
timestamps = mostly(GOOD_TIMES, ODD_TIMES, weight=3)

OUTCOMES = ["verified", "verified", "failed", "expired", "abandoned"]
outcomes = mostly(st.sampled_from(OUTCOMES), st.sampled_from(["Verified", "", "ok", None]), weight=9)
channel_lists = mostly(
    st.lists(st.sampled_from(FACTOR_STRENGTH), max_size=3),
    st.lists(st.sampled_from([*FACTOR_STRENGTH, "carrier pigeon", "SMS", ""]), min_size=1, max_size=4),
).map(tuple)
attempt_counts = mostly(st.integers(0, 7), st.sampled_from([-1, 1000, 1001, 2**63, True, "3", 2.0, 2.5]), weight=9)
seconds_to_verify = mostly(st.one_of(st.none(), st.floats(0, 600)), st.sampled_from([-1.0, math.nan, math.inf]))
# most outcomes arrive within the challenge's session; some much later (expired), some with no
# time (the engine reads the clock), some odd
outcome_times = mostly(
    st.tuples(st.just("after"), st.integers(0, 35 * 60), st.sampled_from(["utc", "zone", "offset"]),
              st.sampled_from(ZONES), st.integers(-24 * 60 + 1, 24 * 60 - 1)),
    st.one_of(st.none(), timestamps), weight=3)
random_ids = st.one_of(st.text(max_size=20), literals(["0" * 16, "x" * 128, "x" * 129]))


# -- the machine ---------------------------------------------------------------------------------
class EngineFuzz(RuleBasedStateMachine):
    """One real Engine (memory store, memory audit sink) driven by interleaved calls."""

    settings_factory: Callable[[], Settings] = staticmethod(offline_settings)

    def __init__(self) -> None:
        super().__init__()
        self.sink = MemorySink()
        self.engine = Engine(self.settings_factory(), sink=self.sink)
        self.session_s = self.engine.settings.otp.session_minutes * 60.0
        self.clock = T0
        self.issued: list[str] = []  # every decision id score() returned
        self.challenged: dict[str, datetime] = {}  # challenged decision id -> when
        self.pending: dict[str, float] = {}  # not yet reported: challenged decision id -> expiry
        self.accepted: dict[str, dict[str, Any]] = {}  # user -> the last attempt score() took
        self.emitted = {"decisions": 0, "failures": 0, "challenges": 0}

    def teardown(self) -> None:
        try:
            # what earlier calls stored must not break a plain login for any of these users
            later = self.clock + timedelta(days=1)
            for user in sorted(self.accepted):
                self._score({"user_id": user, "timestamp": later, "ip": "81.2.69.160", "user_agent": CHROME_WIN})
        finally:
            self.engine.close()

    def _time(self, spec: tuple[Any, ...], challenged: datetime | None = None) -> Any:
        if spec[0] == "literal":
            return spec[1]
        kind, step, render, zone, offset_minutes = spec
        if kind == "after" and challenged is not None:
            t = challenged + timedelta(seconds=step)
        else:
            t = min(max(self.clock + timedelta(seconds=step), datetime(1970, 1, 3, tzinfo=UTC)),
                    datetime(2199, 12, 1, tzinfo=UTC))
            self.clock = t
        if render == "utc":
            return t
        if render == "zone":
            return t.astimezone(ZoneInfo(zone))
        if render == "zone_fold":  # the other reading of an ambiguous local time
            local = t.astimezone(ZoneInfo(zone))
            return local.replace(fold=1 - local.fold)
        if render == "offset":
            return t.astimezone(timezone(timedelta(minutes=offset_minutes)))
        if render == "epoch_int":
            return int(t.timestamp())
        if render == "epoch_float":
            return t.timestamp() + 0.123456789
        if render == "epoch_ms":
            return int(t.timestamp() * 1000)
        if render == "iso":
            return t.isoformat()
        if render == "iso_nanos":  # finer than a microsecond
            return t.replace(tzinfo=None).isoformat(timespec="microseconds") + "999+00:00"
        assert render == "naive"
        return t.replace(tzinfo=None)

    # -- rules -----------------------------------------------------------------------------------
    @rule(spec=attempts)
    def score(self, spec: dict[str, Any]) -> None:
        self._score({**spec, "timestamp": self._time(spec["timestamp"])} if "timestamp" in spec else spec)

    @precondition(lambda self: bool(self.accepted))
    @rule(pick=st.integers(0, 20), step=clock_steps)
    def login_again(self, pick: int, step: int) -> None:
        """A user comes back the way they last logged in (same device, place, zone): the
        profile learns, so later odd inputs meet an established user."""
        users = sorted(self.accepted)
        self._score({**self.accepted[users[pick % len(users)]], "timestamp": self._time(("clock", step, "utc", "", 0))})

    @rule(user=users, ip=ips, spec=timestamps,
          how=mostly(st.sampled_from(["positional", "keyword"]), st.sampled_from(["neither", "both"])))
    def record_failure(self, user: Any, ip: Any, spec: tuple[Any, ...], how: str) -> None:
        self._failure(user, ip, self._time(spec), how)

    @rule(which=st.sampled_from(["pending", "pending", "issued", "random"]), pick=st.integers(0, 50),
          random_id=random_ids, outcome=outcomes, channels=channel_lists, attempts=attempt_counts,
          trust=st.booleans(), spec=outcome_times, seconds=seconds_to_verify)
    def record_outcome(self, which: str, pick: int, random_id: str, outcome: Any, channels: tuple[Any, ...],
                       attempts: Any, trust: bool, spec: tuple[Any, ...] | None, seconds: Any) -> None:
        # insertion order, never sorted: the ids are random, and a replay must pick the same one
        ids = (list(self.pending) if which == "pending" else []) or (self.issued if which != "random" else [])
        decision_id = ids[pick % len(ids)] if ids else random_id
        ts = self._time(spec, self.challenged.get(decision_id)) if spec is not None else None
        self._outcome(decision_id, outcome, channels, attempts, trust, seconds, ts)

    # -- each call against its oracle ------------------------------------------------------------
    def _score(self, raw: dict[str, Any]) -> Decision | None:
        try:
            expected = LoginAttempt.model_validate(raw)
        except ValidationError:
            expected = None
        if expected is None:
            try:
                self.engine.score(raw)
            except ValidationError as exc:
                for err in exc.errors():
                    assert err["loc"] and err["loc"][0] in FIELDS, err  # names the field
                note("score: rejected")
                return None
            raise AssertionError(f"score() accepted what LoginAttempt rejects: {raw!r}")
        d = self.engine.score(raw)
        self.emitted["decisions"] += 1
        self._check_decision(d, expected)
        note(f"score: {d.action}")
        self.issued.append(d.decision_id)
        self.accepted[normalize_user_id(expected.user_id)] = raw
        if d.action == "challenge":
            self.challenged[d.decision_id] = expected.timestamp
            self.pending[d.decision_id] = expected.timestamp.timestamp() + self.session_s
        self._check_profile(normalize_user_id(expected.user_id))
        return d

    def _failure(self, user: Any, ip: Any, ts: Any, how: str = "positional") -> None:
        if ts is None or how in ("neither", "both"):  # the time given not exactly once
            args, kwargs = ((user, ip, ts), {"timestamp": ts}) if how == "both" else ((user, ip), {})
            with pytest.raises(TypeError):
                self.engine.record_failure(*args, **kwargs)
            return
        try:
            FailedPassword(user_id=user, ip=ip, timestamp=ts)
            valid = True
        except ValidationError:
            valid = False
        try:
            n = (self.engine.record_failure(user, ip, ts) if how == "positional"
                 else self.engine.record_failure(user, ip, timestamp=ts))
        except ValidationError:
            assert not valid, "record_failure() rejected what FailedPassword accepts"
            return
        assert valid, "record_failure() accepted what FailedPassword rejects"
        self.emitted["failures"] += 1
        assert isinstance(n, int) and n >= 1, n

    def _outcome(self, decision_id: Any, outcome: Any, channels: Any, attempts: Any, trust: Any,
                 seconds: Any, ts: Any) -> None:
        try:
            o = ChallengeOutcome(decision_id=decision_id, outcome=outcome, channels=channels, attempts=attempts,
                                 trust_device=trust, seconds_to_verify=seconds, timestamp=ts)
        except ValidationError:
            with pytest.raises(ValidationError):
                self.engine.record_outcome(decision_id, outcome, channels, attempts, trust,
                                           seconds_to_verify=seconds, timestamp=ts)
            note("outcome: rejected")
            return
        now = o.timestamp.timestamp() if o.timestamp is not None else time.time()
        expires = self.pending.pop(o.decision_id, None)
        try:
            self.engine.record_outcome(decision_id, outcome, channels, attempts, trust,
                                       seconds_to_verify=seconds, timestamp=ts)
        except UnknownDecisionError:
            assert expires is None or expires < now, "a pending, unexpired challenge was unknown"
            note("outcome: unknown id")
            return
        assert expires is not None and expires >= now, "an unknown or expired decision id was accepted"
        self.emitted["challenges"] += 1
        note(f"outcome: {o.outcome} applied")

    # -- checks ----------------------------------------------------------------------------------
    @invariant()
    def nothing_swallowed(self) -> None:
        health = self.engine.health()
        # the memory store never fails: a store error or a degraded decision is an exception
        # from inside the engine that its own guards swallowed
        assert health["degraded"] == 0, health
        assert health["store_errors"] == 0, health
        for table, n in self.emitted.items():  # an audit emit that failed is only logged
            assert len(self.sink.rows(table)) == n, (table, len(self.sink.rows(table)), n)

    def _check_decision(self, d: Any, expected: LoginAttempt) -> None:
        assert isinstance(d, Decision), d
        assert d.action in ("allow", "challenge", "deny"), d
        assert isinstance(d.risk, float) and not math.isnan(d.risk) and 0.0 <= d.risk <= 1.0, d
        assert isinstance(d.reasons, tuple) and all(isinstance(r, Reason) for r in d.reasons), d
        assert all(isinstance(r.code, str) and r.code and math.isfinite(r.weight) for r in d.reasons), d
        assert not d.degraded, d.reasons
        assert isinstance(d.decision_id, str) and len(d.decision_id) == 16, d
        assert d.user_id == normalize_user_id(expected.user_id), d  # one id per account
        if d.action == "challenge":  # the strongest enrolled factor
            assert d.factor in (expected.enrolled_factors or FACTOR_STRENGTH), d
        else:
            assert d.factor is None, d

    def _check_profile(self, user_id: str) -> None:
        profile = self.engine.store.get(user_id)
        if profile is None:
            return
        assert UserProfile.from_bytes(profile.to_bytes()) == profile  # what sqlite/redis would keep
        assert profile.logins >= 0 and len(profile.hours) == HOURS  # 0: only OTP failures so far
        assert all(math.isfinite(h) and h >= 0.0 for h in profile.hours), profile.hours
        for value, bound in ((profile.last_lat, 90.0), (profile.last_lon, 180.0)):
            assert value is None or (math.isfinite(value) and abs(value) <= bound), profile


def _geoip_off() -> Settings:
    return offline_settings(**GATES)


def _geoip_maxmind(maxmind: Callable[[str], Path]) -> Callable[[], Settings]:
    geo = {"city_db": str(maxmind("GeoIP2-City-Test.mmdb")), "asn_db": str(maxmind("GeoLite2-ASN-Test.mmdb"))}
    return lambda: offline_settings(**{**GATES, "geo": {**GATES["geo"], **geo}})


def _machine(settings_factory: Callable[[], Settings]) -> type[EngineFuzz]:
    return type("EngineFuzzCase", (EngineFuzz,), {"settings_factory": staticmethod(settings_factory)})


def _run(settings_factory: Callable[[], Settings], max_examples: int) -> None:
    run_state_machine_as_test(_machine(settings_factory), settings=settings(
        max_examples=max_examples * SCALE, stateful_step_count=30, deadline=None))


def test_fuzz_sequences_geoip_off() -> None:
    _run(_geoip_off, max_examples=200)


def test_fuzz_sequences_maxmind(maxmind: Callable[[str], Path]) -> None:
    _run(_geoip_maxmind(maxmind), max_examples=200)


# -- every listed odd value, one at a time --------------------------------------------------------
@pytest.mark.parametrize("field", sorted(ODD_LITERALS))
@pytest.mark.parametrize("geoip", ["off", "maxmind"])
def test_each_odd_value_alone(geoip: str, field: str, maxmind: Callable[[str], Path]) -> None:
    """Each value of ``ODD_LITERALS[field]`` in the login of an established user (with and
    without caller-supplied geo, so GeoIP looks the address up), then a failed password and the
    outcome of any challenge with it, then the user's usual login again."""
    fuzz = _machine(_geoip_off if geoip == "off" else _geoip_maxmind(maxmind))()
    try:
        usual = {"user_id": "alice", "ip": "81.2.69.160", "user_agent": CHROME_WIN, "session_id": "s1"}
        when = T0
        for _ in range(4):
            when += timedelta(days=1)
            assert fuzz._score({**usual, **LONDON, "timestamp": when}) is not None
        for i, value in enumerate(ODD_LITERALS[field]):
            for place in (LONDON, {"country": "GB"}, {}):
                when += timedelta(minutes=7)
                raw = {k: v for k, v in {**usual, **place, "timestamp": when, field: value}.items()
                       if v is not MISSING}
                d = fuzz._score(raw)
                if field in REQUIRED:
                    fuzz._failure(raw.get("user_id"), raw.get("ip"), raw.get("timestamp"))
                if d is not None and d.action == "challenge":
                    fuzz._outcome(d.decision_id, ("verified", "failed")[i % 2], ("sms",), 2, i % 3 == 0, None,
                                  when + timedelta(seconds=30))
                fuzz.nothing_swallowed()
            assert fuzz._score({**usual, **LONDON, "timestamp": when + timedelta(hours=1)}) is not None
    finally:
        fuzz.teardown()


OUTCOME_ODD_ARGUMENTS: list[tuple[str, Any]] = [
    ("channels", None), ("channels", 5), ("channels", "sms"), ("channels", ["sms", "pigeon"]), ("channels", []),
    ("attempts", None), ("attempts", "x"), ("attempts", -1), ("attempts", 1001), ("attempts", 2**63),
    ("attempts", 0), ("trust_device", None), ("trust_device", "maybe"), ("trust_device", "yes"),
    ("timestamp", datetime(2026, 3, 2, 9)), ("timestamp", "2026-03-02T09:00:30Z"),
    ("timestamp", datetime(2200, 1, 1, tzinfo=UTC)), ("timestamp", math.nan),
    ("seconds_to_verify", "nan"), ("seconds_to_verify", -1.0), ("seconds_to_verify", math.inf),
    ("outcome", "VERIFIED"), ("outcome", None), ("decision_id", ""), ("decision_id", "x" * 129),
    ("decision_id", None), ("decision_id", 7),
]


@pytest.mark.parametrize(("argument", "value"), OUTCOME_ODD_ARGUMENTS,
                         ids=[f"{a}={v!r}"[:40] for a, v in OUTCOME_ODD_ARGUMENTS])
def test_record_outcome_odd_argument(argument: str, value: Any) -> None:
    """``record_outcome`` for a pending challenge with one odd argument: a ValidationError at
    the boundary (never an error from inside the engine), or the outcome is applied."""
    fuzz = _machine(_geoip_off)()
    try:
        usual = {"user_id": "alice", "ip": "81.2.69.160", **LONDON}
        fuzz._score({**usual, "user_agent": CHROME_WIN, "timestamp": T0 - timedelta(days=1)})
        d = fuzz._score({**usual, "user_agent": FIREFOX_MAC, "timestamp": T0})
        assert d is not None and d.action == "challenge", d  # a new device for a known user
        args: dict[str, Any] = {"decision_id": d.decision_id, "outcome": "verified", "channels": ("sms",),
                                "attempts": 1, "trust_device": False, "seconds_to_verify": None,
                                "timestamp": T0 + timedelta(seconds=30)}
        args[argument] = value
        fuzz._outcome(args["decision_id"], args["outcome"], args["channels"], args["attempts"],
                      args["trust_device"], args["seconds_to_verify"], args["timestamp"])
        fuzz.nothing_swallowed()
    finally:
        fuzz.teardown()
