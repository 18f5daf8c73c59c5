"""AuditDB on an ``s3://`` root reads exactly what it reads from the same files on disk, with
DuckDB scanning row groups of one object from several threads (the fsspec file it is handed
must not share one position between threads). moto in server mode on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from riskengine.analytics import AuditDB, Filters
from riskengine.audit.objectstore import S3Root
from riskengine.audit.schema import arrow_schema


def decisions(n: int, seed: int) -> pa.Table:
    schema = arrow_schema("decisions")
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    actions = ["allow", "allow", "allow", "challenge", "deny"]
    cols = {
        "event_time": [t0 + timedelta(seconds=(i * 37 + seed) % (27 * 86400)) for i in range(n)],
        "schema_version": [1] * n,
        "decision_id": [f"d{seed}-{i}" for i in range(n)],
        "user_key": [f"u{(i * 7 + seed) % 5000}" for i in range(n)],
        "country": [["GB", "FR", "DE", "US"][(i + seed) % 4] for i in range(n)],
        "device_type": [["pc", "mobile"][(i // 3) % 2] for i in range(n)],
        "risk": [((i * 13 + seed) % 100) / 100 for i in range(n)],
        "action": [actions[(i * 11 + seed) % 5] for i in range(n)],
        "reasons": [["NEW_DEVICE"] if i % 3 else ["KNOWN_DEVICE", "NEW_COUNTRY"] for i in range(n)],
    }
    return pa.table({f.name: pa.array(cols.get(f.name, [None] * n), type=f.type) for f in schema}, schema=schema)


def test_s3_root_reads_the_same_numbers_as_the_same_files_on_disk(s3_root: str, tmp_path: Path) -> None:
    store = S3Root.parse(s3_root)
    folder = tmp_path / "decisions" / "year=2026" / "month=02"
    folder.mkdir(parents=True)
    for k in range(4):
        path = folder / f"part-{k}.parquet"
        pq.write_table(decisions(60_000, k), path, row_group_size=2_000)  # 30 row groups per object
        store.put(path.relative_to(tmp_path).as_posix(), path.read_bytes())
    f = Filters()
    local, remote = AuditDB(tmp_path, threads=4), AuditDB(s3_root, threads=4)
    try:
        for _ in range(3):
            assert remote.kpis(f) == local.kpis(f)
            assert remote.breakdown(f, "country").to_dicts() == local.breakdown(f, "country").to_dicts()
            assert remote.reason_counts(f).sort("reason").to_dicts() == local.reason_counts(f).sort("reason").to_dicts()
        assert local.kpis(f)["logins"] == 240_000
    finally:
        local.close()
        remote.close()


def test_a_kept_handle_to_a_deleted_object_fails_as_vanished_and_is_forgotten(s3_root: str, tmp_path: Path) -> None:
    """The reader keeps opened objects for the next scan; once one is deleted (compaction,
    a replaced rollup build) its read fails with an error the reader retries on, and the next
    open asks the store again (a new object under the key is read, not the kept handle)."""
    import duckdb
    import pytest

    from riskengine.analytics._files import vanished
    from riskengine.analytics._objectstore import duck_path, register

    store = S3Root.parse(s3_root)
    rel = "decisions/year=2026/month=02/part-1.parquet"
    local = tmp_path / "one.parquet"
    pq.write_table(decisions(1_000, 1), local)
    store.put(rel, local.read_bytes())
    con = duckdb.connect()
    register(con, store)
    sql = f"SELECT count(*) FROM read_parquet('{duck_path(store, rel)}')"
    assert con.execute(sql).fetchall() == [(1_000,)]
    store.delete([rel])
    with pytest.raises(duckdb.Error) as err:
        con.execute(sql).fetchall()
    assert vanished(err.value), str(err.value)
    pq.write_table(decisions(300, 2), local)
    store.put(rel, local.read_bytes())
    assert con.execute(sql).fetchall() == [(300,)]
    con.close()
