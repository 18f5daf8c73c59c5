"""Challenges and channels: outcomes per factor and channel, fallback funnel and paths,
time to verify, and the challenges a legitimate user probably did not need.

All read challenge rows with a recorded outcome (``_chal``), except the avoidable-challenge
count, which is about decisions and so goes through the planner's rolled-up decision counts.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from riskengine.analytics._planner import _Planner
from riskengine.analytics._sql import Filters, Query
from riskengine.analytics.rollups import bucket_quantile

STRONG_NOVELTY = ("NEW_DEVICE", "NEW_COUNTRY", "IMPOSSIBLE_TRAVEL")
_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


class _Channels(_Planner):
    """Challenge outcome, channel and fallback queries."""

    def channel_success(self, f: Filters = Filters()) -> pl.DataFrame:
        """Outcomes per factor and final delivery channel."""
        return self._frame(lambda q: f"""
            SELECT factor, final_channel, sum(n)::BIGINT AS challenges,
                   coalesce(sum(n) FILTER (WHERE outcome = 'verified'), 0)::BIGINT AS verified,
                   coalesce(sum(n) FILTER (WHERE outcome = 'failed'), 0)::BIGINT AS failed,
                   coalesce(sum(n) FILTER (WHERE outcome = 'expired'), 0)::BIGINT AS expired,
                   coalesce(sum(n) FILTER (WHERE outcome = 'abandoned'), 0)::BIGINT AS abandoned,
                   coalesce(sum(n) FILTER (WHERE outcome = 'verified'), 0) / sum(n) AS success_rate
              FROM {self._channel_counts(q, f)} GROUP BY ALL ORDER BY challenges DESC, factor, final_channel""")

    def fallback_funnel(self, f: Filters = Filters()) -> pl.DataFrame:
        """How many challenges reached each step of their channel path, and ended there."""
        return self._frame(lambda q: f"""
            WITH c AS (SELECT channels, outcome, len(channels) AS steps, n FROM {self._channel_counts(q, f)}
                        WHERE len(channels) > 0),
            s AS (SELECT unnest(generate_series(1, steps)) AS step, channels, outcome, steps, n FROM c)
            SELECT step::INTEGER AS step, channels[step] AS channel, sum(n)::BIGINT AS reached,
                   coalesce(sum(n) FILTER (WHERE step = steps AND outcome = 'verified'), 0)::BIGINT AS verified_here,
                   coalesce(sum(n) FILTER (WHERE step = steps AND outcome <> 'verified'), 0)::BIGINT AS dropped_here
              FROM s GROUP BY ALL ORDER BY step, reached DESC, channel""")

    def fallback_paths(self, f: Filters = Filters()) -> pl.DataFrame:
        """Challenges that fell back: primary → first fallback channel, full path, success."""
        return self._frame(lambda q: f"""
            WITH c AS (SELECT channels, outcome, n FROM {self._channel_counts(q, f)} WHERE len(channels) > 0),
            per_primary AS (SELECT channels[1] AS primary_channel, sum(n) AS n FROM c GROUP BY 1)
            SELECT channels[1] AS primary_channel, channels[2] AS fallback_channel,
                   array_to_string(channels, ' → ') AS path, sum(c.n)::BIGINT AS challenges,
                   coalesce(sum(c.n) FILTER (WHERE outcome = 'verified'), 0) / sum(c.n) AS success_rate,
                   sum(c.n) / any_value(p.n) AS share_of_primary
              FROM c JOIN per_primary p ON p.primary_channel = c.channels[1]
             WHERE len(channels) > 1
             GROUP BY ALL ORDER BY challenges DESC, path""")

    def time_to_verify(self, f: Filters = Filters(), *, approximate: bool = False) -> pl.DataFrame:
        """Seconds from challenge to verification, per factor (verified challenges only):
        exact percentiles of the raw rows, or (``approximate=True``) read from 2 %-wide
        buckets, within 1 % of a value near the exact one, summed from the rollups'
        ``verify.parquet`` where they cover the window (the same numbers either way)."""
        if approximate:
            return self._time_to_verify_buckets(f)
        return self._frame(lambda q: f"""
            SELECT factor, count(*) AS n,
                   quantile_cont(seconds_to_verify, 0.5) AS p50,
                   quantile_cont(seconds_to_verify, 0.9) AS p90,
                   quantile_cont(seconds_to_verify, 0.99) AS p99
              FROM {self._chal(q, f)}
             WHERE outcome = 'verified' AND seconds_to_verify IS NOT NULL
             GROUP BY factor ORDER BY n DESC, factor""")

    def _time_to_verify_buckets(self, f: Filters) -> pl.DataFrame:
        counts = self._frame(lambda q: f"SELECT factor, bucket, sum(n)::BIGINT AS n "
                                       f"FROM {self._verify_buckets(q, f)} GROUP BY ALL ORDER BY factor, bucket")
        rows = []
        for (factor,), part in counts.group_by(["factor"], maintain_order=True):
            pairs = list(zip(part["bucket"].to_list(), part["n"].to_list(), strict=True))
            rows.append({"factor": factor, "n": sum(c for _, c in pairs),
                         **{name: bucket_quantile(pairs, p) for name, p in _PERCENTILES}})
        out = pl.DataFrame(rows, schema={"factor": pl.Utf8, "n": pl.Int64, "p50": pl.Float64, "p90": pl.Float64,
                                         "p99": pl.Float64})
        return out.sort(["n", "factor"], descending=[True, False], nulls_last=True)

    def avoidable_challenges(self, f: Filters = Filters()) -> dict[str, Any]:
        """Challenges that probably annoyed a legitimate user: on a trusted device, or on a
        known device from a known country (no NEW_DEVICE / NEW_COUNTRY / IMPOSSIBLE_TRAVEL)."""
        def build(q: Query) -> str:
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

