"""One user's rows over the whole log: compacted segments carry a Parquet Bloom filter of
``user_key`` per row group, so DuckDB reads only the row groups that may hold the user, and the
answer stays that of a full scan while new (uncompacted, filterless) segments keep arriving,
locally and on an ``s3://`` root.

The oracle reads every file with polars and filters and sorts in Python.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskengine.analytics import AuditDB, Filters
from riskengine.audit.objectstore import S3Root
from riskengine.audit.schema import arrow_schema
from riskengine.ops.maintenance import BLOOM_COLUMNS, COMPACTED_ROW_GROUP, compact

from .conftest import FullScan

START = datetime(2026, 1, 1, tzinfo=UTC)
ACTIONS = ("allow", "challenge", "deny")
USERS = tuple(f"user-{i:04d}" for i in range(400))
ABSENT = "user-never-seen"


def _decisions(rng: random.Random, month: int, n: int, tag: str) -> pa.Table:
    """``n`` decisions spread over the month in random order; a few users are frequent."""
    first = START.replace(month=month)
    users = [USERS[min(int(rng.paretovariate(1.2)) - 1, len(USERS) - 1)] if rng.random() < 0.3
             else rng.choice(USERS) for _ in range(n)]
    rows = {
        "event_time": [first + timedelta(seconds=rng.randrange(27 * 86_400)) for _ in range(n)],
        "schema_version": [1] * n,
        "decision_id": [f"{tag}-{i:06d}" for i in range(n)],
        "user_key": users,
        "country": [rng.choice(("GB", "FR", "CN")) for _ in range(n)],
        "action": [rng.choice(ACTIONS) for _ in range(n)],
        "risk": [round(rng.random(), 3) for _ in range(n)],
        "reasons": [["NEW_DEVICE"] if rng.random() < 0.2 else [] for _ in range(n)],
    }
    schema = arrow_schema("decisions")
    return pa.table({f.name: pa.array(rows.get(f.name, [None] * n), type=f.type) for f in schema}, schema=schema)


def _rel(month: int, name: str) -> str:
    return f"decisions/year=2026/month={month:02d}/part-{name}.parquet"


def _write(root: Path, month: int, name: str, table: pa.Table, row_group: int = 500) -> Path:
    path = root / _rel(month, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group)
    return path


def build(root: Path, seed: int = 3) -> None:
    """Three months compacted, then late segments: one in a compacted month (a writer's late
    flush), two in a new month (the month being written), all without Bloom filters."""
    rng = random.Random(seed)
    for month in (1, 2, 3):
        for k in range(3):
            _write(root, month, f"early-{month}-{k}", _decisions(rng, month, 700, f"e{month}{k}"))
    assert compact(root, small_bytes=1 << 30).partitions == 3
    _write(root, 2, "late-2", _decisions(rng, 2, 300, "l2"))
    for k in range(2):
        _write(root, 4, f"new-4-{k}", _decisions(rng, 4, 400, f"n4{k}"))


every_row, oracle, same = FullScan.rows, FullScan.page, FullScan.same


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users")
    build(path)
    return path


@pytest.fixture(scope="module")
def rows(root: Path) -> pl.DataFrame:
    return every_row(root)


@pytest.fixture(scope="module")
def db(root: Path) -> AuditDB:
    return AuditDB(root)


def probe(con: duckdb.DuckDBPyConnection, path: str, key: str) -> list[bool]:
    """Per row group of ``path``: whether its ``user_key`` Bloom filter rules ``key`` out."""
    found = con.execute("SELECT row_group_id, bloom_filter_excludes FROM parquet_bloom_probe($p, 'user_key', $k) "
                        "ORDER BY row_group_id", {"p": path, "k": key}).fetchall()
    return [bool(excludes) for _, excludes in found]


def test_compacted_segments_carry_a_user_key_bloom_filter_that_never_misses(root: Path, rows: pl.DataFrame) -> None:
    assert BLOOM_COLUMNS == ("user_key",)
    compacted = sorted(root.glob("decisions/*/*/*-compacted-*.parquet"))
    assert len(compacted) == 3
    con = duckdb.connect()
    for path in compacted:
        meta = con.execute("SELECT count(*), count(bloom_filter_offset) FROM parquet_metadata($p) "
                           "WHERE path_in_schema = 'user_key'", {"p": str(path)}).fetchall()
        assert meta == [(1, 1)]  # 2,100 rows: one row group, with its filter
        held = set(pl.read_parquet(path)["user_key"].to_list())
        excluded = [key for key in USERS if probe(con, str(path), key) == [True]]
        assert not held & set(excluded)  # no false negative: a key the segment holds is never ruled out
        absent = [key for key in USERS if key not in held]
        assert absent, "every user in one month: the test data cannot show pruning"
        # the filter rules out nearly every absent key (false-positive rate 5 %)
        assert len(excluded) >= 0.8 * len(absent), (len(excluded), len(absent))
    late = root / _rel(2, "late-2")
    assert con.execute("SELECT count(bloom_filter_offset) FROM parquet_metadata($p)",
                       {"p": str(late)}).fetchall() == [(0,)]  # the late segment is read whole
    con.close()


def test_row_groups_of_a_big_month_each_get_their_own_filter(tmp_path: Path) -> None:
    """Past :data:`COMPACTED_ROW_GROUP` rows, each row group's filter holds its own keys."""
    n = COMPACTED_ROW_GROUP + 5_000
    keys = [f"k{i}" for i in range(n)]  # every key once: the first row group holds k0 …
    times = [START + timedelta(seconds=i) for i in range(n)]
    schema = arrow_schema("decisions")
    cols = {"event_time": times, "schema_version": [1] * n, "decision_id": keys, "user_key": keys}
    table = pa.table({f.name: pa.array(cols.get(f.name, [None] * n), type=f.type) for f in schema}, schema=schema)
    _write(tmp_path, 1, "b", table.slice(1, n - 1), row_group=50_000)
    _write(tmp_path, 1, "a", table.slice(0, 1))
    assert compact(tmp_path, small_bytes=1 << 40).partitions == 1
    (merged,) = tmp_path.glob("decisions/*/*/*.parquet")
    con = duckdb.connect()
    assert probe(con, str(merged), "k0") == [False, True]
    assert probe(con, str(merged), f"k{n - 1}") == [True, False]
    assert pq.read_metadata(merged).num_rows == n
    con.close()


