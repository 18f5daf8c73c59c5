"""The experiment rollup: every exposed user's first exposure and last conversion, per
experiment, over the closed months of the log, so a readout over the whole history does not
group millions of exposures by user on every look.

A readout (:meth:`riskengine.analytics.AuditDB.experiment_readout`) counts each user in the
variant of their first exposure in the window, converted when their last conversion of the
window is at or after that exposure. That is a per-user aggregation that does not add up over
days or months (a user's first exposure in March is not their first in a window that starts
in January), so the monthly rollups cannot hold it. What can be kept is the *prefix*: the
per-user state of every exposure and conversion up to the end of a closed month ``M``.
``riskengine audit compact`` (:func:`riskengine.analytics.rollups.build_rollups`) writes two,
for the newest closed month that has any and for the one before it (so a window ending inside
the newest, as "all dates" does when the log ends with a closed month, still reads one), each to
``<root>/_rollups/experiments/YYYY-MM/``:

- ``users.parquet``  experiment, user key, variant and time of the first exposure, time of the
  last conversion (NULL: none) — one row per exposed user and experiment;
- ``counts.parquet`` per experiment and variant: exposed users and converted users (last
  conversion at or after the first exposure): the readout of the prefix itself;
- ``manifest.json``  the segments of every exposure and conversion partition up to ``M``, and
  the first and last event time they hold (epoch µs).

A readout uses the newest prefix whose events the window holds all of (``since`` at or before the
first, ``until`` after the last: "all dates", or any window starting before the log). The
rest — exposures and conversions of the months after ``M``, i.e. the month being written —
is read raw and combined per user with the prefix: a user first exposed after ``M`` is new; a
prefix user who had not converted and converts after ``M`` converts (every such conversion is
after their first exposure). Only the prefix rows of users seen in the rest are read, so an
idle month costs nothing and the answer equals the raw path's exactly. Like the monthly
rollups it is never stale: a segment added, merged or removed in any partition up to ``M``
makes the manifest disagree with the disk, and readouts read raw until the next compaction.

Two exposures of one user at the same microsecond with different variants make "the variant
of the first exposure" ambiguous on either path (``arg_min``); the engine never writes that.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riskengine._extras import extra
from riskengine.audit._fs import private_mkdir, publish_folder

with extra("analytics", feature="audit rollups (riskengine.analytics)"):
    import duckdb

EXPERIMENT_DIR = "experiments"
"""Under ``<root>/_rollups``: a ``YYYY-MM`` folder (the prefix's last month) per prefix kept."""
PREFIXES_KEPT = 2
"""Prefixes kept: up to the newest closed month with exposures or conversions, and the one before."""
EXPERIMENT_VERSION = 1
EXPERIMENT_TABLES = ("exposures", "conversions")
_MANIFEST = "manifest.json"
_PARTS = ("users.parquet", "counts.parquet")


@dataclass(frozen=True)
class ExperimentRollup:
    """A current experiment prefix: every exposure and conversion of the ``months``
    (``YYYYMM``, up to ``month``), whose event times lie in [``first_us``, ``last_us``]."""

    folder: Path
    month: int
    months: frozenset[int]
    first_us: int
    last_us: int

    @property
    def users(self) -> str:
        return str(self.folder / "users.parquet")

    @property
    def counts(self) -> str:
        return str(self.folder / "counts.parquet")


def _partitions(root: Path, table: str) -> dict[int, list[str]]:
    """``YYYYMM`` → the segment names of that month partition of ``table`` (non-empty only)."""
    out: dict[int, list[str]] = {}
    base = root / table
    try:
        years = [e for e in os.scandir(base) if e.is_dir() and e.name.startswith("year=")]
    except OSError:
        return out
    for ydir in years:
        try:
            year = int(ydir.name[5:])
            months = [e for e in os.scandir(ydir.path) if e.is_dir() and e.name.startswith("month=")]
        except (ValueError, OSError):
            continue
        for mdir in months:
            try:
                key = year * 100 + int(mdir.name[6:])
                names = sorted(n for n in os.listdir(mdir.path) if n.endswith(".parquet") and not n.startswith("."))
            except (ValueError, OSError):
                continue
            if names:
                out[key] = names
    return out


def _sources(root: Path, upto: int) -> dict[str, list[str]]:
    return {f"{table}/{key}": names for table in EXPERIMENT_TABLES
            for key, names in sorted(_partitions(root, table).items()) if key <= upto}


def _next_month_start(key: int) -> datetime:
    y, m = divmod(key, 100)
    return datetime(y + 1, 1, 1, tzinfo=UTC) if m == 12 else datetime(y, m + 1, 1, tzinfo=UTC)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != EXPERIMENT_VERSION:
        return None
    return data


def _folder_month(name: str) -> int | None:
    if len(name) != 7 or name[4] != "-" or not (name[:4] + name[5:]).isdigit():
        return None
    return int(name[:4]) * 100 + int(name[5:])


def current_experiment_rollups(root: str | os.PathLike[str]) -> list[ExperimentRollup]:
    """The experiment prefixes whose manifests name exactly the exposure and conversion
    segments on disk up to their month, newest first (stale ones are left out)."""
    root_path = Path(root)
    base = root_path / "_rollups" / EXPERIMENT_DIR
    try:
        names = sorted((n for n in os.listdir(base) if _folder_month(n) is not None), reverse=True)
    except OSError:
        return []
    out: list[ExperimentRollup] = []
    partitions = {table: _partitions(root_path, table) for table in EXPERIMENT_TABLES}
    for name in names:
        month = _folder_month(name)
        assert month is not None
        folder = base / name
        manifest = _read_manifest(folder)
        sources = {f"{table}/{key}": names for table in EXPERIMENT_TABLES
                   for key, names in sorted(partitions[table].items()) if key <= month}
        if manifest is None or manifest.get("sources") != sources:
            continue
        if not all((folder / part).is_file() for part in _PARTS):
            continue
        first, last = manifest.get("first_us"), manifest.get("last_us")
        if not isinstance(first, int) or not isinstance(last, int):
            continue
        months = frozenset(int(ref.partition("/")[2]) for ref in sources)
        out.append(ExperimentRollup(folder, month, months, first, last))
    return out


def build_experiment_rollup(root: str | os.PathLike[str], *, now: datetime | None = None,
                            rebuild: bool = False) -> list[str]:
    """(Re)build the experiment prefixes up to the :data:`PREFIXES_KEPT` newest closed months
    (ended before ``now``) holding exposures or conversions, those not current; removes older
    ones. Returns the folder names built. Call under the maintenance lock."""
    root_path = Path(root)
    now = now or datetime.now(UTC)
    closed = sorted({key for table in EXPERIMENT_TABLES for key in _partitions(root_path, table)
                     if _next_month_start(key) <= now}, reverse=True)[:PREFIXES_KEPT]
    base = root_path / "_rollups" / EXPERIMENT_DIR
    if not closed:
        _clear(base, keep=set())
        return []
    current = {p.month for p in current_experiment_rollups(root_path)}
    built: list[str] = []
    for month in closed:
        name = f"{month // 100:04d}-{month % 100:02d}"
        if rebuild or month not in current:
            _build_one(root_path, base, month, name)
            built.append(name)
    _clear(base, keep={f"{m // 100:04d}-{m % 100:02d}" for m in closed})
    return built


def _build_one(root: Path, base: Path, month: int, name: str) -> None:
    private_mkdir(base.parent)
    private_mkdir(base)
    tmp = base / f".{name}.{uuid.uuid4().hex}.tmp"
    private_mkdir(tmp)
    try:
        sources = _sources(root, month)
        first_us, last_us = _write(root, sources, tmp)
        manifest = {"version": EXPERIMENT_VERSION, "month": name, "built_at": datetime.now(UTC).isoformat(),
                    "first_us": first_us, "last_us": last_us, "sources": sources}
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1))
        publish_folder(tmp, base / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _clear(base: Path, keep: set[str]) -> None:
    """Older prefixes are superseded: removed with the trash."""
    try:
        entries = os.listdir(base)
    except OSError:
        return
    for n in entries:
        if n.endswith(".trash") or (_folder_month(n) is not None and n not in keep):
            shutil.rmtree(base / n, ignore_errors=True)


_COLUMNS = {"exposures": {"event_time": "TIMESTAMPTZ", "experiment": "VARCHAR", "user_key": "VARCHAR",
                          "variant": "VARCHAR"},
            "conversions": {"event_time": "TIMESTAMPTZ", "experiment": "VARCHAR", "user_key": "VARCHAR"}}


def _files_sql(root: Path, table: str, sources: dict[str, list[str]], params: dict[str, Any]) -> str:
    """The columns a readout needs of ``table``'s segments in ``sources`` (typed, also when none)."""
    cols = _COLUMNS[table]
    stub = "SELECT " + ", ".join(f"NULL::{kind} AS {name}" for name, kind in cols.items()) + " WHERE false"
    files = [str(root / table / f"year={int(ref[-6:-2]):04d}" / f"month={int(ref[-2:]):02d}" / n)
             for ref, names in sources.items() if ref.startswith(f"{table}/") for n in names]
    if not files:
        return f"({stub})"
    params[table] = files
    return (f"(({stub}) UNION ALL BY NAME (SELECT {', '.join(cols)} FROM read_parquet(${table}, "
            "union_by_name=true, hive_partitioning=false)))")


def _write(root: Path, sources: dict[str, list[str]], out: Path) -> tuple[int, int]:
    params: dict[str, Any] = {}
    exp = _files_sql(root, "exposures", sources, params)
    conv = _files_sql(root, "conversions", sources, params)
    con = duckdb.connect(":memory:")
    spill = out.parent / f"{out.name}.spill"
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()
        con.execute("SET enable_progress_bar = false").fetchall()
        con.execute("SET preserve_insertion_order = false").fetchall()  # no order needed: less memory
        # a larger state spills to temp files beside the folder being built (not the working directory)
        con.execute("SET memory_limit = '256MB'").fetchall()
        con.execute("SET temp_directory = $d", {"d": str(spill)}).fetchall()
        users = str(out / "users.parquet")
        con.execute(f"""
            COPY (WITH e AS (SELECT experiment, user_key, arg_min(variant, event_time) AS variant,
                                    min(event_time) AS first_seen
                               FROM {exp} WHERE experiment IS NOT NULL GROUP BY experiment, user_key),
                       c AS (SELECT experiment, user_key, max(event_time) AS last_conversion
                               FROM {conv} WHERE experiment IS NOT NULL GROUP BY experiment, user_key)
                  SELECT e.experiment, e.user_key, e.variant, e.first_seen, c.last_conversion
                    FROM e LEFT JOIN c USING (experiment, user_key))
            TO $out (FORMAT parquet, COMPRESSION zstd)""", {**params, "out": users}).fetchall()
        con.execute("""COPY (SELECT experiment, variant, count(*) AS n,
                                    count(*) FILTER (WHERE last_conversion >= first_seen) AS conversions
                               FROM read_parquet($users) GROUP BY ALL ORDER BY ALL)
                       TO $out (FORMAT parquet, COMPRESSION zstd)""",
                    {"users": users, "out": str(out / "counts.parquet")}).fetchall()
        row = con.execute(f"""
            SELECT min(t), max(t) FROM (SELECT epoch_us(event_time) AS t FROM {exp}
                                        UNION ALL SELECT epoch_us(event_time) FROM {conv})""", params).fetchall()[0]
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    return (int(row[0]) if row[0] is not None else 0), (int(row[1]) if row[1] is not None else -1)


__all__ = ["EXPERIMENT_DIR", "PREFIXES_KEPT", "ExperimentRollup", "build_experiment_rollup",
           "current_experiment_rollups"]
