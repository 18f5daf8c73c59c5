"""The step-up budget's sketch (riskengine.core.budget), against numpy as the oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskengine.core.budget import (
    BINS,
    COUNT_KEY,
    ERA_HALF_LIVES,
    FORCED_KEY,
    LANDMARK,
    RETRACTED,
    BudgetConfig,
    BudgetSketch,
    MergedBins,
    UserCap,
    bin_of,
    decay_weight,
    era_key,
    era_of,
    merge_into,
    net_weight,
    of_era,
    threshold_from,
)

DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01


def _cfg(target: float = 0.02, lo: float = 0.0, hi: float = 1.0, warmup: int = 0) -> BudgetConfig:
    return BudgetConfig(target, lo, hi, warmup, 3 * DAY)


def _sketch_of(risks: np.ndarray, forced: int = 0, cfg: BudgetConfig | None = None) -> BudgetSketch:
    sk = BudgetSketch(cfg or _cfg(), 0.4, 10.0, UserCap(10**9, 3600.0))
    for i, r in enumerate(risks):
        sk.observe(f"u{i}", float(r), False, T0)
    for i in range(forced):
        sk.observe(f"f{i}", 0.0, True, T0)
    sk.install(sk.take_delta(), T0)
    return sk


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("target", [0.01, 0.015, 0.05, 0.2])
def test_threshold_is_the_upper_quantile_within_a_bin_width(seed: int, target: float) -> None:
    rng = np.random.default_rng(seed)
    # a realistic mix: most logins near 0, a tail of novelty scores
    risks = np.concatenate([rng.beta(0.6, 12.0, 20_000), rng.uniform(0.2, 0.9, 1_000)])
    sk = _sketch_of(risks, cfg=_cfg(target))
    oracle = float(np.quantile(risks, 1.0 - target))
    assert abs(sk.threshold - oracle) <= 1.0 / BINS + 1e-12
    # and the realised rate at the threshold is within the budget (lowest such bin edge)
    assert float(np.mean(risks >= sk.threshold)) <= target + 1e-12
    assert float(np.mean(risks >= sk.threshold - 1.0 / BINS)) > target


def test_floor_forced_logins_use_up_the_budget_first() -> None:
    rng = np.random.default_rng(7)
    risks = rng.uniform(0.0, 1.0, 9_000)
    # 1000 forced of 10000: 10 % budget → forced 10 % already: nothing else should challenge
    sk = _sketch_of(risks, forced=1_000, cfg=_cfg(0.10))
    assert sk.threshold == 1.0  # no bin fits; clamp max is 1.0 here
    # 5 % forced of a 10 % budget: the rest gets the other 5 % of the TOTAL
    sk = _sketch_of(risks[:9_500], forced=500, cfg=_cfg(0.10))
    oracle = float(np.quantile(risks[:9_500], 1.0 - 500 / 9_500))
    assert abs(sk.threshold - oracle) <= 1.0 / BINS + 1e-12


def test_clamp_edges() -> None:
    cfg = _cfg(0.02, lo=0.25, hi=0.6)
    # a quiet sketch (or one flooded with low risks): the 98th percentile is 0.05
    quiet = {str(bin_of(0.01)): 980.0, str(bin_of(0.05)): 20.0, COUNT_KEY: 1000.0}
    assert threshold_from(quiet, cfg, 0.4) == 0.25
    flooded = {str(bin_of(0.95)): 1000.0, COUNT_KEY: 1000.0}  # every risk high
    assert threshold_from(flooded, cfg, 0.4) == 0.6
    at_edge = {str(bin_of(0.1)): 98.0, str(bin_of(0.6)): 2.0, COUNT_KEY: 100.0}
    assert threshold_from(at_edge, cfg, 0.4) == 0.6  # exactly at the clamp: 2 % at 0.6 fits
    inside = {str(bin_of(0.1)): 98.0, str(bin_of(0.5)): 2.0, COUNT_KEY: 100.0}
    assert threshold_from(inside, cfg, 0.4) == 0.5
    only_forced = {FORCED_KEY: 5.0, str(bin_of(0.1)): 95.0, COUNT_KEY: 100.0}
    assert threshold_from(only_forced, cfg, 0.4) == 0.6  # floor alone exceeds the budget


@pytest.mark.parametrize(("merged", "expected"), [(999, 0.4), (1000, 0.5), (1001, 0.5)])
def test_warmup_count_at_and_around(merged: int, expected: float) -> None:
    cfg = _cfg(0.1, warmup=1000)
    counts = {str(bin_of(0.1)): 90.0, str(bin_of(0.5)): 10.0, COUNT_KEY: float(merged)}
    assert threshold_from(counts, cfg, 0.4) == expected


def test_forward_decay_weighs_recent_logins_more() -> None:
    cfg = BudgetConfig(0.1, 0.0, 1.0, 0, DAY)
    sk = BudgetSketch(cfg, 0.4, 10.0, UserCap(10**9, 3600.0))
    for i in range(100):  # a day ago: 10 % at 0.8
        sk.observe(f"a{i}", 0.8 if i < 10 else 0.05, False, T0 - DAY)
    for i in range(100):  # now: 10 % at 0.3
        sk.observe(f"b{i}", 0.3 if i < 10 else 0.05, False, T0)
    sk.install(sk.take_delta(), T0)
    # weights 1 vs 2: 0.8 holds 10/300 = 3.3 %, 0.3 another 20/300: 10 % ends at 0.3's bin
    assert sk.threshold == pytest.approx(bin_of(0.3) / BINS)
    assert decay_weight(T0, DAY) == pytest.approx(2 * decay_weight(T0 - DAY, DAY))


def test_user_cap_per_window() -> None:
    cap = UserCap(3, 3600.0)
    assert [cap.admit("m", T0 + i) for i in range(5)] == [True, True, True, False, False]
    assert cap.admit("other", T0 + 5)
    assert cap.admit("m", T0 + 3600.0)  # next window


def test_refresh_boundaries_are_event_time_multiples() -> None:
    sk = BudgetSketch(_cfg(), 0.4, 10.0, UserCap(3, 3600.0))
    assert sk.due(T0)
    sk.install({}, T0 + 3.0)
    assert not sk.due(T0 + 9.999)
    assert sk.due(T0 + 10.0)
    assert not sk.due(T0 - 50.0)  # late events never go back


def test_weights_stay_finite_across_eras_and_a_new_era_starts_a_fresh_sketch() -> None:
    """Forward decay from one fixed landmark would overflow after ~1,000 half-lives; eras of
    512 half-lives keep every weight in [1, 2^512) and the sketch of a new era starts over."""
    from riskengine.core.budget import ERA_HALF_LIVES, LANDMARK, UserCap, era_of

    hl = 72 * 3600.0
    era_len = ERA_HALF_LIVES * hl
    for years in (0, 5, 20, 80):
        t = LANDMARK + years * 365.25 * 86400
        w = decay_weight(t, hl)
        assert 1.0 <= w < 2.0 ** ERA_HALF_LIVES
        assert math.isfinite(w * 1e9)
    end_of_era = LANDMARK + era_len - 1.0
    assert era_of(end_of_era, hl) == 0 and era_of(end_of_era + 1.0, hl) == 1
    assert decay_weight(end_of_era + 1.0, hl) == 1.0
    cfg = BudgetConfig(0.1, 0.0, 1.0, 5, hl)
    sketch = BudgetSketch(cfg, 0.4, 10.0, UserCap(100, 3600.0))
    for i in range(10):
        sketch.observe(f"u{i}", 0.9 if i == 0 else 0.1, False, end_of_era - 100.0)
    sketch.install(sketch.take_delta(), end_of_era - 50.0)
    assert sketch.threshold != 0.4  # warmed up in era 0
    sketch.install(sketch.merged, end_of_era + 60.0)
    assert sketch.threshold == 0.4  # era 1: nothing merged yet, the warm-up threshold


# ------------------------------------------------- the fast walk against the plain one (oracle)
def _reference_threshold(counts: dict[str, float], cfg: BudgetConfig, fallback: float) -> float:
    """The threshold as first written: every bin walked from the top in Python, the total an
    exactly rounded sum (what the fast path must reproduce bit for bit)."""
    if counts.get(COUNT_KEY, 0.0) < cfg.warmup_logins:
        return fallback
    bins = [0.0] * BINS
    forced = 0.0
    for key, w in counts.items():
        if key == FORCED_KEY:
            forced += w
        elif key != COUNT_KEY:
            bins[int(key)] += w
    total = math.fsum([*bins, forced])
    if total <= 0.0:
        return fallback
    room = cfg.target * total - forced
    edge = BINS
    if room > 0.0:
        tail = 0.0
        for i in range(BINS - 1, -1, -1):
            if tail + bins[i] > room + room * 1e-9:
                break
            if bins[i] > 0.0:
                tail += bins[i]
                edge = i
    return min(cfg.max_threshold, max(cfg.min_threshold, edge / BINS))


@settings(max_examples=300, deadline=None)
@given(
    bins=st.dictionaries(st.integers(0, BINS - 1), st.floats(1.0, 2.0**40), max_size=60),
    forced=st.floats(0.0, 2.0**40),
    target=st.floats(0.001, 0.5),
    clamp=st.tuples(st.integers(0, BINS), st.integers(0, BINS)),
)
def test_the_fast_threshold_equals_the_plain_walk(bins: dict[int, float], forced: float, target: float,
                                                  clamp: tuple[int, int]) -> None:
    lo, hi = sorted(clamp)
    cfg = BudgetConfig(target, lo / BINS, hi / BINS, 0, 3 * DAY)
    counts: dict[str, float] = {str(i): w for i, w in bins.items()}
    counts[FORCED_KEY] = forced
    counts[COUNT_KEY] = 1.0
    assert threshold_from(counts, cfg, 0.4) == _reference_threshold(counts, cfg, 0.4)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_merged_bins_equal_the_stores_mapping_delta_by_delta(seed: int) -> None:
    """The replay post-pass's incremental sketch gives, after every delta, exactly the
    threshold the live engine computes from the store's merged mapping (every era)."""
    rng = np.random.default_rng(seed)
    cfg = BudgetConfig(0.02, 0.25, 0.5, 50, 3 * DAY)
    merged = MergedBins(cfg)
    mapping: dict[str, float] = {}
    t = T0
    for _ in range(400):
        t += float(rng.exponential(3 * DAY * 20))  # crosses eras now and then (512 half-lives)
        delta: dict[str, float] = {}
        for _ in range(int(rng.integers(0, 6))):
            era = era_of(t, cfg.half_life_s)
            key = era_key(era, FORCED_KEY if rng.random() < 0.05 else str(bin_of(float(rng.beta(2, 6)))))
            w = decay_weight(t, cfg.half_life_s) * float(rng.uniform(0.5, 2))
            delta[key] = delta.get(key, 0.0) + w
            delta[era_key(era, COUNT_KEY)] = delta.get(era_key(era, COUNT_KEY), 0.0) + 1.0
        merged.add(delta)
        merge_into(mapping, delta)
        era = era_of(t, cfg.half_life_s)
        assert merged.threshold(era, 0.4) == threshold_from(of_era(mapping, era), cfg, 0.4)


