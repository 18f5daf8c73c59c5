"""riskengine demo --headless on a tiny population: the whole pipeline, then reuse."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from riskengine.apps.cli import main


@pytest.mark.slow
def test_demo_headless_runs_end_to_end_and_reuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--headless", "--users", "150", "--days", "14", "--out", str(tmp_path)]
    assert main(args) == 0
    first = capsys.readouterr().out
    for text in ("challenge rate", "challenge success rate", "fallback rate", "Experiment signup_2fa",
                 "freeman2016", "riskengine"):
        assert text in first
    # the demo prints the library's numbers: the same as `riskengine report` on its audit root
    from riskengine.analytics import AuditDB

    kpis = AuditDB(tmp_path / "audit").kpis()
    assert f"{kpis['logins']:,}" in first
    assert f"({kpis['challenged']:,} challenged + {kpis['denied']:,} denied)" in first
    decisions = pl.read_parquet(tmp_path / "decisions.parquet")
    audit = pl.read_parquet(tmp_path / "audit" / "decisions", hive_partitioning=True)
    assert audit.height == (decisions["decision"] != "").sum()
    assert (tmp_path / "tradeoff.png").exists()
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "reusing the simulation" in second and "reusing the replay" in second
    # reuse leaves the audit log as it was (no double-scoring)
    again = pl.read_parquet(tmp_path / "audit" / "decisions", hive_partitioning=True)
    assert again.height == audit.height