users = st.sampled_from(USERS[:12]) | st.sampled_from(USERS) | st.just(ABSENT)
windows = st.tuples(st.integers(0, 110 * 24), st.integers(1, 120 * 24)).map(
    lambda w: (START + timedelta(hours=w[0]), START + timedelta(hours=w[0] + w[1])))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=users, window=st.none() | windows, actions=st.lists(st.sampled_from(ACTIONS), max_size=2, unique=True),
       limit=st.sampled_from([0, 1, 5, 40, 501]), offset=st.sampled_from([0, 3, 30]))
def test_one_users_rows_equal_a_full_scan(db: AuditDB, rows: pl.DataFrame, user: str,
                                          window: tuple[datetime, datetime] | None, actions: list[str],
                                          limit: int, offset: int) -> None:
    f = Filters(user_key=user, actions=tuple(actions))
    if window is not None:
        f = f.replace(since=window[0], until=window[1])
    same(db.events(f, limit=limit, offset=offset), oracle(rows, f, limit, offset))


def test_user_events_see_rows_that_arrived_after_compaction(tmp_path: Path) -> None:
    build(tmp_path, seed=5)
    db = AuditDB(tmp_path)
    frequent = USERS[0]
    before = db.user_events(frequent, limit=10_000)
    rng = random.Random(9)
    late = _decisions(rng, 1, 50, "late1").to_pylist()
    for i, row in enumerate(late):
        row["user_key"] = frequent if i < 5 else "user-late"
    _write(tmp_path, 1, "late-1", pa.Table.from_pylist(late, schema=arrow_schema("decisions")))
    after = db.user_events(frequent, limit=10_000)
    assert after.height == before.height + 5
    same(after, oracle(every_row(tmp_path), Filters(user_key=frequent), 10_000, 0))


def test_an_s3_root_compacts_with_filters_and_answers_like_a_full_scan(s3_root: str, tmp_path: Path) -> None:
    store = S3Root.parse(s3_root)
    local = tmp_path / "local"
    rng = random.Random(4)
    for month in (1, 2):
        for k in range(3):
            path = _write(local, month, f"early-{month}-{k}", _decisions(rng, month, 600, f"s{month}{k}"))
            store.put(path.relative_to(local).as_posix(), path.read_bytes())
    assert compact(s3_root, small_bytes=1 << 30).partitions == 2
    late = _write(local, 2, "late-2", _decisions(rng, 2, 200, "sl2"))
    store.put(late.relative_to(local).as_posix(), late.read_bytes())
    merged = [name for name, _size in store.objects("decisions", recursive=True) if "-compacted-" in name]
    assert len(merged) == 2
    con = duckdb.connect()
    frames = []
    for name in merged:
        copy = tmp_path / f"copy-{len(frames)}.parquet"
        copy.write_bytes(store.get(name if name.startswith("decisions/") else f"decisions/{name}"))
        assert con.execute("SELECT count(bloom_filter_offset) FROM parquet_metadata($p) "
                           "WHERE path_in_schema = 'user_key'", {"p": str(copy)}).fetchall() == [(1,)]
        frames.append(pl.read_parquet(copy))
    con.close()
    everything = pl.concat([*frames, pl.read_parquet(late)], how="diagonal")
    db = AuditDB(s3_root)
    try:
        for user in (USERS[0], USERS[1], USERS[57], USERS[399], ABSENT):
            f = Filters(user_key=user)
            same(db.events(f, limit=100), oracle(everything, f, 100, 0))
    finally:
        db.close()
