"""``apply_budget`` (riskengine.offline.budget): the budget as a replay post-pass equals the
live engine on a single-process memory-store run where learning does not depend on the
action (every challenge verified)."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from riskengine import Engine, LoginAttempt
from riskengine.audit.base import MemorySink
from riskengine.core.config import Settings
from riskengine.offline.budget import apply_budget, floor_forced
from riskengine.offline.simulate import SimulationConfig, simulate


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, SimulationConfig(users=350, days=21, seed=7, warmup_days=0), fmt="native", progress=False)
    return out


def _run(sim: Path, settings: Settings) -> list[dict[str, Any]]:
    """Every login of the simulation through one engine, challenges verified: audit rows."""
    events = pl.read_parquet(sim / "events.parquet")
    sink = MemorySink()
    with Engine(settings, sink=sink) as engine:
        for row in events.iter_rows(named=True):
            ts = row["event_time"].astimezone(UTC)
            if row["kind"] == "failed_password":
                engine.record_failure(row["user_id"], row["ip"], ts)
                continue
            if row["kind"] != "login":
                continue
            d = engine.score(LoginAttempt(
                user_id=row["user_id"], timestamp=ts, ip=row["ip"], user_agent=row["user_agent"],
                device_id=row["device_id"], session_id=row["session_id"],
                enrolled_factors=tuple(row["enrolled_factors"])))
            if d.action == "challenge":
                engine.record_outcome(d.decision_id, "verified", [d.factor] if d.factor else [],
                                      timestamp=ts + timedelta(seconds=30))
        engine.flush()
    return sink.rows("decisions")


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
