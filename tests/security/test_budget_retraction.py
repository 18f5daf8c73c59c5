"""Threat model #budget-retraction: buying a higher step-up threshold with takeover attempts.

An attacker holding valid passwords for many established accounts (a stuffing list that
worked) logs in from devices the victims never used. Each login is challenged and fails the
second factor, but if the budget's sketch kept them, they would fill its tail (and, when a
floor signal fired, the floor's share of the budget) and push the live threshold up for every
user, up to the clamp, so the attacker's quieter logins (the victim's browser, the victim's
city) would then be allowed. Defence: a challenge that fails, is abandoned or expires takes its
login back out of the sketch (``record_outcome``); only logins the second factor proved
legitimate keep their step-up in the budget."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.config import Settings
from riskengine.core.engine.parking import decode
from riskengine.core.stores import MemoryStore
from riskengine.testing import EDINBURGH, T0, make_attempt, offline_settings

USERS = [f"u{i}" for i in range(40)]
DAYS = 12
NEW_REGION = 3


def _settings() -> Settings:
    return offline_settings(policy={"target_stepup_rate": 0.05, "budget_warmup_logins": 20,
                                    "budget_refresh_seconds": 60.0, "budget_min_threshold": 0.0,
                                    "budget_max_threshold": 0.9, "budget_user_cap": 50})


def _history(engine: Engine) -> datetime:
    """Twelve days of ordinary logins, then a day on which a few users log in from a new
    region (the legitimate tail the budget's threshold sits on); returns that day's start."""
    for day in range(DAYS):
        for i, u in enumerate(USERS):
            engine.score(make_attempt(u, T0 + timedelta(days=day, seconds=i)))
    last = T0 + timedelta(days=DAYS)
    for i, u in enumerate(USERS):
        engine.score(make_attempt(u, last + timedelta(seconds=i), place=EDINBURGH if i < NEW_REGION else None))
    return last


def _run(outcome: str | None) -> tuple[float, list[float], Any]:
    """:func:`_history`, then (unless ``outcome`` is None) a wave of logins from never-seen devices on 30 accounts, each
    challenged and reported with ``outcome``; returns the live threshold an hour later, the
    thresholds the wave met, and the store."""
    store = MemoryStore()
    with Engine(_settings(), store=store, sink=MemorySink()) as engine:
        day7 = _history(engine)
        wave: list[float] = []
        if outcome is not None:
            start = day7 + timedelta(hours=1)
            for i, u in enumerate(USERS[:30]):
                at = start + timedelta(seconds=10 * i)
                d = engine.score(make_attempt(u, at, device_id=f"kit{i}"))
                wave.append(d.threshold if d.threshold is not None else -1.0)
                if d.action == "challenge":
                    engine.record_outcome(d.decision_id, outcome,  # type: ignore[arg-type]
                                          timestamp=at + timedelta(seconds=5))
        later = day7 + timedelta(hours=3)
        d = engine.score(make_attempt(USERS[-1], later))
        assert d.threshold is not None
        return d.threshold, wave, store


def test_failed_takeover_challenges_leave_the_threshold_where_legitimate_logins_put_it() -> None:
    baseline, _, _ = _run(None)
    after_failed, wave, _ = _run("failed")
    after_abandoned, _, _ = _run("abandoned")
    assert after_failed == baseline == after_abandoned
    assert all(t == baseline for t in wave)  # every one of the attempts met the same threshold


def test_without_the_retraction_the_same_wave_would_lift_the_threshold() -> None:
    """The control: the same logins, each verified (a legitimate user's new phone), do count."""
    baseline, _, _ = _run(None)
    after_verified, _, _ = _run("verified")
    assert after_verified > baseline


def test_the_parked_record_says_what_the_budget_counted() -> None:
    store = MemoryStore()
    with Engine(_settings(), store=store, sink=MemorySink()) as engine:
        at = _history(engine) + timedelta(hours=1)
        d = engine.score(make_attempt("u1", at, device_id="kit"))
        assert d.action == "challenge"
        raw = store.pop_pending(d.decision_id, at.timestamp())
        assert raw is not None
        rec = decode(raw)
        assert rec.counted == (d.risk, False) and rec.version == 4
