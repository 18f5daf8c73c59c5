"""Compaction and retention of an audit root, safe while engines keep writing.

Readers glob ``<root>/<table>/**/*.parquet``; both operations only ever change what that
glob matches through single ``rename`` calls, so a reader sees whole files or nothing.

Compaction of one partition (under an exclusive lock file, one compactor at a time):

1. merge the small segments into ``.merged-<id>.parquet.tmp`` (not globbed), fsync;
2. rename each input to ``.<name>.compacting-<id>`` (no longer globbed);
3. rename the merged file to ``part-…-compacted-<id>.parquet`` (globbed);
4. delete the renamed inputs.

A reader that globs ``*.parquet`` therefore never sees a row twice; between steps 2 and 3
(a handful of renames, microseconds) it may miss the rows being merged. No order of
single-file renames can avoid both for a plain glob (each rename changes the globbed rows,
and merging n > 1 files must change them somewhere), so the layout also defines an exact
listing, :func:`segment_files`: the globbed segments plus the hidden inputs of a
compaction whose merged file is not yet published. It sees every row exactly once at
every step (the fault-injection tests stop compaction after each one);
:class:`riskengine.analytics.AuditDB` reads through it. A query that listed an input just
before step 4 gets "file not found" when it opens it; AuditDB retries such queries.

If the compactor dies, the next run repairs the partition from the names on disk: after
step 3 it deletes the hidden inputs; before it, it renames them back and deletes the
merged temp file (rolling forward could publish rows twice when the compactor died in
the middle of step 2, with some inputs still visible).

Every folder and file compaction and retention create is 0700/0600.

After merging, ``riskengine audit compact`` (the command layer,
:mod:`riskengine.apps.commands.audit`) (re)builds the rollups of closed months whose
segments changed (:func:`riskengine.analytics.rollups.build_rollups`, under
:func:`maintenance_lock`): small pre-aggregated tables under ``<root>/_rollups`` that
analytics reads instead of every raw row where they are current. Maintenance itself does
not call analytics.

Retention renames a whole ``month=MM`` folder into ``<root>/_meta/trash/`` (one rename,
outside every table glob), then deletes it.

On object storage (``s3://bucket/prefix``, :mod:`riskengine.audit.objectstore`) there is no
rename. Compaction of one partition there:

1. PUT the marker ``_compaction-<id>.json`` naming the inputs (step ``marked``);
2. PUT the merged segment ``part-…-compacted-<id>.parquet`` (one upload, visible whole when
   it completes; step ``published``);
3. delete each input (steps ``deleted:<i>``);
4. delete the marker (step ``unmarked``).

The exact listing (:func:`riskengine.audit.objectstore.segment_files`) ignores the inputs
of a marker whose merged segment exists, so it sees every row exactly once at every step;
a plain ``*.parquet`` glob sees the merged rows twice between steps 2 and 3. The next run
repairs a dead compactor: a marker with its merged segment → delete the inputs left and
the marker; without → delete the marker (the inputs were never touched). Retention writes
a marker ``<table>/_retired-YYYY-MM`` (the exact listing then skips the month), deletes the
month's objects, then the marker. There is no lock on object storage (no ``flock``; S3 has
no compare-and-swap a lock could be built on with this client): run one maintenance job
per root, as the scheduled ``riskengine audit compact|retain`` does. Rollups there are one
prefix per build, published by its manifest (:mod:`riskengine.analytics.rollups`, "object storage");
retention deletes a dropped month's rollup builds, each manifest before its parts.
"""

from __future__ import annotations

import calendar
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from riskengine._extras import extra

with extra("analytics", feature="audit compaction and retention (riskengine audit)"):
    import duckdb

from riskengine.audit import objectstore as s3
from riskengine.audit._fs import FILE_MODE, create_private_file, fsync_dir, fsync_path, private_mkdir
from riskengine.audit.layout import (
    COMPACTED,
    HIDDEN_INPUT,
    MERGED_TMP,
    META,
    SEGMENT_PREFIX,
    TMP_SUFFIX,
    is_object_root,
    maintenance_lock,
    partitions,
    segment_name,
)
from riskengine.audit.schema import TABLES