@pytest.mark.parametrize("seed", range(40))
def test_the_fast_threshold_equals_the_plain_walk_around_the_clamps(seed: int) -> None:
    """Dense sketches whose clamp sits just around the unclamped quantile: the walk's
    shortcuts (the summed top, the stop under the bottom) must not move any edge."""
    rng = np.random.default_rng(seed)
    counts = {str(i): float(w) for i, w in enumerate(rng.pareto(1.5, BINS) * rng.random(BINS)) if w > 0.05}
    counts[FORCED_KEY] = float(rng.random() * 5)
    counts[COUNT_KEY] = 1.0
    target = float(rng.uniform(0.01, 0.3))
    free = _reference_threshold(counts, BudgetConfig(target, 0.0, 1.0, 0, DAY), 0.4)
    edge = round(free * BINS)
    for lo, hi in [(edge - 1, edge), (edge, edge), (edge, edge + 1), (edge + 1, edge + 2), (edge - 2, edge - 1),
                   (0, edge - 1), (edge + 1, BINS), (0, BINS)]:
        lo, hi = max(0, min(lo, BINS)), max(0, min(hi, BINS))
        cfg = BudgetConfig(target, lo / BINS, hi / BINS, 0, DAY)
        assert threshold_from(counts, cfg, 0.4) == _reference_threshold(counts, cfg, 0.4), (lo, hi)


