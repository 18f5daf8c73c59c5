"""Pre-aggregated monthly rollups of an audit root, so whole-range dashboard queries do not
scan every decision.

``riskengine audit compact`` (after merging segments) writes, for every closed month
partition, one folder ``<root>/_rollups/YYYY-MM/`` holding:

- ``decisions.parquet``  counts per UTC day × country × device type × action × reason
  codes × factor × policy version × event (``n``, and how many were on a trusted device /
  in cold start; ``event`` is ``"login"`` for rows written before the column existed);
- ``challenges.parquet`` challenges with a recorded outcome per UTC day × country × device
  type × reason codes × policy version × factor × outcome × fallback used (``n``);
- ``hourly.parquet``     logins, step-ups and failed passwords per UTC hour (no segments);
- ``users.parquet``      a HyperLogLog sketch of the user keys per UTC day (no segments):
  register and the largest rank seen in it (:data:`HLL_P`), for the distinct-user estimate;
- ``users_month.parquet`` the month's daily sketches merged (register, largest rank): what a
  window holding the whole month reads (16,384 rows instead of one sketch a day);
- ``risk.parquet``       decisions per UTC day × action × risk step of 1/1000 (no segments):
  step ``k`` holds the risks ``r`` with ``k/1000 <= r < (k+1)/1000`` (as doubles; NULL: no
  risk), so the
  histogram and the what-if table for thresholds on that grid are sums of these counts;
- ``channels.parquet``   challenges with a recorded outcome per UTC day × country × factor ×
  channel path × final channel × outcome (``n``): the channel, funnel and fallback-path
  tables of windows filtered on nothing but countries and factors;
- ``verify.parquet``     verified challenges per UTC day × country × factor × bucket of
  seconds to verify (:func:`verify_bucket_sql`: buckets 2 % wide, a mergeable quantile sketch);
- ``shadow.parquet``     decisions per UTC day × country × device type × policy version × action
  × shadow action (``n``): the enforced and would-be (shadow mode) rates per policy version;
- ``manifest.json``      the names of the raw segments it was built from.

:class:`riskengine.analytics.AuditDB` answers counts for whole UTC days of months whose
rollup is *current* — its manifest names exactly the segments on disk now — from the
rollup, and everything else (partial days, the month being written, a month that got new
segments since the last compaction, per-user filters) from the raw segments. A rollup is
therefore never stale: a late segment in a rolled-up month makes that month raw again
until the next compaction. Exact distinct users cannot be added up from rollups and are
always counted on raw rows; the estimate (:func:`hll_estimate`) merges the daily sketches of
the rolled-up days with a sketch of the raw rest, computed the same way, so it is the same
number whichever side answered.

Challenge rows written before they carried ``device_type``/``reasons``/``policy_version``
(``policy_version`` is null) take those from their decision, looked up among the decisions
of the month and the day before it, exactly as the raw queries do.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from riskengine._extras import extra
from riskengine.audit._fs import private_mkdir, publish_folder
from riskengine.audit.columns import COLUMNS
from riskengine.audit.layout import is_object_root

with extra("analytics", feature="audit rollups (riskengine.analytics)"):
    import duckdb

from riskengine.audit.objectstore import S3Root, table_segments  # after duckdb: a missing extra is "analytics"

ROLLUP_DIR = "_rollups"
ROLLUP_VERSION = 2
"""2: decisions carry ``event``. A rollup of another version is not current: raw segments
answer for its month until ``riskengine audit compact`` rebuilds it."""
MANIFEST = "manifest.json"
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
SOURCE_TABLES = ("decisions", "challenges", "failures")
ROLLUPS_ENV = "RISKENGINE_ROLLUPS"
"""Set to ``0`` to make :class:`~riskengine.analytics.AuditDB` ignore rollups (raw scans only)."""
OUTCOME_WINDOW = timedelta(days=1)
"""How long after its decision a challenge outcome may come (pending challenges expire sooner)."""
PARTS = ("decisions.parquet", "challenges.parquet", "hourly.parquet", "users.parquet", "risk.parquet",
         "channels.parquet", "verify.parquet", "shadow.parquet", "users_month.parquet")
"""The files of a complete rollup folder (older rollups lack the last six: rebuilt by compaction)."""

HLL_P = 14
"""HyperLogLog precision: 2**14 registers, standard error 1.04 / sqrt(2**14) ≈ 0.8 %."""
_HLL_BITS = 64 - HLL_P
HLL_PROBE = "riskengine-hll-probe"
"""The manifest records DuckDB's ``hash()`` of this string when the sketches were built: a
DuckDB whose hash differs (another version) would mix incompatible sketches, so such a
rollup's sketch is not used (the estimate is computed on raw rows instead)."""
RISK_STEPS = 1000
"""Risk resolution of ``risk.parquet``: thresholds and bin edges that are multiples of 1/1000."""


