"""AuditDB: every analytics query over an audit root, in DuckDB SQL, returning polars frames.

The rates are defined here, once (dashboard, notebooks and ``riskengine report`` all call
these methods):

- ``challenge_rate``         = (challenged + denied logins) / scored logins      [decisions]
- ``deny_rate``              = denied logins / scored logins                      [decisions]
- ``challenge_success_rate`` = verified challenges / challenges with an outcome   [challenges]
- ``fallback_rate``          = challenges that used more than one channel
                               / challenges with an outcome                       [challenges]

Reading: each query lists the Parquet segments of the month partitions its date range
touches (so narrow ranges open few files) and reads them with ``read_parquet(...,
hive_partitioning=true, union_by_name=true)``. Nothing is cached here; a query always sees
the segments on disk at that moment. Writers may be writing and compaction may be renaming
segments meanwhile: a file that vanished between listing and opening makes the query run
again (up to 3 times). Every user-supplied value is a bound parameter.

Rollups (see :mod:`riskengine.analytics.rollups`): counts over whole UTC days of months
whose rollup is current come from ``<root>/_rollups`` instead of the raw segments, and the
rest of the window from the raw segments, so ``kpis``, ``kpi_series`` (day/week),
``breakdown``, ``reason_counts``, ``avoidable_challenges``, ``alerts`` and
``segment_values`` give the same numbers with or without rollups, only faster. Distinct
users are always counted on raw rows.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from riskengine.analytics.alerts import spikes
from riskengine.analytics.experiments import ExperimentReadout, readout
from riskengine.analytics.rollups import (
    DAY_US,
    HOUR_US,
    LEGACY_EXPR,
    OUTCOME_WINDOW,
    ROLLUPS_ENV,
    current_rollups,
)
from riskengine.audit.maintenance import segment_files
from riskengine.audit.schema import TABLES

_DUCK_TYPES = {
    pl.Datetime: "TIMESTAMPTZ", pl.Int16: "SMALLINT", pl.Int32: "INTEGER", pl.Int64: "BIGINT",
    pl.Float64: "DOUBLE", pl.Boolean: "BOOLEAN", pl.Utf8: "VARCHAR",
}
GRAINS = ("hour", "day", "week")
BREAKDOWNS = ("country", "device_type", "reason", "factor", "browser_family", "policy_version")
STRONG_NOVELTY = ("NEW_DEVICE", "NEW_COUNTRY", "IMPOSSIBLE_TRAVEL")
RATE_DEFINITIONS = {
    "challenge_rate": "(challenged + denied logins) / scored logins",
    "deny_rate": "denied logins / scored logins",
    "challenge_success_rate": "verified challenges / challenges with a recorded outcome",
    "fallback_rate": "challenges that used more than one channel / challenges with a recorded outcome",
}
_RETRIES = 3
_OUTCOME_WINDOW = OUTCOME_WINDOW  # how long after its decision a challenge outcome may come
_DECISION_DIMS = ("country", "device_type", "action", "reasons", "factor", "policy_version")
_CHALLENGE_DIMS = ("country", "device_type", "reasons", "policy_version", "factor", "outcome", "fallback")
_FAR_PAST = datetime(1, 1, 2, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 12, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Filters:
    """What to look at. Empty tuples mean "all"; ``since`` inclusive, ``until`` exclusive.

    Filters a table has no column for are applied through its decision where one exists
    (challenges → decisions by ``decision_id``) and ignored otherwise (failures,
    exposures and conversions only know time and user).
    """

    since: datetime | None = None
    until: datetime | None = None
    countries: tuple[str, ...] = ()
    device_types: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    factors: tuple[str, ...] = ()
    user_key: str | None = None
    policy_versions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise ValueError(f"Filters.{name} must be a timezone-aware datetime, got {value!r}")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError(f"Filters.until ({self.until}) must be after since ({self.since})")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list | set | frozenset):
                object.__setattr__(self, f.name, tuple(value))
            elif isinstance(value, str) and f.name not in ("user_key",):
                raise ValueError(f"Filters.{f.name} must be a tuple of strings, not a string")

    def replace(self, **changes: Any) -> Filters:
        return dataclasses.replace(self, **changes)

    @property
    def decision_only(self) -> bool:
        """Whether a filter needs decision columns that the challenges table does not have."""
        return bool(self.device_types or self.actions or self.reasons or self.policy_versions)


class _Query:
    """Collects named parameters while SQL text is assembled."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def p(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"


@dataclass
class _Cols:
    present: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Plan:
    """Which part of a query window the rollups answer: whole UTC days in [lo, hi) of the
    ``months`` (``YYYYMM``) in ``folders``; raw segments answer for everything else."""

    folders: tuple[Path, ...]
    months: frozenset[int]
    lo: datetime
    hi: datetime
    skip: frozenset[int]  # months wholly inside [lo, hi): their raw segments are not read

    @property
    def lo_us(self) -> int:
        return _epoch_us(self.lo)

    @property
    def hi_us(self) -> int:
        return _epoch_us(self.hi)

    def files(self, name: str) -> list[str]:
        return [str(folder / name) for folder in self.folders]


