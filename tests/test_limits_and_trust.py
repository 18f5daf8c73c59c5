"""The engine's limits and trust, pinned through the public API where a mutant of them survived
the other suites (docs/testing.md, "Mutation testing"): support's reset and unlock, the store
outages ``record_outcome`` must absorb, and what a challenged login parks for its outcome.

No test here writes Parquet (the file is in mutmut's test selection)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from riskengine import Engine, UnknownDecisionError
from riskengine.audit.base import MemorySink
from riskengine.core.profile import UserProfile
from riskengine.core.stores import MemoryStore
from riskengine.core.stores.base import StoreError
from riskengine.core.typing import OtpCounts, Updater
from riskengine.testing import FIREFOX_MAC, LONDON, establish, make_attempt, offline_settings

_MOBILE = "+447400123456"  # phonenumbers' example GB mobile
_HOSTING = {**LONDON, "asn": 16509}  # an AWS exit in the user's city: a challenge on a known device


class _OutageStore(MemoryStore):
    """A memory store whose named calls can be taken down (a Redis outage in miniature)."""

    def __init__(self) -> None:
        super().__init__()
        self.down: set[str] = set()

    def _check(self, call: str) -> None:
        if call in self.down:
            raise StoreError(f"{call}: connection refused (test outage)")

    def pop_pending(self, decision_id: str, now: float) -> bytes | None:
        self._check("pop_pending")
        return super().pop_pending(decision_id, now)

    def add_otp_failures(self, user_id: str, session: str, count: int, at: float, *,
                         otp_since: float, session_since: float) -> OtpCounts:
        self._check("add_otp_failures")
        return super().add_otp_failures(user_id, session, count, at, otp_since=otp_since,
                                        session_since=session_since)

    def update(self, user_id: str, fn: Updater) -> UserProfile | None:
        self._check("update")
        return super().update(user_id, fn)

    def reset_failures(self, user_id: str) -> None:
        self._check("reset_failures")
        super().reset_failures(user_id)

    def verify_send(self, decision_id: str, at: float) -> str | None:
        self._check("verify_send")
        return super().verify_send(decision_id, at)

    def budget_merge(self, delta: Mapping[str, float]) -> dict[str, float]:
        self._check("budget_merge")
        return super().budget_merge(delta)

    def put_pending(self, decision_id: str, payload: bytes, expires_at: float, *,
                    user_id: str = "", max_per_user: int = 0) -> None:
        self._check("put_pending")
        super().put_pending(decision_id, payload, expires_at, user_id=user_id, max_per_user=max_per_user)


def _admin_rows(sink: MemorySink) -> list[tuple[object, ...]]:
    return [(r["operation"], r["user_key"], r["device_key"], r["actor"], r["note"], r["event_time"])
            for r in sink.rows("admin")]


# ---------------------------------------------------------------- support: reset and unlock
def test_reset_user_reports_whether_a_profile_with_logins_existed() -> None:
    """True only for a user with at least one login; a stranger, or a profile that is only the
    reset mark, gives False (the CLI prints "no profile" from it)."""
    with Engine(offline_settings(), sink=MemorySink()) as engine:
        assert engine.reset_user("nobody", actor="sam", reason="t1", now=datetime(2026, 3, 1, tzinfo=UTC)) is False
        engine.score(make_attempt("once"))  # exactly one login
        assert engine.store.get("once").logins == 1  # type: ignore[union-attr]
        at = make_attempt("once").timestamp + timedelta(hours=1)
        assert engine.reset_user("once", actor="sam", reason="t2", now=at) is True
        # the second reset finds only the first one's mark (0 logins): nothing existed
        assert engine.reset_user("once", actor="sam", reason="t3", now=at + timedelta(minutes=1)) is False


def test_reset_and_unlock_are_audited_with_who_why_and_when() -> None:
    sink = MemorySink()
    with Engine(offline_settings(), sink=sink) as engine:
        last = establish(engine, days=3)
        reset_at, unlock_at = last + timedelta(days=1), last + timedelta(days=1, minutes=5)
        engine.reset_user("alice", actor="sam", reason="ticket 43", now=reset_at)
        engine.unlock_user("alice", actor="kim", reason="ticket 44", now=unlock_at)
        user = engine.pseudonymizer.user("alice")
    assert _admin_rows(sink) == [("reset", user, None, "sam", "ticket 43", reset_at),
                                 ("unlock", user, None, "kim", "ticket 44", unlock_at)]


def test_unlock_clears_both_lockouts_and_keeps_the_profile_and_its_trust() -> None:
    """A user locked out twice over (failed passwords past ``user_deny_threshold`` and second
    factors past ``otp.user_max_failures``) on a trusted device: ``unlock_user`` lifts both
    locks and the next login from the trusted device is allowed as trusted, with its history."""
    settings = offline_settings()
    f, o = settings.failures, settings.otp
    with Engine(settings, sink=MemorySink()) as engine:
        last = establish(engine)
        ts = last + timedelta(days=1)
        d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC, session_id="s0"))
        token = engine.record_outcome(d.decision_id, "verified", trust_device=True, timestamp=ts + timedelta(seconds=5))
        assert token is not None
        c = engine.score(make_attempt(ts=ts + timedelta(minutes=1), session_id="s1", place=_HOSTING))
        assert c.action == "challenge", c
        engine.record_outcome(c.decision_id, "failed", attempts=o.user_max_failures + 1,
                              timestamp=ts + timedelta(minutes=2))
        for i in range(f.user_deny_threshold):
            engine.record_failure("alice", "198.51.100.7", ts + timedelta(minutes=20, seconds=i))
        probe = ts + timedelta(minutes=30)
        locked = engine.score(make_attempt(ts=probe, ua=FIREFOX_MAC, device_token=token, session_id="x"))
        assert locked.action == "deny" and "OTP_LOCKED" in locked.reason_codes, locked
        logins = engine.store.get("alice").logins  # type: ignore[union-attr]
        engine.unlock_user("alice", actor="sam", reason="ticket 44", now=probe)
        after = engine.score(make_attempt(ts=probe + timedelta(seconds=1), ua=FIREFOX_MAC, device_token=token,
                                          session_id="y"))
        profile = engine.store.get("alice")
    assert after.action == "allow", after
    assert not {"OTP_LOCKED", "FAILED_ATTEMPTS_EXCESSIVE", "FAILED_ATTEMPTS_USER"} & set(after.reason_codes)
    assert profile is not None and profile.logins >= logins and any(
        v.trusted_until for v in profile.devices.values())


# ---------------------------------------------------------------- record_outcome under a store outage
@pytest.mark.parametrize(("call", "names"), [
    ("pop_pending", "record_outcome"), ("add_otp_failures", "second-factor failures"),
    ("update", "profile update"), ("reset_failures", "reset failures"), ("verify_send", "verified send"),
])
def test_each_store_call_of_an_outcome_that_fails_is_logged_counted_and_not_raised(
        call: str, names: str, caplog: pytest.LogCaptureFixture) -> None:
    """A verified outcome with two wrong codes first makes every store call ``record_outcome``
    makes; whichever fails is counted in ``health()["store_errors"]`` and logged with the step
    it broke and the store's own error, and the outcome still returns (docs/operations.md)."""
    store = _OutageStore()
    sink = MemorySink()
    with Engine(offline_settings(), store=store, sink=sink) as engine:
        ts = establish(engine) + timedelta(days=1)
        d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
        store.down.add(call)
        errors = engine.health()["store_errors"]
        with caplog.at_level(logging.WARNING, logger="riskengine"):
            token = engine.record_outcome(d.decision_id, "verified", attempts=3, trust_device=True,
                                          timestamp=ts + timedelta(seconds=5))
        assert engine.health()["store_errors"] == errors + 1
        store.down.clear()
        if call == "pop_pending":
            # not applied: no token, no row, and the challenge is still pending to take it now
            assert token is None and sink.rows("challenges") == []
            assert engine.record_outcome(d.decision_id, "failed", timestamp=ts + timedelta(seconds=6)) is None
        elif call == "update":
            # the lesson that trusts the device was not stored: no token (it would read as
            # revoked, DEVICE_TOKEN_INVALID, at the next login); the outcome is still audited
            assert token is None
            assert [r["outcome"] for r in sink.rows("challenges")] == ["verified"]
        else:
            # the rest of the outcome applies: the token is issued and the outcome audited
            assert token is not None
            assert [r["outcome"] for r in sink.rows("challenges")] == ["verified"]
    assert sink.rows("sends") == []  # no send was checked: no verification is credited
    (line,) = [r.getMessage() for r in caplog.records if "test outage" in r.getMessage()]
    assert names in line and f"{call}: connection refused" in line