def hll_sql(col: str = "user_key") -> tuple[str, str]:
    """SQL for the HyperLogLog register of ``col`` (top :data:`HLL_P` bits of its 64-bit hash)
    and its rank (position of the first 1 bit in the remaining bits)."""
    h = f"hash({col})"
    rest = f"({h} & {(1 << _HLL_BITS) - 1}::UBIGINT)"
    rank = (f"(CASE WHEN {rest} = 0 THEN {_HLL_BITS + 1} "
            f"ELSE {_HLL_BITS} - floor(log2({rest}::DOUBLE))::INTEGER END)::TINYINT")
    return f"({h} >> {_HLL_BITS})::SMALLINT", rank


def hll_estimate(ranks: Iterable[int]) -> int:
    """Distinct count from the merged registers' ranks (absent registers are 0): the
    HyperLogLog estimate, with linear counting while many registers are still empty."""
    m = 1 << HLL_P
    seen = [int(r) for r in ranks if r]
    if not seen:
        return 0
    zeros = m - len(seen)
    raw = (0.7213 / (1 + 1.079 / m)) * m * m / (zeros + sum(2.0 ** -r for r in seen))
    if raw <= 2.5 * m and zeros:
        return round(m * math.log(m / zeros))
    return round(raw)


def risk_step_sql(col: str = "risk", steps: int = RISK_STEPS) -> str:
    """SQL for the step of a risk on the grid ``k/steps``: the largest ``k`` in 0..steps with
    ``k/steps <= risk`` as doubles (the multiplication's rounding is corrected both ways, so it
    agrees exactly with ``risk >= k/steps``); -1 below 0, NULL for a NULL risk."""
    k = f"least(greatest(floor({col} * {steps})::INTEGER, 0), {steps})"
    return (f"(CASE WHEN {col} < {k}::DOUBLE / {steps}::DOUBLE THEN {k} - 1 "
            f"WHEN {k} < {steps} AND {col} >= ({k} + 1)::DOUBLE / {steps}::DOUBLE THEN {k} + 1 ELSE {k} END)")


VERIFY_GAMMA = 1.02
"""Seconds-to-verify bucket ``i`` holds ``gamma**(i-1) < s <= gamma**i``: a quantile read as the
bucket's midpoint ``2 gamma**i / (gamma + 1)`` is within 1 % of a value in that bucket."""
_NONPOSITIVE = -32768


def verify_bucket_sql(col: str = "seconds_to_verify") -> str:
    """SQL for the bucket of a positive duration (``-32768`` for zero or less)."""
    return (f"(CASE WHEN {col} > 0 THEN ceil(ln({col}) / ln({VERIFY_GAMMA}))::INTEGER "
            f"ELSE {_NONPOSITIVE} END)")


def bucket_quantile(buckets: list[tuple[int, int]], q: float) -> float | None:
    """The ``q`` quantile of sorted ``(bucket, count)`` pairs: the bucket holding the value of
    rank ``q·(n-1)`` (as ``quantile_cont`` ranks), read as its midpoint."""
    n = sum(c for _, c in buckets)
    if not n:
        return None
    rank = q * (n - 1)
    seen = 0
    for b, c in buckets:
        seen += c
        if seen > rank:
            return 0.0 if b == _NONPOSITIVE else 2 * VERIFY_GAMMA ** b / (VERIFY_GAMMA + 1)
    b = buckets[-1][0]
    return 0.0 if b == _NONPOSITIVE else 2 * VERIFY_GAMMA ** b / (VERIFY_GAMMA + 1)


def hll_probe(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(f"SELECT hash('{HLL_PROBE}')").fetchall()[0][0])


@dataclass
class RollupResult:
    built: list[str] = field(default_factory=list)
    current: int = 0
    rows: int = 0
    experiments: list[str] = field(default_factory=list)
    """The experiment prefixes built (``YYYY-MM``, :mod:`riskengine.analytics.exp_rollups`)."""


