"""Shadow mode readouts: what a policy running with ``policy.mode = "shadow"`` would have done.

A shadow decision is audited with ``action = 'allow'`` (what the login got) and
``shadow_action`` (what enforcement would have done); enforced decisions have a null
``shadow_action``, and so do segments written before the column existed (read as typed
NULLs). The would-be rates use the same definitions as the enforced ones
(:data:`~riskengine.analytics._kpis.RATE_DEFINITIONS`) over ``shadow_action``:

- ``would_be_challenge_rate`` = shadow decisions whose shadow_action is challenge or deny
  / shadow decisions
- ``would_be_deny_rate``      = shadow decisions whose shadow_action is deny / shadow decisions

Always read from raw segments (rollups do not keep ``shadow_action``).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from riskengine.analytics._reader import _Reader
from riskengine.analytics._sql import Filters

_EFFECTIVE = "coalesce(shadow_action, action)"
_MODE = "CASE WHEN shadow_action IS NULL THEN 'enforce' ELSE 'shadow' END"


class _Shadow(_Reader):
    """Shadow-policy rates and reasons beside the enforced ones."""

    def policy_modes(self, f: Filters = Filters()) -> pl.DataFrame:
        """Per policy version and mode (``enforce`` / ``shadow``): decisions, and the challenge
        and deny rates — enforced rates for enforced decisions, would-be rates (from
        ``shadow_action``) for shadow ones, so the two sit side by side."""
        return self._frame(lambda q: f"""
            SELECT policy_version, {_MODE} AS mode, count(*)::BIGINT AS decisions,
                   count(*) FILTER (WHERE {_EFFECTIVE} IN ('challenge', 'deny')) / count(*) AS challenge_rate,
                   count(*) FILTER (WHERE {_EFFECTIVE} = 'deny') / count(*) AS deny_rate
              FROM {self._dec(q, f)} GROUP BY ALL ORDER BY policy_version, mode""")

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
