"""Threat model #budget: moving the step-up budget's quantile by flooding logins.

An attacker who controls one account or many floods high-risk logins (to push the live
threshold up, so a victim's moderate-risk login is allowed) or low-risk ones (to pull it
down: everyone is challenged). Defences: a per-user cap per window on what enters the
sketch, the clamp ``[budget_min_threshold, budget_max_threshold]``, the floor (strong
signals always challenge), and denied logins never enter the sketch. With a model configured,
the clamp's top holds on the rules' scale (the rules alone at ``budget_max_threshold`` always
step up) while the threshold on the blended risk may rise higher."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.config import Settings
from riskengine.core.stores import MemoryStore
from riskengine.testing import (
    EDINBURGH,
    FIREFOX_MAC,
    MANCHESTER,
    PARIS,
    T0,
    make_attempt,
    offline_settings,
    write_linear_model,
)


def _settings(**policy: Any) -> Settings:
    base: dict[str, Any] = {"target_stepup_rate": 0.05, "budget_warmup_logins": 20,
                            "budget_refresh_seconds": 60.0}
    base.update(policy)
    return offline_settings(policy=base)


def _establish(engine: Engine, users: list[str], days: int = 6) -> datetime:
    ts = T0
    for day in range(days):
        for i, u in enumerate(users):
            ts = T0 + timedelta(days=day, seconds=i)
            engine.score(make_attempt(u, ts))
    return ts


def _merged_n(store: MemoryStore) -> float:
    return sum(w for key, w in store.budget_merge({}).items() if key.endswith(":n"))  # every era


def test_one_account_flooding_high_risk_logins_counts_only_its_cap() -> None:
    store = MemoryStore()
    with Engine(_settings(budget_user_cap=3), store=store, sink=MemorySink()) as engine:
        last = _establish(engine, [f"u{i}" for i in range(10)] + ["mallory"])
        start = last + timedelta(minutes=5)
        engine.score(make_attempt("u0", start))  # a refresh: everything so far merged
        before = _merged_n(store)
        for i in range(500):  # a fresh device each time: risk 0.55, all within one hour
            engine.score(make_attempt("mallory", start + timedelta(seconds=i), device_id=f"d{i}"))
        engine.score(make_attempt("u1", start + timedelta(minutes=30)))  # next refresh merges
        assert _merged_n(store) - before <= 3 + 1  # mallory's cap + u0's login


def test_many_accounts_flooding_high_risk_cannot_lift_the_threshold_past_the_clamp() -> None:
    sybils = [f"sybil{i}" for i in range(150)]
    with Engine(_settings(budget_max_threshold=0.6), sink=MemorySink()) as engine:
        last = _establish(engine, ["victim"] + sybils)
        start = last + timedelta(hours=1)
        for round_ in range(3):  # every sybil, a new device and a new region, each hour
            for i, u in enumerate(sybils):
                engine.score(make_attempt(u, start + timedelta(hours=round_, seconds=i),
                                          device_id=f"x{round_}", place=MANCHESTER))
        # the sketch says "most logins are risky": the quantile would allow them all, the clamp does not
        ts = start + timedelta(hours=4)
        d = engine.score(make_attempt("victim", ts, ua=FIREFOX_MAC, place=EDINBURGH))  # new device + region
        assert d.threshold == 0.6
        assert d.risk >= 0.6 and d.action == "challenge"
        # and a new country challenges whatever the threshold (the floor)
        d = engine.score(make_attempt("victim", ts + timedelta(days=1), place=PARIS))
        assert d.action == "challenge" and "NEW_COUNTRY" in d.reason_codes


def test_a_sybil_flood_at_the_default_clamp_never_lets_a_strangers_device_in() -> None:
    """With the default clamp (its top below a never-seen device's 0.55), the victim's login
    from a device never seen, at home, steps up however the sketch was flooded."""
    sybils = [f"sybil{i}" for i in range(150)]
    top = Settings().policy.budget_max_threshold
    with Engine(_settings(), sink=MemorySink()) as engine:
        last = _establish(engine, ["victim"] + sybils)
        start = last + timedelta(hours=1)
        for round_ in range(3):
            for i, u in enumerate(sybils):
                engine.score(make_attempt(u, start + timedelta(hours=round_, seconds=i),
                                          device_id=f"x{round_}", place=MANCHESTER))
        d = engine.score(make_attempt("victim", start + timedelta(hours=4), ua=FIREFOX_MAC))  # new device only
        assert d.threshold == top
        assert d.reason_codes == ("NEW_DEVICE",) and d.risk > top and d.action == "challenge"


def test_flooding_low_risk_logins_cannot_pull_the_threshold_below_the_clamp() -> None:
    sybils = [f"sybil{i}" for i in range(150)]
    with Engine(_settings(budget_min_threshold=0.25), sink=MemorySink()) as engine:
        last = _establish(engine, ["victim"] + sybils)
        start = last + timedelta(hours=1)
        # a thin tail at 0.15 (a new network alone) amid a sea of risk-0 logins: the 95th
        # percentile would sit at 0.15 and step up every new network
        for round_ in range(3):
            for i, u in enumerate(sybils):
                asn = 64_500 + i if i < 5 else None
                place = {**MANCHESTER, "region": "England", "city": "London", "asn": asn} if asn else None
                engine.score(make_attempt(u, start + timedelta(hours=round_, seconds=i), place=place))
        d = engine.score(make_attempt("victim", start + timedelta(hours=4),
                                      place={**MANCHESTER, "region": "England", "city": "London", "asn": 64_999}))
        assert d.threshold >= 0.25
        assert d.reason_codes == ("NEW_ASN",) and d.action == "allow"


def test_denied_logins_never_enter_the_sketch() -> None:
    store = MemoryStore()
    settings = _settings().with_overrides(network={"deny_cidrs": ["203.0.113.0/24"]})
    with Engine(settings, store=store, sink=MemorySink()) as engine:
        last = _establish(engine, [f"u{i}" for i in range(10)])
        start = last + timedelta(minutes=5)
        engine.score(make_attempt("u0", start))
        before = _merged_n(store)
        for i in range(10):
            d = engine.score(make_attempt(f"u{i}", start + timedelta(seconds=i + 1), ip="203.0.113.9"))
            assert d.action == "deny"
        engine.score(make_attempt("u1", start + timedelta(minutes=30)))
        assert _merged_n(store) - before == 1  # u0's allowed login only


def test_a_sybil_flood_with_a_model_never_lets_a_strangers_device_in(tmp_path: Path) -> None:
    """With a model configured the live threshold is on the blended risk and may rise above
    ``budget_max_threshold`` (up to ``budget_threshold_top()``); the clamp's top then holds on
    the rules' scale. A model that finds the sybils' logins (far from home) certain and the
    victim's stranger device harmless lets the flood lift the threshold to its top, above the
    victim's blended risk: the rules alone at the clamp still step it up."""
    model = write_linear_model(tmp_path / "model", -20.0, {"distance_km_log": 10.0})
    sybils = [f"sybil{i}" for i in range(150)]
    settings = _settings(model=str(model))
    top = settings.policy.budget_threshold_top()
    assert top > settings.policy.budget_max_threshold
    with Engine(settings, sink=MemorySink()) as engine:
        last = _establish(engine, ["victim"] + sybils)
        start = last + timedelta(hours=1)
        for round_ in range(3):
            for i, u in enumerate(sybils):
                d = engine.score(make_attempt(u, start + timedelta(hours=round_, seconds=i),
                                              device_id=f"x{round_}", place=MANCHESTER))
                assert d.action == "challenge" and d.risk >= top  # counted in the sketch, not denied
        d = engine.score(make_attempt("victim", start + timedelta(hours=4), ua=FIREFOX_MAC))  # new device only
        assert d.threshold == top
        assert d.reason_codes == ("NEW_DEVICE",)  # no model term: the model finds it harmless
        assert d.risk < d.threshold and d.risk > settings.policy.budget_max_threshold
        assert d.action == "challenge"
