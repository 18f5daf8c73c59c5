"""The step-up budget's sketch at its edges: bins, eras and their keys (the format workers
share through the store), the tail walk's stopping rule and slack, the user cap's windows and
late events, refresh periods, a failed merge put back, and the deferred sketch."""

from __future__ import annotations

import math

import pytest

from riskengine.core.budget import (
    BINS,
    COUNT_KEY,
    ERA_HALF_LIVES,
    FORCED_KEY,
    LANDMARK,
    BudgetConfig,
    BudgetSketch,
    DeferredBudget,
    UserCap,
    bin_of,
    decay_weight,
    era_key,
    era_of,
    merge_into,
    of_era,
    threshold_from,
)
from riskengine.core.config import Settings

HL = 3600.0
POLICY = Settings().policy


def cfg(target: float = 0.1, lo: float = 0.0, hi: float = 1.0, warmup: int = 0) -> BudgetConfig:
    return BudgetConfig(target, lo, hi, warmup, HL)


def sketch(c: BudgetConfig | None = None, cap: int = 10**6, refresh_s: float = 10.0) -> BudgetSketch:
    return BudgetSketch(c or cfg(), 0.4, refresh_s, UserCap(cap, 3600.0))


# -- bins, eras, keys ------------------------------------------------------------------------

def test_bin_edges_one_step_either_side() -> None:
    width = 1.0 / BINS
    assert [bin_of(0.0), bin_of(width * 0.999), bin_of(width), bin_of(7 * width)] == [0, 0, 1, 7]
    assert bin_of(1.0 - width * 0.001) == BINS - 1 and bin_of(1.0) == BINS - 1
    assert bin_of(1.5) == BINS - 1 and bin_of(-0.2) == 0  # out of range: clamped, never an IndexError
    # the 1e-9 nudge: a risk computed as 0.3 - tiny rounding lands in 0.3's bin, not the one below
    assert bin_of(0.1 + 0.2) == bin_of(0.3) == 120
    assert bin_of(0.3 - 1e-6) == 119


def test_eras_start_every_512_half_lives_from_the_landmark() -> None:
    era = ERA_HALF_LIVES * HL
    assert era_of(LANDMARK, HL) == 0 and era_of(LANDMARK - 1.0, HL) == -1
    assert era_of(LANDMARK + era - 1.0, HL) == 0 and era_of(LANDMARK + era, HL) == 1
    assert era_of(LANDMARK + 3 * era, 2 * HL) == 1
    assert decay_weight(LANDMARK, HL) == 1.0
    assert decay_weight(LANDMARK + 10 * HL, HL) == 1024.0
    assert decay_weight(LANDMARK + era + 2 * HL, HL) == 4.0
    assert decay_weight(LANDMARK - HL, HL) == 2.0 ** (ERA_HALF_LIVES - 1)  # era -1, one half-life before its end
    assert decay_weight(LANDMARK + era - HL, HL) == 2.0 ** (ERA_HALF_LIVES - 1)


def test_sketch_keys_carry_the_era_and_the_bin() -> None:
    assert era_key(3, "17") == "3:17" and era_key(-1, COUNT_KEY) == "-1:n"
    t = LANDMARK + 2 * HL
    sk = sketch()
    assert sk.observe("a", 0.5, False, t) and sk.observe("b", 0.9, True, t) and sk.observe("c", 0.5, False, t)
    assert sk.take_delta() == {f"0:{bin_of(0.5)}": 8.0, "0:n": 3.0, f"0:{FORCED_KEY}": 4.0}
    assert sk.take_delta() == {}  # taken: the next delta starts empty
    assert of_era({"1:n": 2.0, "1:7": 1.5, "11:n": 9.0, "0:n": 4.0}, 1) == {"n": 2.0, "7": 1.5}


def test_merge_into_adds_key_by_key() -> None:
    target = {"0:1": 1.0, "0:n": 2.0}
    merge_into(target, {"0:1": 0.5, "0:2": 3.0})
    assert target == {"0:1": 1.5, "0:n": 2.0, "0:2": 3.0}


# -- the threshold ---------------------------------------------------------------------------

