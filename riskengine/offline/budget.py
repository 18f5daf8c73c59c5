"""The step-up budget as a deterministic post-pass over scored logins (for replay).

A live engine sets its challenge threshold from the shared sketch
(:mod:`riskengine.core.budget`); a parallel replay cannot share one sketch across workers
in event order and stay byte-identical, so it scores with the fixed policy and applies the
budget afterwards, here, walking the rows in event-time order with the engine's semantics:

1. when a row's event time enters a new ``budget_refresh_seconds`` period, the delta
   gathered so far is merged into the sketch and the threshold recomputed (warm-up:
   ``challenge_threshold`` until ``budget_warmup_logins`` established logins were merged);
2. the row's action: ``deny`` if it was denied; ``challenge`` if a floor signal fired;
   ``allow`` if a trusted device exempts it; else ``challenge`` iff ``risk >= threshold``
   (for a user who is not established, the fixed ``challenge_threshold``, as the live engine
   judges one: the budget measures established users only; with a model the threshold
   itself, the fixed one holding the rules' risk through ``floor_forced``);
3. an established, not denied row enters the delta (the per-user cap applies): forced rows
   as "stepped up whatever their risk", exempt rows at risk 0;
4. a row it challenges whose challenge would not verify (``fails``: what the replay's
   outcome mode says of this login, e.g. a takeover under ``--outcomes labels``) is taken
   back out at once, as the live engine's ``record_outcome`` retracts it.

This equals the live engine's decisions on a single-process memory-store run whenever what a
login teaches does not depend on its action (``--outcomes verified``: every challenge passes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from riskengine._extras import extra

with extra("sim", feature="riskengine replay"):
    import numpy as np
    import polars as pl

from riskengine.core.budget import (
    _MAX_EXPONENT,
    BINS,
    ERA_HALF_LIVES,
    LANDMARK,
    BudgetConfig,
    BudgetSketch,
    MergedBins,
    era_of,
    walk_floor_bin,
)
from riskengine.core.config import Settings
from riskengine.core.engine.state import budget_sketch

REQUIRED = ("event_time", "risk", "established", "floor_forced", "user")


def floor_forced(reasons: Iterable[str], settings: Settings) -> bool:
    """Whether a budget floor signal is among a decision's reason codes."""
    floor = set(settings.policy.budget_floor_signals)
    return any(code in floor for code in reasons)


def _check(frame: pl.DataFrame, settings: Settings) -> BudgetSketch:
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"apply_budget: missing column(s) {', '.join(missing)} (needs {', '.join(REQUIRED)})")
    sketch = budget_sketch(settings)
    if sketch is None:
        raise ValueError("apply_budget: [policy] target_stepup_rate is not set (a fixed policy needs no post-pass)")
    return sketch


def _seconds(frame: pl.DataFrame) -> pl.Series:
    times = frame["event_time"]
    seconds = times.dt.epoch("us").cast(pl.Float64) / 1e6 if times.dtype.is_temporal() else times.cast(pl.Float64)
    if seconds.null_count():
        raise ValueError("apply_budget: event_time has nulls")
    return seconds


