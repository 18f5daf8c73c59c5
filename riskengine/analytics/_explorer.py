"""The explorer: raw audit rows, newest first, for the dashboard's audit explorer and for
support's look at one user (``riskengine user show``).

Newest rows live in the newest month partitions, so a page of rows reads the last month
first and widens the window (1, 2, 4, … months) only while it holds too few rows: a recent
page of a years-long log opens a month or two of segments, not all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import polars as pl

from riskengine.analytics._reader import _Reader
from riskengine.analytics._sql import Filters, Query
from riskengine.audit.columns import COLUMNS

USER_TABLES = ("decisions", "challenges", "admin")
"""The tables :meth:`_Explorer.user_events` reads: what support shows about one user."""


class _Explorer(_Reader):
    """Raw rows, newest first."""

    def events(self, f: Filters = Filters(), table: str = "decisions", limit: int = 500,
               offset: int = 0) -> pl.DataFrame:
        """Raw audit rows, newest first (the audit explorer); challenges with an outcome only."""
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

        def build_for(window: Filters) -> Callable[[Query], str]:
            def build(q: Query) -> str:
                src = self._src(q, table, window.since, window.until)
                return (f"SELECT * EXCLUDE (year, month) FROM {src} WHERE {self._where(q, window, table)} "
                        f"AND {extra} ORDER BY event_time DESC LIMIT {q.p(limit)} OFFSET {q.p(offset)}")
            return build

        # widen the window (1, 2, 4, ... months back) only while it holds fewer than offset + limit rows
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