@pytest.mark.parametrize("seed", [4, 5, 6, 7])
def test_sketch_threshold_equals_threshold_from_of_the_era(seed: int) -> None:
    """The sketch's one-pass threshold (the engine's refresh) is the documented definition,
    ``threshold_from(of_era(merged, era))``, to the bit: random sketches over two eras, with
    and without forced logins, around the warm-up count, across the clamp."""
    rng = np.random.default_rng(seed)
    hl = 3 * DAY
    era_len = ERA_HALF_LIVES * hl
    for case in range(60):
        cfg = BudgetConfig(float(rng.uniform(0.005, 0.3)), float(rng.uniform(0.0, 0.3)),
                           float(rng.uniform(0.3, 1.0)), int(rng.integers(0, 400)), hl)
        merged: dict[str, float] = {}
        for era in (0, 1):
            for b in rng.choice(BINS, size=int(rng.integers(0, 60)), replace=False):
                merged[f"{era}:{b}"] = float(rng.exponential(50.0))
            if rng.random() < 0.6:
                merged[f"{era}:{FORCED_KEY}"] = float(rng.exponential(5.0))
            merged[f"{era}:{COUNT_KEY}"] = float(rng.integers(0, 800))
        keys = list(merged)
        rng.shuffle(keys)  # the store's order is whatever it is: the sums must follow it
        merged = {k: merged[k] for k in keys}
        t = LANDMARK + (era_len if case % 2 else 0.0) + 5.0
        sk = BudgetSketch(cfg, 0.4, 10.0, UserCap(3, 3600.0))
        sk.install(merged, t)
        expected = threshold_from(of_era(merged, era_of(t, hl)), cfg, 0.4)
        assert sk.threshold == expected, (seed, case)


