"""Second-factor sends (``Engine.check_send``, SMS pumping): sends, cost and verify ratio per
destination country, and pumping-wave alerts.

Read from the ``sends`` table (raw rows; it is not rolled up: one row per OTP send check is
far fewer than logins). A row with ``verified`` true is the verification of an earlier send
(append-only), so the verify ratio is verified rows / allowed sends in the same window.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from riskengine.analytics._reader import _Reader
from riskengine.analytics._sql import Filters, Query, bucket_sql, check_grain, utc_buckets
from riskengine.analytics.alerts import pumping_waves
from riskengine.analytics.rollups import OUTCOME_WINDOW

SEND_SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "dest_country": pl.Utf8(), "checks": pl.Int64(), "sent": pl.Int64(), "blocked": pl.Int64(),
    "switched": pl.Int64(), "verified": pl.Int64(), "verify_ratio": pl.Float64(), "cost": pl.Float64(),
    "cost_avoided": pl.Float64(),
}


class _Sends(_Reader):
    """Send volume, cost and verify ratio by destination country; pumping waves."""

    def _sends(self, q: Query, f: Filters) -> str:
        """Send rows in ``f``'s window; the filters a send has no column for (the login's
        country, device type, action, reasons, factor, policy version) apply through the
        decision it was sent for (``decision_id``), as challenges' do."""
        conds = self._where(q, f, "sends")
        if f.countries or f.device_types or f.actions or f.reasons or f.factors or f.policy_versions:
            since = f.since - OUTCOME_WINDOW if f.since else None
            df = Filters(since=since, until=f.until, countries=f.countries, device_types=f.device_types,
                         actions=f.actions, reasons=f.reasons, factors=f.factors,
                         policy_versions=f.policy_versions)
            conds += f" AND decision_id IN (SELECT decision_id FROM {self._dec(q, df)})"
        return f"(SELECT * FROM {self._src(q, 'sends', f.since, f.until)} WHERE {conds})"

    def send_summary(self, f: Filters = Filters()) -> pl.DataFrame:
        """Per destination country: send checks, sent (allowed), blocked, switched, verified,
        verify ratio (verified / sent), cost of the sent ones and the price of those refused
        (``cost_avoided``). Most sends first."""
        frame = self._frame(lambda q: f"""
            SELECT coalesce(dest_country, '??') AS dest_country,
                   count(*) FILTER (WHERE NOT verified) AS checks,
                   count(*) FILTER (WHERE action = 'allow') AS sent,
                   count(*) FILTER (WHERE action = 'block') AS blocked,
                   count(*) FILTER (WHERE action = 'switch') AS switched,
                   count(*) FILTER (WHERE verified) AS verified,
                   CASE WHEN count(*) FILTER (WHERE action = 'allow') > 0
                        THEN count(*) FILTER (WHERE verified) / count(*) FILTER (WHERE action = 'allow') END
                     AS verify_ratio,
                   coalesce(sum(price) FILTER (WHERE action = 'allow'), 0) AS cost,
                   coalesce(sum(price) FILTER (WHERE action IN ('block', 'switch')), 0) AS cost_avoided
              FROM {self._sends(q, f)} GROUP BY 1 ORDER BY checks DESC, dest_country""")
        if frame.is_empty():
            return pl.DataFrame(schema=SEND_SUMMARY_SCHEMA)
        return frame.cast(pl.Schema(SEND_SUMMARY_SCHEMA))

    def send_totals(self, f: Filters = Filters()) -> dict[str, float | int | None]:
        """The summary over every country (the page's headline figures)."""
        s = self.send_summary(f)
        sent = int(s["sent"].sum()) if not s.is_empty() else 0
        verified = int(s["verified"].sum()) if not s.is_empty() else 0
        return {"checks": int(s["checks"].sum()) if not s.is_empty() else 0, "sent": sent,
                "blocked": int(s["blocked"].sum()) if not s.is_empty() else 0,
                "switched": int(s["switched"].sum()) if not s.is_empty() else 0,
                "verified": verified, "verify_ratio": verified / sent if sent else None,
                "cost": float(s["cost"].sum()) if not s.is_empty() else 0.0,
                "cost_avoided": float(s["cost_avoided"].sum()) if not s.is_empty() else 0.0}

    def send_series(self, f: Filters = Filters(), grain: str = "hour") -> pl.DataFrame:
        """Sent and verified per bucket and destination country (sent: allowed checks)."""
        g = check_grain(grain)
        frame = self._frame(lambda q: f"""
            SELECT {bucket_sql(g)} AS bucket, coalesce(dest_country, '??') AS dest_country,
                   count(*) FILTER (WHERE NOT verified) AS attempts,
                   count(*) FILTER (WHERE action = 'allow') AS sent,
                   count(*) FILTER (WHERE verified) AS verified
              FROM {self._sends(q, f)} GROUP BY 1, 2 ORDER BY 1, 2""")
        return utc_buckets(frame)

    def pumping_alerts(self, f: Filters = Filters(), grain: str = "hour", window: int = 24, z: float = 4.0,
                       min_sends: int = 20, max_verify_ratio: float = 0.5) -> pl.DataFrame:
        """Pumping waves: buckets where a destination country's send attempts spike ``z``
        standard deviations above its trailing ``window`` buckets while few are verified
        (:func:`riskengine.analytics.alerts.pumping_waves`)."""
        series = self.send_series(f, grain)
        if series.is_empty():
            return pumping_waves([], [], [], [])
        step = {"hour": "1h", "day": "1d", "week": "1w"}[check_grain(grain)]
        first: datetime = series["bucket"].min()  # type: ignore[assignment]
        last: datetime = series["bucket"].max()  # type: ignore[assignment]
        grid = pl.DataFrame({"bucket": pl.datetime_range(first, last, step, eager=True, time_zone="UTC")})
        countries = series.select("dest_country").unique()
        full = (grid.join(countries, how="cross").join(series, on=["bucket", "dest_country"], how="left")
                .fill_null(0).sort("dest_country", "bucket"))
        return pumping_waves(full["bucket"].to_list(), full["dest_country"].to_list(), full["attempts"].to_list(),
                             full["verified"].to_list(), window=window, z=z, min_sends=min_sends,
                             max_verify_ratio=max_verify_ratio)
