"""``DORMANT_ACCOUNT``: once the profile store has ``coldstart.dormant_days`` of history, a login
on an account with no login and no signup on record gets no cold-start leniency.

The store's history start (``ProfileStore.history_start``) is set by the engine's first login;
these tests make it with a first login of another user, ``DAYS`` before the account under test."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.stores.memory import MemoryStore
from riskengine.testing import T0, make_attempt, offline_settings

LATER = T0 + timedelta(days=45)


def _engine(store: Any = None, **coldstart: object) -> Engine:
    settings = offline_settings(coldstart=coldstart) if coldstart else offline_settings()
    engine = Engine(settings, store=store, sink=MemorySink())
    engine.score(make_attempt("first-user", T0))  # the store's history starts here
    return engine


def test_a_dormant_accounts_first_login_gets_no_cold_start_leniency() -> None:
    with _engine() as engine:
        d = engine.score(make_attempt("dormant", LATER, device_id="somebody-laptop"))
    assert d.action == "challenge"
    assert set(d.reason_codes) == {"NEW_DEVICE", "DORMANT_ACCOUNT"}  # no COLD_START, no halving
    assert d.risk == pytest.approx(1 - (1 - 0.55) * (1 - 0.2))
    detail = next(r.detail for r in d.reasons if r.code == "DORMANT_ACCOUNT")
    assert "45 days" in detail and "signup" in detail


def test_a_young_store_cannot_tell_a_dormant_account_from_a_new_one() -> None:
    with _engine() as engine:
        d = engine.score(make_attempt("newcomer", T0 + timedelta(days=29), device_id="their-laptop"))
    assert d.action == "allow" and "DORMANT_ACCOUNT" not in d.reason_codes
    assert d.risk == pytest.approx(0.3475)  # NEW_DEVICE halved + COLD_START, as before


def test_a_recorded_signup_is_history_so_a_new_account_is_not_dormant() -> None:
    with _engine() as engine:
        session = {"device_id": "new-phone", "rtt_ms": 30.0}
        assert engine.record_signup(make_attempt("newcomer", LATER, **session)) is True
        d = engine.score(make_attempt("newcomer", LATER + timedelta(minutes=2), **session))
    assert d.action == "allow" and d.reason_codes == ("COLD_START",)


def test_the_owner_who_verifies_is_not_dormant_any_more() -> None:
    with _engine() as engine:
        first = engine.score(make_attempt("dormant", LATER, device_id="own-laptop"))
        assert first.action == "challenge"
        engine.record_outcome(first.decision_id, "verified", timestamp=LATER + timedelta(seconds=40))
        d = engine.score(make_attempt("dormant", LATER + timedelta(days=1), device_id="own-laptop"))
    assert "DORMANT_ACCOUNT" not in d.reason_codes and d.action == "allow"


def test_dormant_days_zero_turns_it_off() -> None:
    with _engine(dormant_days=0) as engine:
        d = engine.score(make_attempt("dormant", LATER, device_id="somebody-laptop"))
    assert d.action == "allow" and "DORMANT_ACCOUNT" not in d.reason_codes


def test_the_history_start_is_the_stores_so_every_worker_agrees() -> None:
    """A second engine (another worker) on the same store measures from the first one's start,
    not from its own first login."""
    store = MemoryStore()
    with _engine(store) as first:
        first.score(make_attempt("someone", T0 + timedelta(days=1)))
    with Engine(offline_settings(), store=store, sink=MemorySink()) as worker:
        d = worker.score(make_attempt("dormant", LATER, device_id="somebody-laptop"))
    assert "DORMANT_ACCOUNT" in d.reason_codes
    assert store.history_start(LATER.timestamp()) == T0.timestamp()
    assert worker.health()["history_start"] == T0.isoformat()


class _NoHistoryStore(MemoryStore):
    """A store whose history start fails (a custom backend's bug, a network blip)."""

    def history_start(self, now: float) -> float:
        raise OSError("history start unavailable")

    async def ahistory_start(self, now: float) -> float:
        raise OSError("history start unavailable")


def test_a_store_that_cannot_say_gives_a_decision_without_the_signal() -> None:
    engine = Engine(offline_settings(), store=_NoHistoryStore(), sink=MemorySink())
    with engine:
        engine.score(make_attempt("first-user", T0))
        d = engine.score(make_attempt("dormant", LATER, device_id="somebody-laptop"))
        assert d.action == "allow" and "DORMANT_ACCOUNT" not in d.reason_codes
        assert "ENGINE_DEGRADED" not in d.reason_codes  # the login itself was scored normally
        assert engine.health()["store_errors"] >= 1
        assert engine.health()["history_start"] is None


def test_ascore_reads_the_history_start_from_the_async_store() -> None:
    async def run(engine: Engine, at: datetime) -> tuple[str, tuple[str, ...]]:
        await engine.ascore(make_attempt("first-user", T0))
        d = await engine.ascore(make_attempt("dormant", at, device_id="somebody-laptop"))
        return d.action, d.reason_codes

    with Engine(offline_settings(), sink=MemorySink()) as engine:
        action, codes = asyncio.run(run(engine, LATER))
    assert action == "challenge" and set(codes) == {"NEW_DEVICE", "DORMANT_ACCOUNT"}
    with Engine(offline_settings(), store=_NoHistoryStore(), sink=MemorySink()) as engine:
        action, codes = asyncio.run(run(engine, LATER))
    assert action == "allow" and "DORMANT_ACCOUNT" not in codes


def test_a_reset_account_is_not_dormant_the_reset_says_it() -> None:
    """A support reset leaves a mark, so the account is not blank (the profile a signup may seed
    and the only one DORMANT_ACCOUNT looks at): PROFILE_RESET steps it up instead."""
    with _engine() as engine:
        engine.score(make_attempt("reset-me", T0 + timedelta(days=1), device_id="own-laptop"))
        assert engine.reset_user("reset-me", actor="support", reason="lost phone", now=LATER)
        d = engine.score(make_attempt("reset-me", LATER + timedelta(minutes=1), device_id="own-laptop"))
    assert "PROFILE_RESET" in d.reason_codes and "DORMANT_ACCOUNT" not in d.reason_codes
    assert d.action == "challenge"
