"""record_outcome, field by field: the audit row it writes, what a verified outcome teaches,
and how trust is re-issued. (Boundaries of the limits: tests/test_boundaries.py.)"""

from __future__ import annotations

import base64
from datetime import UTC, timedelta

import pytest

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.testing import FIREFOX_MAC, LONDON, establish, make_attempt, offline_settings

HOSTING_EXIT = {**LONDON, "asn": 16509}


def _device_id(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))[1:17]


@pytest.mark.parametrize(("channels", "fallback"), [((), False), (("sms",), False), (("sms", "email"), True)])
def test_the_challenges_row_holds_every_field(channels: tuple[str, ...], fallback: bool) -> None:
    sink = MemorySink()
    with Engine(offline_settings(), sink=sink) as engine:
        ts = establish(engine) + timedelta(days=1)
        d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
        assert d.action == "challenge"
        done = ts + timedelta(seconds=42)
        engine.record_outcome(d.decision_id, "verified", channels, attempts=2, seconds_to_verify=41.5,
                              timestamp=done)
        (row,) = sink.rows("challenges")
        user_key = engine.pseudonymizer.user("alice")
    assert row["event_time"] == done.astimezone(UTC)
    assert row["decision_id"] == d.decision_id and row["user_key"] == user_key
    assert row["factor"] == d.factor and row["risk"] == d.risk and row["policy_version"] == d.policy_version
    assert row["channels"] == list(channels) and row["final_channel"] == (channels[-1] if channels else None)
    assert row["fallback_used"] is fallback
    assert (row["outcome"], row["attempts"], row["seconds_to_verify"], row["trust_device"]) == (
        "verified", 2, 41.5, False)
    assert row["country"] == LONDON["country"] and row["reasons"] == list(d.reason_codes)
    assert row["device_type"] and isinstance(row["schema_version"], int)


def test_a_verified_first_try_counts_no_failure() -> None:
    """attempts=1 verified: 0 wrong codes. With max_attempts=1, one failed outcome plus a
    first-try success in one session is still within the limit."""
    settings = offline_settings(otp={"max_attempts": 1},
                                failures={"user_threshold": 10_000, "user_deny_threshold": 10_000})
    with Engine(settings, sink=MemorySink()) as engine:
        ts = establish(engine) + timedelta(days=1)
        d1 = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC, session_id="s"))
        engine.record_outcome(d1.decision_id, "failed", attempts=1, timestamp=ts + timedelta(seconds=10))
        d2 = engine.score(make_attempt(ts=ts + timedelta(seconds=20), ua=FIREFOX_MAC, session_id="s"))
        assert d2.action == "challenge"
        engine.record_outcome(d2.decision_id, "verified", attempts=1, timestamp=ts + timedelta(seconds=30))
        d3 = engine.score(make_attempt(ts=ts + timedelta(seconds=40), ua=FIREFOX_MAC, session_id="s"))
    assert d3.action == "allow", d3


def test_re_trusting_a_token_device_keeps_its_device_id_and_trusts_nothing_else() -> None:
    with Engine(offline_settings(), sink=MemorySink()) as engine:
        last = establish(engine)
        ts = (last + timedelta(days=1)).replace(hour=3)
        d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
        first = engine.record_outcome(d.decision_id, "verified", trust_device=True,
                                      timestamp=ts + timedelta(minutes=1))
        assert first is not None
        # a new country is strong: the trusted device is challenged, and re-trusted on success
        paris = {"country": "FR", "region": "Ile-de-France", "city": "Paris", "asn": 3215,
                 "latitude": 48.86, "longitude": 2.35, "time_zone": "Europe/Paris"}
        later = ts + timedelta(days=2)
        d2 = engine.score(make_attempt(ts=later, place=paris, ua=FIREFOX_MAC, device_token=first))
        assert d2.action == "challenge" and "NEW_COUNTRY" in d2.reason_codes
        second = engine.record_outcome(d2.decision_id, "verified", trust_device=True,
                                       timestamp=later + timedelta(minutes=1))
        assert second is not None and second != first
        assert _device_id(second) == _device_id(first)
        devices = engine.store.get("alice").devices  # type: ignore[union-attr]
        assert sum(k.startswith("t:") for k in devices) == 1
        # a verified outcome without "trust this device" trusts no device (no empty key either)
        d3 = engine.score(make_attempt(ts=later + timedelta(days=1), place=HOSTING_EXIT, ua=FIREFOX_MAC,
                                       device_id="other"))
        assert d3.action == "challenge", d3
        assert engine.record_outcome(d3.decision_id, "verified",
                                     timestamp=later + timedelta(days=1, minutes=1)) is None
        devices = engine.store.get("alice").devices  # type: ignore[union-attr]
        assert "" not in devices and [k for k, v in devices.items() if v.trusted_until] == [
            "t:" + _device_id(first).hex()]


def test_a_sub_second_trust_duration_still_issues_a_token() -> None:
    with Engine(offline_settings(trust={"days": 1e-6}), sink=MemorySink()) as engine:
        ts = establish(engine) + timedelta(days=1)
        d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
        assert engine.record_outcome(d.decision_id, "verified", trust_device=True, timestamp=ts) is not None


def test_a_verified_challenge_ends_a_support_reset() -> None:
    with Engine(offline_settings(), sink=MemorySink()) as engine:
        ts = establish(engine) + timedelta(days=1)
        engine.reset_user("alice", actor="sam", reason="phone stolen", now=ts)
        d = engine.score(make_attempt(ts=ts + timedelta(minutes=1)))
        assert d.action == "challenge" and "PROFILE_RESET" in d.reason_codes
        engine.record_outcome(d.decision_id, "verified", timestamp=ts + timedelta(minutes=2))
        after = engine.score(make_attempt(ts=ts + timedelta(minutes=3)))
    assert "PROFILE_RESET" not in after.reason_codes, after
