"""Novelty weighted by the user's own history (riskengine.core.signals.habit), pure and through
the engine: a new block/network/city counts fully for a user who rarely shows one, and less for
one whose logins bring new ones all the time (carrier NAT), never below the floor."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskengine import Engine
from riskengine.core.signals.base import SignalResult
from riskengine.core.signals.habit import habitual, novelty_strength
from riskengine.testing import LONDON, make_attempt, offline_settings

FIRED = SignalResult("NEW_ASN", 1.0, "first login from network AS 64500")


def test_strength_is_the_surprise_of_a_new_value() -> None:
    assert novelty_strength(1, 19, 0.0) == 1.0  # a new value rarer than 1 in 20: full strength
    assert novelty_strength(2, 9, 0.0) == pytest.approx(math.log(10 / 2) / math.log(20), abs=1e-4)
    assert novelty_strength(1, 4, 0.0) == pytest.approx(math.log(5) / math.log(20), abs=1e-4)
    assert novelty_strength(2, 9, 0.0, full_ratio=5.0) == 1.0
    assert novelty_strength(12, 20, 0.3) == 0.3  # carrier NAT: the floor
    assert novelty_strength(0, 0, 0.3) == 1.0  # nothing to compare with: full weight
    assert novelty_strength(5, 10, 1.0) == 1.0  # floor 1: weighting off


@given(st.integers(0, 64), st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_strength_in_floor_to_one_and_monotone(distinct: int, logins: int, floor: float) -> None:
    s = novelty_strength(distinct, logins, floor)
    assert floor - 1e-4 <= s <= 1.0
    # a longer history with the same values: never weaker; one more distinct value: never stronger
    assert novelty_strength(distinct, logins + 1, floor) >= s
    if distinct:
        assert novelty_strength(distinct + 1, logins, floor) <= s


def test_habitual_scales_only_a_fired_signal_and_says_why() -> None:
    quiet = SignalResult("NEW_ASN", 0.0, "seen before")
    assert habitual(quiet, 12, 12, 0.3, 20.0, "networks") is quiet
    assert habitual(FIRED, 0, 0, 0.3, 20.0, "networks") is FIRED
    assert habitual(FIRED, 3, 8, 1.0, 20.0, "networks") is FIRED
    assert habitual(FIRED, 1, 50, 0.3, 20.0, "networks") is FIRED
    r = habitual(FIRED, 3, 8, 0.3, 20.0, "networks")
    assert r.code == "NEW_ASN" and r.value == pytest.approx(0.3667, abs=1e-4)  # log 3 / log 20
    assert r.detail.startswith(FIRED.detail) and "3 networks in 8 logins" in r.detail
    assert "common" in r.detail
    assert "too few logins" in habitual(FIRED, 1, 9, 0.3, 20.0, "networks").detail


def _prefix_weight(engine: Engine, rotating: bool) -> float:
    """20 daily logins from London (AS 2856), from one /24 or from a new /24 each day, then one
    from yet another /24 of the same AS: NEW_PREFIX's weight in that decision."""
    t0 = make_attempt().timestamp.replace(hour=9)
    for day in range(20):
        ip = f"81.2.{(day + 10) if rotating else 69}.160"
        d = engine.score(make_attempt(ts=t0 + timedelta(days=day), ip=ip))
        assert d.action == "allow", d
    d = engine.score(make_attempt(ts=t0 + timedelta(days=20), ip="81.2.200.7", place=LONDON))
    return next(r.weight for r in d.reasons if r.code == "NEW_PREFIX")


def test_a_new_block_counts_more_for_a_stable_user_than_for_a_rotating_one() -> None:
    stable = _prefix_weight(Engine(offline_settings()), rotating=False)
    rotating = _prefix_weight(Engine(offline_settings()), rotating=True)
    weight = offline_settings().geo.new_prefix_weight
    floor = offline_settings().geo.novelty_floor
    assert stable == pytest.approx(weight)  # one block in 20 logins: the full weight
    # the profile keeps 12 blocks: log(21/12) / log 20 = 0.19, under the floor
    assert rotating == pytest.approx(weight * max(floor, math.log(21 / 12) / math.log(20)), abs=1e-3)
    assert rotating < stable
    # floor 1.0: the unweighted rule, the same weight for both
    off = offline_settings(geo={"novelty_floor": 1.0})
    assert _prefix_weight(Engine(off), rotating=True) == pytest.approx(weight)
    assert _prefix_weight(Engine(off), rotating=False) == pytest.approx(weight)