log = logging.getLogger(__name__)

STALE_TMP_SECONDS = 3600.0

COMPACTED_ROW_GROUP = 122_880
"""Rows per row group of a merged segment, whose rows are sorted by ``event_time``: a row
group then covers a short span of time (about a day of a 4M-row month), which its Parquet
statistics tell readers without opening it."""
BLOOM_COLUMNS = ("user_key",)
"""Columns a merged segment carries a Parquet Bloom filter for, per row group: a user's rows
are spread over the whole log and a row group's min/max of a hashed key rules nothing out, so
without it every row group of every month is read to find one user (the explorer's user filter,
``riskengine user show``). DuckDB skips a row group whose filter excludes the value of an
equality filter; segments without filters (the sink's, the month being written) are read."""
BLOOM_FPP = 0.05
"""The Bloom filters' false-positive rate: 128 KiB per row group of 122,880 distinct keys
(about 2 % of the row group), one row group in twenty read needlessly for a key it lacks."""
MERGE_MEMORY = "512MB"
"""DuckDB's memory limit while merging (and sorting) one partition; beyond it the sort spills
to a private temporary folder outside the audit root."""


@dataclass
class CompactionResult:
    partitions: int = 0
    files_in: int = 0
    files_out: int = 0
    rows: int = 0
    recovered: int = 0
    stale_tmp_removed: int = 0
    merged: list[str] = field(default_factory=list)


@dataclass
class RetentionResult:
    cutoff: datetime
    dropped: list[str] = field(default_factory=list)
    dry_run: bool = False
    """Nothing was dropped: ``dropped`` lists what would have been."""


def compact(
    root: str | os.PathLike[str] | s3.S3Root,
    *,
    tables: tuple[str, ...] | None = None,
    small_bytes: int = 64 * 1024 * 1024,
    min_files: int = 2,
    progress: Callable[[int, int], None] | None = None,
    _after_step: Callable[[str, Path | str], None] | None = None,
) -> CompactionResult:
    """Merge the small segments (< ``small_bytes``) of every partition holding at least
    ``min_files`` of them into one segment. Row counts are preserved exactly.
    ``progress(done, total)`` is called after each partition. (Rollups are built afterwards by
    the caller: :func:`riskengine.analytics.rollups.build_rollups` under :func:`maintenance_lock`.)

    ``_after_step`` is a test seam: called with a step name and the partition folder after
    each step of a merge (``merged``, ``hidden:<i>``, ``published``, ``deleted:<i>``), so a
    test can read the layout there, or raise to stop the compactor as a crash would. On object
    storage the steps are ``marked``, ``published``, ``deleted:<i>``, ``unmarked`` and the
    folder is the partition's key relative to the root."""
    store = _store(root)
    if store is not None:
        return _compact_s3(store, tables or tuple(TABLES), small_bytes, min_files, progress, _after_step or _no_step)
    root_path = Path(root)  # type: ignore[arg-type]
    result = CompactionResult()
    with maintenance_lock(root_path):
        folders = [folder for table in tables or tuple(TABLES) for _y, _m, folder in partitions(root_path, table)]
        for done, folder in enumerate(folders, start=1):
            result.recovered += _recover(folder)
            result.stale_tmp_removed += _remove_stale_tmp(folder)
            small = sorted(p for p in folder.glob(f"{SEGMENT_PREFIX}*.parquet")
                           if p.stat().st_size < small_bytes)
            if len(small) >= min_files:
                merged, rows = _merge(folder, small, _after_step or _no_step)
                result.partitions += 1
                result.files_in += len(small)
                result.files_out += 1
                result.rows += rows
                result.merged.append(str(merged.relative_to(root_path)))
            if progress is not None:
                progress(done, len(folders))
    return result


def _no_step(step: str, folder: Path | str) -> None:
    pass


