"""Lifecycle and health: counters for a status page, flush, close, the context manager."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from riskengine.core.engine.population import PopulationPrior
from riskengine.core.health import ping_store


def _peek(counter: itertools.count[int]) -> int:
    # itertools.count's repr is "count(N)": the next value, i.e. how many were taken
    return int(repr(counter)[6:-1])



class Lifecycle(PopulationPrior):
    """Health counters, flush and close."""

    def health(self) -> dict[str, Any]:
        """Counters an operator wants on a status page, and a real store ping: ``store_ok``
        (the store answered) and ``store_ping_ms`` (how long it took)."""
        self.degraded_log.flush_due()
        self.store_error_log.flush_due()
        store_ok, ping_ms = ping_store(self.store)
        return {
            "store_ok": store_ok,
            "store_ping_ms": ping_ms,
            "scored": _peek(self._scored),
            "degraded": _peek(self._degraded),
            "store_errors": _peek(self._store_errors) + (self._writer.errors if self._writer else 0),
            "audit_dropped": self.sink.dropped,
            "signups_learned": _peek(self._signups_learned),
            "signups_refused": _peek(self._signups_refused),
            "audit_problems": list(self.audit_problems),
            "geoip_problems": list(self.geoip.problems) + (
                [self.anonymous.problem] if self.anonymous is not None and self.anonymous.problem else []),
            "trust_key": "ephemeral" if self.trust_key_ephemeral else "configured",
            # when the store began learning, as this process last read it (None: not read yet,
            # or the store could not say); DORMANT_ACCOUNT fires coldstart.dormant_days after it
            "history_start": None if self._history_start is None
            else datetime.fromtimestamp(self._history_start, UTC).isoformat(),
        }

    def counters(self) -> dict[str, int]:
        """The running totals metrics export: degraded decisions, store errors, dropped audit
        events, refused signups."""
        return {
            "degraded": _peek(self._degraded),
            "store_errors": _peek(self._store_errors) + (self._writer.errors if self._writer else 0),
            "audit_dropped": int(self.sink.dropped),
            "signups_refused": _peek(self._signups_refused),
        }

    def close(self) -> None:
        """Flush the audit log and release the store and GeoIP readers. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._population_unsent:
                self._population_flush()
            if self._writer is not None:
                self._writer.close()
            self.degraded_log.flush()
            self.store_error_log.flush()
            self.sink.close()
            if self._observer is not None and self._observer.prometheus is not None:
                self._observer.prometheus.engine_counters.retire(self)
        finally:
            self.store.close()
            self.geoip.close()
            if self.anonymous is not None:
                self.anonymous.close()

    def flush(self) -> None:
        """Apply queued profile lessons (write-behind) and write buffered audit events now."""
        if self._population_unsent:
            self._population_flush()
        if self._writer is not None:
            self._writer.flush()
        self.sink.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

