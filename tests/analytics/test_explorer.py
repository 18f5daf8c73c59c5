"""The explorer's newest rows equal a plain full scan, whatever the segments look like.

The root mixes what real roots hold: time-ordered segments (the sink's), segments whose rows
span the whole month in random order (the benchmark generator's, or several writers'),
segments written out of time order, small row groups, a segment without statistics, many
rows sharing one timestamp, and a compacted (sorted) month. The oracle reads every file with
polars, filters and sorts in Python: newest first, ties by decision id (descending).
"""

from __future__ import annotations

import functools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskengine.analytics import AuditDB, Filters
from riskengine.audit.schema import arrow_schema
from riskengine.ops.maintenance import compact

from .conftest import FullScan

START = datetime(2026, 1, 1, tzinfo=UTC)
ACTIONS = ("allow", "challenge", "deny")
REASONS = ("NEW_DEVICE", "NEW_COUNTRY", "UNUSUAL_HOUR", "COLD_START")
COUNTRIES = ("GB", "FR", "CN")
USERS = tuple(f"u{i}" for i in range(12))


def _decision(rng: random.Random, i: int, when: datetime) -> dict[str, object]:
    return {"event_time": when, "schema_version": 1, "decision_id": f"d{i:05d}", "user_key": rng.choice(USERS),
            "country": rng.choice(COUNTRIES), "device_type": "desktop", "action": rng.choice(ACTIONS),
            "risk": round(rng.random(), 3), "reasons": rng.sample(REASONS, rng.randint(0, 2)),
            "policy_version": "v1", "cold_start": False, "trusted_device": False, "degraded": False}


def _write(root: Path, table: str, rows: list[dict[str, object]], name: str, *, row_group: int = 10_000,
           statistics: bool = True) -> None:
    when = rows[0]["event_time"]
    assert isinstance(when, datetime)
    folder = root / table / f"year={when.year}" / f"month={when.month:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    data = pa.Table.from_pylist(rows, schema=arrow_schema(table))
    pq.write_table(data, folder / f"part-{name}.parquet", row_group_size=row_group, write_statistics=statistics)


def build(root: Path, seed: int = 7) -> None:
    """Three months of decisions (January compacted later by the test that wants it)."""
    rng = random.Random(seed)
    i = 0
    for month in (1, 2, 3):
        first = START.replace(month=month)
        # timestamps on a coarse grid (whole minutes of the first 20 days): many ties
        times = [first + timedelta(minutes=rng.randrange(20 * 24 * 60)) for _ in range(1200)]
        times += [first + timedelta(days=19, hours=23, minutes=59)] * 40  # 40 rows on the newest minute
        rows = []
        for when in times:
            rows.append(_decision(rng, i, when))
            i += 1
        rng.shuffle(rows)
        spanning, ordered = rows[:500], sorted(rows[500:], key=lambda r: str(r["event_time"]))
        # four month-spanning segments in random order, one without statistics
        for k in range(4):
            _write(root, "decisions", spanning[k::4], f"span-{month}-{k}", row_group=37, statistics=k != 2)
        # time-ordered segments of 100 rows, named newest first (listing order != time order)
        chunks = [ordered[j:j + 100] for j in range(0, len(ordered), 100)]
        for k, chunk in enumerate(chunks):
            _write(root, "decisions", chunk, f"seq-{month}-{len(chunks) - k:03d}", row_group=30)


every_row = functools.cache(FullScan.rows)
same = FullScan.same


def oracle(root: Path, f: Filters, limit: int, offset: int) -> pl.DataFrame:
    return FullScan.page(every_row(root), f, limit, offset)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("explorer")
    build(path)
    return path


@pytest.fixture(scope="module")
def db(root: Path) -> AuditDB:
    return AuditDB(root)


filters = st.builds(
    Filters,
    actions=st.lists(st.sampled_from(ACTIONS), max_size=2, unique=True).map(tuple),
    reasons=st.lists(st.sampled_from(REASONS), max_size=1).map(tuple),
    countries=st.lists(st.sampled_from(COUNTRIES), max_size=1).map(tuple),
    user_key=st.none() | st.sampled_from(USERS),
)
windows = st.tuples(st.integers(0, 85 * 24), st.integers(1, 90 * 24)).map(
    lambda w: (START + timedelta(hours=w[0]), START + timedelta(hours=w[0] + w[1])))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(f=filters, window=st.none() | windows, limit=st.sampled_from([0, 1, 7, 40, 41, 300, 5000]),
       offset=st.sampled_from([0, 3, 39, 1000]))
