"""Risk and signals: reason-code counts, the risk histogram and the what-if threshold table.

What-if follows the engine's own rule: a decision is stepped up at threshold ``t`` when
``risk >= t`` (the definition :mod:`riskengine.offline.metrics` shares with ``evaluate``).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from riskengine.analytics._planner import _Planner
from riskengine.analytics._sql import Filters, Query, bucket_sql, check_grain, utc_buckets
from riskengine.analytics.rollups import RISK_STEPS, risk_step_sql


class _Risk(_Planner):
    """Decision-level risk queries."""

    def reason_counts(self, f: Filters = Filters()) -> pl.DataFrame:
        """How often each reason code appears, and how often those decisions stepped up."""
        return self._frame(lambda q: f"""
            WITH d AS (SELECT reasons, action, n FROM {self._dcounts(q, f, ('reasons', 'action'), self._plan(f))}),
            t AS (SELECT sum(n) AS n FROM d)
            SELECT r.reason, sum(r.n)::BIGINT AS decisions, sum(r.n) / any_value(t.n) AS share,
                   coalesce(sum(r.n) FILTER (WHERE r.action <> 'allow'), 0) / sum(r.n) AS challenge_rate
              FROM (SELECT unnest(reasons) AS reason, action, n FROM d) r, t
             GROUP BY r.reason ORDER BY decisions DESC, r.reason""")

    def _risk_steps(self, q: Query, f: Filters, step: str, steps: int) -> str:
        """Decisions as rows ``(step, action, n)``, ``step`` being the risk's step on the grid
        ``k/steps`` (:func:`~riskengine.analytics.rollups.risk_step_sql`, NULL without a risk):
        from ``risk.parquet`` for the whole days it covers (grids dividing 1/1000 only, windows
        without segment filters but the action), one row per raw decision for the rest."""
        plan = self._plan(f, part="risk.parquet") if RISK_STEPS % steps == 0 else None
        src = self._rest_src(q, "decisions", f.since, f.until, plan)
        raw = (f"SELECT {risk_step_sql('risk', steps)} AS {step}, action, 1 AS n FROM {src} "
               f"WHERE {self._where(q, f, 'decisions')} AND {self._raw_rest(q, plan)}")
        if plan is None:
            return f"({raw})"
        # k/1000 <= risk  <=>  j/steps <= risk for j = floor(k * steps / 1000) (equal rationals, equal doubles)
        rolled = (f"SELECT floor(step * {steps} / {RISK_STEPS}.0)::INTEGER AS {step}, action, n "
                  f"FROM read_parquet({q.p(plan.files('risk.parquet'))}) "
                  f"WHERE day_us >= {q.p(plan.lo_us)} AND day_us < {q.p(plan.hi_us)}")
        if f.actions:
            rolled += f" AND list_contains({q.p(list(f.actions))}, action)"
        return f"({rolled} UNION ALL {raw})"

    def risk_histogram(self, f: Filters = Filters(), bins: int = 20) -> pl.DataFrame:
        """Decisions per risk bin and action; every bin present. Bin ``b`` holds the risks
        ``b/bins <= risk < (b+1)/bins`` (the last bin also risk >= 1), compared as the engine
        compares a risk with a threshold."""
        if not 1 <= bins <= 1000:
            raise ValueError(f"bins must be between 1 and 1000, got {bins}")
        counts = self._frame(lambda q: f"""
            SELECT least(b, {q.p(bins - 1)})::INTEGER AS b,
                   coalesce(sum(n) FILTER (WHERE action = 'allow'), 0)::BIGINT AS allow,
                   coalesce(sum(n) FILTER (WHERE action = 'challenge'), 0)::BIGINT AS challenge,
                   coalesce(sum(n) FILTER (WHERE action = 'deny'), 0)::BIGINT AS deny
              FROM {self._risk_steps(q, f, 'b', bins)} WHERE b IS NOT NULL GROUP BY 1""")
        grid = pl.DataFrame({"b": list(range(bins))}, schema={"b": pl.Int32})
        out = grid.join(counts.with_columns(pl.col("b").cast(pl.Int32)), on="b", how="left").fill_null(0)
        return out.select(
            (pl.col("b") / bins).alias("bin_low"), ((pl.col("b") + 1) / bins).alias("bin_high"),
            pl.col("allow").cast(pl.Int64), pl.col("challenge").cast(pl.Int64), pl.col("deny").cast(pl.Int64))

    def budget_series(self, f: Filters = Filters(), grain: str = "hour",
                      established_logins: int = 5) -> pl.DataFrame:
        """The step-up budget per hour/day/week bucket: the challenge threshold the engine
        used (mean, min, max of the audit ``threshold`` column; null where no decision recorded
        one) and the realised established step-up rate as the budget counts it — established
        users' logins (``user_logins >= established_logins``) that were challenged / those not
        denied (enforcement's action for shadow decisions). Read from raw segments."""
        g = check_grain(grain)
        if established_logins < 0:
            raise ValueError(f"established_logins must be >= 0, got {established_logins}")

        def build(q: Query) -> str:
            est = f"user_logins >= {q.p(established_logins)} AND coalesce(shadow_action, action) <> 'deny'"
            return f"""
            SELECT {bucket_sql(g)} AS bucket, count(*)::BIGINT AS logins,
                   avg(threshold) AS threshold, min(threshold) AS threshold_min,
                   max(threshold) AS threshold_max,
                   count(*) FILTER (WHERE {est})::BIGINT AS established,
                   count(*) FILTER (WHERE {est} AND coalesce(shadow_action, action) = 'challenge')::BIGINT
                       AS established_challenged
              FROM {self._dec(q, f)} GROUP BY 1 ORDER BY 1"""

        out = utc_buckets(self._frame(build))
        return out.with_columns(
            (pl.col("established_challenged") / pl.when(pl.col("established") > 0).then(pl.col("established")))
            .alias("established_stepup_rate"))

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

        def bucket(q: Query, lo: int, hi: int) -> str:
            if lo == hi:
                return str(lo)
            mid = (lo + hi + 1) // 2
            return (f"CASE WHEN risk >= {q.p(steps[mid - 1])} THEN {bucket(q, mid, hi)} "
                    f"ELSE {bucket(q, lo, mid - 1)} END")

        def build(q: Query) -> str:
            extra = join = ""
            if labels is not None:
                extra = ", count(*) FILTER (WHERE l.is_attack) AS attacks"
                join = "LEFT JOIN _labels l USING (decision_id)"
            return (f"SELECT {bucket(q, 0, len(steps))} AS k, count(*) AS n, "
                    f"count(*) FILTER (WHERE action <> 'allow') AS stepped{extra} "
                    f"FROM {self._dec(q, f)} d {join} GROUP BY 1")

        grid = [round(t * RISK_STEPS) for t in steps]
        on_grid = all(0 <= j <= RISK_STEPS and j / RISK_STEPS == t for j, t in zip(grid, steps, strict=True))
        if labels is None and on_grid:
            # thresholds on the 1/1000 grid: risk >= j/1000 <=> step >= j, so rolled-up steps answer
            def build_steps(q: Query) -> str:
                case = " ".join(f"WHEN s >= {q.p(j)} THEN {i}" for i, j in reversed(list(enumerate(grid, 1))))
                return (f"SELECT CASE {case} ELSE 0 END AS k, sum(n)::BIGINT AS n, "
                        f"coalesce(sum(n) FILTER (WHERE action <> 'allow'), 0)::BIGINT AS stepped "
                        f"FROM {self._risk_steps(q, f, 's', RISK_STEPS)} GROUP BY 1")
            buckets = self._frame(build_steps)
        else:
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
