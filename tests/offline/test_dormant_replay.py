"""``DORMANT_ACCOUNT`` in ``riskengine replay``: the store's history start is cross-user state (the
input's first login), handed to every partition by the pre-pass (``_hst``), so replay decides as
the live engine does and every worker count writes the same bytes."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from riskengine.core.config import Settings
from riskengine.offline.parallel import replay_partitioned
from riskengine.offline.replay import replay
from riskengine.offline.simulate import SimulationConfig, simulate
from riskengine.testing import live_decisions


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 days of a small service, plus two accounts of the existing population whose first
    login is on day 34 (copies of real logins of that day, under other user ids): dormant for
    the engine by then. Accounts created in the window sign up first, so they are not."""
    out = tmp_path_factory.mktemp("dormant-replay")
    simulate(out, SimulationConfig(users=50, days=36, seed=23, warmup_days=0), fmt="native", progress=False)
    events = pl.read_parquet(out / "events.parquet")
    start = events["event_time"].min()
    late = events.filter((pl.col("kind") == "login") & (pl.col("event_time") > start + timedelta(days=34)))
    sleepers = late.head(3).with_columns(
        pl.Series("user_id", ["sleeper-1", "sleeper-1", "sleeper-2"]),
        (pl.int_range(3) + events["event_id"].max() + 1).cast(pl.Int64).alias("event_id"))
    pl.concat([events, sleepers]).sort("event_time", maintain_order=True).write_parquet(out / "events.parquet")
    return out


def _settings(sim: Path) -> Settings:
    # the population prior is the input's in replay and the accepted logins' online: switched
    # off so the live engine is the oracle (as in test_budget_replay)
    return Settings().with_overrides(geo={"asn_db": str(sim / "asn.mmdb"), "rare_country_weight": 0.0},
                                     audit={"key": "k" * 40}, policy={"target_stepup_rate": 0.0})


def test_replay_marks_dormant_accounts_as_the_live_engine_does(sim: Path) -> None:
    settings = _settings(sim)
    live = live_decisions(pl.read_parquet(sim / "events.parquet").iter_rows(named=True), settings)
    frame = replay(sim / "events.parquet", "native", outcomes="verified", config=settings, baseline=False)
    scored = frame.filter(pl.col("decision") != "")
    assert scored.height == len(live)
    assert scored["decision"].to_list() == [r["action"] for r in live]
    assert scored["risk_score"].to_list() == pytest.approx([r["risk"] for r in live])
    replayed = [list(r) for r in scored["reasons"].to_list()]
    assert replayed == [list(r["reasons"]) for r in live]
    history = pl.col("kind").is_in(["login", "signup"])
    events = pl.read_parquet(sim / "events.parquet").with_columns(
        first=pl.col("event_time").filter(history).min().over("user_id"),
        start=pl.col("event_time").filter(pl.col("kind") == "login").min())
    flagged = frame.join(events.rename({"event_id": "index"}), on="index").filter(
        pl.col("reasons").list.contains("DORMANT_ACCOUNT"))
    assert {"sleeper-1", "sleeper-2"} <= set(flagged["user_id"].to_list())
    # only an account's first login or signup (a failed password is no history), at least 30
    # days into the input
    assert (flagged["event_time"] == flagged["first"]).all()
    assert (flagged["event_time"] - flagged["start"] >= timedelta(days=30)).all()
    # the verified owner of sleeper-1 is known at their second login
    assert flagged.filter(pl.col("user_id") == "sleeper-1").height == 1


def test_every_worker_count_writes_the_same_bytes_with_dormant_accounts(sim: Path, tmp_path: Path) -> None:
    settings = _settings(sim)
    digests = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.parquet"
        replay_partitioned(sim / "events.parquet", "native", out, workers=workers, partitions=4,
                           outcomes="verified", config=settings, batch_rows=500)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
        assert any("DORMANT_ACCOUNT" in list(r) for r in pl.read_parquet(out)["reasons"].to_list())
    assert digests[0] == digests[1]
