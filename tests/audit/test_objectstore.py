"""The audit log on object storage (``s3://``), against a real S3-compatible server (moto in
server mode on loopback): the sink's round trip, atomic visibility, compaction and retention,
readers, and the failure modes (missing bucket, bad endpoint, a store that fails mid-run)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from riskengine.analytics import AuditDB
from riskengine.audit import objectstore as s3
from riskengine.audit.parquet import ParquetSink
from riskengine.ops.maintenance import compact, retain


def conversion(i: int, month: int = 1, year: int = 2026) -> dict[str, object]:
    return {"event_time": datetime(year, month, 5, tzinfo=UTC), "schema_version": 1, "experiment": "e",
            "user_key": f"u{i}"}


def exact_rows(root: str, table: str = "conversions") -> tuple[int, int]:
    """(rows, distinct users) through the exact listing, read with pyarrow (independent of AuditDB)."""
    import pyarrow.parquet as pq

    store = s3.S3Root.parse(root)
    keys: list[str] = []
    for _y, _m, folder in s3.partitions(store, table):
        keys.extend(s3.segment_files(store, folder))
    users: list[str] = []
    for key in keys:
        users.extend(pq.read_table(store.path(key), filesystem=store.fs, columns=["user_key"])
                     .column("user_key").to_pylist())
    return len(users), len(set(users))


def glob_rows(root: str, table: str = "conversions") -> tuple[int, int]:
    """What a plain ``*.parquet`` listing (Athena, Spark, Trino) counts."""
    import pyarrow.parquet as pq

    store = s3.S3Root.parse(root)
    users: list[str] = []
    for name, _size in store.objects(table, recursive=True):
        if name.endswith(".parquet") and not name.rpartition("/")[2].startswith(("_", ".")):
            users.extend(pq.read_table(store.path(f"{table}/{name}"), filesystem=store.fs,
                                       columns=["user_key"]).column("user_key").to_pylist())
    return len(users), len(set(users))


def db_rows(root: str) -> tuple[int, int]:
    db = AuditDB(root)
    try:
        frame = db.events(table="conversions", limit=1_000_000)
    finally:
        db.close()
    return frame.height, frame["user_key"].n_unique()


def test_sink_round_trip_writes_the_hive_layout(s3_root: str) -> None:
    with ParquetSink(s3_root) as sink:
        for i in range(30):
            sink.emit("conversions", conversion(i, month=1 + i % 2))
    assert (sink.written, sink.dropped, sink.unflushed) == (30, 0, 0)
    store = s3.S3Root.parse(s3_root)
    names = [n for n, _ in store.objects("conversions", recursive=True)]
    assert {n.rsplit("/", 1)[0] for n in names} == {"year=2026/month=01", "year=2026/month=02"}
    assert all(n.rsplit("/", 1)[1].startswith("part-") and n.endswith(".parquet") for n in names)
    assert exact_rows(s3_root) == (30, 30)
    assert db_rows(s3_root) == (30, 30)


def test_a_concurrent_reader_never_sees_a_partial_or_duplicate_segment(s3_root: str) -> None:
    per, flushes = 200, 8
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(exact_rows(s3_root))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        with ParquetSink(s3_root, flush_seconds=60) as sink:
            for f in range(flushes):
                for i in range(per):
                    sink.emit("conversions", conversion(f * per + i))
                sink.flush()
    finally:
        done.set()
        reader.join()
    seen.append(exact_rows(s3_root))
    assert seen[-1] == (per * flushes, per * flushes)
    # every observation is a whole number of segments, each row once
    assert all(n % per == 0 and n == distinct for n, distinct in seen), sorted(set(seen))


def test_missing_bucket_is_a_clear_error_at_start(s3_endpoint: str) -> None:
    with pytest.raises(s3.ObjectStoreError, match="bucket 'no-such-bucket' does not exist"):
        ParquetSink("s3://no-such-bucket/audit")


def test_unreachable_endpoint_is_a_clear_error_at_start(s3_root: str) -> None:
    with pytest.raises(s3.ObjectStoreError, match="cannot reach the object store"):
        ParquetSink(s3_root, endpoint_url="http://127.0.0.1:9")  # discard port: nothing listens


def test_bad_root_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="not a valid S3 bucket name"):
        s3.S3Root.parse("s3://Bad_Bucket/x")
    with pytest.raises(ValueError, match=r"'\.\.' segment"):
        s3.S3Root.parse("s3://bucket/a/../b")


# ---------------------------------------------------------------- compaction and retention
SEGMENTS, PER = 4, 25
N = SEGMENTS * PER + 10  # plus one lone segment in February, which compaction leaves alone
S3_STEPS = ["marked", "published", *(f"deleted:{i}" for i in range(SEGMENTS)), "unmarked"]


class Crash(Exception):
    """The compactor 'dies' here."""


def build(root: str) -> None:
    i = 0
    with ParquetSink(root, flush_seconds=60) as sink:
        for month, n_segments, per in ((1, SEGMENTS, PER), (2, 1, 10)):
            for _ in range(n_segments):
                for _ in range(per):
                    sink.emit("conversions", conversion(i, month))
                    i += 1
                sink.flush()
    assert i == N


def test_every_compaction_step_shows_each_row_exactly_once(s3_root: str) -> None:
    build(s3_root)
    seen: list[str] = []
    twice: list[str] = []

    def check(step: str, folder: object) -> None:
        seen.append(step)
        assert exact_rows(s3_root) == (N, N), step
        assert db_rows(s3_root) == (N, N), step
        n, distinct = glob_rows(s3_root)
        if n != distinct:
            twice.append(step)

    res = compact(s3_root, _after_step=check)
    assert seen == S3_STEPS
    assert (res.files_in, res.files_out, res.rows) == (SEGMENTS, 1, SEGMENTS * PER)
    # a plain glob (outside readers) double-counts exactly while the inputs are being deleted
    assert twice == ["published", *(f"deleted:{i}" for i in range(SEGMENTS - 1))]
    assert exact_rows(s3_root) == glob_rows(s3_root) == (N, N)
    names = [n for n, _ in s3.S3Root.parse(s3_root).objects("conversions/year=2026/month=01")]
    assert len(names) == 1 and "-compacted-" in names[0]


@pytest.mark.parametrize("crash_after", S3_STEPS)
def test_a_crash_after_any_compaction_step_is_repaired_by_the_next_run(crash_after: str, s3_root: str) -> None:
    build(s3_root)

    def crash(step: str, folder: object) -> None:
        if step == crash_after:
            raise Crash(step)

    with pytest.raises(Crash):
        compact(s3_root, _after_step=crash)
    assert exact_rows(s3_root) == db_rows(s3_root) == (N, N)  # the dead compactor's layout

    res = compact(s3_root)  # the next run repairs, then compacts what is left
    assert res.recovered == (0 if crash_after == "unmarked" else 1)
    assert exact_rows(s3_root) == glob_rows(s3_root) == db_rows(s3_root) == (N, N)
    names = [n for n, _ in s3.S3Root.parse(s3_root).objects("conversions/year=2026/month=01")]
    assert len(names) == 1 and names[0].endswith(".parquet")  # no marker left, one segment


def test_retention_drops_whole_months_and_readers_never_see_part_of_one(s3_root: str) -> None:
    with ParquetSink(s3_root, flush_seconds=60) as sink:
        for i in range(40):
            sink.emit("conversions", conversion(i, month=1 + i % 4, year=2020))
            if i % 10 == 9:
                sink.flush()
        for i in range(40, 50):
            sink.emit("conversions", conversion(i, month=6, year=2026))
    store = s3.S3Root.parse(s3_root)
    assert len(s3.partitions(store, "conversions")) == 5
    seen: list[tuple[int, int]] = []
    delete_folder = s3.S3Root.delete_folder

    def observed(self: s3.S3Root, rel: str) -> None:
        # the month's objects go one at a time, a reader looking after each (the real call is
        # batched requests: this is the slowest a store could do it)
        for name, _size in self.objects(rel, recursive=True):
            self.delete([f"{rel}/{name}"])
            seen.append(exact_rows(s3_root))
        delete_folder(self, rel)

    dry = retain(s3_root, "4y", now=datetime(2026, 7, 1, tzinfo=UTC), dry_run=True)
    assert len(dry.dropped) == 4 and exact_rows(s3_root) == (50, 50)
    try:
        s3.S3Root.delete_folder = observed  # type: ignore[method-assign]
        res = retain(s3_root, "4y", now=datetime(2026, 7, 1, tzinfo=UTC))
    finally:
        s3.S3Root.delete_folder = delete_folder  # type: ignore[method-assign]
    assert res.dropped == [f"conversions/year=2020/month={m:02d}" for m in range(1, 5)]
    # while a month's objects go one by one, our readers see it whole or not at all
    assert seen and all(n % 10 == 0 and n == d for n, d in seen), seen
    assert exact_rows(s3_root) == glob_rows(s3_root) == (10, 10)
    assert [f for *_ym, f in s3.partitions(store, "conversions")] == ["conversions/year=2026/month=06"]


# ---------------------------------------------------------------- a store that fails mid-run
def test_a_failing_store_keeps_segments_for_the_next_flush_and_never_raises(s3_root: str) -> None:
    with ParquetSink(s3_root, flush_seconds=60) as sink:
        store = sink.store
        assert store is not None
        good = store.fs
        broken = s3.S3Root.parse(s3_root, endpoint_url="http://127.0.0.1:9").fs  # nothing listens
        store._fs[0] = broken
        for i in range(20):
            sink.emit("conversions", conversion(i))
        sink.flush()  # the upload fails: no exception, rows kept
        assert (sink.written, sink.dropped, sink.unflushed, sink.retried) == (0, 0, 20, 1)
        assert sink.last_error is not None and "cannot upload audit segment" in sink.last_error
        store._fs[0] = good  # the store is back
        sink.flush()
        assert (sink.written, sink.dropped, sink.unflushed) == (20, 0, 0)
        assert sink.last_error is None
    assert exact_rows(s3_root) == (20, 20)


def test_rows_beyond_the_buffer_bound_are_dropped_and_counted_while_the_store_is_down(s3_root: str) -> None:
    sink = ParquetSink(s3_root, flush_seconds=60, buffer_rows=30)
    store = sink.store
    assert store is not None
    store._fs[0] = s3.S3Root.parse(s3_root, endpoint_url="http://127.0.0.1:9").fs
    for batch in range(3):
        for i in range(20):
            sink.emit("conversions", conversion(batch * 20 + i))
        sink.flush()
    # the first batch waits for the store; the next two do not fit beside it
    assert (sink.written, sink.dropped, sink.unflushed) == (0, 40, 20)
    sink.close()  # still down: what waited is lost now, and counted
    assert (sink.written, sink.dropped, sink.unflushed) == (0, 60, 0)


# ---------------------------------------------------------------- the engine and the commands
def test_engine_on_an_s3_root_and_report_compact_retain_commands(
        s3_root: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    from datetime import timedelta

    from riskengine import Engine
    from riskengine.apps.cli import main
    from riskengine.testing import make_attempt, offline_settings

    settings = offline_settings(audit={"root": s3_root, "key": "k" * 32, "flush_seconds": 60})
    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    actions: list[str] = []
    with Engine(settings) as engine:
        for i in range(40):
            d = engine.score(make_attempt(f"user{i % 7}", t0 + timedelta(minutes=i)))
            actions.append(d.action)
            if i % 10 == 9:
                engine.flush()
    assert main(["report", "--root", s3_root, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["logins"] == 40
    assert report["challenge_rate"] == pytest.approx(sum(a != "allow" for a in actions) / 40)

    assert main(["audit", "compact", "--root", s3_root]) == 0
    out = capsys.readouterr()
    assert "4 segments -> 1" in out.out and "rollups: built 1 months" in out.out  # March 2026 has ended
    assert main(["report", "--root", s3_root, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["logins"] == 40  # compaction and rollups changed no number
    assert main(["audit", "retain", "--root", s3_root, "--older-than", "1d"]) == 0
    out = capsys.readouterr()
    assert "decisions/year=2026/month=03" in out.out and "_rollups/2026-03" in out.out
    assert s3.S3Root.parse(s3_root).objects("_rollups", recursive=True) == []
    assert main(["report", "--root", s3_root, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["logins"] == 0


def test_commands_on_a_missing_bucket_fail_clearly(s3_endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    from riskengine.apps.cli import main

    assert main(["report", "--root", "s3://no-such-bucket/audit"]) == 1
    assert "bucket 'no-such-bucket' does not exist" in capsys.readouterr().err
    assert main(["audit", "compact", "--root", "s3://no-such-bucket/audit"]) == 1
    assert "bucket 'no-such-bucket' does not exist" in capsys.readouterr().err


def test_an_s3_root_needs_a_configured_key(s3_root: str) -> None:
    from riskengine.audit.events import resolve_key

    with pytest.raises(ValueError, match="is on object storage: set the pseudonymisation key"):
        resolve_key(s3_root, None, None, env={})
    assert resolve_key(s3_root, "secret", None, env={}).key == b"secret"


def test_the_documented_athena_table_has_every_decision_column_in_order() -> None:
    """docs/audit.md's CREATE EXTERNAL TABLE must follow riskengine/audit/columns.py."""
    import re
    from pathlib import Path

    from riskengine.audit.columns import COLUMNS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "audit.md").read_text()
    body = doc.split("CREATE EXTERNAL TABLE riskengine_decisions (", 1)[1].split("\n)", 1)[0]
    declared = [tuple(line.split("--")[0].strip().rstrip(",").split()) for line in body.strip().splitlines()]
    athena = {"timestamp": "timestamp", "int16": "smallint", "string": "string", "int64": "bigint",
              "double": "double", "list<string>": "array<string>", "int32": "int", "bool": "boolean"}
    assert declared == [(name, athena[kind]) for name, kind in COLUMNS["decisions"].items()]
    assert re.search(r"PARTITIONED BY \(year int, month int\)", doc)


