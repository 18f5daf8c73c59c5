"""The audit log on object storage (``s3://``), against a real S3-compatible server (moto in
server mode on loopback): the sink's round trip, atomic visibility, compaction and retention,
readers, and the failure modes (missing bucket, bad endpoint, a store that fails mid-run)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import duckdb
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
    for name, _size in store.list(table, recursive=True):
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
    names = [n for n, _ in store.list("conversions", recursive=True)]
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
