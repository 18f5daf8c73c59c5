"""AuditDB: every analytics query over an audit root, in DuckDB SQL, returning polars frames.

The rates are defined once (:mod:`._kpis`; dashboard, notebooks and ``riskengine report``
all call these methods):

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
``breakdown``, ``reason_counts``, ``avoidable_challenges``, ``alerts``, ``policy_modes`` and
``segment_values`` give the same numbers with or without rollups, only faster. Distinct
users are always counted on raw rows (their estimate merges rollup sketches). Experiment
readouts over windows that hold the whole experiment prefix
(:mod:`riskengine.analytics.exp_rollups`) read it and only the months after it raw.

Layout: :class:`AuditDB` is a facade composed of one mixin per query family, all over one
reader (one connection, one definition of a filtered table):

- :mod:`._files`    segment discovery (month partitions of a window)
- :mod:`._sql`      :class:`Filters` and the pure SQL builders (parameters, buckets, times)
- :mod:`._reader`   connection, sources, filters → WHERE, retries when a segment vanishes
- :mod:`._planner`  rollup planning: rolled-up days + raw rest as uniform count rows
- :mod:`._kpis`     KPIs, series, breakdowns, segment values
- :mod:`._channels` challenge outcomes per channel, fallbacks, time to verify, avoidable
- :mod:`._risk`     reason counts, risk histogram, what-if thresholds
- :mod:`._explorer` raw rows, newest first (audit explorer, one user's history)
- :mod:`._alert_queries`, :mod:`._experiment_queries`  spikes; experiment readouts
- :mod:`._shadow`   a shadow-mode policy's would-be rates and reasons
- :mod:`._sends`    second-factor sends: cost and verify ratio per destination country, pumping waves
- :mod:`._feedback` fraud feedback per reason code and policy version; feedback labels

Mixins rather than composed objects because every family needs the same reader state (the
connection, the legacy-segment cache, ``use_rollups``) and the public methods keep their
one signature in one place, with no forwarding layer to keep in step.
"""

from __future__ import annotations

from typing import Any

from riskengine.analytics._alert_queries import _Alerts
from riskengine.analytics._channels import STRONG_NOVELTY, _Channels
from riskengine.analytics._experiment_queries import _Experiments
from riskengine.analytics._explorer import USER_TABLES, _Explorer
from riskengine.analytics._feedback import _Feedback
from riskengine.analytics._kpis import BREAKDOWNS, RATE_DEFINITIONS, _KPIs
from riskengine.analytics._risk import _Risk
from riskengine.analytics._sends import _Sends
from riskengine.analytics._shadow import _Shadow
from riskengine.analytics._sql import GRAINS, Filters


class AuditDB(_KPIs, _Channels, _Risk, _Explorer, _Alerts, _Experiments, _Shadow, _Feedback, _Sends):
    """Read-only analytics over an audit root. Thread-safe: one DuckDB cursor per call.

    >>> import tempfile
    >>> db = AuditDB(tempfile.mkdtemp())
    >>> db.has_data(), db.kpis()["logins"], db.kpis()["challenge_rate"]
    (False, 0, None)
    """

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
        out["shadow"] = self.shadow_summary(f)
        out["experiments"] = {name: self.experiment_readout(name, f, min_samples).to_dict()
                              for name in self.experiment_names()}
        return out



__all__ = ["BREAKDOWNS", "GRAINS", "RATE_DEFINITIONS", "STRONG_NOVELTY", "USER_TABLES", "AuditDB", "Filters"]
