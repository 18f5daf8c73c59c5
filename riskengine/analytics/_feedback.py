"""Fraud feedback joined to the decisions it is about (table ``feedback``, see
:mod:`riskengine.core.feedback`): per reason code and policy version, and as training labels."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from riskengine.analytics._reader import _Reader
from riskengine.analytics._sql import Filters, Query

FEEDBACK_LOOKBACK = timedelta(days=400)
"""How far before a feedback row its decision may lie (fraud reports come weeks later)."""


class _Feedback(_Reader):
    """Feedback queries."""

    def _feedback_joined(self, q: Query, f: Filters) -> str:
        """Feedback rows of ``f``'s window (by report time) with their decision's columns."""
        since = f.since - FEEDBACK_LOOKBACK if f.since else None
        fb_files = self._files("feedback", f.since, f.until)
        fb = self._src(q, "feedback", files=fb_files)
        # no report in the window: nothing to join, so no decision is read (every page of a log
        # without feedback would otherwise open every decision segment of the window and more)
        dec = self._src(q, "decisions", since, f.until) if fb_files else self._src(q, "decisions", files=[])
        conds = ["true"]
        if f.since is not None:
            conds.append(f"fb.event_time >= {q.p(f.since)}")
        if f.until is not None:
            conds.append(f"fb.event_time < {q.p(f.until)}")
        return (f"(SELECT fb.kind, fb.actor, fb.event_time AS reported_at, fb.decision_id, d.user_key, "
                f"d.event_time, d.reasons, d.policy_version, d.action, d.shadow_action "
                f"FROM {fb} fb JOIN {dec} d ON d.decision_id = fb.decision_id AND d.user_key = fb.user_key "
                f"WHERE {' AND '.join(conds)})")

    def feedback_by_reason(self, f: Filters = Filters()) -> pl.DataFrame:
        """Per reason code and policy version of the decisions reported on: confirmed takeovers,
        false positives and "not me" reports (a decision with several reasons counts under each).
        A decision without reasons counts under ``(none)``."""
        return self._frame(lambda q: f"""
            WITH j AS {self._feedback_joined(q, f)},
            r AS (SELECT CASE WHEN len(reasons) > 0 THEN reasons ELSE ['(none)'] END AS reasons,
                         policy_version, kind FROM j)
            SELECT reason, policy_version,
                   count(*) FILTER (WHERE kind = 'confirmed_takeover')::BIGINT AS confirmed_takeovers,
                   count(*) FILTER (WHERE kind = 'false_positive')::BIGINT AS false_positives,
                   count(*) FILTER (WHERE kind = 'not_me')::BIGINT AS not_me
              FROM (SELECT unnest(reasons) AS reason, policy_version, kind FROM r)
             GROUP BY ALL ORDER BY confirmed_takeovers DESC, false_positives DESC, reason, policy_version""")

    def feedback_labels(self, f: Filters = Filters()) -> pl.DataFrame:
        """One label per reported decision: ``decision_id``, ``user_key``, ``event_time`` (the
        decision's), ``kind`` and ``is_attack``, by :mod:`riskengine.core.feedback`'s precedence: the
        latest analyst verdict (confirmed_takeover / false_positive), else ``not_me``."""
        return self._frame(lambda q: f"""
            SELECT decision_id, user_key, event_time, kind, kind <> 'false_positive' AS is_attack
              FROM {self._feedback_joined(q, f)}
           QUALIFY row_number() OVER (PARTITION BY decision_id
                                      ORDER BY (kind <> 'not_me') DESC, reported_at DESC) = 1
             ORDER BY event_time, decision_id""")