@dataclass(frozen=True)
class Rollup:
    """A published rollup of one month as a reader finds it: :meth:`file` is the path DuckDB
    opens for one of its ``parts`` (a folder ``<root>/_rollups/YYYY-MM`` on disk, the prefix
    of one build on object storage, "object storage" below)."""

    location: str
    parts: frozenset[str]
    manifest: dict[str, Any] = field(compare=False, hash=False)

    def file(self, part: str) -> str:
        return f"{self.location}/{part}"


@dataclass(frozen=True)
class ObjectSnapshot:
    """An object-store root with the segments of each source table listed once
    (:func:`riskengine.audit.objectstore.table_segments`): a rollup is built from, and its
    manifest names, exactly the segments of this listing, whatever lands meanwhile."""

    store: S3Root
    segments: dict[str, dict[int, list[str]]]

    @classmethod
    def take(cls, store: S3Root, tables: Iterable[str] = SOURCE_TABLES) -> ObjectSnapshot:
        return cls(store, {t: table_segments(store, t) for t in tables})


SegmentRoot = Path | ObjectSnapshot
"""Where :func:`month_files` lists a month's segments: a local root, or a listed object store."""


def month_key(year: int, month: int) -> int:
    return year * 100 + month


def month_files(root: SegmentRoot, table: str, key: int) -> list[str]:
    """The visible segments of one month partition, sorted by name: the paths DuckDB opens
    (``riskengine-s3://…`` on object storage)."""
    if isinstance(root, ObjectSnapshot):
        from riskengine.analytics._objectstore import duck_path

        return [duck_path(root.store, rel) for rel in root.segments.get(table, {}).get(key, [])]
    folder = root / table / f"year={key // 100:04d}" / f"month={key % 100:02d}"
    if not folder.is_dir():
        return []
    return [str(p) for p in sorted(folder.glob("*.parquet"))]


def _name(path: str) -> str:
    return path.rpartition("/")[2]


def _previous(key: int) -> int:
    y, m = divmod(key, 100)
    return month_key(y - 1, 12) if m == 1 else month_key(y, m - 1)


