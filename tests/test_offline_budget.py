"""``apply_budget`` (riskengine.offline.budget): the budget as a replay post-pass equals the
live engine on a single-process memory-store run where learning does not depend on the
action (every challenge verified)."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

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
