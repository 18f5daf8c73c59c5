"""Sensitive events beyond login (issue #17): ``LoginAttempt.event`` scored against the same
profile under ``policy.events.<event>``. Golden cases per event, every per-event threshold at
its boundary (derived from config), the rules, and what an event does not teach."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from riskengine import Engine, LoginAttempt
from riskengine.audit.base import MemorySink
from riskengine.core.config import Settings
from riskengine.core.engine.parking import ParkedChallenge, decode, encode
from riskengine.core.policy import Policy
from riskengine.core.signals.base import SignalResult
from riskengine.core.stores.memory import MemoryStore
from riskengine.core.stores.sqlite import SqliteStore
from riskengine.testing import (
    CHANGCHUN,
    EDINBURGH,
    FIREFOX_MAC,
    LONDON,
    PARIS,
    T0,
    establish,
    make_attempt,
    offline_settings,
)

DEFAULTS = Settings()
EVENTS = ("recovery", "factor_change", "password_reset")
NEW_ASN = {**LONDON, "asn": 64500}
NEW_BLOCK = "81.2.70.12"  # another /24 of the user's own network (establish() uses 81.2.69.0/24)
STEPS = [pytest.param(-1, id="one-step-inside"), pytest.param(0, id="exactly-at"),
         pytest.param(1, id="one-step-outside")]


def _rule(event: str) -> object:
    return getattr(DEFAULTS.policy.events, event)


# ---------------------------------------------------------------- the boundary
def test_unknown_event_is_rejected_naming_it() -> None:
    with pytest.raises(ValidationError) as err:
        make_attempt(event="account_delete")
    assert err.value.errors()[0]["loc"] == ("event",)
    assert "account_delete" in str(err.value)


def test_event_defaults_to_login_and_rides_on_the_decision(engine: Engine, sink: MemorySink) -> None:
    assert make_attempt().event == "login"
    d = engine.score(make_attempt(event="password_reset"))
    assert d.event == "password_reset" and d.to_dict()["event"] == "password_reset"
    assert sink.rows("decisions")[-1]["event"] == "password_reset"


def test_defaults_are_stricter_than_a_login() -> None:
    for event in EVENTS:
        rule = getattr(DEFAULTS.policy.events, event)
        assert rule.challenge_threshold < DEFAULTS.policy.challenge_threshold, event
        assert rule.deny_threshold < DEFAULTS.policy.deny_threshold, event


def test_a_section_that_sets_one_key_keeps_that_events_other_defaults() -> None:
    s = Settings().with_overrides(policy={"events": {"factor_change": {"challenge_threshold": 0.3}}})
    assert s.policy.events.factor_change.challenge_threshold == 0.3
    assert s.policy.events.factor_change.challenge_untrusted_device is True
    assert s.policy.events.recovery.deny_new_device_and_country is True


def test_a_section_with_deny_below_challenge_is_rejected() -> None:
    with pytest.raises(ValidationError, match="deny_threshold must be >= challenge_threshold"):
        Settings().with_overrides(policy={"events": {"recovery": {"challenge_threshold": 0.5,
                                                                   "deny_threshold": 0.4}}})


# ---------------------------------------------------------------- golden cases
def test_recovery_from_the_known_device_at_home_allows(engine: Engine) -> None:
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), event="recovery"))
    assert (d.action, d.reason_codes, d.risk, d.event) == ("allow", (), 0.0, "recovery")


def test_new_region_alone_allows_a_login_but_steps_up_a_recovery(engine: Engine) -> None:
    # Edinburgh is 530 km from the user's London: a new region and far from the usual places
    last = establish(engine)
    recovery = engine.score(make_attempt(ts=last + timedelta(days=1), place=EDINBURGH, event="recovery"))
    login = engine.score(make_attempt(ts=last + timedelta(days=1, minutes=1), place=EDINBURGH))
    codes = ("NEW_REGION", "FAR_FROM_USUAL_PLACES")
    assert (login.action, login.reason_codes) == ("allow", codes)
    assert login.risk < DEFAULTS.policy.challenge_threshold
    assert (recovery.action, recovery.reason_codes) == ("challenge", codes)
    assert recovery.risk == pytest.approx(login.risk)


def test_new_block_alone_allows_a_recovery_below_its_threshold(engine: Engine) -> None:
    """A new address block of the user's own network (0.2) stays under the recovery's 0.25; a
    new network for a user who has used one network in 20 logins (0.3 at full strength,
    signals/habit.py) steps the recovery up."""
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), ip=NEW_BLOCK, event="recovery"))
    assert (d.action, d.reason_codes) == ("allow", ("NEW_PREFIX",))
    d = engine.score(make_attempt(ts=last + timedelta(days=1), place=NEW_ASN, event="recovery"))
    assert (d.action, d.reason_codes) == ("challenge", ("NEW_ASN",))


def test_recovery_from_new_device_and_new_country_is_denied_for_manual_review(engine: Engine) -> None:
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), place=PARIS, ua=FIREFOX_MAC, event="recovery"))
    assert d.action == "deny"
    assert d.reason_codes[-1] == "RECOVERY_HIGH_RISK"
    # Paris is 344 km from the user's London: far from the usual places too
    assert set(d.reason_codes) == {"NEW_DEVICE", "NEW_COUNTRY", "NEW_REGION", "NEW_ASN", "FAR_FROM_USUAL_PLACES",
                                   "RECOVERY_HIGH_RISK"}
    assert "manual review" in d.reasons[-1].detail and "FR" in d.reasons[-1].detail
    assert d.factor is None


def test_new_device_at_home_challenges_a_recovery_not_denies(engine: Engine) -> None:
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), ua=FIREFOX_MAC, event="recovery"))
    assert (d.action, d.reason_codes) == ("challenge", ("NEW_DEVICE",))


def test_known_device_in_new_country_challenges_a_recovery_not_denies(engine: Engine) -> None:
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=3), place=PARIS, event="recovery"))
    assert d.action == "challenge" and "RECOVERY_HIGH_RISK" not in d.reason_codes


def test_the_new_device_and_country_rule_is_recovery_only_by_default(engine: Engine) -> None:
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), place=PARIS, ua=FIREFOX_MAC,
                                  event="password_reset"))
    assert "RECOVERY_HIGH_RISK" not in d.reason_codes
    # denied by the evidence alone: 1 − 0.45·0.5·0.7·0.7·(1 − far) ≥ the reset's deny threshold
    far = next(r.weight for r in d.reasons if r.code == "FAR_FROM_USUAL_PLACES")
    assert 0.0 < far < DEFAULTS.geo.far_weight
    assert d.risk == pytest.approx(1 - 0.45 * 0.5 * 0.7 * 0.7 * (1 - far), abs=1e-4)
    assert d.risk >= DEFAULTS.policy.events.password_reset.deny_threshold and d.action == "deny"
    factor = engine.score(make_attempt(ts=last + timedelta(days=1, minutes=1), place=PARIS, ua=FIREFOX_MAC,
                                       event="factor_change"))
    assert "RECOVERY_HIGH_RISK" not in factor.reason_codes


def test_factor_change_from_an_untrusted_known_device_challenges(engine: Engine) -> None:
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), event="factor_change"))
    assert (d.action, d.reason_codes) == ("challenge", ("UNTRUSTED_DEVICE",))
    assert d.risk == pytest.approx(DEFAULTS.policy.events.factor_change.challenge_threshold)
    assert d.factor is not None


def test_factor_change_from_a_device_trusted_days_ago_allows(engine: Engine) -> None:
    last = establish(engine)
    first = engine.score(make_attempt(ts=last + timedelta(days=1), device_id="laptop"))
    token = engine.record_outcome(first.decision_id, "verified", trust_device=True,
                                  timestamp=last + timedelta(days=1, minutes=1))
    assert token is not None
    late = last + timedelta(days=1) + timedelta(hours=DEFAULTS.policy.events.factor_change.recent_device_hours)
    d = engine.score(make_attempt(ts=late + timedelta(minutes=1), device_id="laptop", device_token=token,
                                  event="factor_change"))
    assert d.action == "allow", d


def test_factor_change_on_a_device_first_seen_an_hour_ago_waits(engine: Engine) -> None:
    """The new device passed its login challenge an hour ago; even trusted, a factor change
    from it is stepped up until ``recent_device_hours`` have passed."""
    last = establish(engine)
    first = engine.score(make_attempt(ts=last + timedelta(days=1), device_id="laptop"))
    token = engine.record_outcome(first.decision_id, "verified", trust_device=True,
                                  timestamp=last + timedelta(days=1, minutes=1))
    d = engine.score(make_attempt(ts=last + timedelta(days=1, hours=1), device_id="laptop", device_token=token,
                                  event="factor_change"))
    assert (d.action, d.reason_codes) == ("challenge", ("RECENT_NEW_DEVICE",))
    assert "TRUSTED_DEVICE" not in d.reason_codes


def test_cold_start_recovery_challenges(engine: Engine) -> None:
    login = engine.score(make_attempt())
    recovery = engine.score(make_attempt("bob", event="recovery"))
    assert login.action == "allow"
    assert recovery.action == "challenge"
    assert "NO_HISTORY" in recovery.reason_codes and "COLD_START" in recovery.reason_codes


def test_recovery_after_failed_second_factors_challenges(engine: Engine) -> None:
    last = establish(engine)
    ts = last + timedelta(days=1)
    c = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC, session_id="s1"))
    engine.record_outcome(c.decision_id, "failed", attempts=2, timestamp=ts + timedelta(minutes=1))
    d = engine.score(make_attempt(ts=ts + timedelta(minutes=5), event="recovery"))
    assert (d.action, d.reason_codes) == ("challenge", ("RECENT_OTP_FAILURES",))
    assert d.reasons[0].detail.startswith("2 failed second factor(s)")


@pytest.mark.parametrize("event", EVENTS)
def test_failed_passwords_and_otp_lock_apply_to_every_event(event: str) -> None:
    with Engine(offline_settings(), sink=MemorySink()) as engine:
        last = establish(engine)
        ts = last + timedelta(days=1)
        for i in range(DEFAULTS.failures.user_deny_threshold):
            engine.record_failure("alice", "203.0.113.9", ts - timedelta(minutes=1, seconds=i))
        d = engine.score(make_attempt(ts=ts, event=event))
        assert d.action == "deny" and "FAILED_ATTEMPTS_EXCESSIVE" in d.reason_codes
    with Engine(offline_settings(), sink=MemorySink()) as engine:
        last = establish(engine)
        ts = last + timedelta(days=1)
        c = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC, session_id="s1"))
        engine.record_outcome(c.decision_id, "failed", attempts=DEFAULTS.otp.user_max_failures + 1,
                              timestamp=ts + timedelta(minutes=1))
        d = engine.score(make_attempt(ts=ts + timedelta(minutes=2), event=event, session_id="s2"))
        assert d.action == "deny" and "OTP_LOCKED" in d.reason_codes


def test_a_store_outage_never_allows_a_sensitive_event_blind(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    settings = offline_settings(policy={"fail_mode": "allow"}, store={"url": f"sqlite:///{db}"})
    with Engine(settings) as e:
        e.store.close()
        db.write_bytes(b"garbage" * 1000)
        login = e.score(make_attempt())
        recovery = e.score(make_attempt(event="recovery"))
    assert (login.action, login.reason_codes) == ("allow", ("ENGINE_DEGRADED",))
    assert (recovery.action, recovery.reason_codes, recovery.event) == ("challenge", ("ENGINE_DEGRADED",), "recovery")
    assert recovery.risk == DEFAULTS.policy.events.recovery.challenge_threshold


def test_sqlite_store_holds_the_same_rules(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "p.db"))
    with Engine(offline_settings(), store=store, sink=MemorySink()) as engine:
        last = establish(engine)
        d = engine.score(make_attempt(ts=last + timedelta(days=1), place=CHANGCHUN, ua=FIREFOX_MAC,
                                      event="recovery"))
    assert d.action == "deny" and "RECOVERY_HIGH_RISK" in d.reason_codes


# ---------------------------------------------------------------- per-event thresholds
def _next_risk_weight(at: float, toward: float) -> float:
    """The weight nearest ``at`` (toward ``toward``) whose one-signal risk ``1 − (1 − w)`` differs
    from ``at``: one step is the smallest risk change the noisy-OR can make."""
    w = at
    while 1.0 - (1.0 - w) == at:
        w = math.nextafter(w, toward)
    return w


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("threshold", ["challenge_threshold", "deny_threshold"])
@pytest.mark.parametrize("event", EVENTS)
def test_each_event_threshold_is_inclusive(event: str, threshold: str, step: int) -> None:
    """A risk exactly at ``policy.events.<event>.<threshold>`` reaches it; one step below does
    not. One fired signal whose weight is set to the threshold (or one step either side)."""
    at = getattr(getattr(DEFAULTS.policy.events, event), threshold)
    assert 1.0 - (1.0 - at) == at  # noisy-OR of one signal reproduces the weight exactly
    weight = {-1: _next_risk_weight(at, 2.0), 0: at, 1: _next_risk_weight(at, -1.0)}[step]
    policy = Policy(offline_settings(device={"weight": weight}))
    a = policy.decide([SignalResult("NEW_DEVICE", 1.0, "x")], event=event)  # type: ignore[arg-type]
    reached = step <= 0
    expected = {"challenge_threshold": ("challenge", "allow"), "deny_threshold": ("deny", "challenge")}
    assert a.action == expected[threshold][0 if reached else 1], (weight, a)
    # a login with the same risk is judged by the login thresholds
    login = policy.decide([SignalResult("NEW_DEVICE", 1.0, "x")])
    assert login.action == ("allow" if weight < DEFAULTS.policy.challenge_threshold else "challenge")


@pytest.mark.parametrize("step", STEPS)
def test_recent_device_hours_boundary(step: int) -> None:
    """A device first seen less than ``recent_device_hours`` ago steps a factor change up;
    exactly that long ago it no longer does (1 ms steps)."""
    hours = DEFAULTS.policy.events.factor_change.recent_device_hours
    settings = offline_settings(policy={"events": {"factor_change": {"challenge_untrusted_device": False}}})
    with Engine(settings, sink=MemorySink()) as engine:
        last = establish(engine)
        first_seen = T0.replace(hour=9)
        d = engine.score(make_attempt(ts=first_seen + timedelta(hours=hours) - step * timedelta(milliseconds=1),
                                      event="factor_change"))
    assert last > first_seen
    assert ("RECENT_NEW_DEVICE" in d.reason_codes) is (step > 0), d


def test_overridden_thresholds_are_used() -> None:
    settings = offline_settings(policy={"events": {"recovery": {"challenge_threshold": 0.35}}})
    policy = Policy(settings)
    assert policy.decide([SignalResult("NEW_REGION", 1.0, "x")], event="recovery").action == "allow"
    assert policy.decide([SignalResult("NEW_DEVICE", 1.0, "x")], event="recovery").action == "challenge"


# ---------------------------------------------------------------- what an event teaches
def test_an_allowed_recovery_teaches_the_profile_nothing(engine: Engine) -> None:
    last = establish(engine)
    before = engine.store.get("alice")
    d = engine.score(make_attempt(ts=last + timedelta(days=1), ip=NEW_BLOCK, event="recovery"))
    assert d.action == "allow"
    assert engine.store.get("alice") == before
    login = engine.score(make_attempt(ts=last + timedelta(days=1, minutes=5), ip=NEW_BLOCK))
    assert "NEW_PREFIX" in login.reason_codes


@pytest.mark.parametrize("event", EVENTS)
def test_a_verified_event_challenge_teaches_nothing_and_trusts_no_device(event: str) -> None:
    store = MemoryStore()
    with Engine(offline_settings(), store=store, sink=MemorySink()) as engine:
        last = establish(engine)
        ts = last + timedelta(days=1)
        engine.record_failure("alice", "203.0.113.9", ts - timedelta(minutes=1))
        before = store.get("alice")
        d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC, event=event))
        assert d.action == "challenge"
        token = engine.record_outcome(d.decision_id, "verified", trust_device=True,
                                      timestamp=ts + timedelta(minutes=1))
        assert token is None
        assert store.get("alice") == before
        later = engine.score(make_attempt(ts=ts + timedelta(minutes=10), ua=FIREFOX_MAC))
        assert "NEW_DEVICE" in later.reason_codes
        assert "FAILED_ATTEMPTS_USER" not in later.reason_codes  # one failure: below the threshold
    # a verified *login* challenge from that device does teach it
    with Engine(offline_settings(), store=MemoryStore(), sink=MemorySink()) as engine:
        last = establish(engine)
        d = engine.score(make_attempt(ts=last + timedelta(days=1), ua=FIREFOX_MAC))
        assert engine.record_outcome(d.decision_id, "verified", trust_device=True,
                                     timestamp=last + timedelta(days=1, minutes=1)) is not None


def test_ascore_of_an_event_teaches_nothing() -> None:
    with Engine(offline_settings(), sink=MemorySink()) as engine:
        last = establish(engine)
        before = engine.store.get("alice")
        d = asyncio.run(engine.ascore(make_attempt(ts=last + timedelta(days=1), ip=NEW_BLOCK, event="recovery")))
        assert d.action == "allow" and d.event == "recovery"
        assert engine.store.get("alice") == before


# ---------------------------------------------------------------- the parked record
def test_parked_record_carries_the_event_and_old_records_are_logins() -> None:
    rec = ParkedChallenge("alice", 1.5e9, "k", 9, "s", "sms", 0.5, event="recovery")
    assert decode(encode(rec)).event == "recovery"
    v2 = (b'{"v": 2, "u": "bob", "t": 1, "d": "k", "h": null, "s": "", "f": null, "r": 0.4, '
          b'"g": [null, null, null, null, null, null], "tk": null, "e": true}')
    assert decode(v2).event == "login"


def test_login_attempt_event_is_part_of_the_frozen_model() -> None:
    a = LoginAttempt(user_id="u", timestamp=T0, ip="81.2.69.160", event="factor_change")
    with pytest.raises(ValidationError):
        a.event = "login"  # type: ignore[misc]