def _flag(frame: pl.DataFrame, name: str, order: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A bool column in walk order (absent or null: false)."""
    if name not in frame.columns:
        return np.zeros(frame.height, dtype=bool)
    values: np.ndarray[Any, Any] = frame[name].cast(pl.Boolean).fill_null(False).to_numpy()
    picked: np.ndarray[Any, Any] = values[order]
    return picked


def _rank_in_group(users: pl.Series, windows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Each row's position among the earlier rows of the same (user, window)."""
    m = len(windows)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    codes = users.cast(pl.Categorical).to_physical().to_numpy()
    by = np.lexsort((codes, windows))  # by window, then user, then row (lexsort is stable)
    w, u = windows[by], codes[by]
    first = np.concatenate(([True], (w[1:] != w[:-1]) | (u[1:] != u[:-1])))
    positions = np.arange(m)
    start = np.maximum.accumulate(np.where(first, positions, 0))
    rank = np.empty(m, dtype=np.int64)
    rank[by] = positions - start
    return rank


def apply_budget(frame: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """``threshold`` and ``action`` for each row of ``frame``, in its order.

    Columns: ``event_time`` (datetime or epoch seconds), ``risk`` (float), ``established``
    (bool), ``floor_forced`` (bool), ``user`` (str); optional ``denied``, ``exempt`` and
    ``fails`` (bool, default false). Rows with equal event times keep their order.

    The walk of the module docstring, split where it can be: what a row adds to the sketch
    (its cap admission, bin and decayed weight) does not depend on any threshold, so it is
    computed for all rows at once; whether a failing row is taken back out depends only on its
    own period's threshold, known when the period starts. So the Python loop runs over refresh
    periods only (:func:`_levels`), merging each period's delta and reading the threshold from
    a sketch whose top-down tails are kept between periods; the actions are then columnar.
    Equal, float for float, to :func:`apply_budget_reference` (the engine's own sketch, row by
    row; tested).
    """
    sketch = _check(frame, settings)
    cfg, fallback = sketch.cfg, sketch.fallback
    n = frame.height
    seconds = _seconds(frame).to_numpy()
    order = np.argsort(seconds, kind="stable")  # stable: ties keep their order
    t = seconds[order]
    denied, exempt = _flag(frame, "denied", order), _flag(frame, "exempt", order)
    est, forced = _flag(frame, "established", order), _flag(frame, "floor_forced", order)
    risk_col = frame["risk"].cast(pl.Float64)
    if risk_col.null_count():
        raise ValueError("apply_budget: risk has nulls")
    risk = risk_col.to_numpy()[order]
    # 1. what each row adds to the sketch: established, not denied, within its user's cap
    # (UserCap: at most `cap` per user per aligned window; time order makes every window current)
    observed = est & ~denied
    obs_rows = np.flatnonzero(observed)
    cap = sketch.cap
    users = frame["user"].cast(pl.String).gather(pl.Series(order[obs_rows]))
    admitted = obs_rows[_rank_in_group(users, np.floor(t[obs_rows] / cap.window_s)) < cap.cap]
    ta = t[admitted]
    half_life_s = cfg.half_life_s
    # BudgetSketch.observe's arithmetic, element by element (IEEE: numpy's -, /, *, floor round
    # as Python's); 2.0 ** x in Python (numpy's power may take a vectorised, differently rounded path)
    era = np.floor((ta - LANDMARK) / (ERA_HALF_LIVES * half_life_s))
    exponent = np.clip((ta - LANDMARK) / half_life_s - era * ERA_HALF_LIVES, -_MAX_EXPONENT, _MAX_EXPONENT)
    weight = [2.0 ** x for x in exponent.tolist()]
    value = np.where(exempt[admitted] & ~forced[admitted], 0.0, risk[admitted])
    field = np.where(forced[admitted], BINS,
                     np.minimum(BINS - 1, np.maximum(0, np.floor(value * BINS + 1e-9).astype(np.int64))))
    # 2. refresh periods: a row whose period is later than the one before starts one
    period = np.floor(t / sketch.refresh_s)
    starts = np.flatnonzero(np.concatenate(([True], period[1:] > period[:-1]))) if n else np.zeros(0, np.int64)
    # the admitted rows of each period (their delta is merged when the next period starts)
    cut = np.searchsorted(admitted, starts).tolist()
    cut.append(len(admitted))
    start_t = t[starts]
    start_era = [math.floor(x) for x in ((start_t - LANDMARK) / (ERA_HALF_LIVES * half_life_s)).tolist()]
    # 3. which of them a failing challenge takes back out (retract): a forced row always (it is
    # challenged), an exempt one never (allowed), any other when its risk meets its period's threshold
    fails = _flag(frame, "fails", order)[admitted]
    retract = np.where(fails & forced[admitted], _ALWAYS,
                       np.where(fails & ~exempt[admitted], _IF_CHALLENGED, _NEVER)).tolist()
    level = _levels(cfg, fallback, cut, start_era, era.astype(np.int64).tolist(), field.tolist(), weight,
                    retract, risk[admitted].tolist())
    # 4. each row's threshold and action, columnar
    live = np.repeat(np.asarray(level, dtype=np.float64), np.diff(np.append(starts, n)))
    # a user the budget does not measure meets the fixed threshold exactly, on the scorer's risk
    # (the live engine's rule)
    thresholds = np.where(est, live, settings.policy.challenge_threshold)
    challenge = np.where(forced, True, np.where(exempt, False, risk >= thresholds))
    codes = np.where(denied, 2, challenge.astype(np.int8))
    out_thr = np.empty(n, dtype=np.float64)
    out_thr[order] = thresholds
    out_code = np.empty(n, dtype=np.int8)
    out_code[order] = codes
    return pl.DataFrame({"threshold": out_thr, "code": out_code}).select(
        "threshold", pl.col("code").replace_strict({0: "allow", 1: "challenge", 2: "deny"},
                                                   return_dtype=pl.String).alias("action"))


_NEVER, _ALWAYS, _IF_CHALLENGED = 0, 1, 2


def _levels(cfg: BudgetConfig, fallback: float, cut: list[int], start_era: list[int], eras: list[int],
            fields: list[int], weights: list[float], retract: list[int], risks: list[float]) -> list[float]:
    """The live threshold of each refresh period: period ``j`` starts by merging the
    observations ``cut[j-1]:cut[j]`` (``eras``/``fields``/``weights``; field ``BINS`` is the
    forced weight) — and the retractions among them (``retract``: never, always, or if the
    row's ``risks`` meets period ``j-1``'s threshold, i.e. the post-pass challenges it) — and
    reads the threshold of its era ``start_era[j]``.

    :class:`~riskengine.core.budget.MergedBins` (whose tails stay valid between periods above
    the highest bin a merge touched, so the many low-risk logins cost no re-walk) fed field
    by field instead of through key strings. Equal float for float to the row-by-row walk:
    each field gets the same additions in the same order (a period's delta sums each key in
    row order before it is merged, as ``BudgetSketch.observe``/``retract`` do), then its
    retraction twin — tested against :func:`apply_budget_reference`."""
    merged = MergedBins(cfg)
    low = walk_floor_bin(cfg)
    levels = [fallback] * len(start_era)
    current: int | None = None
    thr = fallback
    for j, now_era in enumerate(start_era):
        if j:
            lo, hi = cut[j - 1], cut[j]
            if hi == lo and now_era == current:
                levels[j] = thr  # nothing merged, same era: the same sketch gives the same threshold
                continue
            # the delta of period j-1; thr is still period j-1's threshold: what decided which of
            # its rows were challenged
            added: dict[tuple[int, int], float] = {}
            taken: dict[tuple[int, int], float] = {}
            counts: dict[int, float] = {}
            for k in range(lo, hi):
                key, w = (eras[k], fields[k]), weights[k]
                added[key] = added.get(key, 0.0) + w
                counts[eras[k]] = counts.get(eras[k], 0.0) + 1.0
                how = retract[k]
                if how and (how == _ALWAYS or risks[k] >= thr):
                    taken[key] = taken.get(key, 0.0) + w
            for (e, f), w in added.items():
                merged.era(e).put(f, w, False, low)
            for (e, f), w in taken.items():
                merged.era(e).put(f, w, True, low)
            for e, c in counts.items():
                merged.era(e).count += c
        current = now_era
        thr = merged.threshold(now_era, fallback)
        levels[j] = thr
    return levels


def apply_budget_reference(frame: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """The post-pass row by row, as first written (the engine's own sketch, one refresh and
    one observation at a time): the definition :func:`apply_budget` is tested against.

    Columns: ``event_time`` (datetime or epoch seconds), ``risk`` (float), ``established``
    (bool), ``floor_forced`` (bool), ``user`` (str); optional ``denied`` and ``exempt``
    (bool, default false). Rows with equal event times keep their order.
    """
    sketch = _check(frame, settings)
    seconds = _seconds(frame).to_list()
    n = frame.height
    false = [False] * n
    denied = frame["denied"].to_list() if "denied" in frame.columns else false
    exempt = frame["exempt"].to_list() if "exempt" in frame.columns else false
    fails = frame["fails"].to_list() if "fails" in frame.columns else false
    risk = frame["risk"].to_list()
    est = frame["established"].to_list()
    forced = frame["floor_forced"].to_list()
    users = frame["user"].cast(pl.String).to_list()
    order = sorted(range(n), key=seconds.__getitem__)  # stable: ties keep their order
    thresholds: list[float] = [0.0] * n
    actions: list[str] = [""] * n
    merged = MergedBins(sketch.cfg)
    cfg, fallback = sketch.cfg, sketch.fallback
    era: int | None = None
    # a user the budget does not measure meets the fixed threshold exactly, on the scorer's risk
    fixed = settings.policy.challenge_threshold
    for i in order:
        t = seconds[i]
        if sketch.due(t):
            delta = sketch.take_delta()
            now_era = era_of(t, cfg.half_life_s)
            if delta or now_era != era:  # else the same sketch gives the same threshold
                merged.add(delta)
                era = now_era
                sketch.set_threshold(merged.threshold(era, fallback), t)
            else:
                sketch.set_threshold(sketch.threshold, t)
        thr = sketch.threshold if est[i] else fixed
        thresholds[i] = thr
        if denied[i]:
            actions[i] = "deny"
            continue
        if forced[i]:
            actions[i] = "challenge"
        elif exempt[i]:
            actions[i] = "allow"
        else:
            actions[i] = "challenge" if risk[i] >= thr else "allow"
        if est[i]:
            counted = 0.0 if exempt[i] and not forced[i] else float(risk[i])
            if sketch.observe(users[i], counted, bool(forced[i]), t) and fails[i] and actions[i] == "challenge":
                sketch.retract(counted, bool(forced[i]), t)
    return pl.DataFrame({"threshold": thresholds, "action": actions},
                        schema={"threshold": pl.Float64, "action": pl.String})
