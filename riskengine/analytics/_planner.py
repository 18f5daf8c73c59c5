"""Rollup planning: which part of a query window the rollups answer, and the count rows that
union them with the raw segments for the rest.

Rollups (:mod:`riskengine.analytics.rollups`) count whole UTC days of months whose rollup is
current. :meth:`_Planner._plan` cuts a window into those days and the rest; ``_dcounts`` /
``_ccounts`` / ``_hourly`` / ``_failures`` give every KPI query the same shape, count rows
``(dims…, n)``, whichever side a row comes from, so a query is written once and gives the
same numbers with or without rollups. A mixin over the reader: planning needs its file
listing and filters, and every rolled-up query family needs planning.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from riskengine.analytics._files import month_of, months_of
from riskengine.analytics._reader import _Reader
from riskengine.analytics._sql import Filters, Query, ceil_day, day_sql, epoch_us, floor_day, month_end, month_start
from riskengine.analytics.rollups import (
    HLL_PROBE,
    LEGACY_EXPR,
    OUTCOME_WINDOW,
    ROLLUP_DIR,
    SOURCE_TABLES,
    Rollup,
    current_rollups,
    verify_bucket_sql,
)

_FAR_PAST = datetime(1, 1, 2, tzinfo=UTC)
EVENT_SQL = "coalesce(event, 'login')"
"""A decision's event: segments written before schema version 2 have none, and were all logins."""
_FAR_FUTURE = datetime(9999, 12, 30, tzinfo=UTC)


_SETTLED_NS = 2_000_000_000
"""A folder changed less than this long ago may change again within its clock tick: never cached."""


