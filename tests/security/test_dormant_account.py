"""Threat model: taking over a dormant account (issue #17, session 10).

An account with no login and no signup on record for ``coldstart.dormant_days`` of the store's
history gets ``DORMANT_ACCOUNT`` and no cold-start leniency, so the attacker's first login is
challenged. What an attacker tries next: wear the signal down by retrying, make the account look
known without passing a second factor (failed passwords, a recovery or a sensitive event), or
move the store's history start."""

from __future__ import annotations

from datetime import timedelta

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.stores import MemoryStore
from riskengine.testing import EDINBURGH, FIREFOX_MAC, T0, make_attempt, offline_settings

LATER = T0 + timedelta(days=60)
ATTACKER = {"place": EDINBURGH | {"asn": 64512}, "ip": "198.51.100.7", "ua": FIREFOX_MAC,
            "device_id": "attacker-laptop"}


def _engine(store: MemoryStore | None = None) -> Engine:
    engine = Engine(offline_settings(), store=store, sink=MemorySink())
    engine.score(make_attempt("first-user", T0))  # the store's history starts here
    return engine


def test_retrying_after_a_failed_second_factor_stays_dormant() -> None:
    with _engine() as engine:
        for k in range(4):
            at = LATER + timedelta(hours=k)
            d = engine.score(make_attempt("sleeper", at, **ATTACKER))
            assert d.action == "challenge" and "DORMANT_ACCOUNT" in d.reason_codes, k
            engine.record_outcome(d.decision_id, "failed", timestamp=at + timedelta(seconds=30))
        p = engine.store.get("sleeper")
        assert p is None or p.samples == 0  # nothing learnt from the attacker's attempts


def test_failed_passwords_and_sensitive_events_are_no_history() -> None:
    with _engine() as engine:
        for k in range(2):  # under the failure limits: no FAILED_ATTEMPTS signal of their own
            engine.record_failure("sleeper", "198.51.100.7", LATER - timedelta(minutes=10 - k))
        recovery = engine.score(make_attempt("sleeper", LATER - timedelta(minutes=5), event="recovery", **ATTACKER))
        assert recovery.action != "allow"
        d = engine.score(make_attempt("sleeper", LATER, **ATTACKER))
        assert "DORMANT_ACCOUNT" in d.reason_codes and d.action == "challenge"


def test_no_caller_time_moves_the_history_start() -> None:
    """The store's history start is set once; a login stamped in the future or the past (a bad
    clock, a replay of old events into a live store) does not reset it."""
    store = MemoryStore()
    with _engine(store) as engine:
        engine.score(make_attempt("time-traveller", T0 + timedelta(days=3650)))
        engine.score(make_attempt("old-event", T0 - timedelta(days=3650)))
        assert store.history_start(LATER.timestamp()) == T0.timestamp()
        d = engine.score(make_attempt("sleeper", LATER, **ATTACKER))
        assert "DORMANT_ACCOUNT" in d.reason_codes