def test_observe_counts_what_era_of_bin_of_and_decay_weight_say() -> None:
    """``observe`` inlines the era and the weight: the same keys and the same floats as the
    module's own definitions, at random times over three eras, forced or not."""
    rng = np.random.default_rng(11)
    hl = 3 * DAY
    for _ in range(300):
        t = LANDMARK + float(rng.uniform(-1.0, 3.0)) * ERA_HALF_LIVES * hl
        risk, forced = float(rng.uniform(0.0, 1.0)), bool(rng.random() < 0.2)
        sk = BudgetSketch(_cfg(), 0.4, 10.0, UserCap(10, 3600.0))
        assert sk.observe("u", risk, forced, t)
        era = era_of(t, hl)
        key = f"{era}:{FORCED_KEY}" if forced else f"{era}:{bin_of(risk)}"
        assert sk.take_delta() == {key: decay_weight(t, hl), f"{era}:{COUNT_KEY}": 1.0}


# -- retractions: a challenged login whose challenge fails is taken back out ------------------


def _retracting_sketch(cfg: BudgetConfig) -> BudgetSketch:
    return BudgetSketch(cfg, 0.4, 10.0, UserCap(10**9, 3600.0))


def test_a_retracted_login_leaves_the_threshold_it_would_have_without_it() -> None:
    """Attack logins at 0.6 that fill the tail lift the threshold to the clamp; retracted
    (their challenges failed), the threshold is the legitimate logins' own quantile. Weights
    at whole half-lives are powers of two, so the sums are exact: equal thresholds, bit for bit."""
    cfg = BudgetConfig(0.02, 0.0, 1.0, 0, 3 * DAY)
    rng = np.random.default_rng(5)
    legit = rng.beta(2, 8, 5000)
    clean, attacked = _retracting_sketch(cfg), _retracting_sketch(cfg)
    for k, r in enumerate(legit):
        t = T0 + (k % 4) * 3 * DAY
        clean.observe(f"u{k}", float(r), False, t)
        attacked.observe(f"u{k}", float(r), False, t)
        if k % 50 == 0:  # 2 % of logins: attacks at 0.6 (some forced by the floor)
            forced = k % 200 == 0
            assert attacked.observe(f"a{k}", 0.6, forced, t)
            attacked.retract(0.6, forced, t)
    t_end = T0 + 12 * DAY
    clean.install(clean.take_delta(), t_end)
    merged = attacked.take_delta()
    attacked.install(merged, t_end)
    assert attacked.threshold == clean.threshold < 0.6
    # the retraction twins are in the store's mapping: the warm-up count keeps the attacks
    era = era_of(T0, cfg.half_life_s)
    assert merged[f"{era}:{RETRACTED}{bin_of(0.6)}"] > 0 and merged[f"{era}:{RETRACTED}{FORCED_KEY}"] > 0
    assert merged[f"{era}:{COUNT_KEY}"] == 5000 + 100
    # unretracted, the same attacks push the threshold up
    kept = _retracting_sketch(cfg)
    for k, r in enumerate(legit):
        t = T0 + (k % 4) * 3 * DAY
        kept.observe(f"u{k}", float(r), False, t)
        if k % 50 == 0:
            kept.observe(f"a{k}", 0.6, k % 200 == 0, t)
    kept.install(kept.take_delta(), t_end)
    assert kept.threshold > clean.threshold