def test_a_verified_outcome_credits_the_linked_send_once_at_its_time_and_a_failed_one_never() -> None:
    """The ``sends`` row of a verification (SMS pumping, docs/sms-pumping.md): written by a
    verified outcome only, once, at the outcome's time, over the channel used last."""
    sink = MemorySink()
    with Engine(offline_settings(), sink=sink) as engine:
        ts = establish(engine) + timedelta(days=1)
        failed = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
        assert engine.check_send(failed.decision_id, "sms", _MOBILE, now=ts).action == "allow"
        engine.record_outcome(failed.decision_id, "failed", ["sms"], timestamp=ts + timedelta(seconds=30))
        assert [r for r in sink.rows("sends") if r["verified"]] == []
        ok = engine.score(make_attempt(ts=ts + timedelta(minutes=1), ua=FIREFOX_MAC))
        assert engine.check_send(ok.decision_id, "sms", _MOBILE, now=ts + timedelta(minutes=1)).action == "allow"
        done = ts + timedelta(minutes=1, seconds=40)
        engine.record_outcome(ok.decision_id, "verified", ["email", "sms"], timestamp=done)
    verified = [r for r in sink.rows("sends") if r["verified"]]
    assert [(r["decision_id"], r["event_time"], r["channel"], r["dest_prefix"], r["action"]) for r in verified] == [
        (ok.decision_id, done, "sms", "+447400", "verified")]