def counts(by_risk: dict[float, float]) -> dict[str, float]:
    """Sketch fields from risk → weight."""
    return {str(bin_of(r)): w for r, w in by_risk.items()}


def test_the_tail_fits_exactly_at_the_budget_and_not_one_login_past_it() -> None:
    c = cfg(0.1)
    exact = {**counts({0.1: 90.0, 0.5: 10.0}), COUNT_KEY: 100.0}
    assert threshold_from(exact, c, 0.4) == bin_of(0.5) / BINS  # 10 of 100 at 10 %: fits
    over = {**counts({0.1: 89.0, 0.5: 11.0}), COUNT_KEY: 100.0}
    assert threshold_from(over, c, 0.4) == 1.0  # 11 % does not fit: nothing but the floor, clamp max
    # float sums a hair over the room still fit (slack 1e-9 relative), a real excess does not
    hair = {**counts({0.1: 90.0 - 5e-9, 0.5: 10.0 + 5e-9}), COUNT_KEY: 100.0}
    assert threshold_from(hair, c, 0.4) == bin_of(0.5) / BINS
    excess = {**counts({0.1: 90.0 - 1e-4, 0.5: 10.0 + 1e-4}), COUNT_KEY: 100.0}
    assert threshold_from(excess, c, 0.4) == 1.0


def test_a_tail_exactly_at_the_tolerance_edge_fits() -> None:
    # the tolerance is inclusive: a tail of exactly room × (1 + 1e-9) still fits
    w = 10.0
    for _ in range(50):  # the top bin's weight w with w == room + slack, where room = 0.1 × (90 + w)
        room = 0.1 * (90.0 + w)
        w = room + room * 1e-9
    room = 0.1 * (90.0 + w)
    assert w == room + room * 1e-9
    edge = {**counts({0.1: 90.0, 0.5: w}), COUNT_KEY: 100.0}
    assert threshold_from(edge, cfg(0.1), 0.4) == bin_of(0.5) / BINS


def test_the_lowest_bin_can_be_the_threshold() -> None:
    assert threshold_from({"0": 5.0, COUNT_KEY: 5.0}, cfg(1.0), 0.4) == 0.0
    assert threshold_from({"0": 5.0, "1": 5.0, COUNT_KEY: 10.0}, cfg(0.5), 0.4) == 1 / BINS


def test_small_sketches_count_too() -> None:
    # a room of exactly one login, and a sketch holding a single login's weight
    ten = {**counts({0.1: 9.0, 0.5: 1.0}), COUNT_KEY: 10.0}
    assert threshold_from(ten, cfg(0.1), 0.4) == bin_of(0.5) / BINS
    one = {**counts({0.5: 1.0}), COUNT_KEY: 1.0}
    assert threshold_from(one, cfg(1.0), 0.4) == bin_of(0.5) / BINS
    # no count key at all: nothing was merged, so still warming up
    assert threshold_from(counts({0.5: 1.0}), cfg(1.0, warmup=1), 0.4) == 0.4


def test_the_walk_stops_at_the_first_bin_that_does_not_fit() -> None:
    c = cfg(0.1)
    # from the top: 0.9 (5) fits, 0.7 (10) would make 15 > 10, so the walk stops there even
    # though 0.5 (2) alone would fit below it
    gap = {**counts({0.1: 83.0, 0.5: 2.0, 0.7: 10.0, 0.9: 5.0}), COUNT_KEY: 100.0}
    assert threshold_from(gap, c, 0.4) == bin_of(0.9) / BINS
    # empty bins in between do not lower the threshold: the lowest NON-EMPTY bin that fits
    sparse = {**counts({0.1: 95.0, 0.8: 5.0}), COUNT_KEY: 100.0}
    assert threshold_from(sparse, c, 0.4) == bin_of(0.8) / BINS
    # every bin fits (a target of everything): the lowest non-empty bin
    assert threshold_from({**counts({0.2: 1.0, 0.6: 1.0}), COUNT_KEY: 2.0}, cfg(1.0), 0.4) == bin_of(0.2) / BINS