class AuditDB:
    """Read-only analytics over an audit root. Thread-safe: one DuckDB cursor per call.

    >>> import tempfile
    >>> db = AuditDB(tempfile.mkdtemp())
    >>> db.has_data(), db.kpis()["logins"], db.kpis()["challenge_rate"]
    (False, 0, None)
    """

    def __init__(self, root: str | Path, *, threads: int | None = None) -> None:
        self.root = Path(root)
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET GLOBAL TimeZone = 'UTC'").fetchall()
        if threads is not None:
            self._con.execute(f"SET GLOBAL threads = {int(threads)}").fetchall()
        self._lock = threading.Lock()
        self._legacy_files: dict[str, bool] = {}
        self.use_rollups = os.environ.get(ROLLUPS_ENV, "1") != "0"
        """Answer from ``<root>/_rollups`` where current (False, or env ``RISKENGINE_ROLLUPS=0``:
        always scan raw segments)."""
        self.rollup_plans = 0
        """How many queries the planner has answered (in part) from rollups: a call that leaves
        it unchanged was answered from raw segments only. Tests read it to know which source
        answered; it is a plain counter, not a metric to alert on."""
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

    def _files(self, table: str, since: datetime | None, until: datetime | None,
               skip: frozenset[int] = frozenset()) -> list[str]:
        """Segments of the month partitions overlapping [since, until), except ``skip`` months."""
        base = self.root / table
        if not base.is_dir():
            return []
        lo = since.astimezone(UTC) if since else None
        hi = (until.astimezone(UTC) - timedelta(microseconds=1)) if until else None
        lo_key = lo.year * 100 + lo.month if lo else 0
        hi_key = hi.year * 100 + hi.month if hi else 999_999
        out: list[str] = []
        for ydir in base.glob("year=*"):
            try:
                year = int(ydir.name[5:])
            except ValueError:
                continue
            if year * 100 + 12 < lo_key or year * 100 + 1 > hi_key:
                continue
            for mdir in ydir.glob("month=*"):
                try:
                    key = year * 100 + int(mdir.name[6:])
                except ValueError:
                    continue
                if lo_key <= key <= hi_key and key not in skip:
                    out.extend(str(p) for p in segment_files(mdir))
        return sorted(out)

    def _src(self, q: _Query, table: str, since: datetime | None = None, until: datetime | None = None,
             skip: frozenset[int] = frozenset(), files: list[str] | None = None) -> str:
        """A FROM-able subquery with every column of ``table`` (typed NULLs where a segment
        predates a column) plus ``year``/``month``; empty when there are no segments."""
        stub = ", ".join(f"NULL::{_duck_type(dt)} AS {name}" for name, dt in TABLES[table].items())
        stub = f"SELECT {stub}, NULL::INTEGER AS year, NULL::INTEGER AS month WHERE false"
        if files is None:
            files = self._files(table, since, until, skip)
        if not files:
            return f"({stub})"
        return (f"(({stub}) UNION ALL BY NAME (SELECT * FROM read_parquet({q.p(files)}, hive_partitioning=true, "
                "union_by_name=true, hive_types={'year': INTEGER, 'month': INTEGER})))")

    def _frame(self, build: Callable[[_Query], str]) -> pl.DataFrame:
        """Run the query ``build`` assembles; re-list files and retry if one vanished."""
        last: Exception | None = None
        for _ in range(_RETRIES):
            q = _Query()
            sql = build(q)
            try:
                with self._cursor() as cur:
                    frame: pl.DataFrame = cur.sql(sql, params=q.params).pl()
                    return frame
            except (duckdb.IOException, duckdb.InvalidInputException) as exc:
                if not _vanished(exc):
                    raise
                last = exc
        assert last is not None
        raise last

    def _where(self, q: _Query, f: Filters, table: str, alias: str = "",
               legacy: bool | list[str] = True) -> str:
        """SQL conditions for ``f`` on ``table``. For challenges, ``legacy`` says which rows may
        lack their decision's columns: True (any: look their decisions up in the window),
        False (none) or the challenge segments holding such rows (look up only their months)."""
        a = f"{alias}." if alias else ""
        cols = TABLES[table]
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
            conds.extend(self._decision_column_conds(q, f, a))
        elif table == "challenges" and f.decision_only:
            # a challenge row carries its decision's device type, reasons and policy version
            # (and its decision's action is always "challenge"); rows written before those
            # columns existed (null policy_version) are matched through their decision
            own = self._challenge_decision_conds(q, f, a)
            if legacy:
                months = None if legacy is True else _months_of(legacy)
                by_decision = (f"{a}decision_id IN (SELECT decision_id FROM "
                               f"{self._decisions_for_challenges(q, f, months)})")
                conds.append(f"(CASE WHEN {a}policy_version IS NOT NULL THEN ({own}) ELSE {by_decision} END)")
            else:
                conds.append(own)
        return " AND ".join(conds)

    def _challenge_decision_conds(self, q: _Query, f: Filters, a: str = "") -> str:
        """Decision-column filters applied to a challenge row's own copies of those columns."""
        conds = ["true"]
        if f.actions and "challenge" not in f.actions:
            conds.append("false")
        conds.extend(self._decision_column_conds(q, f, a))
        return " AND ".join(conds)

    @staticmethod
    def _decision_column_conds(q: _Query, f: Filters, a: str) -> list[str]:
        """Device type, reason and policy-version filters: one definition for decision rows and
        for the copies of those columns a challenge row carries."""
        conds = []
        if f.device_types:
            conds.append(f"list_contains({q.p(list(f.device_types))}, {a}device_type)")
        if f.reasons:
            conds.append(f"list_has_any({a}reasons, {q.p(list(f.reasons))})")
        if f.policy_versions:
            conds.append(f"list_contains({q.p(list(f.policy_versions))}, {a}policy_version)")
        return conds

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
            except (duckdb.IOException, duckdb.InvalidInputException):
                return True  # a segment vanished (compaction): the caller's query retries
            with self._lock:
                self._legacy_files.update(found)
        return any(self._legacy_files.get(p, True) for p in files)

    def _decisions_for_challenges(self, q: _Query, f: Filters, months: set[int] | None = None) -> str:
        """Decisions a challenge in ``f``'s window may belong to, filtered by decision columns
        (``months``: only those of challenges in these months, i.e. that month or the one before)."""
        since = f.since - _OUTCOME_WINDOW if f.since else None
        df = Filters(since=since, until=f.until, device_types=f.device_types, actions=f.actions,
                     reasons=f.reasons, policy_versions=f.policy_versions)
        src = self._decision_src(q, since, f.until, months)
        return f"(SELECT * FROM {src} WHERE {self._where(q, df, 'decisions')})"

    def _decision_src(self, q: _Query, since: datetime | None, until: datetime | None,
                      months: set[int] | None) -> str:
        """Decisions of [since, until), read only from ``months`` and the month before each
        (all months when None): where the decisions of challenges in ``months`` are."""
        if months is None:
            return self._src(q, "decisions", since, until)
        wanted = months | {_previous_month(k) for k in months}
        files = [p for p in self._files("decisions", since, until) if _month_of(p) in wanted]
        return self._src(q, "decisions", files=files)

    def _dec(self, q: _Query, f: Filters) -> str:
        return f"(SELECT * FROM {self._src(q, 'decisions', f.since, f.until)} WHERE {self._where(q, f, 'decisions')})"

    def _chal(self, q: _Query, f: Filters) -> str:
        files = self._files("challenges", f.since, f.until)
        legacy = self._legacy_files_of(files) if f.decision_only else []
        return (f"(SELECT * FROM {self._src(q, 'challenges', files=files)} "
                f"WHERE outcome IS NOT NULL AND {self._where(q, f, 'challenges', legacy=legacy)})")

    # ------------------------------------------------------------------ rollups
    def _plan(self, f: Filters, *, grain: str = "day") -> _Plan | None:
        """The part of ``f``'s window rollups can answer (None: raw segments only)."""
        if not self.use_rollups or f.user_key is not None or grain not in ("day", "week"):
            return None
        current = current_rollups(self.root)
        if not current:
            return None
        lo = _ceil_day(f.since) if f.since is not None else _FAR_PAST
        hi = _floor_day(f.until) if f.until is not None else _FAR_FUTURE
        if hi <= lo:
            return None
        months = {k for k in current if _month_start(k) < hi and _month_end(k) > lo}
        if not months:
            return None
        skip = frozenset(k for k in months if _month_start(k) >= lo and _month_end(k) <= hi)
        self.rollup_plans += 1
        self.last_plan_months = frozenset(months)
        return _Plan(tuple(current[k] for k in sorted(months)), frozenset(months), lo, hi, skip)

    def _raw_rest(self, q: _Query, plan: _Plan | None) -> str:
        """Excludes raw rows the rollups already count (partially covered rolled-up months)."""
        if plan is None:
            return "true"
        return (f"NOT (list_contains({q.p(sorted(plan.months))}, year * 100 + month) "
                f"AND event_time >= {q.p(plan.lo)} AND event_time < {q.p(plan.hi)})")

    def _dcounts(self, q: _Query, f: Filters, cols: Sequence[str], plan: _Plan | None) -> str:
        """Decisions as count rows ``(cols..., n, trusted, cold)``: rollup rows for the whole
        days the plan covers, one row per raw decision (n = 1) for the rest of the window.
        ``cols`` are decision dimensions or ``day_us`` (start of the UTC day, epoch µs)."""
        raw_cols = ", ".join(f"{_day_expr()} AS day_us" if c == "day_us" else c for c in cols)
        raw = (f"SELECT {raw_cols}{', ' if cols else ''}1 AS n, trusted_device::INTEGER AS trusted, "
               f"cold_start::INTEGER AS cold "
               f"FROM {self._src(q, 'decisions', f.since, f.until, plan.skip if plan else frozenset())} "
               f"WHERE {self._where(q, f, 'decisions')} AND {self._raw_rest(q, plan)}")
        if plan is None:
            return f"({raw})"
        dims = Filters(countries=f.countries, device_types=f.device_types, actions=f.actions,
                       reasons=f.reasons, factors=f.factors, policy_versions=f.policy_versions)
        rolled = (f"SELECT {', '.join(cols)}{', ' if cols else ''}n, trusted, cold "
                  f"FROM read_parquet({q.p(plan.files('decisions.parquet'))}) "
                  f"WHERE day_us >= {q.p(plan.lo_us)} AND day_us < {q.p(plan.hi_us)} "
                  f"AND {self._where(q, dims, 'decisions')}")
        return f"({rolled} UNION ALL {raw})"

    def _ccounts(self, q: _Query, f: Filters, cols: Sequence[str], plan: _Plan | None) -> str:
        """Challenges with an outcome as count rows ``(cols..., n)``, like :meth:`_dcounts`.
        ``cols``: challenge dimensions (device type, reasons and policy version are the
        decision's), ``fallback`` (more than one channel) or ``day_us``."""
        files = self._files("challenges", f.since, f.until, plan.skip if plan else frozenset())
        needs_decision = bool({"device_type", "reasons", "policy_version"} & set(cols))
        legacy = self._legacy_files_of(files) if needs_decision or f.decision_only else []
        src = self._src(q, "challenges", files=files)
        if legacy and needs_decision:
            since = f.since - _OUTCOME_WINDOW if f.since else None
            cols_sql = ", ".join(f"{expr} AS {name}" for name, expr in LEGACY_EXPR.items())
            src = (f"(SELECT c.* REPLACE ({cols_sql}) FROM {src} c LEFT JOIN "
                   f"(SELECT decision_id, device_type, reasons, policy_version "
                   f"FROM {self._decision_src(q, since, f.until, _months_of(legacy))}) d USING (decision_id))")
        exprs = {"day_us": _day_expr(), "fallback": "len(channels) > 1"}
        raw_cols = ", ".join(f"{exprs.get(c, c)} AS {c}" for c in cols)
        raw = (f"SELECT {raw_cols}{', ' if cols else ''}1 AS n FROM {src} "
               f"WHERE outcome IS NOT NULL AND {self._where(q, f, 'challenges', legacy=legacy)} "
               f"AND {self._raw_rest(q, plan)}")
        if plan is None:
            return f"({raw})"
        rolled = (f"SELECT {', '.join(cols)}{', ' if cols else ''}n "
                  f"FROM read_parquet({q.p(plan.files('challenges.parquet'))}) "
                  f"WHERE day_us >= {q.p(plan.lo_us)} AND day_us < {q.p(plan.hi_us)}")
        if f.countries:
            rolled += f" AND list_contains({q.p(list(f.countries))}, country)"
        if f.factors:
            rolled += f" AND list_contains({q.p(list(f.factors))}, factor)"
        if f.decision_only:
            rolled += f" AND {self._challenge_decision_conds(q, f)}"
        return f"({rolled} UNION ALL {raw})"

    @staticmethod
    def _segment_filtered(f: Filters) -> bool:
        return bool(f.countries or f.device_types or f.actions or f.reasons or f.factors or f.policy_versions)

    def _hourly(self, q: _Query, plan: _Plan) -> str:
        """Hourly ``(hour_us, logins, stepups, failures)`` from the rollups, for the whole days
        the plan covers (no segment filters: the hourly rollup has no dimensions)."""
        return (f"(SELECT hour_us, logins, stepups, failures FROM read_parquet({q.p(plan.files('hourly.parquet'))}) "
                f"WHERE hour_us >= {q.p(plan.lo_us)} AND hour_us < {q.p(plan.hi_us)})")

    def _failures(self, q: _Query, f: Filters, plan: _Plan | None) -> str:
        """Failed passwords of the window that the hourly rollup does not count, one row each
        (failures have no segment columns, so only time and user filters apply to them)."""
        src = self._src(q, "failures", f.since, f.until, plan.skip if plan else frozenset())
        return f"(SELECT event_time FROM {src} WHERE {self._where(q, f, 'failures')} AND {self._raw_rest(q, plan)})"

    # ------------------------------------------------------------------ overview
    def has_data(self) -> bool:
        """Whether any decision has been recorded."""
        return bool(self._files("decisions", None, None))

    def date_range(self) -> tuple[datetime, datetime] | None:
        """First and last decision time, or None without data.

        Partitions hold the rows of their own month only, so the first time is in the oldest
        partition with rows and the last in the newest: only those are read (not every month)."""
        months = self._months("decisions", None, None)
        if not months:
            return None

        def edge(key: int, fn: str) -> Any:
            files = [p for p in self._files("decisions", _month_start(key), _month_end(key)) if _month_of(p) == key]
            return self._frame(lambda q: f"SELECT {fn}(event_time) AS t FROM {self._src(q, 'decisions', files=files)}"
                               ).item()

        lo = next((t for t in (edge(k, "min") for k in months) if t is not None), None)
        hi = next((t for t in (edge(k, "max") for k in reversed(months)) if t is not None), None)
        return (lo, hi) if lo is not None and hi is not None else None

    def kpis(self, f: Filters = Filters(), *, users: bool = True) -> dict[str, Any]:
        """The headline numbers (see the module docstring for the rate definitions).

        ``users`` is the exact number of distinct user keys among the window's decisions,
        counted on raw rows (rollups cannot add distinct counts up); ``users=False`` skips
        that scan and returns ``users: None`` (see :meth:`distinct_users` for an estimate)."""
        def build(q: _Query) -> str:
            plan = self._plan(f)
            distinct = (f"(SELECT count(DISTINCT user_key) AS users FROM {self._dec(q, f)})" if users
                        else "(SELECT NULL::BIGINT AS users)")
            if plan is None:
                fails = f"(SELECT count(*) AS failures FROM {self._failures(q, f, plan)})"
            else:
                fails = (f"(SELECT (SELECT count(*) FROM {self._failures(q, f, plan)}) + "
                         f"(SELECT coalesce(sum(failures), 0) FROM {self._hourly(q, plan)}) AS failures)")
            return f"""
            SELECT * FROM
              (SELECT coalesce(sum(n), 0)::BIGINT AS logins,
                      coalesce(sum(n) FILTER (WHERE action = 'challenge'), 0)::BIGINT AS challenged,
                      coalesce(sum(n) FILTER (WHERE action = 'deny'), 0)::BIGINT AS denied
                 FROM {self._dcounts(q, f, ('action',), plan)}),
              {distinct},
              (SELECT coalesce(sum(n), 0)::BIGINT AS challenges,
                      coalesce(sum(n) FILTER (WHERE outcome = 'verified'), 0)::BIGINT AS verified,
                      coalesce(sum(n) FILTER (WHERE fallback), 0)::BIGINT AS fallbacks
                 FROM {self._ccounts(q, f, ('outcome', 'fallback'), plan)}),
              {fails}"""

        row = self._frame(build).row(0, named=True)
        counts = {k: int(v) for k, v in row.items() if v is not None}
        out: dict[str, Any] = {"logins": counts["logins"], "challenged": counts["challenged"],
                               "denied": counts["denied"], "users": counts.get("users"),
                               "challenges": counts["challenges"], "verified": counts["verified"],
                               "fallbacks": counts["fallbacks"], "failures": counts["failures"]}
        out.update(_rates(counts))
        return out

    def distinct_users(self, f: Filters = Filters(), *, approximate: bool = False) -> int:
        """Distinct user keys among the window's decisions: exact, or (``approximate=True``)
        a HyperLogLog estimate (DuckDB ``approx_count_distinct``, typically within ~2 %)
        that needs less memory and time on large windows. Always read from raw rows."""
        fn = "approx_count_distinct(user_key)" if approximate else "count(DISTINCT user_key)"
        return int(self._frame(lambda q: f"SELECT {fn} AS users FROM {self._dec(q, f)}").item())

    def segment_values(self, by: str) -> list[str]:
        """Every value of a decision column seen in the whole log (for filter pickers);
        ``reason`` lists reason codes."""
        if by not in BREAKDOWNS or by == "browser_family":
            if by != "browser_family":
                raise ValueError(f"no segment values for {by!r}; choose one of {', '.join(BREAKDOWNS)}")

        def build(q: _Query) -> str:
            if by == "browser_family":
                src = f"(SELECT browser_family FROM {self._src(q, 'decisions')})"
            else:
                src = self._dcounts(q, Filters(), ("reasons" if by == "reason" else by,), self._plan(Filters()))
            col = "unnest(reasons)" if by == "reason" else by
            return f"SELECT DISTINCT {col} AS key FROM {src} ORDER BY 1"

        return [str(k) for k in self._frame(build)["key"].to_list() if k is not None]

    def kpis_vs_previous(self, f: Filters = Filters()) -> dict[str, tuple[Any, Any]]:
        """Each KPI now and in the same-length window just before ``f.since``."""
        since, until = f.since, f.until
        if since is None or until is None:
            span = self.date_range()
            if span is None:
                cur = self.kpis(f)
                return {k: (v, None) for k, v in cur.items()}
            since = since or span[0]
            until = until or span[1] + timedelta(microseconds=1)
        current = self.kpis(f.replace(since=since, until=until))
        previous = self.kpis(f.replace(since=since - (until - since), until=since))
        return {k: (current[k], previous[k]) for k in current}

    def kpi_series(self, f: Filters = Filters(), grain: str = "day") -> pl.DataFrame:
        """KPIs per hour/day/week bucket (UTC; weeks start on Monday)."""
        g = _grain(grain)

        def build(q: _Query) -> str:
            plan = self._plan(f, grain=g)
            if g == "hour":
                d_src, c_src = self._dec(q, f), self._chal(q, f)
                d_bucket = c_bucket = _bucket(g)
                n, fallback = "1", "len(channels) > 1"
            else:
                d_src = self._dcounts(q, f, ("day_us", "action"), plan)
                c_src = self._ccounts(q, f, ("day_us", "outcome", "fallback"), plan)
                d_bucket = c_bucket = _bucket(g, "day_us")
                n, fallback = "n", "fallback"
            return f"""
            WITH d AS (
              SELECT {d_bucket} AS bucket, sum({n})::BIGINT AS logins,
                     coalesce(sum({n}) FILTER (WHERE action = 'challenge'), 0)::BIGINT AS challenged,
                     coalesce(sum({n}) FILTER (WHERE action = 'deny'), 0)::BIGINT AS denied
                FROM {d_src} GROUP BY 1),
            c AS (
              SELECT {c_bucket} AS bucket, sum({n})::BIGINT AS challenges,
                     coalesce(sum({n}) FILTER (WHERE outcome = 'verified'), 0)::BIGINT AS verified,
                     coalesce(sum({n}) FILTER (WHERE {fallback}), 0)::BIGINT AS fallbacks
                FROM {c_src} GROUP BY 1)
            SELECT bucket, coalesce(logins, 0) AS logins, coalesce(challenged, 0) AS challenged,
                   coalesce(denied, 0) AS denied,
                   (coalesce(challenged, 0) + coalesce(denied, 0)) / nullif(logins, 0) AS challenge_rate,
                   coalesce(denied, 0) / nullif(logins, 0) AS deny_rate,
                   coalesce(challenges, 0) AS challenges, coalesce(verified, 0) AS verified,
                   verified / nullif(challenges, 0) AS challenge_success_rate,
                   fallbacks / nullif(challenges, 0) AS fallback_rate
              FROM d FULL OUTER JOIN c USING (bucket) ORDER BY bucket"""

        return _utc_buckets(self._frame(build))

    def breakdown(self, f: Filters = Filters(), by: str = "country") -> pl.DataFrame:
        """KPIs per country, device type, reason code, recommended factor, browser or policy version."""
        if by not in BREAKDOWNS:
            raise ValueError(f"cannot break down by {by!r}; choose one of {', '.join(BREAKDOWNS)}")

        def build(q: _Query) -> str:
            if by == "browser_family":
                return self._browser_breakdown(q, f)
            plan = self._plan(f)
            col = "reasons" if by == "reason" else by
            key = "unnest(reasons)" if by == "reason" else by
            return f"""
            WITH dk AS (SELECT key, sum(n)::BIGINT AS logins,
                          coalesce(sum(n) FILTER (WHERE action <> 'allow'), 0) / sum(n) AS challenge_rate,
                          coalesce(sum(n) FILTER (WHERE action = 'deny'), 0) / sum(n) AS deny_rate
                     FROM (SELECT {key} AS key, action, n FROM {self._dcounts(q, f, (col, 'action'), plan)})
                    GROUP BY key),
            ck AS (SELECT key, sum(n)::BIGINT AS challenges,
                          coalesce(sum(n) FILTER (WHERE outcome = 'verified'), 0) / sum(n) AS challenge_success_rate,
                          coalesce(sum(n) FILTER (WHERE fallback), 0) / sum(n) AS fallback_rate
                     FROM (SELECT {key} AS key, outcome, fallback, n
                             FROM {self._ccounts(q, f, (col, 'outcome', 'fallback'), plan)})
                    GROUP BY key)
            SELECT key, coalesce(logins, 0) AS logins, challenge_rate, deny_rate,
                   coalesce(challenges, 0) AS challenges, challenge_success_rate, fallback_rate
              FROM dk FULL OUTER JOIN ck USING (key)
             ORDER BY logins DESC, challenges DESC, key NULLS LAST"""

        return self._frame(build)

    def _browser_breakdown(self, q: _Query, f: Filters) -> str:
        """Browsers are not in the rollups (nor on challenge rows): raw decisions, and each
        challenge through its decision."""
        since = f.since - _OUTCOME_WINDOW if f.since else None
        chal = (f"SELECT d.browser_family AS key, c.outcome, c.channels FROM {self._chal(q, f)} c "
                f"JOIN (SELECT decision_id, browser_family FROM {self._src(q, 'decisions', since, f.until)}) d "
                "USING (decision_id)")
        return f"""
            WITH d AS (SELECT browser_family AS key, action FROM {self._dec(q, f)}),
            dk AS (SELECT key, count(*) AS logins,
                          count(*) FILTER (WHERE action <> 'allow') / count(*) AS challenge_rate,
                          count(*) FILTER (WHERE action = 'deny') / count(*) AS deny_rate
                     FROM d GROUP BY key),
            ck AS (SELECT key, count(*) AS challenges,
                          count(*) FILTER (WHERE outcome = 'verified') / count(*) AS challenge_success_rate,
                          count(*) FILTER (WHERE len(channels) > 1) / count(*) AS fallback_rate
                     FROM ({chal}) GROUP BY key)
            SELECT key, coalesce(logins, 0) AS logins, challenge_rate, deny_rate,
                   coalesce(challenges, 0) AS challenges, challenge_success_rate, fallback_rate
              FROM dk FULL OUTER JOIN ck USING (key)
             ORDER BY logins DESC, challenges DESC, key NULLS LAST"""

    # ------------------------------------------------------------------ challenges
    def channel_success(self, f: Filters = Filters()) -> pl.DataFrame:
        """Outcomes per factor and final delivery channel."""
        return self._frame(lambda q: f"""
            SELECT factor, final_channel, count(*) AS challenges,
                   count(*) FILTER (WHERE outcome = 'verified') AS verified,
                   count(*) FILTER (WHERE outcome = 'failed') AS failed,
                   count(*) FILTER (WHERE outcome = 'expired') AS expired,
                   count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned,
                   count(*) FILTER (WHERE outcome = 'verified') / count(*) AS success_rate
              FROM {self._chal(q, f)} GROUP BY ALL ORDER BY challenges DESC, factor, final_channel""")

    def fallback_funnel(self, f: Filters = Filters()) -> pl.DataFrame:
        """How many challenges reached each step of their channel path, and ended there."""
        return self._frame(lambda q: f"""
            WITH c AS (SELECT channels, outcome, len(channels) AS steps FROM {self._chal(q, f)}
                        WHERE len(channels) > 0),
            s AS (SELECT unnest(generate_series(1, steps)) AS step, channels, outcome, steps FROM c)
            SELECT step::INTEGER AS step, channels[step] AS channel, count(*) AS reached,
                   count(*) FILTER (WHERE step = steps AND outcome = 'verified') AS verified_here,
                   count(*) FILTER (WHERE step = steps AND outcome <> 'verified') AS dropped_here
              FROM s GROUP BY ALL ORDER BY step, reached DESC, channel""")

    def fallback_paths(self, f: Filters = Filters()) -> pl.DataFrame:
        """Challenges that fell back: primary → first fallback channel, full path, success."""
        return self._frame(lambda q: f"""
            WITH c AS (SELECT channels, outcome FROM {self._chal(q, f)} WHERE len(channels) > 0),
            per_primary AS (SELECT channels[1] AS primary_channel, count(*) AS n FROM c GROUP BY 1)
            SELECT channels[1] AS primary_channel, channels[2] AS fallback_channel,
                   array_to_string(channels, ' → ') AS path, count(*) AS challenges,
                   count(*) FILTER (WHERE outcome = 'verified') / count(*) AS success_rate,
                   count(*) / any_value(p.n) AS share_of_primary
              FROM c JOIN per_primary p ON p.primary_channel = c.channels[1]
             WHERE len(channels) > 1
             GROUP BY ALL ORDER BY challenges DESC, path""")

    def time_to_verify(self, f: Filters = Filters()) -> pl.DataFrame:
        """Seconds from challenge to verification, per factor (verified challenges only)."""
        return self._frame(lambda q: f"""
            SELECT factor, count(*) AS n,
                   quantile_cont(seconds_to_verify, 0.5) AS p50,
                   quantile_cont(seconds_to_verify, 0.9) AS p90,
                   quantile_cont(seconds_to_verify, 0.99) AS p99
              FROM {self._chal(q, f)}
             WHERE outcome = 'verified' AND seconds_to_verify IS NOT NULL
             GROUP BY factor ORDER BY n DESC, factor""")

    def avoidable_challenges(self, f: Filters = Filters()) -> dict[str, Any]:
        """Challenges that probably annoyed a legitimate user: on a trusted device, or on a
        known device from a known country (no NEW_DEVICE / NEW_COUNTRY / IMPOSSIBLE_TRAVEL)."""
        def build(q: _Query) -> str:
            return f"""
            SELECT coalesce(sum(n), 0)::BIGINT AS challenged,
                   coalesce(sum(trusted), 0)::BIGINT AS trusted_device,
                   coalesce(sum(n) FILTER (WHERE NOT list_has_any(reasons, {q.p(list(STRONG_NOVELTY))})), 0)::BIGINT
                     AS known_device_home_country,
                   coalesce(sum(cold), 0)::BIGINT AS cold_start
              FROM {self._dcounts(q, f, ('reasons', 'action'), self._plan(f))} WHERE action = 'challenge'"""

        row: dict[str, Any] = {k: int(v) for k, v in self._frame(build).row(0, named=True).items()}
        total = row["challenged"]
        for k in ("trusted_device", "known_device_home_country", "cold_start"):
            row[f"{k}_share"] = row[k] / total if total else None
        return row

    # ------------------------------------------------------------------ decisions
    def reason_counts(self, f: Filters = Filters()) -> pl.DataFrame:
        """How often each reason code appears, and how often those decisions stepped up."""
        return self._frame(lambda q: f"""
            WITH d AS (SELECT reasons, action, n FROM {self._dcounts(q, f, ('reasons', 'action'), self._plan(f))}),
            t AS (SELECT sum(n) AS n FROM d)
            SELECT r.reason, sum(r.n)::BIGINT AS decisions, sum(r.n) / any_value(t.n) AS share,
                   coalesce(sum(r.n) FILTER (WHERE r.action <> 'allow'), 0) / sum(r.n) AS challenge_rate
              FROM (SELECT unnest(reasons) AS reason, action, n FROM d) r, t
             GROUP BY r.reason ORDER BY decisions DESC, r.reason""")

    def risk_histogram(self, f: Filters = Filters(), bins: int = 20) -> pl.DataFrame:
        """Decisions per risk bin and action; every bin present."""
        if not 1 <= bins <= 1000:
            raise ValueError(f"bins must be between 1 and 1000, got {bins}")
        counts = self._frame(lambda q: f"""
            SELECT least(floor(risk * {q.p(bins)}), {q.p(bins - 1)})::INTEGER AS b,
                   count(*) FILTER (WHERE action = 'allow') AS allow,
                   count(*) FILTER (WHERE action = 'challenge') AS challenge,
                   count(*) FILTER (WHERE action = 'deny') AS deny
              FROM {self._dec(q, f)} WHERE risk IS NOT NULL GROUP BY 1""")
        grid = pl.DataFrame({"b": list(range(bins))}, schema={"b": pl.Int32})
        out = grid.join(counts.with_columns(pl.col("b").cast(pl.Int32)), on="b", how="left").fill_null(0)
        return out.select(
            (pl.col("b") / bins).alias("bin_low"), ((pl.col("b") + 1) / bins).alias("bin_high"),
            pl.col("allow").cast(pl.Int64), pl.col("challenge").cast(pl.Int64), pl.col("deny").cast(pl.Int64))

    def whatif(self, f: Filters = Filters(), thresholds: Sequence[float] = (0.3, 0.4, 0.5, 0.6, 0.7),
               labels: pl.DataFrame | None = None) -> pl.DataFrame:
        """Step-up rate had the challenge threshold been each of ``thresholds`` (risk ≥ t steps
        up), next to today's rate; with ``labels`` (columns ``decision_id``, ``is_attack``) also
        the share of attacks that would have been stepped up."""
        ths = [float(t) for t in thresholds]
        if not ths:
            raise ValueError("whatif needs at least one threshold")
        if labels is not None and not {"decision_id", "is_attack"} <= set(labels.columns):
            raise ValueError("labels must have columns decision_id and is_attack")

        # One pass: each decision falls in the bucket k = how many of the sorted distinct
        # thresholds its risk reaches, found by binary search in nested CASEs (log2 of the
        # thresholds comparisons per row instead of one filtered count per threshold); the
        # decisions stepped up at the j-th threshold are those in buckets k >= j. A null risk
        # takes every ELSE: bucket 0, stepped up at no threshold.
        steps = sorted(set(ths))

        def bucket(q: _Query, lo: int, hi: int) -> str:
            if lo == hi:
                return str(lo)
            mid = (lo + hi + 1) // 2
            return (f"CASE WHEN risk >= {q.p(steps[mid - 1])} THEN {bucket(q, mid, hi)} "
                    f"ELSE {bucket(q, lo, mid - 1)} END")

        def build(q: _Query) -> str:
            extra = join = ""
            if labels is not None:
                extra = ", count(*) FILTER (WHERE l.is_attack) AS attacks"
                join = "LEFT JOIN _labels l USING (decision_id)"
            return (f"SELECT {bucket(q, 0, len(steps))} AS k, count(*) AS n, "
                    f"count(*) FILTER (WHERE action <> 'allow') AS stepped{extra} "
                    f"FROM {self._dec(q, f)} d {join} GROUP BY 1")

        buckets = self._frame_with_labels(build, labels) if labels is not None else self._frame(build)
        per_k = {int(r["k"]): (int(r["n"]), int(r.get("attacks") or 0)) for r in buckets.iter_rows(named=True)}
        n = sum(v[0] for v in per_k.values())
        attacks = sum(v[1] for v in per_k.values())
        stepped = int(buckets["stepped"].sum()) if buckets.height else 0
        reached = {t: (sum(v[0] for k, v in per_k.items() if k >= j), sum(v[1] for k, v in per_k.items() if k >= j))
                   for j, t in enumerate(steps, 1)}
        out = {
            "threshold": ths,
            "projected_challenge_rate": [reached[t][0] / n if n else None for t in ths],
            "current_challenge_rate": [stepped / n if n else None] * len(ths),
            "catch_rate": [(reached[t][1] / attacks if attacks else None) if labels is not None else None
                           for t in ths],
        }
        return pl.DataFrame(out, schema={"threshold": pl.Float64, "projected_challenge_rate": pl.Float64,
                                         "current_challenge_rate": pl.Float64, "catch_rate": pl.Float64})

    def _frame_with_labels(self, build: Callable[[_Query], str], labels: pl.DataFrame) -> pl.DataFrame:
        table = labels.select(pl.col("decision_id").cast(pl.Utf8), pl.col("is_attack").cast(pl.Boolean)).to_arrow()
        for _ in range(_RETRIES):
            q = _Query()
            sql = build(q)
            try:
                with self._cursor() as cur:
                    cur.register("_labels", table)
                    frame: pl.DataFrame = cur.sql(sql, params=q.params).pl()
                    return frame
            except (duckdb.IOException, duckdb.InvalidInputException) as exc:
                if not _vanished(exc):
                    raise
        raise RuntimeError("audit segments kept vanishing while querying; is compaction looping?")

    def events(self, f: Filters = Filters(), table: str = "decisions", limit: int = 500,
               offset: int = 0) -> pl.DataFrame:
        """Raw audit rows, newest first (the audit explorer)."""
        if table not in TABLES:
            raise ValueError(f"unknown audit table {table!r}; known: {', '.join(TABLES)}")
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")

        def build_for(window: Filters) -> Callable[[_Query], str]:
            def build(q: _Query) -> str:
                src = self._src(q, table, window.since, window.until)
                extra = "AND outcome IS NOT NULL" if table == "challenges" else ""
                return (f"SELECT * EXCLUDE (year, month) FROM {src} WHERE {self._where(q, window, table)} {extra} "
                        f"ORDER BY event_time DESC LIMIT {q.p(limit)} OFFSET {q.p(offset)}")
            return build

        # Newest rows live in the newest month partitions: look at the last month first and widen
        # the window (1, 2, 4, ... months) only while it holds fewer than offset + limit rows.
        months = self._months(table, f.since, f.until)
        span = 1
        while months:
            start = months[-min(span, len(months))]
            window_since = datetime(start // 100, start % 100, 1, tzinfo=UTC)
            if f.since is not None and f.since > window_since:
                window_since = f.since
            if span >= len(months):
                return self._frame(build_for(f))
            rows = self._frame(build_for(f.replace(since=window_since)))
            if rows.height >= limit:
                return rows
            span *= 2
        return self._frame(build_for(f))

    def _months(self, table: str, since: datetime | None, until: datetime | None) -> list[int]:
        """``YYYYMM`` keys of the partitions of ``table`` that hold segments in [since, until)."""
        keys = {int(p.split("year=")[1][:4]) * 100 + int(p.split("month=")[1][:2])
                for p in self._files(table, since, until)}
        return sorted(keys)

    # ------------------------------------------------------------------ alerts
    def alerts(self, f: Filters = Filters(), grain: str = "hour", window: int = 24, z: float = 4.0,
               min_logins: int = 50) -> pl.DataFrame:
        """Challenge-rate and failed-password spikes against the trailing ``window`` buckets."""
        g = _grain(grain)

        def build(q: _Query) -> str:
            plan = self._plan(f)
            if plan is not None and not self._segment_filtered(f):
                # the hourly rollup for whole rolled-up days, raw rows (one each) for the rest
                rest = self._src(q, "decisions", f.since, f.until, plan.skip)
                hour = f"(epoch_us(event_time) // {HOUR_US}) * {HOUR_US}"
                return f"""
                WITH h AS (
                  SELECT hour_us, logins, stepups, failures FROM {self._hourly(q, plan)}
                  UNION ALL
                  SELECT {hour}, 1, (action <> 'allow')::INTEGER, 0 FROM {rest}
                   WHERE {self._where(q, f, 'decisions')} AND {self._raw_rest(q, plan)}
                  UNION ALL
                  SELECT {hour}, 0, 0, 1 FROM {self._failures(q, f, plan)})
                SELECT {_bucket(g, 'hour_us')} AS bucket, sum(logins)::BIGINT AS logins,
                       coalesce(sum(stepups), 0)::BIGINT AS stepups, sum(failures)::BIGINT AS failures
                  FROM h GROUP BY 1 ORDER BY 1"""
            return f"""
            WITH d AS (SELECT {_bucket(g)} AS bucket, count(*) AS logins,
                              count(*) FILTER (WHERE action <> 'allow') AS stepups
                         FROM {self._dec(q, f)} GROUP BY 1),
            fl AS (SELECT {_bucket(g)} AS bucket, count(*) AS failures
                     FROM {self._src(q, 'failures', f.since, f.until)} WHERE {self._where(q, f, 'failures')}
                    GROUP BY 1)
            SELECT bucket, coalesce(logins, 0) AS logins, coalesce(stepups, 0) AS stepups,
                   coalesce(failures, 0) AS failures
              FROM d FULL OUTER JOIN fl USING (bucket) ORDER BY bucket"""

        series = self._frame(build)
        series = _utc_buckets(series)
        if series.is_empty():
            return spikes([], [], [], [])
        step = {"hour": "1h", "day": "1d", "week": "1w"}[g]
        first: datetime = series["bucket"].min()  # type: ignore[assignment]
        last: datetime = series["bucket"].max()  # type: ignore[assignment]
        grid = pl.DataFrame({"bucket": pl.datetime_range(first, last, step, eager=True, time_zone="UTC")})
        full = grid.join(series, on="bucket", how="left").fill_null(0)
        return spikes(full["bucket"].to_list(), full["logins"].to_list(), full["stepups"].to_list(),
                      full["failures"].to_list(), window=window, z=z, min_logins=min_logins)

    # ------------------------------------------------------------------ experiments
    def experiment_names(self) -> list[str]:
        df = self._frame(lambda q: f"SELECT DISTINCT experiment FROM {self._src(q, 'exposures')} "
                                   "WHERE experiment IS NOT NULL ORDER BY 1")
        return [str(x) for x in df["experiment"].to_list()]

    def experiment_readout(self, name: str, f: Filters = Filters(), min_samples: int = 100) -> ExperimentReadout:
        """Per-variant readout. A user counts in the variant of their first exposure in the
        window, and converts if any conversion for this experiment comes at or after that
        exposure (and before ``f.until``)."""
        exp_f = Filters(since=f.since, until=f.until, user_key=f.user_key)

        def counts_sql(q: _Query) -> str:
            conv_f = Filters(since=f.since, until=f.until, user_key=f.user_key)
            return f"""
            WITH e AS (SELECT user_key, arg_min(variant, event_time) AS variant, min(event_time) AS first_seen
                         FROM {self._src(q, 'exposures', f.since, f.until)}
                        WHERE experiment = {q.p(name)} AND {self._where(q, exp_f, 'exposures')}
                        GROUP BY user_key),
            c AS (SELECT user_key, event_time FROM {self._src(q, 'conversions', f.since, f.until)}
                   WHERE experiment = {q.p(name)} AND {self._where(q, conv_f, 'conversions')}),
            u AS (SELECT e.user_key, any_value(e.variant) AS variant,
                         coalesce(bool_or(c.event_time >= e.first_seen), false) AS converted
                    FROM e LEFT JOIN c USING (user_key) GROUP BY e.user_key)
            SELECT variant, count(*) AS n, count(*) FILTER (WHERE converted) AS conversions
              FROM u GROUP BY variant ORDER BY variant"""

        counts = self._frame(counts_sql)
        design = self._frame(lambda q: f"""
            SELECT arg_max(control, event_time) AS control, arg_max(variants, event_time) AS variants,
                   arg_max(weights, event_time) AS weights
              FROM {self._src(q, 'exposures')} WHERE experiment = {q.p(name)} AND control IS NOT NULL""").row(
            0, named=True)
        observed = {str(r["variant"]): (int(r["n"]), int(r["conversions"])) for r in counts.iter_rows(named=True)}
        weights: dict[str, float] | None = None
        if design["control"] is not None:
            control = str(design["control"])
            if design["variants"] and design["weights"] and len(design["variants"]) == len(design["weights"]):
                weights = {str(v): float(w) for v, w in zip(design["variants"], design["weights"], strict=True)}
        elif "control" in observed:
            control = "control"
        elif observed:
            control = sorted(observed)[0]
        else:
            raise ValueError(f"no exposures recorded for experiment {name!r}")
        ordered = {v: observed.get(v, (0, 0)) for v in (weights or {})}
        ordered.update({v: c for v, c in observed.items() if v not in ordered})
        return readout(name, ordered, control, weights, min_samples)

    # ------------------------------------------------------------------ report
    def report(self, f: Filters = Filters(), min_samples: int = 100) -> dict[str, Any]:
        """Everything `riskengine report --json` prints: KPIs and every experiment's readout."""
        out: dict[str, Any] = {
            "root": str(self.root),
            "since": f.since.isoformat() if f.since else None,
            "until": f.until.isoformat() if f.until else None,
        }
        span = self.date_range()
        out["data_from"] = span[0].isoformat() if span else None
        out["data_to"] = span[1].isoformat() if span else None
        out.update(self.kpis(f))
        out["rate_definitions"] = dict(RATE_DEFINITIONS)
        out["experiments"] = {name: self.experiment_readout(name, f, min_samples).to_dict()
                              for name in self.experiment_names()}
        return out


def _rates(k: dict[str, int]) -> dict[str, float | None]:
    def ratio(num: int, den: int) -> float | None:
        return num / den if den else None

    return {
        "challenge_rate": ratio(k["challenged"] + k["denied"], k["logins"]),
        "deny_rate": ratio(k["denied"], k["logins"]),
        "challenge_success_rate": ratio(k["verified"], k["challenges"]),
        "fallback_rate": ratio(k["fallbacks"], k["challenges"]),
    }


_GRAIN_US = {"hour": 3_600_000_000, "day": 86_400_000_000, "week": 7 * 86_400_000_000}
_MONDAY_US = 4 * 86_400_000_000  # 1970-01-01 was a Thursday; weeks start on Monday 1970-01-05


def _bucket(grain: str, us: str = "epoch_us(event_time)") -> str:
    """Bucket start as a naive UTC TIMESTAMP by integer arithmetic on epoch microseconds:
    ~10x faster than date_trunc on TIMESTAMPTZ (which goes through ICU calendars). ``us`` may
    be a rollup's day/hour start instead: days and hours nest in weeks and days exactly."""
    width = _GRAIN_US[grain]
    offset = _MONDAY_US if grain == "week" else 0
    return f"make_timestamp((({us} - {offset}) // {width}) * {width} + {offset})"


def _month_of(path: str) -> int:
    """``YYYYMM`` of a segment path ``…/year=YYYY/month=MM/…`` (0 when it is not one)."""
    try:
        return int(path.split("year=")[1][:4]) * 100 + int(path.split("month=")[1][:2])
    except (IndexError, ValueError):
        return 0


def _months_of(paths: list[str]) -> set[int]:
    return {_month_of(p) for p in paths}


def _previous_month(key: int) -> int:
    y, m = divmod(key, 100)
    return (y - 1) * 100 + 12 if m == 1 else key - 1


def _day_expr() -> str:
    return f"(epoch_us(event_time) // {DAY_US}) * {DAY_US}"


def _epoch_us(t: datetime) -> int:
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _floor_day(t: datetime) -> datetime:
    u = t.astimezone(UTC)
    return datetime(u.year, u.month, u.day, tzinfo=UTC)


def _ceil_day(t: datetime) -> datetime:
    day = _floor_day(t)
    return day if day == t else day + timedelta(days=1)


def _month_start(key: int) -> datetime:
    return datetime(key // 100, key % 100, 1, tzinfo=UTC)


def _month_end(key: int) -> datetime:
    y, m = divmod(key, 100)
    return datetime(y + 1, 1, 1, tzinfo=UTC) if m == 12 else datetime(y, m + 1, 1, tzinfo=UTC)


def _utc_buckets(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("bucket").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))


def _grain(grain: str) -> str:
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {', '.join(GRAINS)}, got {grain!r}")
    return grain


def _duck_type(dt: Any) -> str:
    if isinstance(dt, pl.List):
        return f"{_duck_type(dt.inner)}[]"
    for pl_type, duck in _DUCK_TYPES.items():
        if isinstance(dt, pl_type) or dt == pl_type:
            return duck
    raise TypeError(f"no DuckDB type for {dt}")


def _vanished(exc: Exception) -> bool:
    text = str(exc)
    return any(s in text for s in ("No such file", "No files found", "Cannot open file", "could not be opened"))


__all__ = ["BREAKDOWNS", "GRAINS", "RATE_DEFINITIONS", "AuditDB", "Filters"]
