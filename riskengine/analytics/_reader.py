"""The reader every AuditDB query runs through: connection, sources, filters, retries.

``_Reader`` owns the one in-memory DuckDB connection (a cursor per call, so AuditDB is
thread-safe), turns a table and a window into a FROM-able source over the listed segments
(:mod:`._files`), applies :class:`~riskengine.analytics._sql.Filters` to a table (including
the lookup of a legacy challenge row's decision), and runs a query again when compaction
renamed a segment between listing and reading. The query families (KPIs, channels, risk,
explorer, alerts, experiments) are mixins over this class, so they share this one definition
of what a filtered table is; they add SQL, never plumbing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from riskengine.analytics._files import month_of, month_range, months_of, previous_month, segments, vanished
from riskengine.analytics._sql import Filters, Query, decision_column_conds
from riskengine.analytics.rollups import OUTCOME_WINDOW, ROLLUPS_ENV, Rollup, duck_type
from riskengine.audit.columns import COLUMNS
from riskengine.audit.layout import is_object_root
from riskengine.audit.objectstore import S3Root, table_segments

_RETRIES = 3


def _retryable(exc: duckdb.Error) -> bool:
    """A listed segment (or rollup part) was gone when read: list and run again. Locally DuckDB
    says so with an I/O error; on object storage the read of a kept handle fails with a
    plain ``duckdb.Error`` carrying the store's "no such key" (:mod:`._objectstore`)."""
    return vanished(exc)