def test_the_top_bin_counts_like_any_other() -> None:
    c = cfg(0.1)
    top = {str(BINS - 1): 10.0, **counts({0.1: 90.0}), COUNT_KEY: 100.0}
    assert threshold_from(top, c, 0.4) == (BINS - 1) / BINS
    too_many = {str(BINS - 1): 11.0, **counts({0.1: 89.0}), COUNT_KEY: 100.0}
    assert threshold_from(too_many, c, 0.4) == 1.0


def test_forced_logins_count_in_the_total_and_use_up_the_room() -> None:
    c = cfg(0.1)
    # 100 logins, 4 forced: the room is 10 - 4 = 6: 0.6 (6) fits, 0.5 (1 more) does not
    mix = {FORCED_KEY: 4.0, **counts({0.1: 89.0, 0.5: 1.0, 0.6: 6.0}), COUNT_KEY: 100.0}
    assert threshold_from(mix, c, 0.4) == bin_of(0.6) / BINS
    # forced exactly the budget: no room at all
    full = {FORCED_KEY: 10.0, **counts({0.1: 89.0, 0.9: 1.0}), COUNT_KEY: 100.0}
    assert threshold_from(full, c, 0.4) == 1.0


def test_an_empty_sketch_past_warm_up_keeps_the_fallback() -> None:
    assert threshold_from({COUNT_KEY: 5.0}, cfg(warmup=5), 0.37) == 0.37
    assert threshold_from({COUNT_KEY: 5.0, "3": 0.0}, cfg(warmup=0), 0.37) == 0.37
    assert threshold_from({}, cfg(warmup=0), 0.37) == 0.37
    assert threshold_from({}, cfg(warmup=1), 0.37) == 0.37
    # the count key is never a bin: a sketch of only forced logins has a total, no room
    assert threshold_from({FORCED_KEY: 3.0, COUNT_KEY: 3.0}, cfg(hi=0.8), 0.37) == 0.8


def test_the_clamp_from_the_configured_defaults() -> None:
    c = BudgetConfig(POLICY.target_stepup_rate or 0.05, POLICY.budget_min_threshold, POLICY.budget_max_threshold,
                     0, POLICY.budget_half_life_hours * 3600.0)
    lo, hi = POLICY.budget_min_threshold, POLICY.budget_max_threshold
    below = {str(bin_of(lo) - 1): 1.0, str(bin_of(0.0)): 1e6, COUNT_KEY: 1.0}
    assert threshold_from(below, c, 0.4) == lo
    at_lo = {str(bin_of(lo)): 1.0, str(bin_of(0.0)): 1e6, COUNT_KEY: 1.0}
    assert threshold_from(at_lo, c, 0.4) == lo
    above_lo = {str(bin_of(lo) + 1): 1.0, str(bin_of(0.0)): 1e6, COUNT_KEY: 1.0}
    assert threshold_from(above_lo, c, 0.4) == (bin_of(lo) + 1) / BINS
    below_hi = {str(bin_of(hi) - 1): 1.0, str(bin_of(0.0)): 1e6, COUNT_KEY: 1.0}
    assert threshold_from(below_hi, c, 0.4) == (bin_of(hi) - 1) / BINS
    above_hi = {str(bin_of(hi) + 1): 1.0, str(bin_of(0.0)): 1e6, COUNT_KEY: 1.0}
    assert threshold_from(above_hi, c, 0.4) == hi


# -- the user cap -----------------------------------------------------------------------------

def test_user_cap_windows_are_aligned_on_multiples_of_the_window() -> None:
    cap = UserCap(1, 100.0)
    assert cap.admit("u", 150.0)
    assert not cap.admit("u", 199.999)
    assert cap.admit("u", 200.0)  # a new window at the multiple, not 100 s after the first
    assert not cap.admit("u", 250.0)


def test_user_cap_counts_each_user_separately_and_exactly_cap_times() -> None:
    cap = UserCap(2, 100.0)
    assert [cap.admit("a", 1.0), cap.admit("b", 2.0), cap.admit("a", 3.0), cap.admit("b", 4.0)] == [True] * 4
    assert [cap.admit("a", 5.0), cap.admit("b", 6.0)] == [False, False]


