"""The step-up budget in the engine: the live threshold on the Decision and in the audit
log, warm-up, the floor, sharing through sqlite and redis, and the store-down fail mode."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.config import Settings
from riskengine.core.stores import MemoryStore, StoreError, open_store
from riskengine.core.stores.redis_server import LocalRedisServer
from riskengine.testing import FIREFOX_MAC, PARIS, T0, make_attempt, offline_settings, write_linear_model

DEFAULTS = Settings()
TOP = DEFAULTS.policy.budget_max_threshold
"""The top of the clamp, where a flood of high-risk logins can hold the threshold."""

KEY = "k" * 40


def budget_settings(**policy: Any) -> Settings:
    base: dict[str, Any] = {"target_stepup_rate": 0.1, "budget_warmup_logins": 50,
                            "budget_refresh_seconds": 60.0, "budget_user_cap": 1000}
    base.update(policy)
    return offline_settings(policy=base, trust={"secret_keys": [KEY]})


def feed(engine: Engine, users: int, days: int, start: datetime = T0) -> datetime:
    """``users`` users with one familiar login a day (all risk 0); the last time used."""
    ts = start
    for day in range(days):
        for u in range(users):
            ts = start + timedelta(days=day, seconds=u)
            engine.score(make_attempt(f"user{u}", ts))
    return ts


def test_fixed_policy_reports_its_threshold_on_the_decision_and_in_the_audit_log() -> None:
    sink = MemorySink()
    with Engine(offline_settings(), sink=sink) as engine:
        d = engine.score(make_attempt())
        assert d.threshold == 0.4
        assert d.to_dict()["threshold"] == 0.4
        engine.flush()
    assert [row["threshold"] for row in sink.rows("decisions")] == [0.4]


def test_warmup_then_the_live_threshold_follows_the_sketch() -> None:
    sink = MemorySink()
    with Engine(budget_settings(budget_warmup_logins=100), sink=sink) as engine:
        # 10 users × 17 days: established from their 6th login (profile logins ≥ 5)
        last = feed(engine, 10, 17)
        rows = sink.rows("decisions")
        thresholds = [r["threshold"] for r in rows]
        # every established login is at risk 0: 100 % of the mass in bin 0 cannot fit a 10 %
        # budget, so once warm the threshold is clamped at budget_max_threshold
        assert thresholds[0] == 0.4
        assert thresholds[-1] == TOP
        # warm-up ends at the first refresh after 100 established logins merged (days 6..15)
        first_live = next(i for i, t in enumerate(thresholds) if t == TOP)
        assert 100 <= sum(1 for r in rows[:first_live] if r["user_logins"] >= 5) <= 110
        # even at the top of the clamp a device never seen (0.55) steps up, and a new country
        # does whatever its risk (the floor)
        d = engine.score(make_attempt("user1", last + timedelta(hours=1), ua=FIREFOX_MAC))
        assert (d.action, d.threshold) == ("challenge", TOP)
        assert d.risk == DEFAULTS.device.weight > TOP
        d = engine.score(make_attempt("user2", last + timedelta(hours=1), place=PARIS))
        assert d.action == "challenge" and "NEW_COUNTRY" in d.reason_codes


def test_threshold_exactly_at_the_live_value_challenges() -> None:
    with Engine(budget_settings(budget_warmup_logins=10, budget_max_threshold=0.55), sink=MemorySink()) as engine:
        last = feed(engine, 5, 10)
        d = engine.score(make_attempt("user1", last + timedelta(minutes=5), ua=FIREFOX_MAC))
        # NEW_DEVICE weighs exactly 0.55 = the clamped live threshold: risk >= threshold
        assert (d.risk, d.threshold, d.action) == (0.55, 0.55, "challenge")


def _shared_run(url: str) -> None:
    s = budget_settings(budget_warmup_logins=20)
    with Engine(s, store=open_store(url)) as a, Engine(s, store=open_store(url)) as b:
        last = feed(a, 5, 12)  # only A sees logins
        # B has merged nothing itself: at its first refresh it reads A's merged sketch
        d = b.score(make_attempt("user0", last + timedelta(minutes=2)))
        assert d.threshold == TOP
        fresh = Engine(s, store=open_store(url))
        try:
            assert fresh.score(make_attempt("user3", last + timedelta(minutes=3))).threshold == TOP
        finally:
            fresh.close()


def test_two_engines_share_one_sqlite_sketch(tmp_path: Path) -> None:
    _shared_run(f"sqlite:///{tmp_path / 'profiles.db'}")


def test_two_engines_share_one_redis_sketch(redis_server: LocalRedisServer) -> None:
    _shared_run(f"{redis_server.url}?prefix=budget{id(redis_server)}:")


class _FlakyStore(MemoryStore):
    """A memory store whose budget hash can be taken down (a Redis outage in miniature)."""

    down = False

    def budget_merge(self, delta: Mapping[str, float]) -> dict[str, float]:
        if self.down:
            raise StoreError("budget sketch unreachable")
        return super().budget_merge(delta)


def test_store_down_keeps_the_last_good_threshold_and_never_raises() -> None:
    store = _FlakyStore()
    with Engine(budget_settings(budget_warmup_logins=20), store=store, sink=MemorySink()) as engine:
        last = feed(engine, 5, 12)
        assert engine.score(make_attempt("user0", last + timedelta(minutes=2))).threshold == TOP
        store.down = True
        errors = engine.health()["store_errors"]
        d = engine.score(make_attempt("user1", last + timedelta(minutes=5)))
        assert (d.action, d.threshold) == ("allow", TOP)
        assert engine.health()["store_errors"] == errors + 1
        store.down = False
        # the delta kept during the outage is merged at the next refresh
        n_before = _count(store.budget_merge({}))
        engine.score(make_attempt("user2", last + timedelta(minutes=10)))
        assert _count(store.budget_merge({})) > n_before


def _count(sketch: dict[str, float]) -> float:
    """Logins merged, over every era (the keys are ``"<era>:n"``)."""
    return sum(w for key, w in sketch.items() if key.endswith(":n"))


def test_with_a_model_a_user_the_budget_does_not_measure_meets_the_fixed_threshold_on_the_blend(
        tmp_path: Path) -> None:
    """With a model the live threshold is on the blend (here at its top, 0.75: every
    established login at risk 0 cannot fit the budget); a user the budget does not measure is
    judged by the fixed policy, ``challenge_threshold`` on the blended risk, as without a model:
    never laxer because established users' risks ran high (a new account's takeover that the
    model finds risky steps up). A first login gets no model term at all (the model's prior for
    new accounts)."""
    # the model finds accounts younger than a few hours risky (p ≈ 0.4) and nothing else
    model = write_linear_model(tmp_path / "model", 0.0, {"account_age_days_log": -10.0})
    settings = budget_settings(model=str(model))
    top = settings.policy.budget_threshold_top()
    fixed = settings.policy.challenge_threshold
    with Engine(settings, sink=MemorySink()) as engine:
        last = feed(engine, 10, 17)
        d = engine.score(make_attempt("newcomer", last + timedelta(hours=1)))
        assert "MODEL_SCORE" not in d.reason_codes and d.risk < fixed and d.action == "allow"
        assert d.threshold == fixed
        # its second login, from another device: the rules stay under 0.4, the blend does not
        d = engine.score(make_attempt("newcomer", last + timedelta(hours=2), ua=FIREFOX_MAC))
        rules = 1 - math.prod(1 - r.weight for r in d.reasons if r.code != "MODEL_SCORE")
        assert "MODEL_SCORE" in d.reason_codes and "COLD_START" in d.reason_codes
        assert rules < fixed <= d.risk < top and d.threshold == fixed
        assert d.action == "challenge"
        # an established user at the same live threshold: the blend's quantile at the top decides
        d = engine.score(make_attempt("user0", last + timedelta(hours=2)))
        assert d.threshold == top
