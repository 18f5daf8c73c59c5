"""Audit rows: how the engine hands events to its sink (dicts, or tuples on the fast path)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from riskengine.audit import COLUMNS, SCHEMA_VERSION, NullSink
from riskengine.core.attempt import Attempt
from riskengine.core.decision import Decision
from riskengine.core.engine.state import EngineState
from riskengine.core.enrich.geoip import GeoInfo
from riskengine.core.enrich.useragent import ParsedUA
from riskengine.core.profile import UserProfile

log = logging.getLogger(__name__)


class AuditRows(EngineState):
    """Rows for the audit sink; an audit failure is logged, never raised, never changes a decision."""

    def _emit(self, table: str, row: dict[str, Any] | tuple[Any, ...]) -> None:
        """Hand a row to the sink: a dict, or a tuple in ``TABLES[table]`` column order, which
        goes to ``sink.emit_values`` when the sink has that fast path (ParquetSink) and is
        turned into the dict ``emit`` expects otherwise (UTC ``event_time``, lists not tuples)."""
        try:
            if isinstance(row, dict):
                self.sink.emit(table, row)
                return
            if self._emit_values is not None:
                self._emit_values(table, row)
                return
            as_dict = {k: list(v) if type(v) is tuple else v for k, v in zip(COLUMNS[table], row, strict=True)}
            when = as_dict.get("event_time")
            if isinstance(when, datetime):
                as_dict["event_time"] = when.astimezone(UTC)
            self.sink.emit(table, as_dict)
        except Exception as exc:  # noqa: BLE001 - an audit failure never changes a decision
            log.warning("audit emit failed: %s", exc)

    def _emit_decision(
        self, attempt: Attempt, user_id: str, d: Decision, geo: GeoInfo, ua: ParsedUA, dkey: str,
        profile: UserProfile | None, cold: bool, trusted: bool, latency_us: float, degraded: bool,
    ) -> None:
        if isinstance(self.sink, NullSink):
            return
        pz = self.pseudonymizer
        reasons = d.reasons
        # a tuple in TABLES["decisions"] column order: no dict, no per-row UTC conversion (the
        # sink stores aware times as UTC); the pseudonyms come from lru caches
        self._emit("decisions", (
            attempt.timestamp, SCHEMA_VERSION, d.decision_id, pz.user(user_id),
            pz.session(attempt.session_id) if attempt.session_id else None, pz.ip(attempt.ip),
            geo.country, geo.region, geo.city, geo.asn, dkey,
            ua.browser_family, ua.browser_version, ua.os_family, ua.device_type,
            d.risk, d.action, [r.code for r in reasons] if reasons else [], d.factor, d.policy_version,
            latency_us, profile.logins if profile is not None else 0, cold, trusted, degraded,
            d.shadow_action, d.threshold, d.event,
        ))

