"""Alerts: challenge-rate and failed-password spikes per hour/day/week bucket.

The series comes from the hourly rollup for whole rolled-up days (when no segment filter
is set: that rollup has no dimensions) and from raw rows for the rest; the spike test is
the pure :func:`riskengine.analytics.alerts.spikes`.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from riskengine.analytics._planner import _Planner
from riskengine.analytics._sql import Filters, Query, bucket_sql, check_grain, segment_filtered, utc_buckets
from riskengine.analytics.alerts import spikes
from riskengine.analytics.rollups import HOUR_US


class _Alerts(_Planner):
    """Spike detection over the KPI series."""

    def alerts(self, f: Filters = Filters(), grain: str = "hour", window: int = 24, z: float = 4.0,
               min_logins: int = 50) -> pl.DataFrame:
        """Challenge-rate and failed-password spikes against the trailing ``window`` buckets."""
        g = check_grain(grain)

        def build(q: Query) -> str:
            plan = self._plan(f)
            if plan is not None and not segment_filtered(f):
                # the hourly rollup for whole rolled-up days, raw rows (one each) for the rest
                rest = self._rest_src(q, "decisions", f.since, f.until, plan)
                hour = f"(epoch_us(event_time) // {HOUR_US}) * {HOUR_US}"
                return f"""
                WITH h AS (
                  SELECT hour_us, logins, stepups, failures FROM {self._hourly(q, plan)}
                  UNION ALL
                  SELECT {hour}, 1, (action <> 'allow')::INTEGER, 0 FROM {rest}
                   WHERE {self._where(q, f, 'decisions')} AND {self._raw_rest(q, plan)}
                  UNION ALL
                  SELECT {hour}, 0, 0, 1 FROM {self._failures(q, f, plan)})
                SELECT {bucket_sql(g, 'hour_us')} AS bucket, sum(logins)::BIGINT AS logins,
                       coalesce(sum(stepups), 0)::BIGINT AS stepups, sum(failures)::BIGINT AS failures
                  FROM h GROUP BY 1 ORDER BY 1"""
            return f"""
            WITH d AS (SELECT {bucket_sql(g)} AS bucket, count(*) AS logins,
                              count(*) FILTER (WHERE action <> 'allow') AS stepups
                         FROM {self._dec(q, f)} GROUP BY 1),
            fl AS (SELECT {bucket_sql(g)} AS bucket, count(*) AS failures
                     FROM {self._src(q, 'failures', f.since, f.until)} WHERE {self._where(q, f, 'failures')}
                    GROUP BY 1)
            SELECT bucket, coalesce(logins, 0) AS logins, coalesce(stepups, 0) AS stepups,
                   coalesce(failures, 0) AS failures
              FROM d FULL OUTER JOIN fl USING (bucket) ORDER BY bucket"""

        series = self._frame(build)
        series = utc_buckets(series)
        if series.is_empty():
            return spikes([], [], [], [])
        step = {"hour": "1h", "day": "1d", "week": "1w"}[g]
        first: datetime = series["bucket"].min()  # type: ignore[assignment]
        last: datetime = series["bucket"].max()  # type: ignore[assignment]
        grid = pl.DataFrame({"bucket": pl.datetime_range(first, last, step, eager=True, time_zone="UTC")})
        full = grid.join(series, on="bucket", how="left").fill_null(0)
        return spikes(full["bucket"].to_list(), full["logins"].to_list(), full["stepups"].to_list(),
                      full["failures"].to_list(), window=window, z=z, min_logins=min_logins)