def _store(root: str | os.PathLike[str] | s3.S3Root) -> s3.S3Root | None:
    if isinstance(root, s3.S3Root):
        return root
    return s3.S3Root.parse(str(root)) if is_object_root(root) else None


def _compact_s3(store: s3.S3Root, tables: tuple[str, ...], small_bytes: int, min_files: int,
                progress: Callable[[int, int], None] | None,
                after_step: Callable[[str, Path | str], None]) -> CompactionResult:
    result = CompactionResult()
    folders = [folder for table in tables for _y, _m, folder in s3.partitions(store, table)]
    for done, folder in enumerate(folders, start=1):
        result.recovered += _recover_s3(store, folder)
        visible = {rel.rpartition("/")[2] for rel in s3.segment_files(store, folder)}
        small = sorted(name for name, size in store.objects(folder)
                       if name in visible and name.startswith(SEGMENT_PREFIX) and size < small_bytes)
        if len(small) >= min_files:
            merged, rows = _merge_s3(store, folder, small, after_step)
            result.partitions += 1
            result.files_in += len(small)
            result.files_out += 1
            result.rows += rows
            result.merged.append(merged)
        if progress is not None:
            progress(done, len(folders))
    return result


def _merge_s3(store: s3.S3Root, folder: str, inputs: list[str],
              after_step: Callable[[str, Path | str], None]) -> tuple[str, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    op = uuid.uuid4().hex
    marker = f"{folder}/_compaction-{op}.json"
    # the segments hold no year/month columns (those live in the key); promote_options keeps
    # rows written before a column was added (as union_by_name does locally)
    parts = [pq.read_table(store.path(f"{folder}/{name}"), filesystem=store.fs) for name in inputs]
    # sorted by event time like a local merge (a stable sort: ties keep the inputs' order)
    merged = pa.concat_tables(parts, promote_options="default").sort_by("event_time")
    body = pa.BufferOutputStream()
    pq.write_table(merged, body, row_group_size=COMPACTED_ROW_GROUP,
                   **merged_write_options(merged.schema, merged.num_rows))
    store.put(marker, s3.marker_body(inputs))
    after_step("marked", folder)
    final = f"{folder}/{segment_name().replace('.parquet', f'-compacted-{op}.parquet')}"
    store.put(final, body.getvalue().to_pybytes())
    after_step("published", folder)
    for i, name in enumerate(inputs):
        store.delete([f"{folder}/{name}"])
        after_step(f"deleted:{i}", folder)
    store.delete([marker])
    after_step("unmarked", folder)
    return final, merged.num_rows


def _recover_s3(store: s3.S3Root, folder: str) -> int:
    """Finish or undo a compaction that died half-way on object storage."""
    names = {name for name, _size in store.objects(folder)}
    published = {m.group("id") for n in names if (m := COMPACTED.search(n))}
    recovered = 0
    for name in sorted(names):
        m = s3.COMPACTION_MARKER.match(name)
        if not m:
            continue
        if m.group("id") in published:  # the merged segment holds the rows: drop the inputs left
            inputs = s3.marker_inputs(store, f"{folder}/{name}")
            store.delete(f"{folder}/{i}" for i in inputs if i in names)
        store.delete([f"{folder}/{name}"])  # not published: the inputs were never touched
        log.warning("recovered an interrupted compaction in %s", store.url(folder))
        recovered += 1
    return recovered


def merged_write_options(schema: Any, rows: int) -> dict[str, Any]:
    """pyarrow ``ParquetWriter`` options of a merged segment with Arrow ``schema`` and ``rows``
    rows: zstd; dictionary encoding only for columns of few distinct values (not times, floats,
    ids or keys, whose dictionaries overflow and cost ~25 % in size and scan time); and a Bloom
    filter per row group for each of :data:`BLOOM_COLUMNS` it has, sized for as many distinct
    values as the row group has rows (hashed keys are nearly all distinct).

    >>> import pyarrow as pa
    >>> schema = pa.schema([("event_time", pa.timestamp("us", "UTC")), ("risk", pa.float64()),
    ...                     ("user_key", pa.string()), ("country", pa.string())])
    >>> options = merged_write_options(schema, 1000)
    >>> options["use_dictionary"], options["bloom_filter_options"]
    (['country'], {'user_key': {'ndv': 1000, 'fpp': 0.05}})
    """
    import pyarrow.types as pt

    ndv = max(1, min(rows, COMPACTED_ROW_GROUP))
    bloom = {name: {"ndv": ndv, "fpp": BLOOM_FPP} for name in BLOOM_COLUMNS if name in schema.names}
    dictionary = [f.name for f in schema
                  if not (pt.is_timestamp(f.type) or pt.is_floating(f.type) or f.name.endswith(("_id", "_key")))]
    return {"compression": "zstd", "use_dictionary": dictionary, "bloom_filter_options": bloom or None}


def _merge(folder: Path, inputs: list[Path], after_step: Callable[[str, Path | str], None]) -> tuple[Path, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    op = uuid.uuid4().hex
    tmp = folder / f".merged-{op}.parquet{TMP_SUFFIX}"
    os.close(create_private_file(tmp))  # private from its first byte; the writer truncates it
    # the inputs' own Arrow types (what they were written with), columns added later included
    schema = pa.unify_schemas([pq.read_schema(p) for p in inputs], promote_options="default")
    total = sum(pq.read_metadata(p).num_rows for p in inputs)
    con = duckdb.connect()
    spill = tempfile.TemporaryDirectory(prefix="riskengine-compact-")  # 0700, outside the root
    rows = 0
    try:
        # the sort spills past MERGE_MEMORY (a 4M-row month: ~600 MB peak RSS instead of 2.3 GB)
        con.execute(f"SET memory_limit = '{MERGE_MEMORY}'").fetchall()
        con.execute("SET temp_directory = $d", {"d": spill.name}).fetchall()
        con.execute("SET TimeZone = 'UTC'").fetchall()
        # the segments hold no year/month columns (those live in the path): read them raw;
        # union_by_name keeps rows written before a column was added. Sorted by event time
        # (ties keep the inputs' order), so each row group covers a short span of time and
        # readers skip row groups by their statistics (the explorer's newest rows, ranges).
        # DuckDB sorts; pyarrow writes, because it writes Bloom filters for chosen columns
        # (DuckDB only for dictionary-encoded ones, which nearly unique keys are not)
        sorted_rows = con.sql(
            "SELECT * EXCLUDE (_segment, file_row_number) FROM read_parquet($files, union_by_name=true, "
            "hive_partitioning=false, filename='_segment', file_row_number=true) "
            "ORDER BY event_time, _segment, file_row_number",
            params={"files": [str(p) for p in inputs]})
        # streamed in batches (DuckDB < 1.4 names the method fetch_arrow_reader)
        to_reader = getattr(sorted_rows, "to_arrow_reader", None) or sorted_rows.fetch_arrow_reader
        reader = to_reader(COMPACTED_ROW_GROUP)
        with pq.ParquetWriter(tmp, schema, **merged_write_options(schema, total)) as writer:
            pending: list[pa.RecordBatch] = []
            buffered = 0
            for batch in reader:
                pending.append(batch)
                buffered += batch.num_rows
                while buffered >= COMPACTED_ROW_GROUP:  # one write per row group of exactly that size
                    table = pa.Table.from_batches(pending)
                    writer.write_table(_conform(table.slice(0, COMPACTED_ROW_GROUP), schema))
                    rest = table.slice(COMPACTED_ROW_GROUP)
                    pending, buffered = rest.to_batches(), rest.num_rows
                    rows += COMPACTED_ROW_GROUP
            if buffered:
                writer.write_table(_conform(pa.Table.from_batches(pending), schema))
                rows += buffered
    finally:
        con.close()
        spill.cleanup()
    if rows != total:  # never publish a merge that lost or gained rows
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"merging {folder} wrote {rows} rows of {total}")
    os.chmod(tmp, FILE_MODE)
    fsync_path(tmp)
    after_step("merged", folder)
    hidden = []
    for i, p in enumerate(inputs):
        target = folder / f".{p.name}.compacting-{op}"
        os.rename(p, target)
        hidden.append(target)
        after_step(f"hidden:{i}", folder)
    final = folder / segment_name().replace(".parquet", f"-compacted-{op}.parquet")
    os.rename(tmp, final)
    fsync_dir(folder)
    after_step("published", folder)
    for i, h in enumerate(hidden):
        h.unlink()
        after_step(f"deleted:{i}", folder)
    return final, rows


def _conform(table: Any, schema: Any) -> Any:
    """``table`` (DuckDB's Arrow types, DuckDB's column order) as ``schema``."""
    return table.select(schema.names).cast(schema)


def _recover(folder: Path) -> int:
    """Finish or undo a compaction that died half-way (we hold the maintenance lock)."""
    ops: dict[str, list[Path]] = {}
    orphans: dict[str, Path] = {}
    for p in folder.iterdir():
        m = HIDDEN_INPUT.match(p.name) or MERGED_TMP.match(p.name)
        if m and m.re is HIDDEN_INPUT:
            ops.setdefault(m.group("id"), []).append(p)
        elif m:
            orphans[m.group("id")] = p
    for op, hidden in ops.items():
        if list(folder.glob(f"*-compacted-{op}.parquet")):  # published: the inputs are redundant
            for h in hidden:
                h.unlink()
        else:  # not published: undo (some inputs may never have been hidden)
            for h in hidden:
                m = HIDDEN_INPUT.match(h.name)
                assert m is not None
                os.rename(h, folder / m.group("name"))
        log.warning("recovered an interrupted compaction in %s", folder)
    # merged temp files of dead compactors (we hold the lock: no live one is writing)
    for tmp in orphans.values():
        tmp.unlink(missing_ok=True)
    if ops or orphans:
        fsync_dir(folder)
    return len(ops.keys() | orphans.keys())


def _remove_stale_tmp(folder: Path, now: float | None = None) -> int:
    """Temp files of writers killed mid-flush (a live writer renames within seconds)."""
    now = time.time() if now is None else now
    removed = 0
    for p in folder.glob(f".*{TMP_SUFFIX}"):
        try:
            if now - p.stat().st_mtime > STALE_TMP_SECONDS and not MERGED_TMP.match(p.name):
                p.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([ymd])\s*$", re.IGNORECASE)


def parse_age(text: str) -> tuple[float, str]:
    """``"4y"`` → ``(4.0, "y")``; units y (years), m (months), d (days).

    >>> parse_age("18m"), parse_age("90d")
    ((18.0, 'm'), (90.0, 'd'))
    """
    m = _AGE.match(text)
    if not m:
        raise ValueError(f"age {text!r} is not like 4y, 18m or 90d")
    return float(m.group(1)), m.group(2).lower()


def cutoff_for(age: str, now: datetime | None = None) -> datetime:
    """The instant ``age`` before ``now``: calendar years/months, so 4y on 2030-03-15 is 2026-03-15.

    >>> cutoff_for("4y", datetime(2030, 3, 15, tzinfo=UTC)).date()
    datetime.date(2026, 3, 15)
    >>> cutoff_for("18m", datetime(2030, 3, 31, tzinfo=UTC)).date()
    datetime.date(2028, 9, 30)
    """
    value, unit = parse_age(age)
    now = now or datetime.now(UTC)
    if unit == "d":
        return now - timedelta(days=value)
    months = round(value * 12) if unit == "y" else round(value)
    total = now.year * 12 + (now.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    day = min(now.day, calendar.monthrange(year, month)[1])
    return now.replace(year=year, month=month, day=day)


def retain(
    root: str | os.PathLike[str] | s3.S3Root,
    older_than: str = "4y",
    *,
    now: datetime | None = None,
    tables: tuple[str, ...] | None = None,
    dry_run: bool = False,
) -> RetentionResult:
    """Drop every whole month partition that ends on or before the cutoff (never a partial month).

    With ``dry_run`` nothing is dropped: the result lists what would be."""
    cutoff = cutoff_for(older_than, now)
    result = RetentionResult(cutoff, dry_run=dry_run)
    store = _store(root)
    if store is not None:
        _retain_s3(store, cutoff, tables or tuple(TABLES), result)
        return result
    root_path = Path(root)  # type: ignore[arg-type]
    trash = root_path / META / "trash"
    with maintenance_lock(root_path):
        for table in tables or tuple(TABLES):
            for year, month, folder in partitions(root_path, table):
                if not _ended_by(year, month, cutoff):
                    continue
                if dry_run:
                    result.dropped.append(f"{table}/year={year:04d}/month={month:02d}")
                    continue
                private_mkdir(trash)
                target = trash / f"{table}-{year:04d}-{month:02d}-{uuid.uuid4().hex}"
                os.rename(folder, target)  # one atomic step out of every reader's glob
                shutil.rmtree(target, ignore_errors=True)
                result.dropped.append(f"{table}/year={year:04d}/month={month:02d}")
                try:
                    folder.parent.rmdir()  # the year folder, when that was its last month
                except OSError:
                    pass
        _retain_rollups(root_path, cutoff, trash, result)
    return result


def _retain_s3(store: s3.S3Root, cutoff: datetime, tables: tuple[str, ...], result: RetentionResult) -> None:
    for table in tables:
        for year, month, folder in s3.partitions(store, table):
            if not _ended_by(year, month, cutoff):
                continue
            result.dropped.append(f"{table}/year={year:04d}/month={month:02d}")
            if result.dry_run:
                continue
            # the marker first: the exact listing skips the month from here on, so readers see
            # the month whole or not at all while its objects are deleted (batched, any order)
            marker = s3.retired_marker(table, year, month)
            store.put(marker, b"")
            store.delete_folder(folder)
            store.delete([marker])
    # a month's rollup goes with it (_rollups/YYYY-MM/<build>/…: each build's manifest
    # first, so no reader takes a build whose parts are being deleted)
    for name in store.folders("_rollups"):
        year_s, _, month_s = name.partition("-")
        if not (year_s.isdigit() and month_s.isdigit() and len(name) == 7) or not 1 <= int(month_s) <= 12:
            continue
        if not _ended_by(int(year_s), int(month_s), cutoff):
            continue
        result.dropped.append(f"_rollups/{name}")
        if result.dry_run:
            continue
        objects = [f"_rollups/{name}/{rel}" for rel, _size in store.objects(f"_rollups/{name}", recursive=True)]
        store.delete(rel for rel in objects if rel.endswith("/manifest.json"))
        store.delete(rel for rel in objects if not rel.endswith("/manifest.json"))


def _ended_by(year: int, month: int, cutoff: datetime) -> bool:
    """Whether the whole month ends on or before ``cutoff`` (retention never splits a month)."""
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC) <= cutoff


def _retain_rollups(root: Path, cutoff: datetime, trash: Path, result: RetentionResult) -> None:
    """A month's rollup (``_rollups/YYYY-MM``) goes with its month: aggregates of data the
    retention policy dropped are not kept either (``compact`` rebuilds the rollup of a month
    whose raw segments are still there)."""
    base = root / "_rollups"
    if not base.is_dir():
        return
    for folder in sorted(base.iterdir()):
        name = folder.name
        if not folder.is_dir() or len(name) != 7 or name[4] != "-" or not (name[:4] + name[5:]).isdigit():
            continue
        year, month = int(name[:4]), int(name[5:])
        if not 1 <= month <= 12 or not _ended_by(year, month, cutoff):
            continue
        if result.dry_run:
            result.dropped.append(f"_rollups/{name}")
            continue
        private_mkdir(trash)
        target = trash / f"rollup-{name}-{uuid.uuid4().hex}"
        os.rename(folder, target)
        shutil.rmtree(target, ignore_errors=True)
        result.dropped.append(f"_rollups/{name}")


__all__ = ["CompactionResult", "RetentionResult", "compact", "cutoff_for", "parse_age", "retain"]