def test_compaction_sorts_by_event_time_and_the_explorer_prunes_on_s3(s3_root: str) -> None:
    """Segments written newest first are merged oldest first (ties in the inputs' order), and
    the explorer's newest rows on the merged segment equal the ones before the merge."""
    import pyarrow.parquet as pq

    with ParquetSink(s3_root, flush_seconds=60) as sink:
        for day in (20, 12, 3):
            for i in range(30):
                sink.emit("conversions", {"event_time": datetime(2026, 1, day, i // 10, tzinfo=UTC),
                                          "schema_version": 1, "experiment": "e", "user_key": f"u{day:02d}-{i:02d}"})
            sink.flush()
    db = AuditDB(s3_root)
    before = db.events(table="conversions", limit=10, offset=3)
    assert db.explorer_reads == (1, 3)  # the newest segment holds the page
    assert compact(s3_root).files_out == 1
    store = s3.S3Root.parse(s3_root)
    (key,) = s3.segment_files(store, "conversions/year=2026/month=01")
    merged = pq.read_table(store.path(key), filesystem=store.fs)
    times = merged.column("event_time").to_pylist()
    assert times == sorted(times)
    assert merged.column("user_key").to_pylist()[:10] == [f"u03-{i:02d}" for i in range(10)]  # input order kept
    after = AuditDB(s3_root).events(table="conversions", limit=10, offset=3)
    assert after.rows() == before.rows()
    assert after["user_key"].to_list() == [f"u20-{i:02d}" for i in range(26, 16, -1)]
