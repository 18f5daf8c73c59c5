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
   (for a user who is not established, the lower of the threshold and the fixed
   ``challenge_threshold``: the budget measures established users only);
3. an established, not denied row enters the delta (the per-user cap applies): forced rows
   as "stepped up whatever their risk", exempt rows at risk 0;
4. a row it challenges whose challenge would not verify (``fails``: what the replay's
   outcome mode says of this login, e.g. a takeover under ``--outcomes labels``) is taken
   back out at once, as the live engine's ``record_outcome`` retracts it.

This equals the live engine's decisions on a single-process memory-store run whenever what a
login teaches does not depend on its action (``--outcomes verified``: every challenge passes).
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from riskengine.core.budget import MergedBins, era_of
from riskengine.core.config import Settings
from riskengine.core.engine.state import budget_sketch

REQUIRED = ("event_time", "risk", "established", "floor_forced", "user")


def floor_forced(reasons: Iterable[str], settings: Settings) -> bool:
    """Whether a budget floor signal is among a decision's reason codes."""
    floor = set(settings.policy.budget_floor_signals)
    return any(code in floor for code in reasons)


def apply_budget(frame: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """``threshold`` and ``action`` for each row of ``frame``, in its order.

    Columns: ``event_time`` (datetime or epoch seconds), ``risk`` (float), ``established``
    (bool), ``floor_forced`` (bool), ``user`` (str); optional ``denied`` and ``exempt``
    (bool, default false). Rows with equal event times keep their order.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"apply_budget: missing column(s) {', '.join(missing)} (needs {', '.join(REQUIRED)})")
    sketch = budget_sketch(settings)
    if sketch is None:
        raise ValueError("apply_budget: [policy] target_stepup_rate is not set (a fixed policy needs no post-pass)")
    times = frame["event_time"]
    if times.dtype.is_temporal():
        seconds = (times.dt.epoch("us").cast(pl.Float64) / 1e6).to_list()
    else:
        seconds = times.cast(pl.Float64).to_list()
    if any(t is None for t in seconds):
        raise ValueError("apply_budget: event_time has nulls")
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
        thr = sketch.threshold if est[i] else min(sketch.threshold, fixed)
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
