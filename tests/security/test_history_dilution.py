"""Threat model: diluting the victim's history so that a new network counts for less
(novelty weighted by habit, riskengine.core.signals.habit). The weight of NEW_PREFIX /
NEW_ASN / NEW_CITY / NEW_REGION falls for users whose logins often bring a new value; an
attacker would want the victim's profile to look like that. Only accepted logins teach the
profile, so failed or challenged attempts from many blocks change nothing, and however many
blocks the profile holds, a novelty never counts for less than ``geo.novelty_floor``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from riskengine import Engine
from riskengine.testing import establish, make_attempt, offline_settings


def _new_block_weight(engine: Engine, day: int, ip: str = "81.2.250.9") -> float:
    """NEW_PREFIX's weight for the owner's device and place on ``day``, from a block not used before."""
    d = engine.score(make_attempt(ts=make_attempt().timestamp.replace(hour=9) + timedelta(days=day), ip=ip))
    return next(r.weight for r in d.reasons if r.code == "NEW_PREFIX")


def test_challenged_attempts_from_many_blocks_do_not_dilute_the_history() -> None:
    engine = Engine(offline_settings())
    last = establish(engine)  # 20 days, one block (81.2.69.0/24)
    # the attacker tries from 12 blocks of the victim's network, each time with a new device
    # (challenged), and fails every second factor: nothing is learned
    for k in range(12):
        ts = last + timedelta(hours=2 * k + 1)
        d = engine.score(make_attempt(ts=ts, ip=f"81.2.{100 + k}.7",
                                      ua="Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0"))
        assert d.action == "challenge"
        engine.record_outcome(d.decision_id, "failed", channels=["sms"], timestamp=ts + timedelta(seconds=30))
    # one block in the history still: a new one counts at the full weight
    assert _new_block_weight(engine, 22) == pytest.approx(offline_settings().geo.new_prefix_weight)


def test_a_novelty_never_counts_for_less_than_the_floor() -> None:
    """A profile full of blocks (every login from another one: carrier NAT, or an attacker who
    already got many logins accepted) still counts a new block at the floor, not at zero."""
    settings = offline_settings()
    engine = Engine(settings)
    t0 = make_attempt().timestamp.replace(hour=9)
    for day in range(20):
        assert engine.score(make_attempt(ts=t0 + timedelta(days=day), ip=f"81.2.{day + 10}.7")).action == "allow"
    weight = _new_block_weight(engine, 20)
    assert weight == pytest.approx(settings.geo.new_prefix_weight * settings.geo.novelty_floor, abs=1e-3)
    assert weight >= settings.geo.new_prefix_weight * settings.geo.novelty_floor > 0.0
