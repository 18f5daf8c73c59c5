"""``apply_budget`` (riskengine.offline.budget): the budget as a replay post-pass equals the
live engine on a single-process memory-store run where learning does not depend on the
action (every challenge verified)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from riskengine.core.budget import BINS, ERA_HALF_LIVES, LANDMARK
from riskengine.core.config import Settings
from riskengine.offline.budget import apply_budget, apply_budget_reference, floor_forced
from riskengine.offline.simulate import SimulationConfig, simulate
from riskengine.testing import live_decisions


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, SimulationConfig(users=350, days=21, seed=7, warmup_days=0), fmt="native", progress=False)
    return out


def _run(sim: Path, settings: Settings) -> list[dict[str, Any]]:
    """Every login of the simulation through one engine, challenges verified: audit rows."""
    return live_decisions(pl.read_parquet(sim / "events.parquet").iter_rows(named=True), settings)


def test_post_pass_equals_the_live_engine(sim: Path) -> None:
    base = Settings().with_overrides(geo={"asn_db": str(sim / "asn.mmdb")}, audit={"key": "a" * 40})
    budget = base.with_overrides(policy={"target_stepup_rate": 0.05, "budget_warmup_logins": 300,
                                         "budget_refresh_seconds": 3600.0})
    fixed_rows = _run(sim, base)
    live_rows = _run(sim, budget)
    assert len(fixed_rows) == len(live_rows) > 2000
    strong = set(budget.policy.strong_signals)
    frame = pl.DataFrame({
        "event_time": [r["event_time"] for r in fixed_rows],
        "risk": [r["risk"] for r in fixed_rows],
        "established": [r["user_logins"] >= budget.policy.budget_established_logins for r in fixed_rows],
        "floor_forced": [floor_forced(r["reasons"], budget) for r in fixed_rows],
        "user": [r["user_key"] for r in fixed_rows],
        "denied": [r["action"] == "deny" for r in fixed_rows],
        "exempt": [bool(r["trusted_device"]) and not strong & set(r["reasons"]) for r in fixed_rows],
    })
    got = apply_budget(frame, budget)
    live = [(r["threshold"], r["action"]) for r in live_rows]
    assert list(zip(got["threshold"].to_list(), got["action"].to_list(), strict=True)) == live
    # the run is not trivial: the live threshold moved off the fixed one, both ways of deciding
    assert len({t for t, _ in live}) > 1
    assert {a for _, a in live} >= {"allow", "challenge"}


def test_bad_frames_name_the_problem() -> None:
    on = Settings().with_overrides(policy={"target_stepup_rate": 0.02})
    with pytest.raises(ValueError, match="missing column.*floor_forced"):
        apply_budget(pl.DataFrame({"event_time": [1.0], "risk": [0.1], "established": [True], "user": ["u"]}), on)
    full = pl.DataFrame({"event_time": [1.0], "risk": [0.1], "established": [True], "floor_forced": [False],
                         "user": ["u"]})
    with pytest.raises(ValueError, match="target_stepup_rate"):
        apply_budget(full, Settings().with_overrides(policy={"target_stepup_rate": 0.0}))


def test_a_user_the_budget_does_not_measure_gets_at_most_the_fixed_threshold() -> None:
    """The sketch holds established users' risks only; a user with fewer logins (a new
    account: the takeover of one is a domestic takeover like any other) is challenged at the
    lower of the live threshold and the fixed ``challenge_threshold``."""
    settings = Settings().with_overrides(policy={"target_stepup_rate": 0.02, "budget_warmup_logins": 10,
                                                 "budget_refresh_seconds": 10.0})
    n = 400
    # established users at high risk push the live threshold up to the clamp (0.5) …
    rows: dict[str, list[Any]] = {"event_time": [float(i) for i in range(n)], "risk": [0.48] * n,
                                  "established": [True] * n, "floor_forced": [False] * n,
                                  "user": [f"u{i}" for i in range(n)]}
    # … then the same risk from one established and one new user
    for key, value in (("event_time", [n + 20.0, n + 21.0]), ("risk", [0.45, 0.45]),
                       ("established", [True, False]), ("floor_forced", [False, False]),
                       ("user", ["old", "new"])):
        rows[key] += value
    got = apply_budget(pl.DataFrame(rows), settings)
    fixed = settings.policy.challenge_threshold
    assert got["threshold"][-2] > 0.45 and got["action"][-2] == "allow"
    assert got["threshold"][-1] == fixed and got["action"][-1] == "challenge"


def test_with_a_model_the_post_pass_threshold_rises_above_the_rules_clamp_for_everyone() -> None:
    """With ``policy.model`` the live threshold is on the blended risk (up to
    ``budget_threshold_top()``); the clamp's top and the fixed threshold hold on the rules'
    risk, which the scoring pass hands over as ``floor_forced``. A user the budget does not
    measure meets the fixed threshold on the blend, as without a model."""
    settings = Settings().with_overrides(policy={"target_stepup_rate": 0.02, "budget_warmup_logins": 10,
                                                 "budget_refresh_seconds": 10.0, "model": "model-dir"})
    top = settings.policy.budget_threshold_top()
    assert top > settings.policy.budget_max_threshold
    n = 400
    # 1 % of established logins at 0.7, the rest at 0.3: the blend's 2 % point is 0.7
    rows: dict[str, list[Any]] = {"event_time": [float(i) for i in range(n)],
                                  "risk": [0.7 if i % 100 == 0 else 0.3 for i in range(n)],
                                  "established": [True] * n, "floor_forced": [False] * n,
                                  "user": [f"u{i}" for i in range(n)]}
    # the same blended risk from an established user, a new one, and an established one whose
    # rules alone reached the clamp's top (forced in the scoring pass)
    for key, value in (("event_time", [n + 20.0, n + 21.0, n + 22.0]), ("risk", [0.6, 0.6, 0.6]),
                       ("established", [True, False, True]), ("floor_forced", [False, False, True]),
                       ("user", ["old", "new", "old2"])):
        rows[key] += value
    got = apply_budget(pl.DataFrame(rows), settings)
    assert got["threshold"][-3] == got["threshold"][-1] == 0.7  # the blend's quantile, over the rules' 0.5
    assert got["action"][-3] == "allow" and got["action"][-1] == "challenge"
    assert got["threshold"][-2] == settings.policy.challenge_threshold and got["action"][-2] == "challenge"
    # a flood higher still: the threshold stops at the top, where only forced logins step up
    rows["risk"][:n] = [0.9] * n
    assert apply_budget(pl.DataFrame(rows), settings)["threshold"][-1] == top


def test_the_post_pass_retracts_challenges_that_fail() -> None:
    """A row the post-pass challenges whose challenge would fail (``fails``: a takeover under
    ``--outcomes labels``) is taken back out of the sketch, as the live engine's
    ``record_outcome`` takes it out: the legitimate rows meet exactly the thresholds they meet
    without the attacks. Rows share a time per half-life, so every weight is a power of two
    and the sums are exact."""
    settings = Settings().with_overrides(policy={"target_stepup_rate": 0.05, "budget_warmup_logins": 0,
                                                 "budget_refresh_seconds": 60.0, "budget_user_cap": 10**6})
    half_life = settings.policy.budget_half_life_hours * 3600.0
    rng = np.random.default_rng(17)
    rows: dict[str, list[Any]] = {"event_time": [], "risk": [], "established": [], "floor_forced": [],
                                  "user": [], "attack": []}
    t0 = 1_767_225_600.0 - 1_767_225_600.0 % half_life
    for step in range(20):
        for k in range(52):
            attack = k >= 50
            rows["event_time"].append(t0 + step * half_life)
            rows["risk"].append(0.6 if attack else float(np.round(rng.beta(2, 9), 4)))
            rows["established"].append(True)
            rows["floor_forced"].append(attack and step % 2 == 0)
            rows["user"].append(f"{'a' if attack else 'u'}{step}-{k}")
            rows["attack"].append(attack)
    frame = pl.DataFrame(rows)
    legit = frame.filter(~pl.col("attack")).drop("attack")
    alone = apply_budget(legit, settings)
    retracted = apply_budget(frame.with_columns(pl.col("attack").alias("fails")).drop("attack"), settings)
    kept = apply_budget(frame.drop("attack"), settings)
    mask = ~frame["attack"]
    assert retracted.filter(mask)["threshold"].to_list() == alone["threshold"].to_list()
    assert retracted.filter(~mask)["action"].unique().to_list() == ["challenge"]
    assert kept.filter(mask)["threshold"].sum() > alone["threshold"].sum()  # unretracted, they lift it


@pytest.mark.parametrize("seed", range(16))
def test_the_columnar_post_pass_equals_the_row_by_row_walk(seed: int) -> None:
    """``apply_budget`` (columnar, one loop over refresh periods, tails kept between them)
    against ``apply_budget_reference`` (the engine's own sketch, row by row), float for float:
    ties in event time, rows out of time order, several logins per period and per bin, user
    caps that bind, an era boundary inside the input, forced/exempt/denied/new users, failing
    challenges retracted, a warm-up, clamps on both sides of the quantile, with and without a
    model."""
    rng = np.random.default_rng(seed)
    n = 0 if seed == 0 else int(rng.integers(1, 4000))
    hl_hours = 24.0 * float(rng.choice([1, 2, 3]))
    boundary = LANDMARK + ERA_HALF_LIVES * hl_hours * 3600.0  # the start of era 1
    span = float(rng.choice([600.0, 86_400.0, 20 * 86_400.0]))
    step = float(rng.choice([0.001, 1.0, 7.0]))
    times = boundary - span / 2 + np.round(rng.uniform(0, span, n) / step) * step  # ties when coarse
    risk = np.where(rng.random(n) < 0.2, rng.integers(0, BINS + 1, n) / BINS, rng.beta(1.5, 4, n))
    lo, hi = float(rng.choice([0.0, 0.1, 0.25])), float(rng.choice([0.5, 0.95]))
    settings = Settings().with_overrides(policy={
        "target_stepup_rate": float(rng.choice([0.01, 0.05, 0.3])), "budget_min_threshold": lo,
        "budget_max_threshold": hi, "deny_threshold": 0.95, "budget_warmup_logins": int(rng.integers(0, 60)),
        "budget_half_life_hours": hl_hours, "budget_refresh_seconds": float(rng.choice([1.0, 10.0, 3600.0])),
        "budget_user_cap": int(rng.integers(1, 4)),
        "budget_user_window_seconds": float(rng.choice([5.0, 60.0, 3600.0])),
        **({"model": "model-dir"} if seed % 3 == 1 else {})})  # with a model: no min() for new users
    frame = pl.DataFrame({
        "event_time": times, "risk": risk, "established": rng.random(n) < 0.8,
        "floor_forced": rng.random(n) < 0.03, "user": [f"u{k}" for k in rng.integers(0, 1 + n // 20, n)],
        "denied": rng.random(n) < 0.02, "exempt": rng.random(n) < 0.1, "fails": rng.random(n) < 0.15,
    }, schema={"event_time": pl.Float64, "risk": pl.Float64, "established": pl.Boolean,
               "floor_forced": pl.Boolean, "user": pl.String, "denied": pl.Boolean, "exempt": pl.Boolean,
               "fails": pl.Boolean})
    got = apply_budget(frame, settings)
    want = apply_budget_reference(frame, settings)
    assert got.schema == want.schema
    assert got["threshold"].to_list() == want["threshold"].to_list()
    assert got["action"].to_list() == want["action"].to_list()
    if n > 1000 and lo == 0.0 and hi == 0.95:  # not a trivial run: the live threshold moved
        assert got["threshold"].n_unique() > 3


def test_the_columnar_post_pass_takes_datetimes_and_names_null_risks() -> None:
    settings = Settings().with_overrides(policy={"target_stepup_rate": 0.05, "budget_warmup_logins": 2})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame({"event_time": [start + timedelta(seconds=37 * k) for k in range(50)],
                          "risk": [(k % 10) / 10 for k in range(50)], "established": [True] * 50,
                          "floor_forced": [False] * 50, "user": [f"u{k % 7}" for k in range(50)]})
    assert apply_budget(frame, settings).equals(apply_budget_reference(frame, settings))
    with pytest.raises(ValueError, match="risk has nulls"):
        apply_budget(frame.with_columns(pl.lit(None, pl.Float64).alias("risk")), settings)