def listing_signature(root: Path) -> tuple[tuple[str, int], ...] | None:
    """The modification times of every folder whose listing decides which rollups are current:
    the month partitions of the rolled-up tables and the rollup folders. Adding, renaming or
    removing a segment or a rollup changes its folder's time, so an unchanged signature means
    an unchanged answer of :func:`~riskengine.analytics.rollups.current_rollups` (None when a
    folder changed too recently to tell, or cannot be read)."""
    out: list[tuple[str, int]] = []
    settled = time.time_ns() - _SETTLED_NS
    try:
        for top, depth in [*((t, 2) for t in SOURCE_TABLES), (ROLLUP_DIR, 1)]:
            level = [os.path.join(root, top)]
            for level_no in range(depth + 1):
                below: list[str] = []
                for folder in level:
                    try:
                        st = os.stat(folder)
                    except FileNotFoundError:
                        out.append((folder, -1))
                        continue
                    if st.st_mtime_ns > settled:
                        return None
                    out.append((folder, st.st_mtime_ns))
                    if level_no < depth:
                        below.extend(e.path for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
                level = sorted(below)
    except OSError:
        return None
    return tuple(out)


_SEGMENTS = frozenset({"countries", "device_types", "actions", "reasons", "factors", "policy_versions"})
_PART_FILTERS: dict[str, frozenset[str]] = {
    "users.parquet": frozenset(), "risk.parquet": frozenset({"actions"}),
    "channels.parquet": frozenset({"countries", "factors"}), "verify.parquet": frozenset({"countries", "factors"}),
    "shadow.parquet": frozenset({"countries", "device_types", "policy_versions", "actions"}),
}
"""The segment filters each partial rollup file can apply."""


@dataclass(frozen=True)
class Plan:
    """Which part of a query window the rollups answer: whole UTC days in [lo, hi) of the
    ``months`` (``YYYYMM``) in ``folders``; raw segments answer for everything else."""

    folders: tuple[str, ...]
    months: frozenset[int]
    lo: datetime
    hi: datetime
    skip: frozenset[int]  # months wholly inside [lo, hi): their raw segments are not read
    parts: tuple[frozenset[str], ...] = ()  # the files each folder holds, in the order of ``folders``

    @property
    def lo_us(self) -> int:
        return epoch_us(self.lo)

    @property
    def hi_us(self) -> int:
        return epoch_us(self.hi)

    def files(self, name: str) -> list[str]:
        return [f"{folder}/{name}" for folder in self.folders]



class _Planner(_Reader):
    """Rollup-aware count sources for the query mixins."""

    def _plan(self, f: Filters, *, grain: str = "day", part: str | None = None) -> Plan | None:
        """The part of ``f``'s window rollups can answer (None: raw segments only).

        ``part``: a rollup file with fewer segment columns (``users.parquet``, ``risk.parquet``,
        ``channels.parquet``): planned only when ``f`` filters on no segment the file lacks
        (:data:`_PART_FILTERS`), and only if every month of the plan has that file (and, for
        the user sketches, they were hashed the way this DuckDB hashes)."""
        if not self.use_rollups or f.user_key is not None or grain not in ("day", "week"):
            return None
        if part is not None and any(getattr(f, name) for name in _SEGMENTS - _PART_FILTERS[part]):
            return None
        current = self._current_rollups()
        if not current:
            return None
        lo = ceil_day(f.since) if f.since is not None else _FAR_PAST
        hi = floor_day(f.until) if f.until is not None else _FAR_FUTURE
        if hi <= lo:
            return None
        months = {k for k in current if month_start(k) < hi and month_end(k) > lo}
        if not months:
            return None
        if part is not None and not all(self._has_part(current[k], part) for k in months):
            return None
        skip = frozenset(k for k in months if month_start(k) >= lo and month_end(k) <= hi)
        self.rollup_plans += 1
        self.last_plan_months = frozenset(months)
        return Plan(tuple(current[k].location for k in sorted(months)), frozenset(months), lo, hi, skip,
                    tuple(current[k].parts for k in sorted(months)))

    def _current_rollups(self) -> dict[int, Rollup]:
        """:func:`~riskengine.analytics.rollups.current_rollups`, reused on a local root while no
        folder it depends on has changed (:func:`listing_signature`): deciding which rollups are
        current reads every manifest and lists every partition, ~0.15 s per query on 24 months."""
        if self.store is not None:
            return current_rollups(self.store, segments=self._table_segments)
        root = Path(self.root)
        signature = listing_signature(root)
        cached = self._rollups_seen
        if signature is not None and cached is not None and cached[0] == signature:
            return cached[1]
        current = current_rollups(root)
        if signature is not None:
            self._rollups_seen = (signature, current)
        return current

    def _has_part(self, rollup: Rollup, part: str) -> bool:
        if part not in rollup.parts:
            return False
        if part != "users.parquet":
            return True
        return rollup.manifest.get("hll_probe") == self._hll_probe()

    def _hll_probe(self) -> int:
        if self._probe is None:
            with self._cursor() as cur:
                self._probe = int(cur.execute("SELECT hash($p)", {"p": HLL_PROBE}).fetchall()[0][0])
        return self._probe

    def _rest_src(self, q: Query, table: str, since: datetime | None, until: datetime | None,
                  plan: Plan | None, files: list[str] | None = None) -> str:
        """:meth:`_src` over the segments the rollups do not answer for whole: months of the plan
        only partly inside its days keep just their rows outside them, filtered right at the scan
        (a plain range on ``event_time`` that DuckDB checks against row-group statistics, so a
        month whose rolled-up days are all it holds in the window is hardly read);
        :meth:`_raw_rest` still applies on top, so the answer does not depend on that pruning."""
        if files is None:
            files = self._files(table, since, until, plan.skip if plan else frozenset())
        if plan is None:
            return self._src(q, table, files=files)
        partial = [p for p in files if month_of(p) in plan.months]
        other = [p for p in files if month_of(p) not in plan.months]
        if not partial:
            return self._src(q, table, files=other)
        cut = (f"(SELECT * FROM {self._src(q, table, files=partial)} "
               f"WHERE event_time < {q.p(plan.lo)} OR event_time >= {q.p(plan.hi)})")
        if not other:
            return cut
        return f"({cut} UNION ALL BY NAME (SELECT * FROM {self._src(q, table, files=other)}))"

    def _raw_rest(self, q: Query, plan: Plan | None) -> str:
        """Excludes raw rows the rollups already count (partially covered rolled-up months)."""
        if plan is None:
            return "true"
        return (f"NOT (list_contains({q.p(sorted(plan.months))}, year * 100 + month) "
                f"AND event_time >= {q.p(plan.lo)} AND event_time < {q.p(plan.hi)})")

    def _dcounts(self, q: Query, f: Filters, cols: Sequence[str], plan: Plan | None) -> str:
        """Decisions as count rows ``(cols..., n, trusted, cold)``: rollup rows for the whole
        days the plan covers, one row per raw decision (n = 1) for the rest of the window.
        ``cols`` are decision dimensions, ``event`` (``"login"`` where a segment predates the
        column) or ``day_us`` (start of the UTC day, epoch µs)."""
        exprs = {"day_us": day_sql(), "event": EVENT_SQL}
        raw_cols = ", ".join(f"{exprs[c]} AS {c}" if c in exprs else c for c in cols)
        raw = (f"SELECT {raw_cols}{', ' if cols else ''}1 AS n, trusted_device::INTEGER AS trusted, "
               f"cold_start::INTEGER AS cold "
               f"FROM {self._rest_src(q, 'decisions', f.since, f.until, plan)} "
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

    def _ccounts(self, q: Query, f: Filters, cols: Sequence[str], plan: Plan | None) -> str:
        """Challenges with an outcome as count rows ``(cols..., n)``, like :meth:`_dcounts`.
        ``cols``: challenge dimensions (device type, reasons and policy version are the
        decision's), ``fallback`` (more than one channel) or ``day_us``."""
        files = self._files("challenges", f.since, f.until, plan.skip if plan else frozenset())
        needs_decision = bool({"device_type", "reasons", "policy_version"} & set(cols))
        legacy = self._legacy_files_of(files) if needs_decision or f.decision_only else []
        src = self._rest_src(q, "challenges", f.since, f.until, plan, files=files)
        if legacy and needs_decision:
            since = f.since - OUTCOME_WINDOW if f.since else None
            cols_sql = ", ".join(f"{expr} AS {name}" for name, expr in LEGACY_EXPR.items())
            src = (f"(SELECT c.* REPLACE ({cols_sql}) FROM {src} c LEFT JOIN "
                   f"(SELECT decision_id, device_type, reasons, policy_version "
                   f"FROM {self._decision_src(q, since, f.until, months_of(legacy))}) d USING (decision_id))")
        exprs = {"day_us": day_sql(), "fallback": "len(channels) > 1"}
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

    def _channel_counts(self, q: Query, f: Filters) -> str:
        """Challenges with an outcome as count rows ``(factor, channels, final_channel, outcome,
        n)``: ``channels.parquet`` for the whole days it covers (windows filtered on countries
        and factors at most), one row per raw challenge for the rest."""
        plan = self._plan(f, part="channels.parquet")
        if plan is None:
            return f"(SELECT factor, channels, final_channel, outcome, 1 AS n FROM {self._chal(q, f)})"
        src = self._rest_src(q, "challenges", f.since, f.until, plan)
        raw = (f"SELECT factor, channels, final_channel, outcome, 1 AS n FROM {src} "
               f"WHERE outcome IS NOT NULL AND {self._where(q, f, 'challenges', legacy=False)} "
               f"AND {self._raw_rest(q, plan)}")
        rolled = (f"SELECT factor, channels, final_channel, outcome, n "
                  f"FROM read_parquet({q.p(plan.files('channels.parquet'))}) "
                  f"WHERE day_us >= {q.p(plan.lo_us)} AND day_us < {q.p(plan.hi_us)}")
        if f.countries:
            rolled += f" AND list_contains({q.p(list(f.countries))}, country)"
        if f.factors:
            rolled += f" AND list_contains({q.p(list(f.factors))}, factor)"
        return f"({rolled} UNION ALL {raw})"

    def _verify_buckets(self, q: Query, f: Filters) -> str:
        """Verified challenges with a duration as rows ``(factor, bucket, n)``
        (:func:`~riskengine.analytics.rollups.verify_bucket_sql`): ``verify.parquet`` for the
        whole days it covers (at most country and factor filters), raw rows for the rest."""
        plan = self._plan(f, part="verify.parquet")
        cond = "outcome = 'verified' AND seconds_to_verify IS NOT NULL"
        if plan is None:
            return f"(SELECT factor, {verify_bucket_sql()} AS bucket, 1 AS n FROM {self._chal(q, f)} WHERE {cond})"
        src = self._rest_src(q, "challenges", f.since, f.until, plan)
        raw = (f"SELECT factor, {verify_bucket_sql()} AS bucket, 1 AS n FROM {src} "
               f"WHERE {cond} AND {self._where(q, f, 'challenges', legacy=False)} AND {self._raw_rest(q, plan)}")
        rolled = (f"SELECT factor, bucket, n FROM read_parquet({q.p(plan.files('verify.parquet'))}) "
                  f"WHERE day_us >= {q.p(plan.lo_us)} AND day_us < {q.p(plan.hi_us)}")
        if f.countries:
            rolled += f" AND list_contains({q.p(list(f.countries))}, country)"
        if f.factors:
            rolled += f" AND list_contains({q.p(list(f.factors))}, factor)"
        return f"({rolled} UNION ALL {raw})"

    def _hourly(self, q: Query, plan: Plan) -> str:
        """Hourly ``(hour_us, logins, stepups, failures)`` from the rollups, for the whole days
        the plan covers (no segment filters: the hourly rollup has no dimensions)."""
        return (f"(SELECT hour_us, logins, stepups, failures FROM read_parquet({q.p(plan.files('hourly.parquet'))}) "
                f"WHERE hour_us >= {q.p(plan.lo_us)} AND hour_us < {q.p(plan.hi_us)})")

    def _failures(self, q: Query, f: Filters, plan: Plan | None) -> str:
        """Failed passwords of the window that the hourly rollup does not count, one row each
        (failures have no segment columns, so only time and user filters apply to them)."""
        src = self._rest_src(q, "failures", f.since, f.until, plan)
        return f"(SELECT event_time FROM {src} WHERE {self._where(q, f, 'failures')} AND {self._raw_rest(q, plan)})"