def _month_start(key: int) -> datetime:
    return datetime(key // 100, key % 100, 1, tzinfo=UTC)


def _next_month_start(key: int) -> datetime:
    y, m = divmod(key, 100)
    return datetime(y + 1, 1, 1, tzinfo=UTC) if m == 12 else datetime(y, m + 1, 1, tzinfo=UTC)


DUCK_TYPES: Final[dict[str, str]] = {
    "timestamp": "TIMESTAMPTZ", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT", "double": "DOUBLE",
    "bool": "BOOLEAN", "string": "VARCHAR", "list<string>": "VARCHAR[]", "list<double>": "DOUBLE[]",
}
"""DuckDB type of each column type name in :data:`~riskengine.audit.columns.COLUMNS`."""


def duck_type(kind: str) -> str:
    """DuckDB type name of a column type from :data:`~riskengine.audit.columns.COLUMNS`.

    >>> duck_type("list<string>")
    'VARCHAR[]'
    """
    try:
        return DUCK_TYPES[kind]
    except KeyError:
        raise TypeError(f"no DuckDB type for audit column type {kind!r}") from None


def stub(table: str) -> str:
    """A zero-row SELECT with every column of ``table``, typed: UNION ALL BY NAME with it
    gives segments written before a column existed that column as NULL."""
    cols = ", ".join(f"NULL::{duck_type(dt)} AS {name}" for name, dt in COLUMNS[table].items())
    return f"SELECT {cols} WHERE false"


def raw(files: list[str], table: str, params: dict[str, Any], name: str) -> str:
    """Every column of ``table`` from ``files`` (bound as parameter ``name``)."""
    if not files:
        return f"({stub(table)})"
    params[name] = list(files)
    return (f"(({stub(table)}) UNION ALL BY NAME (SELECT * FROM read_parquet(${name}, union_by_name=true, "
            "hive_partitioning=false)))")


def _sources(root: SegmentRoot, key: int, legacy: bool) -> dict[str, list[str]]:
    out = {f"{t}/{key}": [_name(p) for p in month_files(root, t, key)] for t in SOURCE_TABLES}
    if legacy:
        prev = _previous(key)
        out[f"decisions/{prev}"] = [_name(p) for p in month_files(root, "decisions", prev)]
    return out


def manifest_of(data: bytes | str) -> dict[str, Any] | None:
    """A manifest's content, or None when it is unreadable or of another :data:`ROLLUP_VERSION`."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("version") != ROLLUP_VERSION:
        return None
    return doc


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return manifest_of((folder / MANIFEST).read_text())
    except OSError:
        return None


def sources_match(manifest: dict[str, Any], names: Callable[[str, int], list[str]]) -> bool:
    """Whether ``names(table, YYYYMM)`` (the segment names there now) are exactly the segments
    the manifest's rollup was built from: the one currency rule, on disk and on object storage."""
    sources = manifest.get("sources")
    if not isinstance(sources, dict):
        return False
    for ref, built_from in sources.items():
        table, _, month = ref.partition("/")
        if table not in COLUMNS or not month.isdigit():
            return False
        if names(table, int(month)) != built_from:
            return False
    return True


def is_current(root: SegmentRoot, key: int, manifest: dict[str, Any]) -> bool:
    """Whether the segments on disk are exactly those the rollup was built from."""
    return sources_match(manifest, lambda table, month: [_name(p) for p in month_files(root, table, month)])


def month_of_folder(name: str) -> int | None:
    """``YYYYMM`` of a rollup folder name ``YYYY-MM`` (None for anything else).

    >>> month_of_folder("2026-03"), month_of_folder(".2026-03.tmp")
    (202603, None)
    """
    if len(name) != 7 or name[4] != "-" or not (name[:4] + name[5:]).isdigit() or not 1 <= int(name[5:]) <= 12:
        return None
    return int(name[:4]) * 100 + int(name[5:])


def current_rollups(root: Path | S3Root, *, segments: TableSegments | None = None) -> dict[int, Rollup]:
    """``YYYYMM`` → rollup, for every month whose rollup matches the segments there now
    (``segments``: how an object-store root's tables are listed, see :func:`current_object_rollups`)."""
    if isinstance(root, S3Root):
        return current_object_rollups(root, segments)
    base = root / ROLLUP_DIR
    if not base.is_dir():
        return {}
    out: dict[int, Rollup] = {}
    for folder in base.iterdir():
        key = month_of_folder(folder.name)
        if key is None:
            continue
        manifest = read_manifest(folder)
        if manifest is not None and is_current(root, key, manifest):
            try:
                parts = frozenset(p.name for p in folder.iterdir())
            except OSError:  # replaced by a rebuild meanwhile: raw answers this time
                continue
            out[key] = Rollup(str(folder), parts, manifest)
    return out


def build_rollups(root: str | os.PathLike[str] | S3Root, *, now: datetime | None = None,
                  rebuild: bool = False, _after_step: Callable[[str, str], None] | None = None) -> RollupResult:
    """(Re)build the rollup of every closed month (ended before ``now``) whose rollup is
    missing or no longer matches its segments. Call under the maintenance lock (on object
    storage, which has none: one maintenance job per root).

    ``_after_step`` is a test seam for object storage ("object storage" below): called with a
    step (``uploaded``: every part is stored, the manifest not yet; ``unpublished``: the
    month's older builds are hidden; ``published``) and the build's prefix, so a test can
    raise there as a crash would."""
    if isinstance(root, S3Root) or is_object_root(root):
        store = root if isinstance(root, S3Root) else S3Root.parse(str(root))
        return build_object_rollups(store, now=now or datetime.now(UTC), rebuild=rebuild, after_step=_after_step)
    root_path = Path(root)
    now = now or datetime.now(UTC)
    result = RollupResult()
    keys: set[int] = set()
    for table in SOURCE_TABLES:
        base = root_path / table
        if not base.is_dir():
            continue
        for ydir in base.glob("year=*"):
            for mdir in ydir.glob("month=*"):
                try:
                    keys.add(month_key(int(ydir.name[5:]), int(mdir.name[6:])))
                except ValueError:
                    continue
    base = root_path / ROLLUP_DIR
    for key in sorted(keys):
        if _next_month_start(key) > now:
            continue  # still being written: raw segments answer for it
        folder = base / f"{key // 100:04d}-{key % 100:02d}"
        manifest = read_manifest(folder)
        if (not rebuild and manifest is not None and is_current(root_path, key, manifest)
                and all((folder / part).is_file() for part in PARTS)):
            result.current += 1
            continue
        result.rows += _build_month(root_path, key, folder)
        result.built.append(folder.name)
    _clear_trash(base)
    from riskengine.analytics.exp_rollups import build_experiment_rollup

    result.experiments = build_experiment_rollup(root_path, now=now, rebuild=rebuild)
    return result


def _build_month(root: Path, key: int, folder: Path) -> int:
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"
    private_mkdir(tmp)  # 0700, like everything compaction writes
    try:
        rows, legacy, probe = _write_month(root, key, tmp)
        manifest = {"version": ROLLUP_VERSION, "month": folder.name, "built_at": datetime.now(UTC).isoformat(),
                    "legacy_challenges": legacy, "hll_probe": probe, "sources": _sources(root, key, legacy)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        publish_folder(tmp, folder)  # readers holding an old folder keep their open files
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows


def _clear_trash(base: Path) -> None:
    if base.is_dir():
        for p in base.glob(".*.trash"):
            shutil.rmtree(p, ignore_errors=True)


def _connect(root: SegmentRoot) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    if isinstance(root, ObjectSnapshot):
        from riskengine.analytics._objectstore import register

        register(con, root.store)
    return con


def _write_month(root: SegmentRoot, key: int, out: Path) -> tuple[int, bool, int]:
    """Write every rollup file of month ``key`` into the local folder ``out``."""
    params: dict[str, Any] = {}
    dec = raw(month_files(root, "decisions", key), "decisions", params, "dec")
    con = _connect(root)
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()
        rows = 0
        rows += _copy(con, f"""
            SELECT (epoch_us(event_time) // {DAY_US}) * {DAY_US} AS day_us, country, device_type, action, reasons,
                   factor, policy_version, coalesce(event, 'login') AS event, count(*) AS n,
                   count(*) FILTER (WHERE trusted_device) AS trusted,
                   count(*) FILTER (WHERE cold_start) AS cold
              FROM {dec} GROUP BY ALL""", params, out / "decisions.parquet")
        cparams: dict[str, Any] = {}
        chal = raw(month_files(root, "challenges", key), "challenges", cparams, "chal")
        legacy = bool(con.execute(f"SELECT count(*) FROM {chal} WHERE outcome IS NOT NULL "
                                  "AND policy_version IS NULL", cparams).fetchall()[0][0])
        if legacy:
            cparams["lo"] = _month_start(key) - OUTCOME_WINDOW
            cparams["hi"] = _next_month_start(key)
            dfiles = month_files(root, "decisions", _previous(key)) + month_files(root, "decisions", key)
            d = raw(dfiles, "decisions", cparams, "dec")
            source = (f"(SELECT c.* REPLACE ({_LEGACY_COLS}) FROM {chal} c LEFT JOIN "
                      f"(SELECT decision_id, device_type, reasons, policy_version FROM {d} "
                      f"WHERE event_time >= $lo AND event_time < $hi) d USING (decision_id))")
        else:
            source = chal
        rows += _copy(con, f"""
            SELECT (epoch_us(event_time) // {DAY_US}) * {DAY_US} AS day_us, country, device_type, reasons,
                   policy_version, factor, outcome, len(channels) > 1 AS fallback, count(*) AS n
              FROM {source} WHERE outcome IS NOT NULL GROUP BY ALL""", cparams, out / "challenges.parquet")
        hparams: dict[str, Any] = {}
        hdec = raw(month_files(root, "decisions", key), "decisions", hparams, "dec")
        hfail = raw(month_files(root, "failures", key), "failures", hparams, "fail")
        rows += _copy(con, f"""
            SELECT hour_us, sum(logins)::BIGINT AS logins, sum(stepups)::BIGINT AS stepups,
                   sum(failures)::BIGINT AS failures
              FROM (SELECT (epoch_us(event_time) // {HOUR_US}) * {HOUR_US} AS hour_us, count(*) AS logins,
                           count(*) FILTER (WHERE action <> 'allow') AS stepups, 0 AS failures
                      FROM {hdec} GROUP BY 1
                    UNION ALL
                    SELECT (epoch_us(event_time) // {HOUR_US}) * {HOUR_US}, 0, 0, count(*)
                      FROM {hfail} GROUP BY 1)
             GROUP BY hour_us""", hparams, out / "hourly.parquet")
        reg, rank = hll_sql()
        uparams: dict[str, Any] = {}
        udec = raw(month_files(root, "decisions", key), "decisions", uparams, "dec")
        rows += _copy(con, f"""
            SELECT day_us, reg, max(rank) AS rank
              FROM (SELECT (epoch_us(event_time) // {DAY_US}) * {DAY_US} AS day_us, {reg} AS reg, {rank} AS rank
                      FROM {udec} WHERE user_key IS NOT NULL)
             GROUP BY ALL ORDER BY day_us, reg""", uparams, out / "users.parquet")
        rows += _write_month_sketch(con, out)
        rparams: dict[str, Any] = {}
        rdec = raw(month_files(root, "decisions", key), "decisions", rparams, "dec")
        rows += _copy(con, f"""
            SELECT (epoch_us(event_time) // {DAY_US}) * {DAY_US} AS day_us, action, {risk_step_sql()} AS step,
                   count(*) AS n
              FROM {rdec} GROUP BY ALL""", rparams, out / "risk.parquet")
        chparams: dict[str, Any] = {}
        chchal = raw(month_files(root, "challenges", key), "challenges", chparams, "chal")
        rows += _copy(con, f"""
            SELECT (epoch_us(event_time) // {DAY_US}) * {DAY_US} AS day_us, country, factor, channels,
                   final_channel, outcome, count(*) AS n
              FROM {chchal} WHERE outcome IS NOT NULL GROUP BY ALL""", chparams, out / "channels.parquet")
        vparams: dict[str, Any] = {}
        vchal = raw(month_files(root, "challenges", key), "challenges", vparams, "chal")
        rows += _copy(con, f"""
            SELECT (epoch_us(event_time) // {DAY_US}) * {DAY_US} AS day_us, country, factor,
                   {verify_bucket_sql()} AS bucket, count(*) AS n
              FROM {vchal} WHERE outcome = 'verified' AND seconds_to_verify IS NOT NULL
             GROUP BY ALL""", vparams, out / "verify.parquet")
        rows += _write_shadow(con, root, key, out)
        probe = hll_probe(con)
    finally:
        con.close()
    return rows, legacy, probe


def _write_month_sketch(con: duckdb.DuckDBPyConnection, out: Path) -> int:
    """``users_month.parquet``: the daily user sketches of ``users.parquet`` merged over the month."""
    return _copy(con, "SELECT reg, max(rank) AS rank FROM read_parquet($users) GROUP BY reg ORDER BY reg",
                 {"users": str(out / "users.parquet")}, out / "users_month.parquet")


def _write_shadow(con: duckdb.DuckDBPyConnection, root: SegmentRoot, key: int, out: Path) -> int:
    """``shadow.parquet``: decisions per day × the columns the policy-mode table is cut by."""
    params: dict[str, Any] = {}
    dec = raw(month_files(root, "decisions", key), "decisions", params, "dec")
    return _copy(con, f"""
        SELECT (epoch_us(event_time) // {DAY_US}) * {DAY_US} AS day_us, country, device_type, policy_version,
               action, shadow_action, count(*) AS n
          FROM {dec} GROUP BY ALL""", params, out / "shadow.parquet")


LEGACY_EXPR = {
    "device_type": "CASE WHEN c.policy_version IS NULL THEN d.device_type ELSE c.device_type END",
    "reasons": "CASE WHEN c.policy_version IS NULL THEN d.reasons ELSE c.reasons END",
    "policy_version": "coalesce(c.policy_version, d.policy_version)",
}
"""A challenge row's decision columns: its own copy, or (rows written before the copy
existed, recognisable by a null ``policy_version``) its decision's."""
_LEGACY_COLS = ", ".join(f"{expr} AS {name}" for name, expr in LEGACY_EXPR.items())


def _copy(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any], out: Path) -> int:
    res = con.execute(f"COPY ({sql}) TO $out (FORMAT parquet, COMPRESSION zstd)", {**params, "out": str(out)})
    return int(res.fetchall()[0][0])


# ---------------------------------------------------------------------- object storage
# Rollups on an object-store audit root (``s3://bucket/prefix``): built, published, found.
#
# Object stores have no rename, so a rollup cannot appear by renaming a finished folder as it
# does on disk. Every build of a month gets its own prefix, and its manifest is what publishes
# it::
#
#     <root>/_rollups/YYYY-MM/<build>/decisions.parquet …   (every part: one PUT each)
#     <root>/_rollups/YYYY-MM/<build>/manifest.json          (one PUT, last: the build is visible)
#
# ``<build>`` is ``<UTC time>-<random>``. A build stores every part, then deletes the
# manifests of the month's other builds (from here until the next step the month is answered
# from raw segments: never wrong, only slower), then stores its own manifest, then deletes the
# other builds' parts. So at most one build of a month is published at any time, and all its
# parts were stored before it was. A reader lists ``_rollups/`` once and takes, for each month,
# the build that has a manifest (the newest, should a stray object make two): it never opens a
# missing or half-written part. A builder killed before its manifest leaves a prefix no reader
# uses, and possibly a month with no published build (raw answers); the next build deletes the
# leftovers. A manifest is never rewritten (a new build is a new prefix), so readers keep the
# manifests they fetched (:func:`_manifest`): finding the rollups costs one listing of
# ``_rollups/`` plus one listing of each source table.
#
# Currency is the local rule (:func:`sources_match`): the
# manifest names the segments the build read, and the rollup is used only while the exact
# listing (:func:`riskengine.audit.objectstore.table_segments`: compaction markers and
# retention markers applied) shows exactly those. A build reads the segments of one listing
# taken when it starts (:class:`ObjectSnapshot`) and names those,
# so a segment written meanwhile makes the new rollup stale rather than silently missing.
#
# A reader that planned on a build the next build then deletes gets "no such key" from the
# store: the query is listed, planned and run again (``_Reader._frame``), on the newer build.

_MANIFESTS: dict[str, dict[str, Any] | None] = {}
_MANIFESTS_LOCK = threading.Lock()
_MANIFESTS_MAX = 4096


def build_name(now: datetime | None = None) -> str:
    """A build prefix name, unique, sorting by creation time."""
    return f"{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex}"


def month_folder(key: int) -> str:
    return f"{ROLLUP_DIR}/{key // 100:04d}-{key % 100:02d}"


def builds(store: S3Root) -> dict[int, dict[str, set[str]]]:
    """``YYYYMM`` → build name → the names of the objects stored under that build: one
    (paginated) listing of ``_rollups/``."""
    out: dict[int, dict[str, set[str]]] = {}
    for name, _size in store.objects(ROLLUP_DIR, recursive=True):
        parts = name.split("/")
        if len(parts) != 3:
            continue
        key = month_of_folder(parts[0])
        if key is not None:
            out.setdefault(key, {}).setdefault(parts[1], set()).add(parts[2])
    return out


def published(month_builds: dict[str, set[str]]) -> str | None:
    """The newest build that has its manifest (the one readers use), if any."""
    done = sorted(b for b, names in month_builds.items() if MANIFEST in names)
    return done[-1] if done else None


def _manifest(store: S3Root, rel: str) -> dict[str, Any] | None:
    """The manifest at ``rel``, fetched once per process (a build's manifest never changes)."""
    url = store.url(rel)
    with _MANIFESTS_LOCK:
        if url in _MANIFESTS:
            return _MANIFESTS[url]
    try:
        doc = manifest_of(store.get(rel))
    except FileNotFoundError:  # deleted by a newer build since the listing: not cached
        return None
    with _MANIFESTS_LOCK:
        if len(_MANIFESTS) >= _MANIFESTS_MAX:
            _MANIFESTS.clear()
        _MANIFESTS[url] = doc
    return doc


TableSegments = Callable[[str], dict[int, list[str]]]
"""``table`` → ``YYYYMM`` → its segments relative to the root (:func:`table_segments`)."""


class _Listing:
    """The exact segment listing of each table, taken the first time a manifest asks for it."""

    def __init__(self, store: S3Root, segments: TableSegments | None) -> None:
        self.segments = segments or (lambda table: table_segments(store, table))
        self.tables: dict[str, dict[int, list[str]]] = {}

    def names(self, table: str, key: int) -> list[str]:
        if table not in self.tables:
            self.tables[table] = self.segments(table)
        return [rel.rpartition("/")[2] for rel in self.tables[table].get(key, [])]


def current_object_rollups(store: S3Root, segments: TableSegments | None = None) -> dict[int, Rollup]:
    """``YYYYMM`` → the published rollup of each month whose sources are the segments there now
    (as ``segments`` lists them: by default one recursive listing per table)."""
    out: dict[int, Rollup] = {}
    listing = _Listing(store, segments)
    for key, month_builds in sorted(builds(store).items()):
        build = published(month_builds)
        if build is None:
            continue
        prefix = f"{month_folder(key)}/{build}"
        manifest = _manifest(store, f"{prefix}/{MANIFEST}")
        if manifest is not None and sources_match(manifest, listing.names):
            from riskengine.analytics._objectstore import duck_path

            out[key] = Rollup(duck_path(store, prefix), frozenset(month_builds[build]), manifest)
    return out


def build_object_rollups(store: S3Root, *, now: datetime, rebuild: bool,
                         after_step: Callable[[str, str], None] | None) -> RollupResult:
    """:func:`build_rollups` on object storage."""
    step = after_step or _no_step
    snapshot = ObjectSnapshot.take(store)
    result = RollupResult()
    existing = builds(store)
    keys = sorted(set().union(*(snapshot.segments[t] for t in SOURCE_TABLES)))
    for key in keys:
        if _next_month_start(key) > now:
            continue  # still being written: raw segments answer for it
        month_builds = existing.get(key, {})
        build = published(month_builds)
        if not rebuild and build is not None:
            manifest = _manifest(store, f"{month_folder(key)}/{build}/{MANIFEST}")
            if (manifest is not None and sources_match(manifest, _snapshot_names(snapshot))
                    and set(PARTS) <= month_builds[build]):
                result.current += 1
                continue
        result.rows += _build_object_month(snapshot, key, month_builds, step)
        result.built.append(month_folder(key).rpartition("/")[2])
    _prune(store)
    return result


def _snapshot_names(snapshot: ObjectSnapshot) -> Callable[[str, int], list[str]]:
    def names(table: str, key: int) -> list[str]:
        return [rel.rpartition("/")[2] for rel in snapshot.segments.get(table, {}).get(key, [])]

    return names


def _build_object_month(snapshot: ObjectSnapshot, key: int, month_builds: dict[str, set[str]],
                        step: Callable[[str, str], None]) -> int:
    store = snapshot.store
    build = build_name()
    prefix = f"{month_folder(key)}/{build}"
    with tempfile.TemporaryDirectory(prefix="riskengine-rollup-") as tmp:
        out = Path(tmp)
        rows, legacy, probe = _write_month(snapshot, key, out)
        manifest = {"version": ROLLUP_VERSION, "month": month_folder(key).rpartition("/")[2], "build": build,
                    "built_at": datetime.now(UTC).isoformat(), "legacy_challenges": legacy, "hll_probe": probe,
                    "sources": _sources(snapshot, key, legacy)}
        for part in sorted(out.iterdir()):  # every file the month's rollup has, whatever their list
            store.put(f"{prefix}/{part.name}", part.read_bytes())
    step("uploaded", prefix)
    # unpublish the month's other builds first, so at most one is ever published: in between,
    # raw segments answer for the month (never wrong, only slower), and a build with a newer
    # name (a skewed clock, a stray object) cannot hide this one
    store.delete(f"{month_folder(key)}/{b}/{MANIFEST}" for b, names in sorted(month_builds.items())
                 if MANIFEST in names)
    step("unpublished", prefix)
    store.put(f"{prefix}/{MANIFEST}", json.dumps(manifest, indent=1).encode())  # publishes the build
    step("published", prefix)
    return rows


def _prune(store: S3Root) -> None:
    """Delete every build but the one readers use: unpublished ones (a builder died before
    the manifest, or they were replaced) and any other published one (manifest first, so a
    reader listing meanwhile never takes a build whose parts are going)."""
    for key, month_builds in builds(store).items():
        keep = published(month_builds)
        for build, names in sorted(month_builds.items()):
            if build == keep:
                continue
            prefix = f"{month_folder(key)}/{build}"
            if MANIFEST in names:
                store.delete([f"{prefix}/{MANIFEST}"])
            store.delete(f"{prefix}/{n}" for n in sorted(names) if n != MANIFEST)


def _no_step(step: str, prefix: str) -> None:
    pass


__all__ = ["HLL_P", "LEGACY_EXPR", "RISK_STEPS", "ROLLUPS_ENV", "ROLLUP_DIR", "Rollup", "RollupResult",
           "bucket_quantile", "build_rollups", "builds", "current_rollups", "hll_estimate", "hll_sql", "published",
           "risk_step_sql", "verify_bucket_sql"]