def test_a_late_event_of_an_earlier_window_is_admitted_and_not_counted() -> None:
    cap = UserCap(1, 100.0)
    assert cap.admit("u", 250.0)
    assert cap.admit("u", 150.0)   # late: an earlier window
    assert cap.admit("u", 120.0)
    assert not cap.admit("u", 260.0)  # the current window's count was not touched by them... and is used
    fresh = UserCap(1, 100.0)
    assert fresh.admit("u", 250.0) and fresh.admit("v", 150.0) and fresh.admit("v", 260.0)


# -- refresh, install, keep, restore ---------------------------------------------------------

def test_install_recomputes_from_the_current_eras_fields() -> None:
    sk = sketch(cfg(0.1, warmup=10))
    t = LANDMARK + 5.0
    merged = {f"0:{bin_of(0.1)}": 90.0, f"0:{bin_of(0.6)}": 10.0, "0:n": 100.0, "-1:n": 1e9}
    sk.install(merged, t)
    assert sk.threshold == bin_of(0.6) / BINS and sk.merged == merged and sk.merged is not merged
    assert sk.epoch == math.floor(t / 10.0)
    assert not sk.due(t + 4.0) and sk.due(t + 5.0)
    cold = sketch(cfg(0.1, warmup=101))
    cold.install(merged, t)
    assert cold.threshold == 0.4  # 100 merged < 101: still warming up


def test_a_store_outage_keeps_the_threshold_until_the_next_period() -> None:
    sk = sketch(cfg(0.1))
    t = LANDMARK + 5.0
    sk.install({f"0:{bin_of(0.6)}": 1.0, f"0:{bin_of(0.1)}": 9.0, "0:n": 10.0}, t)
    good = sk.threshold
    sk.keep(t + 10.0)
    assert sk.threshold == good and sk.epoch == math.floor((t + 10.0) / 10.0)
    assert not sk.due(t + 14.0) and sk.due(t + 15.0)


def test_a_failed_merge_is_put_back_under_what_arrived_since() -> None:
    sk = sketch()
    t = LANDMARK + 2 * HL
    sk.observe("a", 0.5, False, t)
    failed = sk.take_delta()
    sk.observe("b", 0.5, False, t)
    sk.restore(failed)
    b = f"0:{bin_of(0.5)}"
    assert sk.take_delta() == {b: 8.0, "0:n": 2.0}
    # nothing arrived since: the delta is exactly the one put back
    sk.restore({b: 8.0, "0:n": 1.0})
    assert sk.take_delta() == {b: 8.0, "0:n": 1.0}


def test_observe_refuses_past_the_user_cap_and_records_nothing() -> None:
    sk = sketch(cap=1)
    t = LANDMARK
    assert sk.observe("u", 0.5, False, t)
    assert not sk.observe("u", 0.9, True, t + 1.0)
    assert sk.take_delta() == {f"0:{bin_of(0.5)}": 1.0, "0:n": 1.0}


def test_the_deferred_sketch_never_refreshes_and_learns_nothing() -> None:
    d = DeferredBudget(cfg(), 0.45, 10.0, UserCap(1, 3600.0))
    assert d.threshold == 0.45
    assert not d.due(LANDMARK) and not d.due(LANDMARK + 1e6)
    assert d.observe("u", 0.9, False, LANDMARK) and d.observe("u", 0.9, False, LANDMARK)  # no cap either
    assert d.take_delta() == {}
    fresh = sketch()
    assert fresh.due(LANDMARK) and fresh.threshold == 0.4 and fresh.merged == {} and fresh.delta == {}


@pytest.mark.parametrize("refresh_s", [1.0, 10.0, 60.0])
def test_due_at_each_multiple_of_the_refresh_period(refresh_s: float) -> None:
    sk = sketch(refresh_s=refresh_s)
    t = LANDMARK + 3.5 * refresh_s
    sk.install({}, t)
    assert not sk.due(LANDMARK + 4 * refresh_s - 1e-3)
    assert sk.due(LANDMARK + 4 * refresh_s)
