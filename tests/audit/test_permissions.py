"""What the audit log creates is private (0600 files, 0700 folders) whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from riskengine.analytics.rollups import build_rollups
from riskengine.audit.layout import maintenance_lock
from riskengine.audit.parquet import ParquetSink
from riskengine.core.engine import Engine
from riskengine.ops.maintenance import compact, retain
from riskengine.testing import make_attempt, offline_settings


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: anything left to the umask would come out 0666/0777."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def row(i: int, when: datetime) -> dict[str, object]:
    return {"event_time": when, "schema_version": 1, "experiment": "e", "user_key": f"u{i}"}


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}


def test_segments_and_partition_folders_are_private(tmp_path: Path, open_umask: None) -> None:
    root = tmp_path / "audit"
    for month in (1, 1, 2):
        with ParquetSink(root) as sink:
            sink.emit("conversions", row(month, datetime(2026, month, 5, tzinfo=UTC)))
    found = modes(root)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert sum(name.endswith(".parquet") for name in found) == 3
    for name, mode in found.items():
        expected = 0o700 if (root / name).is_dir() else 0o600
        assert mode == expected, f"{name} is {mode:04o}"


def test_an_existing_root_keeps_its_owners_mode(tmp_path: Path, open_umask: None) -> None:
    root = tmp_path / "audit"
    root.mkdir(mode=0o750)
    os.chmod(root, 0o750)
    with ParquetSink(root) as sink:
        sink.emit("conversions", row(1, datetime(2026, 1, 5, tzinfo=UTC)))
    assert stat.S_IMODE(root.stat().st_mode) == 0o750  # the operator's choice
    assert stat.S_IMODE((root / "conversions").stat().st_mode) == 0o700  # ours


def test_compaction_and_retention_output_is_private(tmp_path: Path, open_umask: None) -> None:
    root = tmp_path / "audit"
    for month in (1, 1, 1, 3):
        with ParquetSink(root) as sink:
            sink.emit("conversions", row(month, datetime(2020, month, 5, tzinfo=UTC)))
    with Engine(offline_settings(audit={"root": str(root), "key": "k" * 32})) as engine:
        engine.score(make_attempt("alice", datetime(2020, 1, 6, 9, tzinfo=UTC)))  # a month to roll up
    res = compact(root)
    with maintenance_lock(root):  # and the rollups of closed months, as `audit compact` builds them
        built = build_rollups(root, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert res.files_out == 1 and built.built
    merged = root / res.merged[0]
    assert stat.S_IMODE(merged.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "_meta").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "_meta" / "maintenance.lock").stat().st_mode) == 0o600
    retain(root, "1y", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert stat.S_IMODE((root / "_meta" / "trash").stat().st_mode) == 0o700
    for name, mode in modes(root).items():
        assert mode & 0o077 == 0, f"{name} is {mode:04o}"
