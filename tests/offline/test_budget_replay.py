"""The step-up budget in ``riskengine replay``: the scoring pass decides at the fixed threshold
and a deterministic post-pass applies the budget, so every worker count writes the same bytes
and, where what a login teaches does not depend on its action (every challenge verified), the
decisions are the live engine's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from riskengine.core.config import Settings
from riskengine.offline.parallel import replay_partitioned
from riskengine.offline.replay import replay, replay_to_file
from riskengine.offline.simulate import SimulationConfig, simulate
from riskengine.testing import live_decisions


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("budget-replay")
    simulate(out, SimulationConfig(users=150, days=14, seed=11, warmup_days=0), fmt="native", progress=False)
    return out


def _settings(sim: Path) -> Settings:
    # the population prior is computed differently in replay (a pre-pass over the input) than
    # online (accepted logins only): switched off so the live engine is the oracle
    return Settings().with_overrides(
        geo={"asn_db": str(sim / "asn.mmdb"), "rare_country_weight": 0.0}, audit={"key": "k" * 40},
        policy={"target_stepup_rate": 0.05, "budget_warmup_logins": 120, "budget_refresh_seconds": 3600.0})


def test_replay_with_a_budget_decides_as_the_live_engine(sim: Path) -> None:
    settings = _settings(sim)
    live = live_decisions(pl.read_parquet(sim / "events.parquet").iter_rows(named=True), settings)
    frame = replay(sim / "events.parquet", "native", outcomes="verified", config=settings, baseline=False)
    scored = frame.filter(pl.col("decision") != "")
    assert scored.height == len(live) > 600
    assert scored["decision"].to_list() == [r["action"] for r in live]
    assert scored["threshold"].to_list() == pytest.approx([r["threshold"] for r in live])
    assert scored["risk_score"].to_list() == pytest.approx([r["risk"] for r in live])
    # not trivial: the live threshold left the fixed one, and the budget changed decisions
    assert scored["threshold"].n_unique() > 1
    fixed = replay(sim / "events.parquet", "native", outcomes="verified", baseline=False,
                   config=settings.with_overrides(policy={"target_stepup_rate": 0.0}))
    assert "threshold" not in fixed.columns
    changed = (fixed.filter(pl.col("decision") != "")["decision"] != scored["decision"]).sum()
    assert changed > 0
    assert frame.columns == ["index", "decision", "risk_score", "reasons", "outcome", "baseline_score",
                             "threshold"]


def test_every_worker_count_writes_the_same_bytes_with_a_budget(sim: Path, tmp_path: Path) -> None:
    settings = _settings(sim)
    digests = {}
    serial = tmp_path / "serial.parquet"
    replay_to_file(sim / "events.parquet", "native", serial, outcomes="verified", config=settings)
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.parquet"
        stats, _ = replay_partitioned(sim / "events.parquet", "native", out, workers=workers, partitions=4,
                                      outcomes="verified", config=settings)
        digests[workers] = hashlib.sha256(out.read_bytes()).hexdigest()
        assert stats.challenges == pl.read_parquet(out)["decision"].to_list().count("challenge")
    assert digests[1] == digests[2]
    a, b = pl.read_parquet(serial), pl.read_parquet(tmp_path / "w1.parquet")
    assert a.equals(b)