class _Reader:
    """Read-only access to an audit root (see :class:`riskengine.analytics.AuditDB`)."""

    def __init__(self, root: str | Path | S3Root, *, threads: int | None = None) -> None:
        self.store: S3Root | None = root if isinstance(root, S3Root) else (
            S3Root.parse(str(root)) if is_object_root(root) else None)
        """The object store of an ``s3://`` root (None for a local folder)."""
        self.root: Path | str = self.store.url() if self.store is not None else Path(root)  # type: ignore[arg-type]
        self._con = duckdb.connect(":memory:")
        if self.store is not None:
            from riskengine.analytics._objectstore import register

            register(self._con, self.store)
        self._con.execute("SET GLOBAL TimeZone = 'UTC'").fetchall()
        # every Parquet footer is parsed once per reader, not once per query: a dashboard page
        # asks ten queries of the same segments, and on object storage each footer is two
        # ranged GETs. Safe because no audit file is ever rewritten under its name (segments,
        # merged segments and rollup builds get new keys) and DuckDB re-validates the file's
        # modification time before using a cached footer.
        self._con.execute("SET GLOBAL parquet_metadata_cache = true").fetchall()
        if threads is not None:
            self._con.execute(f"SET GLOBAL threads = {int(threads)}").fetchall()
        self._lock = threading.Lock()
        self._listing = threading.local()
        self._legacy_files: dict[str, bool] = {}
        self.use_rollups = os.environ.get(ROLLUPS_ENV, "1") != "0"
        """Answer from ``<root>/_rollups`` (on disk or object storage) where current (False, or
        env ``RISKENGINE_ROLLUPS=0``: always scan raw segments)."""
        self.rollup_plans = 0
        """How many queries the planner has answered (in part) from rollups: a call that leaves
        it unchanged was answered from raw segments only. Tests read it to know which source
        answered; it is a plain counter, not a metric to alert on."""
        self._probe: int | None = None
        self._rollups_seen: tuple[tuple[tuple[str, int], ...], dict[int, Rollup]] | None = None
        """The last answer of ``current_rollups`` and the folder times it was given for (see
        :meth:`riskengine.analytics._planner._Planner._current_rollups`)."""
        self.last_plan_months: frozenset[int] = frozenset()
        """``YYYYMM`` of the months the last rollup-answered query read from rollups."""

    def close(self) -> None:
        self._con.close()

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:  # creating cursors is not guaranteed thread-safe; using them is
            cur = self._con.cursor()
        try:
            cur.execute("SET enable_progress_bar = false").fetchall()
            yield cur
        finally:
            cur.close()

    @contextmanager
    def _one_listing(self) -> Iterator[None]:
        """While one query is assembled, an object-store table the planner lists whole (to
        check the rollups' currency) is listed once, and its raw segments come from that same
        listing: fewer requests, and the rolled-up and raw sides agree on what was there."""
        outer = getattr(self._listing, "tables", None)
        self._listing.tables = {} if outer is None else outer
        try:
            yield
        finally:
            self._listing.tables = outer

    def _table_segments(self, table: str) -> dict[int, list[str]]:
        """``YYYYMM`` → segments of ``table`` on object storage, one recursive listing (kept for
        the query being assembled, see :meth:`_one_listing`)."""
        assert self.store is not None
        tables: dict[str, dict[int, list[str]]] | None = getattr(self._listing, "tables", None)
        if tables is None:
            return table_segments(self.store, table)
        if table not in tables:
            tables[table] = table_segments(self.store, table)
        return tables[table]

    def _files(self, table: str, since: datetime | None, until: datetime | None,
               skip: frozenset[int] = frozenset()) -> list[str]:
        """Segments of the month partitions overlapping [since, until), except ``skip`` months."""
        listed = getattr(self._listing, "tables", None)
        if self.store is not None and listed is not None and table in listed:
            from riskengine.analytics._objectstore import duck_path

            lo, hi = month_range(since, until)
            return sorted(duck_path(self.store, rel) for key, rels in listed[table].items()
                          if lo <= key <= hi and key not in skip for rel in rels)
        return segments(self.store or Path(self.root), table, since, until, skip)

    def _months(self, table: str, since: datetime | None, until: datetime | None) -> list[int]:
        """``YYYYMM`` keys of the partitions of ``table`` that hold segments in [since, until)."""
        return sorted(months_of(self._files(table, since, until)))

    def _src(self, q: Query, table: str, since: datetime | None = None, until: datetime | None = None,
             skip: frozenset[int] = frozenset(), files: list[str] | None = None) -> str:
        """A FROM-able subquery with every column of ``table`` (typed NULLs where a segment
        predates a column) plus ``year``/``month``; empty when there are no segments."""
        stub = ", ".join(f"NULL::{duck_type(dt)} AS {name}" for name, dt in COLUMNS[table].items())
        stub = f"SELECT {stub}, NULL::INTEGER AS year, NULL::INTEGER AS month WHERE false"
        if files is None:
            files = self._files(table, since, until, skip)
        if not files:
            return f"({stub})"
        return (f"(({stub}) UNION ALL BY NAME (SELECT * FROM read_parquet({q.p(files)}, hive_partitioning=true, "
                "union_by_name=true, hive_types={'year': INTEGER, 'month': INTEGER})))")

    def _frame(self, build: Callable[[Query], str]) -> pl.DataFrame:
        """Run the query ``build`` assembles; re-list files and retry if one vanished."""
        last: Exception | None = None
        for _ in range(_RETRIES):
            q = Query()
            with self._one_listing():
                sql = build(q)
            try:
                with self._cursor() as cur:
                    frame: pl.DataFrame = cur.sql(sql, params=q.params).pl()
                    return frame
            except duckdb.Error as exc:  # object storage: a kept handle's object was deleted
                if not _retryable(exc):
                    raise
                last = exc
        assert last is not None
        raise last

    def _frame_with_labels(self, build: Callable[[Query], str], labels: pl.DataFrame) -> pl.DataFrame:
        table = labels.select(pl.col("decision_id").cast(pl.Utf8), pl.col("is_attack").cast(pl.Boolean)).to_arrow()
        for _ in range(_RETRIES):
            q = Query()
            with self._one_listing():
                sql = build(q)
            try:
                with self._cursor() as cur:
                    cur.register("_labels", table)
                    frame: pl.DataFrame = cur.sql(sql, params=q.params).pl()
                    return frame
            except duckdb.Error as exc:  # object storage: a kept handle's object was deleted
                if not _retryable(exc):
                    raise
        raise RuntimeError("audit segments kept vanishing while querying; is compaction looping?")

    def _where(self, q: Query, f: Filters, table: str, alias: str = "",
               legacy: bool | list[str] = True) -> str:
        """SQL conditions for ``f`` on ``table``. For challenges, ``legacy`` says which rows may
        lack their decision's columns: True (any: look their decisions up in the window),
        False (none) or the challenge segments holding such rows (look up only their months)."""
        a = f"{alias}." if alias else ""
        cols = COLUMNS[table]
        conds = ["true"]
        if f.since is not None:
            conds.append(f"{a}event_time >= {q.p(f.since)}")
        if f.until is not None:
            conds.append(f"{a}event_time < {q.p(f.until)}")
        if f.user_key is not None and "user_key" in cols:
            conds.append(f"{a}user_key = {q.p(f.user_key)}")
        if f.countries and "country" in cols:
            conds.append(f"list_contains({q.p(list(f.countries))}, {a}country)")
        if f.factors and "factor" in cols:
            conds.append(f"list_contains({q.p(list(f.factors))}, {a}factor)")
        if table == "decisions":
            if f.actions:
                conds.append(f"list_contains({q.p(list(f.actions))}, {a}action)")
            conds.extend(decision_column_conds(q, f, a))
        elif table == "challenges" and f.decision_only:
            # a challenge row carries its decision's device type, reasons and policy version
            # (and its decision's action is always "challenge"); rows written before those
            # columns existed (null policy_version) are matched through their decision
            own = self._challenge_decision_conds(q, f, a)
            if legacy:
                months = None if legacy is True else months_of(legacy)
                by_decision = (f"{a}decision_id IN (SELECT decision_id FROM "
                               f"{self._decisions_for_challenges(q, f, months)})")
                conds.append(f"(CASE WHEN {a}policy_version IS NOT NULL THEN ({own}) ELSE {by_decision} END)")
            else:
                conds.append(own)
        return " AND ".join(conds)

    def _challenge_decision_conds(self, q: Query, f: Filters, a: str = "") -> str:
        """Decision-column filters applied to a challenge row's own copies of those columns."""
        conds = ["true"]
        if f.actions and "challenge" not in f.actions:
            conds.append("false")
        conds.extend(decision_column_conds(q, f, a))
        return " AND ".join(conds)

    def _legacy_files_of(self, files: list[str]) -> list[str]:
        """The challenge segments among ``files`` that hold rows without decision columns."""
        if not self._has_legacy(files):
            return []
        return [p for p in files if self._legacy_files.get(p, True)]

    def _has_legacy(self, files: list[str]) -> bool:
        """Whether any of these challenge segments holds rows without the decision columns
        (null ``policy_version``). Segments never change once written: answers are cached."""
        unknown = [p for p in files if p not in self._legacy_files]
        if unknown:
            found: dict[str, bool] = {p: True for p in unknown}  # no statistics: assume legacy
            try:
                with self._cursor() as cur:
                    rows = cur.execute(
                        "SELECT file_name, bool_or(stats_null_count IS NULL OR stats_null_count > 0) "
                        "FROM parquet_metadata($files) WHERE path_in_schema = 'policy_version' GROUP BY 1",
                        {"files": unknown}).fetchall()
                for name, nulls in rows:
                    found[str(name)] = bool(nulls)
            except duckdb.Error as exc:
                if not _retryable(exc):
                    raise
                return True  # a segment vanished (compaction): the caller's query retries
            with self._lock:
                self._legacy_files.update(found)
        return any(self._legacy_files.get(p, True) for p in files)

    def _decisions_for_challenges(self, q: Query, f: Filters, months: set[int] | None = None) -> str:
        """Decisions a challenge in ``f``'s window may belong to, filtered by decision columns
        (``months``: only those of challenges in these months, i.e. that month or the one before)."""
        since = f.since - OUTCOME_WINDOW if f.since else None
        df = Filters(since=since, until=f.until, device_types=f.device_types, actions=f.actions,
                     reasons=f.reasons, policy_versions=f.policy_versions)
        src = self._decision_src(q, since, f.until, months)
        return f"(SELECT * FROM {src} WHERE {self._where(q, df, 'decisions')})"

    def _decision_src(self, q: Query, since: datetime | None, until: datetime | None,
                      months: set[int] | None) -> str:
        """Decisions of [since, until), read only from ``months`` and the month before each
        (all months when None): where the decisions of challenges in ``months`` are."""
        if months is None:
            return self._src(q, "decisions", since, until)
        wanted = months | {previous_month(k) for k in months}
        files = [p for p in self._files("decisions", since, until) if month_of(p) in wanted]
        return self._src(q, "decisions", files=files)

    def _dec(self, q: Query, f: Filters) -> str:
        return f"(SELECT * FROM {self._src(q, 'decisions', f.since, f.until)} WHERE {self._where(q, f, 'decisions')})"

    def _chal(self, q: Query, f: Filters) -> str:
        files = self._files("challenges", f.since, f.until)
        legacy = self._legacy_files_of(files) if f.decision_only else []
        return (f"(SELECT * FROM {self._src(q, 'challenges', files=files)} "
                f"WHERE outcome IS NOT NULL AND {self._where(q, f, 'challenges', legacy=legacy)})")