def test_net_weight_treats_rounding_residue_as_empty() -> None:
    assert net_weight(0.1 + 0.2 + 0.7, 0.1 + 0.2) == pytest.approx(0.7)
    assert net_weight((0.1 + 0.7) + 0.2, 0.1 + 0.2 + 0.7) == 0.0  # residue of a full retraction
    assert net_weight(3.0, 0.0) == 3.0 and net_weight(0.0, 0.0) == 0.0
    assert net_weight(1.0, 1.5) == 0.0  # never negative


@pytest.mark.parametrize("seed", [8, 9, 10])
def test_merged_bins_equal_the_stores_mapping_with_retractions(seed: int) -> None:
    """With retractions in the deltas (some in later deltas than their addition, some of
    forced logins), the post-pass's incremental sketch still gives exactly the threshold the
    live engine computes from the store's mapping, and the sketch's own refresh agrees."""
    rng = np.random.default_rng(seed)
    cfg = BudgetConfig(0.02, 0.25, 0.5, 50, 3 * DAY)
    merged = MergedBins(cfg)
    mapping: dict[str, float] = {}
    pending: list[tuple[float, bool, float]] = []
    writer = _retracting_sketch(cfg)
    t = T0
    for step in range(300):
        t += float(rng.exponential(3 * DAY / 4))
        for _ in range(int(rng.integers(0, 8))):
            risk, forced = float(rng.beta(2, 5)), bool(rng.random() < 0.05)
            writer.observe(f"u{step}", risk, forced, t)
            if rng.random() < 0.3:
                pending.append((risk, forced, t))
        while pending and rng.random() < 0.6:
            risk, forced, at = pending.pop(int(rng.integers(0, len(pending))))
            writer.retract(risk, forced, at)
        delta = writer.take_delta()
        merged.add(delta)
        merge_into(mapping, delta)
        era = era_of(t, cfg.half_life_s)
        expected = threshold_from(of_era(mapping, era), cfg, 0.4)
        assert merged.threshold(era, 0.4) == expected, step
        reader = _retracting_sketch(cfg)
        reader.install(mapping, t)
        assert reader.threshold == expected, step
