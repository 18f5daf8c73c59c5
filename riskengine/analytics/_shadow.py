"""Shadow mode readouts: what a policy running with ``policy.mode = "shadow"`` would have done.

A shadow decision is audited with ``action = 'allow'`` (what the login got) and
``shadow_action`` (what enforcement would have done); enforced decisions have a null
``shadow_action``, and so do segments written before the column existed (read as typed
NULLs). The would-be rates use the same definitions as the enforced ones
(:data:`~riskengine.analytics._kpis.RATE_DEFINITIONS`) over ``shadow_action``:

- ``would_be_challenge_rate`` = shadow decisions whose shadow_action is challenge or deny
  / shadow decisions
- ``would_be_deny_rate``      = shadow decisions whose shadow_action is deny / shadow decisions

The per-policy-version table reads ``shadow.parquet`` of the rollups for the whole days it
covers (windows filtered on countries, device types, policy versions and actions at most) and
raw segments for the rest; the reasons and the summary are read raw.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from riskengine.analytics._planner import _Planner
from riskengine.analytics._sql import Filters, Query

_EFFECTIVE = "coalesce(shadow_action, action)"
_MODE = "CASE WHEN shadow_action IS NULL THEN 'enforce' ELSE 'shadow' END"


class _Shadow(_Planner):
    """Shadow-policy rates and reasons beside the enforced ones."""

    def policy_modes(self, f: Filters = Filters()) -> pl.DataFrame:
        """Per policy version and mode (``enforce`` / ``shadow``): decisions, and the challenge
        and deny rates — enforced rates for enforced decisions, would-be rates (from
        ``shadow_action``) for shadow ones, so the two sit side by side."""
        return self._frame(lambda q: f"""
            SELECT policy_version, {_MODE} AS mode, sum(n)::BIGINT AS decisions,
                   coalesce(sum(n) FILTER (WHERE {_EFFECTIVE} IN ('challenge', 'deny')), 0)::BIGINT
                       / sum(n)::BIGINT AS challenge_rate,
                   coalesce(sum(n) FILTER (WHERE {_EFFECTIVE} = 'deny'), 0)::BIGINT / sum(n)::BIGINT AS deny_rate
              FROM {self._shadow_counts(q, f)} GROUP BY ALL ORDER BY policy_version, mode""")

    def _shadow_counts(self, q: Query, f: Filters) -> str:
        """Decisions as count rows ``(policy_version, action, shadow_action, n)``: ``shadow.parquet``
        for the whole days it covers, one row per raw decision for the rest."""
        plan = self._plan(f, part="shadow.parquet")
        src = self._rest_src(q, "decisions", f.since, f.until, plan)
        raw = (f"SELECT policy_version, action, shadow_action, 1 AS n FROM {src} "
               f"WHERE {self._where(q, f, 'decisions')} AND {self._raw_rest(q, plan)}")
        if plan is None:
            return f"({raw})"
        dims = Filters(countries=f.countries, device_types=f.device_types, actions=f.actions,
                       policy_versions=f.policy_versions)
        rolled = (f"SELECT policy_version, action, shadow_action, n "
                  f"FROM read_parquet({q.p(plan.files('shadow.parquet'))}) "
                  f"WHERE day_us >= {q.p(plan.lo_us)} AND day_us < {q.p(plan.hi_us)} "
                  f"AND {self._where(q, dims, 'decisions')}")
        return f"({rolled} UNION ALL {raw})"

    def shadow_reason_counts(self, f: Filters = Filters()) -> pl.DataFrame:
        """Reason codes of shadow decisions: how often each appears, and the share of those
        decisions enforcement would have stepped up (challenge or deny)."""
        return self._frame(lambda q: f"""
            WITH d AS (SELECT reasons, shadow_action FROM {self._dec(q, f)} WHERE shadow_action IS NOT NULL),
            t AS (SELECT count(*) AS n FROM d)
            SELECT r.reason, count(*)::BIGINT AS decisions, count(*) / any_value(t.n) AS share,
                   count(*) FILTER (WHERE r.shadow_action <> 'allow') / count(*) AS would_be_challenge_rate
              FROM (SELECT unnest(reasons) AS reason, shadow_action FROM d) r, t
             GROUP BY r.reason ORDER BY decisions DESC, r.reason""")

    def shadow_summary(self, f: Filters = Filters()) -> dict[str, Any]:
        """The shadow policy's would-be numbers (zeros and None rates without shadow decisions)."""
        row = self._frame(lambda q: f"""
            SELECT count(*)::BIGINT AS shadow_logins,
                   count(*) FILTER (WHERE shadow_action = 'challenge')::BIGINT AS would_be_challenged,
                   count(*) FILTER (WHERE shadow_action = 'deny')::BIGINT AS would_be_denied,
                   list(DISTINCT policy_version) FILTER (WHERE policy_version IS NOT NULL) AS policy_versions
              FROM {self._dec(q, f)} WHERE shadow_action IS NOT NULL""").row(0, named=True)
        n = int(row["shadow_logins"] or 0)
        challenged = int(row["would_be_challenged"] or 0)
        denied = int(row["would_be_denied"] or 0)
        return {
            "shadow_logins": n,
            "would_be_challenged": challenged,
            "would_be_denied": denied,
            "would_be_challenge_rate": (challenged + denied) / n if n else None,
            "would_be_deny_rate": denied / n if n else None,
            "policy_versions": sorted(row["policy_versions"] or []),
        }
