"""Compaction and retention: rows preserved, old months gone, readers never see duplicates,
safe while a writer is writing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from riskengine.audit.layout import partitions, segment_files
from riskengine.audit.parquet import ParquetSink
from riskengine.ops.maintenance import compact, cutoff_for, parse_age, retain


def row(i: int, when: datetime) -> dict[str, object]:
    return {"event_time": when, "schema_version": 1, "experiment": "e", "user_key": f"u{i}"}


def counts(root: Path) -> tuple[int, int]:
    """(rows, distinct keys) as a reader sees them."""
    rel = duckdb.connect().sql(f"SELECT count(*), count(DISTINCT user_key) FROM "
                     f"read_parquet('{root}/conversions/**/*.parquet', hive_partitioning=true)")
    n, distinct = rel.fetchall()[0]
    return int(n), int(distinct)


def segments(root: Path) -> list[Path]:
    return sorted(root.glob("conversions/*/*/*.parquet"))


def write_segments(root: Path, when: datetime, n_segments: int, per: int, start: int = 0) -> int:
    i = start
    for _ in range(n_segments):
        with ParquetSink(root) as sink:
            for _ in range(per):
                sink.emit("conversions", row(i, when))
                i += 1
    return i


def test_compaction_merges_and_preserves_rows(tmp_path: Path) -> None:
    n = write_segments(tmp_path, datetime(2026, 1, 5, tzinfo=UTC), 6, 100)
    n = write_segments(tmp_path, datetime(2026, 2, 5, tzinfo=UTC), 1, 100, start=n)
    assert len(segments(tmp_path)) == 7
    res = compact(tmp_path)
    assert (res.partitions, res.files_in, res.files_out, res.rows) == (1, 6, 1, 600)
    assert len(segments(tmp_path)) == 2  # January merged, February's single segment left alone
    assert counts(tmp_path) == (n, n)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert compact(tmp_path).partitions == 0  # nothing left to do


def test_compaction_while_a_writer_writes_never_duplicates_or_loses(tmp_path: Path) -> None:
    when = datetime(2026, 3, 2, tzinfo=UTC)
    write_segments(tmp_path, when, 3, 50)
    sink = ParquetSink(tmp_path, flush_seconds=0.01, flush_rows=200)
    stop = threading.Event()
    written = [150]
    problems: list[str] = []

    def writer() -> None:
        i = 150
        while not stop.is_set():
            for _ in range(50):
                sink.emit("conversions", row(i, when))
                i += 1
            written[0] = i
            time.sleep(0.002)

    retries = [0]
    reads = [0]

    def reader() -> None:
        # the exact listing (what AuditDB reads): never a row twice, and never fewer rows than a
        # read before it (the writer only adds). Only a file deleted between listing and reading
        # is retried, as AuditDB does; any other error is a problem, never skipped
        floor = 150
        while not stop.is_set():
            files = [str(p) for _, _, f in partitions(tmp_path, "conversions") for p in segment_files(f)]
            try:
                n, distinct = duckdb.connect().execute(
                    "SELECT count(*), count(DISTINCT user_key) FROM read_parquet(?)", [files]).fetchall()[0]
            except duckdb.Error as exc:
                vanished = ("No such file", "No files found that match")  # as AuditDB's _vanished
                if isinstance(exc, duckdb.IOException) and any(v in str(exc) for v in vanished):
                    retries[0] += 1
                    continue
                problems.append(f"reader failed: {type(exc).__name__}: {exc}")
                return
            reads[0] += 1
            if n != distinct:
                problems.append(f"reader saw {n - distinct} duplicate rows")
            if n < floor:
                problems.append(f"reader saw {n} rows after having seen {floor}")
            floor = max(floor, n)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        for _ in range(8):
            time.sleep(0.05)
            compact(tmp_path)
    finally:
        stop.set()
        for t in threads:
            t.join()
        sink.close()
    compact(tmp_path)
    assert problems == []
    assert reads[0] > retries[0]  # the reader mostly read, it did not just retry
    assert sink.dropped == 0
    assert counts(tmp_path) == (written[0], written[0])
    assert len(segments(tmp_path)) == 1


def test_interrupted_compaction_is_finished_by_the_next_run(tmp_path: Path) -> None:
    write_segments(tmp_path, datetime(2026, 1, 5, tzinfo=UTC), 3, 10)
    folder = segments(tmp_path)[0].parent
    # simulate a compactor killed after hiding its inputs, before publishing the merged file
    op = "0" * 32
    duckdb.connect().sql(f"COPY (SELECT * FROM read_parquet('{folder}/*.parquet')) TO "
               f"'{folder}/.merged-{op}.parquet.tmp' (FORMAT parquet)")
    for p in folder.glob("part-*.parquet"):
        p.rename(folder / f".{p.name}.compacting-{op}")
    assert segments(tmp_path) == []
    res = compact(tmp_path)
    assert res.recovered == 1
    assert counts(tmp_path) == (30, 30)


def test_retention_drops_whole_old_months_only(tmp_path: Path) -> None:
    for year, month in ((2021, 12), (2022, 2), (2022, 3), (2026, 3)):
        write_segments(tmp_path, datetime(year, month, 10, tzinfo=UTC), 1, 5, start=year * 100 + month)
    res = retain(tmp_path, "4y", now=datetime(2026, 3, 15, tzinfo=UTC))
    assert res.cutoff == datetime(2022, 3, 15, tzinfo=UTC)
    # March 2022 straddles the cutoff: kept whole
    assert sorted(res.dropped) == ["conversions/year=2021/month=12", "conversions/year=2022/month=02"]
    assert not (tmp_path / "conversions" / "year=2021").exists()
    left = duckdb.connect().sql(f"SELECT DISTINCT year, month FROM read_parquet('{tmp_path}/conversions/**/*.parquet', "
                      "hive_partitioning=true, hive_types={'year': INTEGER, 'month': INTEGER}) ORDER BY 1, 2")
    assert left.fetchall() == [(2022, 3), (2026, 3)]
    assert counts(tmp_path) == (10, 10)


def test_retention_drops_the_rollups_of_the_months_it_drops(tmp_path: Path) -> None:
    rollups = tmp_path / "_rollups"
    for name in ("2021-12", "2022-03", "2026-01"):  # as `compact` lays them out
        (rollups / name).mkdir(parents=True)
        (rollups / name / "manifest.json").write_text("{}")
    (rollups / "notes").write_text("not a month: left alone")
    res = retain(tmp_path, "4y", now=datetime(2026, 3, 15, tzinfo=UTC))
    assert "_rollups/2021-12" in res.dropped and "_rollups/2022-03" not in res.dropped
    assert sorted(p.name for p in rollups.iterdir()) == ["2022-03", "2026-01", "notes"]
    assert not list((tmp_path / "_meta" / "trash").iterdir())


def test_retention_while_writing_the_current_month(tmp_path: Path) -> None:
    write_segments(tmp_path, datetime(2019, 1, 10, tzinfo=UTC), 1, 5)
    with ParquetSink(tmp_path, flush_seconds=0.01) as sink:
        for i in range(2_000):
            sink.emit("conversions", row(i, datetime(2026, 3, 2, tzinfo=UTC)))
            if i == 1_000:
                retain(tmp_path, "4y", now=datetime(2026, 3, 15, tzinfo=UTC))
    assert counts(tmp_path) == (2_000, 2_000)


@pytest.mark.parametrize("text", ["4", "y", "4w", "-1y", ""])
def test_bad_ages_name_the_problem(text: str) -> None:
    with pytest.raises(ValueError, match="not like 4y, 18m or 90d"):
        parse_age(text)


def test_cutoff_units() -> None:
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    assert cutoff_for("90d", now) == datetime(2025, 12, 15, 12, tzinfo=UTC)
    assert cutoff_for("18m", now) == datetime(2024, 9, 15, 12, tzinfo=UTC)
    assert cutoff_for("4y", datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2024, 2, 29, tzinfo=UTC)
    assert cutoff_for("1y", datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2027, 2, 28, tzinfo=UTC)


def send_row(i: int, when: datetime) -> dict[str, object]:
    return {"event_time": when, "schema_version": 1, "decision_id": f"d{i}", "user_key": f"u{i}", "channel": "sms",
            "dest_country": "GB", "dest_prefix": "+447400", "number_type": "mobile", "action": "allow",
            "reasons": [], "price": 0.04, "verified": False}


def test_the_sends_table_is_compacted_and_retained_like_every_table(tmp_path: Path) -> None:
    for month, n_segments in ((1, 3), (3, 1)):
        for s in range(n_segments):
            with ParquetSink(tmp_path) as sink:
                for i in range(10):
                    sink.emit("sends", send_row(month * 1000 + s * 10 + i, datetime(2022, month, 5, tzinfo=UTC)))
    res = compact(tmp_path)
    assert (res.partitions, res.files_in, res.files_out, res.rows) == (1, 3, 1, 30)
    dropped = retain(tmp_path, "4y", now=datetime(2026, 2, 15, tzinfo=UTC)).dropped
    assert sorted(dropped) == ["sends/year=2022/month=01"]
    left = duckdb.connect().sql(f"SELECT count(*), sum(price) FROM read_parquet('{tmp_path}/sends/**/*.parquet')")
    n, total = left.fetchall()[0]
    assert n == 10 and total == pytest.approx(0.4)


def test_compaction_sorts_by_event_time_and_keeps_the_inputs_order_on_ties(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from riskengine.ops.maintenance import COMPACTED_ROW_GROUP

    # three segments written newest first; ten rows share each hour
    for day in (20, 12, 3):
        with ParquetSink(tmp_path) as sink:
            for i in range(30):
                sink.emit("conversions", {"event_time": datetime(2026, 1, day, i // 10, tzinfo=UTC),
                                          "schema_version": 1, "experiment": "e", "user_key": f"u{day:02d}-{i:02d}"})
    assert compact(tmp_path).files_out == 1
    (merged,) = segments(tmp_path)
    table = pq.read_table(merged)
    times = table.column("event_time").to_pylist()
    assert times == sorted(times) and len(times) == 90
    # the inputs are merged in name order, and within one the rows keep their order
    inputs_order = [f"u{day:02d}-{i:02d}" for day in (3, 12, 20) for i in range(30)]
    assert table.column("user_key").to_pylist() == inputs_order
    assert all(pq.ParquetFile(merged).metadata.row_group(i).num_rows <= COMPACTED_ROW_GROUP
               for i in range(pq.ParquetFile(merged).metadata.num_row_groups))
