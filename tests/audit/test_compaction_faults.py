"""Compaction never shows a row twice and never loses one, checked deterministically: a test
seam (``compact(_after_step=...)``) reads the layout after every step of a merge, and stops
the compactor there as a crash would; the next run must repair the partition."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from riskengine.analytics import AuditDB
from riskengine.audit.layout import partitions, segment_files
from riskengine.audit.parquet import ParquetSink
from riskengine.ops.maintenance import compact

SEGMENTS, PER = 4, 25
N = SEGMENTS * PER + 10  # plus one lone segment in February, which compaction leaves alone
STEPS = ["merged", *(f"hidden:{i}" for i in range(SEGMENTS)), "published",
         *(f"deleted:{i}" for i in range(SEGMENTS))]


class Crash(Exception):
    """The compactor 'dies' here."""


def build(root: Path) -> None:
    i = 0
    for month, n_segments, per in ((1, SEGMENTS, PER), (2, 1, 10)):
        for _ in range(n_segments):
            with ParquetSink(root) as sink:
                for _ in range(per):
                    sink.emit("conversions", {"event_time": datetime(2026, month, 5, tzinfo=UTC),
                                              "schema_version": 1, "experiment": "e", "user_key": f"u{i}"})
                    i += 1
    assert i == N


def count(files: list[str]) -> tuple[int, int]:
    """(rows, distinct keys) of these files, as DuckDB reads them."""
    if not files:
        return 0, 0
    n, distinct = duckdb.connect().execute(
        "SELECT count(*), count(DISTINCT user_key) FROM read_parquet(?, hive_partitioning=true)",
        [files]).fetchall()[0]
    return int(n), int(distinct)


def exact_reader(root: Path) -> tuple[int, int]:
    return count([str(p) for _, _, folder in partitions(root, "conversions") for p in segment_files(folder)])


def glob_reader(root: Path) -> tuple[int, int]:
    return count([str(p) for p in root.glob("conversions/**/*.parquet")])


def audit_db_reader(root: Path) -> tuple[int, int]:
    db = AuditDB(root)
    try:
        frame = db.events(table="conversions", limit=10 * N)
    finally:
        db.close()
    return frame.height, frame["user_key"].n_unique()


def test_every_step_shows_each_row_exactly_once(tmp_path: Path) -> None:
    build(tmp_path)
    seen: list[str] = []

    def check(step: str, folder: Path) -> None:
        seen.append(step)
        assert exact_reader(tmp_path) == (N, N), step
        assert audit_db_reader(tmp_path) == (N, N), step
        n, distinct = glob_reader(tmp_path)
        assert n == distinct, f"a plain glob saw {n - distinct} rows twice after {step}"  # never twice

    res = compact(tmp_path, _after_step=check)
    assert seen == STEPS  # the seam covers every step of the merge
    assert (res.files_in, res.files_out) == (SEGMENTS, 1)
    assert exact_reader(tmp_path) == glob_reader(tmp_path) == (N, N)


@pytest.mark.parametrize("crash_after", STEPS)
def test_a_crash_after_any_step_is_repaired_by_the_next_run(crash_after: str, tmp_path: Path) -> None:
    build(tmp_path)

    def crash(step: str, folder: Path) -> None:
        if step == crash_after:
            raise Crash(step)

    with pytest.raises(Crash):
        compact(tmp_path, _after_step=crash)
    assert exact_reader(tmp_path) == (N, N)  # the dead compactor's layout
    assert audit_db_reader(tmp_path) == (N, N)
    n, distinct = glob_reader(tmp_path)
    assert n == distinct

    res = compact(tmp_path)  # the next run repairs, then compacts
    assert exact_reader(tmp_path) == glob_reader(tmp_path) == audit_db_reader(tmp_path) == (N, N)
    assert res.recovered == (0 if crash_after == STEPS[-1] else 1)
    assert not [p.name for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no hidden leftovers
    assert len(list(tmp_path.glob("conversions/year=2026/month=01/*.parquet"))) == 1