def test_a_corrupt_parked_record_is_logged_with_its_problem_counted_and_not_applied(
        caplog: pytest.LogCaptureFixture) -> None:
    """A record a worker cannot read (a rolling deploy's bug, a corrupted store value): the
    outcome is dropped, counted and logged with the parser's reason, never raised."""
    sink = MemorySink()
    with Engine(offline_settings(), sink=sink) as engine:
        at = make_attempt().timestamp
        engine.store.put_pending("d-bad", b"not json", at.timestamp() + 600, user_id="alice")
        errors = engine.health()["store_errors"]
        with caplog.at_level(logging.WARNING, logger="riskengine"):
            assert engine.record_outcome("d-bad", "verified", trust_device=True, timestamp=at) is None
        assert engine.health()["store_errors"] == errors + 1
    assert sink.rows("challenges") == []
    (line,) = [r.getMessage() for r in caplog.records if "not JSON" in r.getMessage()]
    assert "record_outcome" in line and "not applied" in line


# ---------------------------------------------------------------- what a verified challenge teaches
def test_a_verified_challenge_teaches_its_local_hour_and_feeds_the_population_prior() -> None:
    """The parked login's local hour reaches the profile's hour histogram, and an established
    user's verified login counts once in the population prior."""
    with Engine(offline_settings(), sink=MemorySink()) as engine:
        last = establish(engine)  # every login at 09:00 London
        night = (last + timedelta(days=1)).replace(hour=3)  # 03:00 UTC = 03:00 London in March
        before = engine.store.get("alice")
        assert before is not None and before.hours[3] == 0
        d = engine.score(make_attempt(ts=night, ua=FIREFOX_MAC))
        assert d.action == "challenge"
        prior = engine.population_logins(night)
        engine.record_outcome(d.decision_id, "verified", timestamp=night + timedelta(minutes=1))
        after = engine.store.get("alice")
        assert after is not None and after.hours[3] > 0
        assert engine.population_logins(night) == pytest.approx(prior + 1.0)


def test_a_failed_outcome_writes_no_lesson_and_keeps_the_failed_passwords() -> None:
    settings = offline_settings()
    with Engine(settings, sink=MemorySink()) as engine:
        last = establish(engine)
        ts = last + timedelta(days=1)
        for i in range(settings.failures.user_threshold):
            engine.record_failure("alice", "198.51.100.7", ts - timedelta(seconds=i + 1))
        d = engine.score(make_attempt(ts=ts))
        assert d.action == "challenge" and "FAILED_ATTEMPTS_USER" in d.reason_codes
        profile = engine.store.get("alice")
        errors = engine.health()["store_errors"]
        engine.record_outcome(d.decision_id, "failed", timestamp=ts + timedelta(seconds=30))
        assert engine.health()["store_errors"] == errors
        assert engine.store.get("alice") == profile
        again = engine.score(make_attempt(ts=ts + timedelta(minutes=1)))
    assert "FAILED_ATTEMPTS_USER" in again.reason_codes, again


def test_an_outcome_without_a_timestamp_is_dated_at_its_login() -> None:
    """No ``timestamp``: the challenges row and the counters take the parked login's time (the
    outcome's own time is unknown); the expiry is checked against the clock."""
    sink = MemorySink()
    # cold start off: a first login is challenged (NEW_DEVICE)
    with Engine(offline_settings(coldstart={"min_logins": 0}), sink=sink) as engine:
        login = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        d = engine.score(make_attempt(ts=login))
        assert d.action == "challenge", d
        engine.record_outcome(d.decision_id, "failed", attempts=2)
    (row,) = sink.rows("challenges")
    assert row["event_time"] == login


