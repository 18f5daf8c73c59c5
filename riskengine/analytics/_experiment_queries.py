"""Experiments: which experiments have exposures, and each one's per-variant counts, handed
to the pure readout statistics in :mod:`riskengine.analytics.experiments`.

Exposures and conversions carry only time and user, so only those filters apply. A window
holding the whole experiment prefix (:mod:`riskengine.analytics.exp_rollups`) reads it and
only the months after it raw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riskengine.analytics._files import month_of
from riskengine.analytics._reader import _Reader
from riskengine.analytics._sql import Filters, Query, epoch_us, month_end, month_start
from riskengine.analytics.exp_rollups import ExperimentRollup, current_experiment_rollups
from riskengine.analytics.experiments import ExperimentReadout, readout


class _Experiments(_Reader):
    """Experiment names and readouts."""

    def experiment_names(self) -> list[str]:
        def build(q: Query) -> str:
            prefix = self._experiment_prefix(Filters())
            if prefix is None:
                return (f"SELECT DISTINCT experiment FROM {self._src(q, 'exposures')} "
                        "WHERE experiment IS NOT NULL ORDER BY 1")
            rest = self._src(q, "exposures", month_end(prefix.month), None)
            return (f"SELECT DISTINCT experiment FROM (SELECT experiment FROM read_parquet({q.p(prefix.counts)}) "
                    f"UNION ALL SELECT experiment FROM {rest} WHERE experiment IS NOT NULL) ORDER BY 1")

        df = self._frame(build)
        return [str(x) for x in df["experiment"].to_list()]

    def _experiment_prefix(self, f: Filters) -> ExperimentRollup | None:
        """The newest current experiment prefix whose every event ``f``'s window holds (None
        when the window filters on a user): the readout then reads it plus the months after it raw."""
        if not self.use_rollups or f.user_key is not None or self.store is not None:
            return None
        for prefix in current_experiment_rollups(Path(self.root)):
            if f.since is not None and epoch_us(f.since) > prefix.first_us:
                continue
            if f.until is not None and epoch_us(f.until) <= prefix.last_us:
                continue
            self.rollup_plans += 1
            self.last_plan_months = prefix.months
            return prefix
        return None

    def _prefix_counts_sql(self, q: Query, name: str, f: Filters, prefix: ExperimentRollup) -> str:
        """Per-variant ``(variant, n, conversions)`` from the prefix combined with the raw
        exposures and conversions of the months after it (see the module docstring of
        :mod:`riskengine.analytics.exp_rollups`)."""
        after = month_end(prefix.month)
        rest_f = Filters(since=f.since, until=f.until)
        exp_files = self._files("exposures", after, f.until)
        conv_files = self._files("conversions", after, f.until)
        counts = (f"SELECT variant, n, conversions FROM read_parquet({q.p(prefix.counts)}) "
                  f"WHERE experiment = {q.p(name)}")
        if not exp_files and not conv_files:
            return f"SELECT variant, n, conversions FROM ({counts}) ORDER BY variant"
        return f"""
            WITH re AS (SELECT user_key, arg_min(variant, event_time) AS variant, min(event_time) AS first_seen
                          FROM {self._src(q, 'exposures', files=exp_files)}
                         WHERE experiment = {q.p(name)} AND {self._where(q, rest_f, 'exposures')}
                         GROUP BY user_key),
            rc AS (SELECT user_key, max(event_time) AS last_conversion
                     FROM {self._src(q, 'conversions', files=conv_files)}
                    WHERE experiment = {q.p(name)} AND user_key IS NOT NULL
                      AND {self._where(q, rest_f, 'conversions')} GROUP BY user_key),
            k AS (SELECT user_key FROM re UNION SELECT user_key FROM rc),
            p AS MATERIALIZED (SELECT p.user_key, p.variant,
                                      coalesce(p.last_conversion >= p.first_seen, false) AS converted
                    FROM read_parquet({q.p(prefix.users)}) p SEMI JOIN k ON p.user_key IS NOT DISTINCT FROM k.user_key
                   WHERE p.experiment = {q.p(name)}),
            fresh AS (SELECT re.variant, coalesce(rc.last_conversion >= re.first_seen, false) AS converted
                        FROM re ANTI JOIN p ON re.user_key IS NOT DISTINCT FROM p.user_key
                        LEFT JOIN rc ON re.user_key = rc.user_key),
            rows AS ({counts}
                     UNION ALL SELECT variant, count(*), count(*) FILTER (WHERE converted) FROM fresh GROUP BY variant
                     UNION ALL SELECT variant, 0, count(*) FROM p SEMI JOIN rc USING (user_key)
                                WHERE NOT converted GROUP BY variant)
            SELECT variant, sum(n)::BIGINT AS n, sum(conversions)::BIGINT AS conversions
              FROM rows GROUP BY variant ORDER BY variant"""

    def _design(self, name: str) -> dict[str, Any]:
        """The newest exposure's control, variants and weights. Partitions hold their own
        month's rows, so the newest is in the newest month that has one: months are read
        newest first and the first answer wins (not every exposure of the log)."""
        empty: dict[str, Any] = {"control": None, "variants": None, "weights": None}
        for key in reversed(self._months("exposures", None, None)):
            files = [p for p in self._files("exposures", month_start(key), month_end(key)) if month_of(p) == key]

            def build(q: Query, files: list[str] = files) -> str:
                return f"""
                SELECT arg_max(control, event_time) AS control, arg_max(variants, event_time) AS variants,
                       arg_max(weights, event_time) AS weights
                  FROM {self._src(q, 'exposures', files=files)}
                 WHERE experiment = {q.p(name)} AND control IS NOT NULL"""

            row = self._frame(build).row(0, named=True)
            if row["control"] is not None:
                return row
        return empty

    def experiment_readout(self, name: str, f: Filters = Filters(), min_samples: int = 100) -> ExperimentReadout:
        """Per-variant readout. A user counts in the variant of their first exposure in the
        window, and converts if any conversion for this experiment comes at or after that
        exposure (and before ``f.until``): the user's last conversion of the window is at or
        after their first exposure (one aggregation per side, no second pass over the users)."""
        exp_f = Filters(since=f.since, until=f.until, user_key=f.user_key)

        def counts_sql(q: Query) -> str:
            prefix = self._experiment_prefix(f)
            if prefix is not None:
                return self._prefix_counts_sql(q, name, f, prefix)
            conv_f = Filters(since=f.since, until=f.until, user_key=f.user_key)
            return f"""
            WITH e AS (SELECT user_key, arg_min(variant, event_time) AS variant, min(event_time) AS first_seen
                         FROM {self._src(q, 'exposures', f.since, f.until)}
                        WHERE experiment = {q.p(name)} AND {self._where(q, exp_f, 'exposures')}
                        GROUP BY user_key),
            c AS (SELECT user_key, max(event_time) AS last_conversion
                    FROM {self._src(q, 'conversions', f.since, f.until)}
                   WHERE experiment = {q.p(name)} AND {self._where(q, conv_f, 'conversions')} GROUP BY user_key),
            u AS (SELECT e.variant, coalesce(c.last_conversion >= e.first_seen, false) AS converted
                    FROM e LEFT JOIN c USING (user_key))
            SELECT variant, count(*) AS n, count(*) FILTER (WHERE converted) AS conversions
              FROM u GROUP BY variant ORDER BY variant"""

        counts = self._frame(counts_sql)
        design = self._design(name)
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