def test_newest_rows_equal_a_full_scan(root: Path, db: AuditDB, f: Filters, window: tuple[datetime, datetime] | None,
                                       limit: int, offset: int) -> None:
    if window is not None:
        f = f.replace(since=window[0], until=window[1])
    same(db.events(f, limit=limit, offset=offset), oracle(root, f, limit, offset))


def test_pages_of_tied_rows_neither_repeat_nor_skip(root: Path, db: AuditDB) -> None:
    """The newest minute holds 40 rows: pages of 7 cut through them at the same places."""
    pages = [db.events(limit=7, offset=o) for o in range(0, 63, 7)]
    joined = pl.concat(pages)
    assert joined["decision_id"].n_unique() == 63
    same(joined, oracle(root, Filters(), 63, 0))
    assert pages[0]["event_time"].n_unique() == 1  # the first page lies inside the tie


def test_the_newest_page_reads_few_segments_of_a_time_ordered_month(root: Path, db: AuditDB) -> None:
    same(db.events(limit=50), oracle(root, Filters(), 50, 0))
    read, listed = db.explorer_reads
    # March's time-ordered segments older than the newest rows are skipped by their statistics;
    # the month-spanning ones (and the one without statistics) cannot be
    assert listed == 3 * (4 + 8) and read <= 4 + 2, db.explorer_reads


def test_a_rare_filter_widens_the_window_until_it_holds_the_page(root: Path, db: AuditDB) -> None:
    f = Filters(user_key="u3", actions=("deny",), reasons=("COLD_START",))
    want = oracle(root, f, 1000, 0)
    assert 0 < want.height < 100
    same(db.events(f, limit=1000), want)
    assert db.explorer_reads[0] == db.explorer_reads[1]  # needed every segment


def test_a_compacted_month_is_sorted_and_answers_the_same(tmp_path: Path) -> None:
    build(tmp_path, seed=11)
    before = AuditDB(tmp_path).events(limit=300, offset=20)
    assert compact(tmp_path, small_bytes=1 << 30).partitions == 3
    merged = sorted(tmp_path.glob("decisions/*/*/*.parquet"))
    assert len(merged) == 3
    for path in merged:
        times = pl.read_parquet(path)["event_time"]
        assert times.is_sorted()
    db = AuditDB(tmp_path)
    same(db.events(limit=300, offset=20), before)
    assert db.explorer_reads == (1, 3)  # only March's segment
    every_row.cache_clear()  # the oracle reads the merged segments
    same(db.events(limit=300, offset=20), oracle(tmp_path, Filters(), 300, 20))


def test_challenges_and_tables_without_decision_ids(tmp_path: Path) -> None:
    """Other tables: challenges with an outcome only, and failures (no id: ties by the other columns)."""
    when = START + timedelta(days=3)
    rows = [{"event_time": when + timedelta(seconds=i // 3), "schema_version": 1, "decision_id": f"d{i:03d}",
             "user_key": f"u{i % 5}", "factor": "sms", "channels": ["sms"], "final_channel": "sms",
             "fallback_used": False, "outcome": None if i % 4 == 0 else "verified", "attempts": 1,
             "seconds_to_verify": 5.0, "country": "GB"} for i in range(90)]
    _write(tmp_path, "challenges", rows[::2], "a", row_group=10)
    _write(tmp_path, "challenges", rows[1::2], "b", row_group=10)
    fails = [{"event_time": when, "schema_version": 1, "user_key": f"u{i % 7}", "ip_prefix": f"10.0.{i}.0/24",
              "user_failures": i} for i in range(30)]
    _write(tmp_path, "failures", fails[:15], "a")
    _write(tmp_path, "failures", fails[15:], "b")
    db = AuditDB(tmp_path)
    got = db.events(table="challenges", limit=20, offset=5)
    want = (pl.DataFrame(rows).filter(pl.col("outcome").is_not_null())
            .sort(["event_time", "decision_id"], descending=True).slice(5, 20))
    assert got["decision_id"].to_list() == want["decision_id"].to_list()
    pages = pl.concat([db.events(table="failures", limit=4, offset=o) for o in range(0, 32, 4)])
    want_fails = pl.DataFrame(fails).sort(["user_key", "ip_prefix"], descending=True)
    assert pages.select("user_key", "ip_prefix").rows() == want_fails.select("user_key", "ip_prefix").rows()


def test_user_events_across_layouts(root: Path, db: AuditDB) -> None:
    same(db.user_events("u5", limit=25), oracle(root, Filters(user_key="u5"), 25, 0))
