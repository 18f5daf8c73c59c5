"""AuditDB.budget_series: the threshold each decision used and the realised established
step-up rate, per bucket, from an audit root the real Engine wrote with a budget on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from riskengine import Engine
from riskengine.analytics import AuditDB
from riskengine.audit.parquet import ParquetSink
from riskengine.testing import FIREFOX_MAC, T0, make_attempt, offline_settings


def test_budget_series_matches_the_decisions_written(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    settings = offline_settings(policy={"target_stepup_rate": 0.1, "budget_warmup_logins": 30,
                                        "budget_refresh_seconds": 600.0,
                                        "budget_max_threshold": 0.55})
    sink = ParquetSink(root, flush_seconds=60.0)
    with Engine(settings, sink=sink) as engine:
        for day in range(10):
            for u in range(8):
                ts = T0 + timedelta(days=day, minutes=u)
                # every third user on day 8+ logs in from a new device: some established step-ups
                ua = FIREFOX_MAC if day >= 8 and u % 3 == 0 else None
                engine.score(make_attempt(f"u{u}", ts, **({"ua": ua} if ua else {})))
    db = AuditDB(root)
    series = db.budget_series(grain="day")
    raw = pl.read_parquet(root / "decisions", hive_partitioning=True)
    assert series.height == 10
    assert series["logins"].sum() == raw.height == 80
    # the warm-up days used the fixed threshold, later days the clamped live one
    assert series["threshold"][0] == pytest.approx(0.4)
    assert series["threshold_max"][-1] == 0.55
    est = raw.filter(pl.col("user_logins") >= 5)
    assert series["established"].sum() == est.height
    assert series["established_challenged"].sum() == est.filter(pl.col("action") == "challenge").height
    assert series["established_challenged"][8] > 0  # new devices at risk 0.55 >= 0.55
    day8 = series.row(8, named=True)
    assert day8["established_stepup_rate"] == day8["established_challenged"] / day8["established"]
    db.close()