def test_a_challenge_that_cannot_be_parked_is_still_returned_and_the_outage_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    store = _OutageStore()
    with Engine(offline_settings(), store=store, sink=MemorySink()) as engine:
        ts = establish(engine) + timedelta(days=1)
        store.down.add("put_pending")
        errors = engine.health()["store_errors"]
        with caplog.at_level(logging.WARNING, logger="riskengine"):
            d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
        assert d.action == "challenge" and engine.health()["store_errors"] == errors + 1
        store.down.clear()
        with pytest.raises(UnknownDecisionError):  # nothing was parked for its outcome
            engine.record_outcome(d.decision_id, "verified", timestamp=ts + timedelta(seconds=5))
    (line,) = [r.getMessage() for r in caplog.records if "test outage" in r.getMessage()]
    assert "park" in line and "put_pending: connection refused" in line


# ---------------------------------------------------------------- the step-up budget's store outage
def _budget_run(outage_day: int | None) -> tuple[dict[str, float], list[str], int]:
    """Five users, one familiar login a day for 8 days (established from day 5), refreshes every
    minute; on ``outage_day`` the sketch's store is down for that day's refresh. Returns the
    merged sketch after a last refresh, the reason codes seen, and the store errors."""
    store = _OutageStore()
    settings = offline_settings(policy={"target_stepup_rate": 0.1, "budget_warmup_logins": 10,
                                        "budget_refresh_seconds": 60.0, "budget_user_cap": 1000})
    codes: list[str] = []
    with Engine(settings, store=store, sink=MemorySink()) as engine:
        start = make_attempt().timestamp
        for day in range(8):
            if day == outage_day:
                store.down.add("budget_merge")
            for u in range(5):
                codes += engine.score(make_attempt(f"user{u}", start + timedelta(days=day, seconds=u))).reason_codes
            store.down.clear()
        engine.score(make_attempt("user0", start + timedelta(days=9)))  # one more refresh
        errors = engine.health()["store_errors"]
    return store.budget_merge({}), codes, errors


def test_a_budget_merge_outage_keeps_the_threshold_and_merges_the_kept_delta_later(
        caplog: pytest.LogCaptureFixture) -> None:
    """The refresh that cannot reach the store keeps the last threshold (no degraded decision),
    is counted and logged once for the period (not retried on every login), and the logins it
    could not send are merged at the next refresh: the sketch ends up as without the outage."""
    clean, clean_codes, clean_errors = _budget_run(None)
    with caplog.at_level(logging.WARNING, logger="riskengine"):
        merged, codes, errors = _budget_run(6)
    assert "ENGINE_DEGRADED" not in codes and codes == clean_codes
    assert errors == clean_errors + 1
    assert merged.keys() == clean.keys() and all(merged[k] == pytest.approx(clean[k]) for k in clean)
    assert sum(w for k, w in merged.items() if k.endswith(":n")) > 0
    (line,) = [r.getMessage() for r in caplog.records if "test outage" in r.getMessage()]
    assert "step-up budget" in line and "budget_merge: connection refused" in line


def test_logins_without_a_session_id_share_one_second_factor_session() -> None:
    """No ``session_id``: the parked challenge and the next login both use the empty session,
    so the session's limit still applies (a client that sends none cannot escape it)."""
    settings = offline_settings(failures={"user_threshold": 10_000, "user_deny_threshold": 10_000})
    o = settings.otp
    assert o.max_attempts + 1 <= o.user_max_failures  # only the session limit can deny here
    with Engine(settings, sink=MemorySink()) as engine:
        ts = establish(engine) + timedelta(days=1)
        d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
        engine.record_outcome(d.decision_id, "failed", attempts=o.max_attempts + 1,
                              timestamp=ts + timedelta(seconds=20))
        again = engine.score(make_attempt(ts=ts + timedelta(minutes=1), ua=FIREFOX_MAC))
        other = engine.score(make_attempt(ts=ts + timedelta(minutes=1), ua=FIREFOX_MAC, session_id="s2"))
    assert again.action == "deny" and "OTP_ATTEMPTS_EXCEEDED" in again.reason_codes, again
    assert "OTP_ATTEMPTS_EXCEEDED" not in other.reason_codes, other
