"""`riskengine audit compact|retain` through the real CLI entry point."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from riskengine.apps.cli import main
from riskengine.audit.parquet import ParquetSink


def _segment(root: Path, when: datetime) -> None:
    with ParquetSink(root) as sink:
        sink.emit("conversions", {"event_time": when, "schema_version": 1, "experiment": "e", "user_key": "k"})


def test_compact_and_retain_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        _segment(tmp_path, datetime(2026, 1, 5, tzinfo=UTC))
    _segment(tmp_path, datetime(2001, 1, 5, tzinfo=UTC))
    assert main(["audit", "compact", "--root", str(tmp_path)]) == 0
    assert "3 segments -> 1" in capsys.readouterr().out
    assert len(list(tmp_path.glob("conversions/year=2026/*/*.parquet"))) == 1
    assert main(["audit", "retain", "--root", str(tmp_path), "--older-than", "18m"]) == 0
    out = capsys.readouterr().out
    assert "dropped 1 partitions" in out and "conversions/year=2001/month=01" in out
    assert not (tmp_path / "conversions" / "year=2001").exists()


def test_bad_arguments_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "retain", "--root", str(tmp_path), "--older-than", "4 weeks"]) == 2
    assert "not like 4y, 18m or 90d" in capsys.readouterr().err
    assert main(["audit", "compact", "--root", str(tmp_path / "missing")]) == 1  # runtime error
    assert "is not a folder" in capsys.readouterr().err


def test_retention_default_comes_from_config(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    recent = datetime.now(UTC)
    _segment(tmp_path, datetime(2020, 1, 5, tzinfo=UTC))
    _segment(tmp_path, recent)
    monkeypatch.delenv("RISKENGINE_AUDIT_RETENTION_YEARS", raising=False)
    cfg = tmp_path / "r.toml"
    cfg.write_text("[audit]\nretention_years = 100\n")
    assert main(["audit", "retain", "--root", str(tmp_path), "--config", str(cfg)]) == 0
    assert "dropped 0 partitions" in capsys.readouterr().out
    monkeypatch.setenv("RISKENGINE_AUDIT_RETENTION_YEARS", "1")  # env overrides the file
    assert main(["audit", "retain", "--root", str(tmp_path), "--config", str(cfg)]) == 0
    assert "conversions/year=2020/month=01" in capsys.readouterr().out
    assert (tmp_path / "conversions" / f"year={recent.year}").exists()
