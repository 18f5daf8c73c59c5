"""The explorer: raw audit rows, newest first, for the dashboard's audit explorer and for
support's look at one user (``riskengine user show``).

A page of the newest rows needs only the rows after some cutoff time: the query reads
``event_time >= cutoff`` and, when that holds at least ``offset + limit`` matching rows, its
answer is the answer (every row before the cutoff is older than all of them). The cutoff
comes from the segments' Parquet footers: each row group's row count and its minimum and
maximum ``event_time``, read newest month first. Rows are assumed spread evenly over a row
group's time span, and the cutoff is where the row groups after it hold about twice the rows
wanted; a window that turns out too short (filters matching few rows, an uneven spread) is
followed by the one just before it, estimated to hold at least eight times as many rows (more
when few rows matched), until they hold enough rows or reach the selection's start (at once
when the next window would cover half of it), and every window but an unfiltered first one
reaches back to the start of the oldest row group it has to read anyway. Windows do not
overlap: their rows are concatenated, newest window first, so no row group is read twice.
A user's rows (rare, in every month) are read with the Bloom filters compaction writes per row
group (:data:`riskengine.ops.maintenance.BLOOM_COLUMNS`): DuckDB skips the row groups whose
filter rules the user out. DuckDB then skips every row group, and this code every
segment, that ends before the cutoff: on time-ordered segments (written by the sink, or merged
and sorted by ``riskengine audit compact``) a page opens a few row groups whatever the log's
size. Segments whose rows span the whole month
cannot be skipped; the answer is the same, only slower.

Rows with the same ``event_time`` come in a fixed order (by their other columns, descending),
so a page boundary falls in the same place on every call and paging neither repeats nor
skips a row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl

from riskengine.analytics._files import month_of, month_range
from riskengine.analytics._reader import _RETRIES, _Reader, _retryable
from riskengine.analytics._sql import Filters, Query, segment_filtered
from riskengine.audit.columns import COLUMNS

USER_TABLES = ("decisions", "challenges", "admin")
"""The tables :meth:`_Explorer.user_events` reads: what support shows about one user."""

FIRST_MARGIN = 2
"""The first window is cut where the row groups after it hold about this many times the
rows wanted (rows are only assumed spread evenly over a row group's span)."""
WIDEN = 8
"""How much a window that held too few matching rows grows (in rows it is estimated to hold)."""
WHOLE = 0.5
"""A window estimated to hold more than this share of the selection's rows is the rest of the
selection: reading the rest costs at most as much again, where loading the footers of the months
such a window would cover costs ~0.03 s of CPU a month, and a window that still falls short is
followed by another one (a user's rows, rare and spread over every month)."""


@dataclass(frozen=True, slots=True)
class RowGroup:
    """One row group's place in time, from its segment's footer."""

    segment: str
    rows: int
    low: datetime
    high: datetime


def order_by(table: str) -> str:
    """The explorer's order: newest first, ties broken by the other columns (descending), so
    that it is a total order over distinct rows.

    >>> order_by("conversions")
    'event_time DESC, schema_version DESC, experiment DESC, user_key DESC'
    """
    return ", ".join(f"{name} DESC" for name in COLUMNS[table])


def rows_after(groups: Sequence[RowGroup], cutoff: datetime) -> float:
    """How many rows of ``groups`` are at or after ``cutoff``, if each group's rows are spread
    evenly over its [low, high] span.

    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> day = RowGroup("a", 100, t, t + timedelta(days=1))
    >>> rows_after([day], t + timedelta(hours=18)), rows_after([day], t), rows_after([day], t + timedelta(days=2))
    (25.0, 100.0, 0.0)
    """
    total = 0.0
    for g in groups:
        if g.low >= cutoff:
            total += g.rows
        elif g.high >= cutoff:
            total += g.rows * (g.high - cutoff) / (g.high - g.low)
    return total


def cutoff_for(groups: Sequence[RowGroup], rows: float) -> datetime | None:
    """The latest time at or after which ``groups`` hold ``rows`` rows by :func:`rows_after`;
    None when all of them together hold fewer. One sweep over the groups' ends, newest first
    (between two ends, :func:`rows_after` grows linearly as the time goes back).

    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> days = [RowGroup("a", 100, t + timedelta(days=i), t + timedelta(days=i + 1)) for i in range(3)]
    >>> cutoff_for(days, 150) == t + timedelta(days=1, hours=12), cutoff_for(days, 301)
    (True, None)
    """
    if rows <= 0:
        return max((g.high for g in groups), default=None)
    starts: dict[datetime, float] = {}  # rows per second starting (going back) at a group's high
    ends: dict[datetime, float] = {}  # ... and ending at its low
    instants: dict[datetime, float] = {}  # groups whose rows all share one time
    for g in groups:
        if g.high == g.low:
            instants[g.low] = instants.get(g.low, 0.0) + g.rows
        else:
            density = g.rows / (g.high - g.low).total_seconds()
            starts[g.high] = starts.get(g.high, 0.0) + density
            ends[g.low] = ends.get(g.low, 0.0) + density
    found, density = 0.0, 0.0
    later: datetime | None = None
    for point in sorted(starts.keys() | ends.keys() | instants.keys(), reverse=True):
        if later is not None and density > 0:
            here = found + density * (later - point).total_seconds()
            if here >= rows:
                return later - timedelta(seconds=(rows - found) / density)
            found = here
        density += starts.get(point, 0.0) - ends.get(point, 0.0)
        found += instants.get(point, 0.0)
        if found >= rows:
            return point
        later = point
    return None


class _Explorer(_Reader):
    """Raw rows, newest first."""

    explorer_reads: tuple[int, int] = (0, 0)
    """(segments read, segments of the selection) by the last explorer query's last window;
    tests read it to see the pruning, like :attr:`rollup_plans`."""

    def events(self, f: Filters = Filters(), table: str = "decisions", limit: int = 500,
               offset: int = 0) -> pl.DataFrame:
        """Raw audit rows, newest first (ties in a fixed order, see :func:`order_by`), for the
        audit explorer; challenges with an outcome only."""
        if table not in COLUMNS:
            raise ValueError(f"unknown audit table {table!r}; known: {', '.join(COLUMNS)}")
        return self._newest(f, table, limit, offset, "outcome IS NOT NULL" if table == "challenges" else "true")

    def user_events(self, user_key: str, table: str = "decisions", limit: int = 20) -> pl.DataFrame:
        """One user's most recent rows of ``table`` (decisions, challenges or admin actions),
        newest first, every column. ``user_key`` is the pseudonymised key the audit log holds
        (``Engine.pseudonymizer.user(user_id)``), never the raw id."""
        if table not in USER_TABLES:
            raise ValueError(f"no per-user history in table {table!r}; choose one of {', '.join(USER_TABLES)}")
        if not isinstance(user_key, str) or not user_key:
            raise ValueError("user_key must be a non-empty string (the audit log's pseudonymised user key)")
        return self._newest(Filters(user_key=user_key), table, limit, 0, "true")

    def _newest(self, f: Filters, table: str, limit: int, offset: int, extra: str) -> pl.DataFrame:
        """Rows of ``table`` matching ``f`` and the SQL condition ``extra``, newest first."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        last: duckdb.Error | None = None
        for _ in range(_RETRIES):
            try:
                with self._one_listing():
                    return self._newest_listed(f, table, limit, offset, extra)
            except duckdb.Error as exc:  # a listed segment vanished (compaction): list again
                if not _retryable(exc):
                    raise
                last = exc
        assert last is not None
        raise last

    def _newest_listed(self, f: Filters, table: str, limit: int, offset: int, extra: str) -> pl.DataFrame:
        def build_for(window: Filters, files: list[str], need: int) -> Callable[[Query], str]:
            def build(q: Query) -> str:
                src = self._src(q, table, files=files)
                return (f"SELECT * EXCLUDE (year, month) FROM {src} WHERE {self._where(q, window, table)} "
                        f"AND {extra} ORDER BY {order_by(table)} LIMIT {q.p(need)}")
            return build

        files = self._files(table, f.since, f.until)
        months = sorted({month_of(p) for p in files}, reverse=True)
        groups: list[RowGroup] = []
        known: dict[str, datetime] = {}  # segment -> its newest row (segments with statistics)
        loaded = 0
        want = offset + limit
        wanted = float(FIRST_MARGIN * want)
        # the rows of the windows read so far, newest first; every later window lies before
        # `upper` (None: the selection's end), so its rows are older than all of these
        found_rows: list[pl.DataFrame] = []
        have = 0
        upper: datetime | None = None
        read: set[str] = set()

        def answer() -> pl.DataFrame:
            self.explorer_reads = (len(read), len(files))
            if len(found_rows) == 1 and offset == 0:
                return found_rows[0]
            return pl.concat(found_rows, how="vertical_relaxed").slice(offset, limit)

        def take(window: Filters, window_files: list[str]) -> None:
            nonlocal have
            read.update(window_files)
            rows = self._frame(build_for(window, window_files, want - have))
            found_rows.append(rows)
            have += rows.height

        # an unfiltered first window may end inside a row group (fewer rows pass the scan); other
        # windows reach back to the start of the oldest row group they read, which costs no more
        narrow = not (segment_filtered(f) or f.user_key is not None or extra != "true")
        while True:
            # footers of the newest months first, until they hold the rows wanted
            while loaded < len(months) and sum(g.rows for g in groups) < wanted:
                month = months[loaded]
                found, unsure = self._row_groups([p for p in files if month_of(p) == month], f)
                groups.extend(found)
                for g in found:
                    known[g.segment] = max(g.high, known.get(g.segment, g.high))
                for segment in unsure:  # a row group without statistics may hold any time
                    known[segment] = _ANY_TIME
                loaded += 1
            cutoff = cutoff_for(groups, wanted)
            if cutoff is not None and not narrow:
                cutoff = min([g.low for g in groups if g.high >= cutoff], default=cutoff)
            narrow = False
            if cutoff is None or (f.since is not None and cutoff <= f.since):
                break
            if upper is None or cutoff < upper:  # else the window is empty: widen again
                lo, hi = month_range(cutoff, upper or f.until)
                window_files = [p for p in files if lo <= month_of(p) <= hi and known.get(p, cutoff) >= cutoff]
                take(f.replace(since=cutoff, until=upper or f.until), window_files)
                if have >= want:  # offset + limit matching rows, all newer than the rest
                    return answer()
                upper = cutoff
            # grow by the share of rows that matched (at least WIDEN-fold); past WHOLE of the
            # rows the whole selection is likely to hold, read the rest at once
            wanted = max(wanted, rows_after(groups, cutoff)) * max(WIDEN, FIRST_MARGIN * want / max(have, 1))
            if loaded < len(months) and wanted > WHOLE * sum(g.rows for g in groups) * len(months) / loaded:
                break
        # the rest of the selection: everything before the last window
        if upper is None:
            take(f, files)
        else:
            lo, hi = month_range(f.since, upper)
            take(f.replace(until=upper), [p for p in files if lo <= month_of(p) <= hi])
        return answer()

    def _row_groups(self, files: list[str], f: Filters) -> tuple[list[RowGroup], set[str]]:
        """The row groups of ``files`` with ``event_time`` statistics, clipped to ``f``'s window
        (their rows counted in proportion), and the segments holding a row group without them
        (left out of the estimates; every window that includes their month reads them)."""
        if not files:
            return [], set()
        with self._cursor() as cur:
            found = cur.execute(
                "SELECT file_name, row_group_num_rows, TRY_CAST(stats_min_value AS TIMESTAMPTZ), "
                "TRY_CAST(stats_max_value AS TIMESTAMPTZ) FROM parquet_metadata($files) "
                "WHERE path_in_schema = 'event_time'", {"files": files}).fetchall()
        out = []
        unsure = set()
        for name, rows, low, high in found:
            if not rows:
                continue
            if low is None or high is None or high < low:
                unsure.add(str(name))
                continue
            low, high = low.astimezone(UTC), high.astimezone(UTC)
            clipped_low = max(low, f.since) if f.since is not None else low
            clipped_high = min(high, f.until - _TICK) if f.until is not None else high
            if clipped_high < clipped_low:
                continue
            share = 1.0 if high == low else (clipped_high - clipped_low) / (high - low)
            out.append(RowGroup(str(name), int(rows * share) if share < 1 else int(rows), clipped_low, clipped_high))
        return out, unsure


_TICK = timedelta(microseconds=1)
_ANY_TIME = datetime.max.replace(tzinfo=UTC)
