"""KPIs: the headline counts and rates, their series over time and their breakdowns.

The rates are defined here, once (:data:`RATE_DEFINITIONS`; the dashboard, the notebooks
and ``riskengine report`` all call these methods). Everything but distinct users is a sum
over the planner's count rows, so rollups answer whatever whole days they cover.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from riskengine.analytics._files import month_of
from riskengine.analytics._planner import _Planner
from riskengine.analytics._sql import Filters, Query, bucket_sql, check_grain, month_end, month_start, utc_buckets
from riskengine.analytics.rollups import OUTCOME_WINDOW, hll_estimate, hll_sql

BREAKDOWNS = ("country", "device_type", "reason", "factor", "browser_family", "policy_version")
RATE_DEFINITIONS = {
    "challenge_rate": "(challenged + denied logins) / scored logins",
    "deny_rate": "denied logins / scored logins",
    "challenge_success_rate": "verified challenges / challenges with a recorded outcome",
    "fallback_rate": "challenges that used more than one channel / challenges with a recorded outcome",
}


def _rates(k: dict[str, int]) -> dict[str, float | None]:
    def ratio(num: int, den: int) -> float | None:
        return num / den if den else None

    return {
        "challenge_rate": ratio(k["challenged"] + k["denied"], k["logins"]),
        "deny_rate": ratio(k["denied"], k["logins"]),
        "challenge_success_rate": ratio(k["verified"], k["challenges"]),
        "fallback_rate": ratio(k["fallbacks"], k["challenges"]),
    }




class _KPIs(_Planner):
    """Overview numbers: data presence and span, KPIs, series, breakdowns, segment values."""

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
            files = [p for p in self._files("decisions", month_start(key), month_end(key)) if month_of(p) == key]
            # the row groups' statistics hold every minimum and maximum (exact for timestamps): read
            # them, not 4M rows a month; a row group without them (and not all null) is scanned for
            side = "min" if fn == "min" else "max"
            stats = self._frame(lambda q: f"""
                SELECT {fn}(stats_{side}_value::TIMESTAMPTZ) AS t,
                       bool_and(stats_{side}_value IS NOT NULL
                                OR coalesce(stats_null_count = num_values, false)) AS complete
                  FROM parquet_metadata({q.p(files)}) WHERE path_in_schema = 'event_time'""")
            if stats.height and stats["complete"][0]:
                return stats["t"][0]
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
        def build(q: Query) -> str:
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
        """Distinct user keys among the window's decisions: exact (raw rows), or
        (``approximate=True``) a HyperLogLog estimate (2**14 registers, standard error ≈ 0.8 %).

        The estimate merges the daily sketches of the rollups (whole days of rolled-up months,
        when ``f`` filters on no segment) with a sketch of the raw rest built the same way, so
        it is the same number with or without rollups."""
        if not approximate:
            return int(self._frame(lambda q: f"SELECT count(DISTINCT user_key) AS users FROM {self._dec(q, f)}")
                       .item())
        reg, rank = hll_sql()

        def build(q: Query) -> str:
            plan = self._plan(f, part="users.parquet")
            src = self._rest_src(q, "decisions", f.since, f.until, plan)
            union = (f"SELECT {reg} AS reg, {rank} AS rank FROM {src} WHERE user_key IS NOT NULL "
                     f"AND {self._where(q, f, 'decisions')} AND {self._raw_rest(q, plan)}")
            if plan is not None:
                # months the window holds whole: their merged sketch; the others: their days'
                merged = {k: folder for k, folder, parts in zip(sorted(plan.months), plan.folders, plan.parts,
                                                                strict=True)
                          if k in plan.skip and "users_month.parquet" in parts}
                whole = [f"{folder}/users_month.parquet" for folder in merged.values()]
                daily = [f"{folder}/users.parquet" for k, folder in zip(sorted(plan.months), plan.folders,
                                                                        strict=True) if k not in merged]
                if whole:
                    union = f"SELECT reg, rank FROM read_parquet({q.p(whole)}) UNION ALL {union}"
                if daily:
                    union = (f"SELECT reg, rank FROM read_parquet({q.p(daily)}) "
                             f"WHERE day_us >= {q.p(plan.lo_us)} AND day_us < {q.p(plan.hi_us)} UNION ALL {union}")
            return f"SELECT reg, max(rank) AS rank FROM ({union}) GROUP BY reg"

        return hll_estimate(self._frame(build)["rank"].to_list())

    def segment_values(self, by: str) -> list[str]:
        """Every value of a decision column seen in the whole log (for filter pickers);
        ``reason`` lists reason codes."""
        if by not in BREAKDOWNS or by == "browser_family":
            if by != "browser_family":
                raise ValueError(f"no segment values for {by!r}; choose one of {', '.join(BREAKDOWNS)}")

        def build(q: Query) -> str:
            if by == "browser_family":
                src = f"(SELECT browser_family FROM {self._src(q, 'decisions')})"
            else:
                src = self._dcounts(q, Filters(), ("reasons" if by == "reason" else by,), self._plan(Filters()))
            col = "unnest(reasons)" if by == "reason" else by
            return f"SELECT DISTINCT {col} AS key FROM {src} ORDER BY 1"

        return [str(k) for k in self._frame(build)["key"].to_list() if k is not None]

    def kpis_vs_previous(self, f: Filters = Filters(), *, users: bool = True) -> dict[str, tuple[Any, Any]]:
        """Each KPI now and in the same-length window just before (:meth:`Filters.previous`).

        A window open at either end is closed at the data's first/last decision first. The one
        definition of "vs previous period": the dashboard's Overview caches this call.
        ``users=False`` skips the distinct-user scans (``users`` is then None on both sides)."""
        since, until = f.since, f.until
        if since is None or until is None:
            span = self.date_range()
            if span is None:
                cur = self.kpis(f, users=users)
                return {k: (v, None) for k, v in cur.items()}
            since = since or span[0]
            until = until or span[1] + timedelta(microseconds=1)
        window = f.replace(since=since, until=until)
        before = window.previous()
        assert before is not None  # both ends are set
        current = self.kpis(window, users=users)
        previous = self.kpis(before, users=users)
        return {k: (current[k], previous[k]) for k in current}

    def kpi_series(self, f: Filters = Filters(), grain: str = "day") -> pl.DataFrame:
        """KPIs per hour/day/week bucket (UTC; weeks start on Monday)."""
        g = check_grain(grain)

        def build(q: Query) -> str:
            plan = self._plan(f, grain=g)
            if g == "hour":
                d_src, c_src = self._dec(q, f), self._chal(q, f)
                d_bucket = c_bucket = bucket_sql(g)
                n, fallback = "1", "len(channels) > 1"
            else:
                d_src = self._dcounts(q, f, ("day_us", "action"), plan)
                c_src = self._ccounts(q, f, ("day_us", "outcome", "fallback"), plan)
                d_bucket = c_bucket = bucket_sql(g, "day_us")
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

        return utc_buckets(self._frame(build))

    def breakdown(self, f: Filters = Filters(), by: str = "country") -> pl.DataFrame:
        """KPIs per country, device type, reason code, recommended factor, browser or policy version."""
        if by not in BREAKDOWNS:
            raise ValueError(f"cannot break down by {by!r}; choose one of {', '.join(BREAKDOWNS)}")

        def build(q: Query) -> str:
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

    def event_breakdown(self, f: Filters = Filters()) -> pl.DataFrame:
        """Decisions per event (``login``, ``recovery``, ``factor_change``, ``password_reset``;
        rows written before the audit log had the column count as logins): ``decisions``,
        ``challenged``, ``denied``, ``challenge_rate`` ((challenged + denied) / decisions, as
        :data:`RATE_DEFINITIONS` defines it for logins) and ``deny_rate``. Events with no
        decision in the window are left out. Rollups answer the whole days they cover."""
        return self._frame(lambda q: f"""
            SELECT event, sum(n)::BIGINT AS decisions,
                   coalesce(sum(n) FILTER (WHERE action = 'challenge'), 0)::BIGINT AS challenged,
                   coalesce(sum(n) FILTER (WHERE action = 'deny'), 0)::BIGINT AS denied,
                   coalesce(sum(n) FILTER (WHERE action <> 'allow'), 0) / sum(n) AS challenge_rate,
                   coalesce(sum(n) FILTER (WHERE action = 'deny'), 0) / sum(n) AS deny_rate
              FROM {self._dcounts(q, f, ('event', 'action'), self._plan(f))}
             GROUP BY event ORDER BY decisions DESC, event""")

    def _browser_breakdown(self, q: Query, f: Filters) -> str:
        """Browsers are not in the rollups (nor on challenge rows): raw decisions, and each
        challenge through its decision."""
        since = f.since - OUTCOME_WINDOW if f.since else None
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

