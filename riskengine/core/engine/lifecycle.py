"""Lifecycle and health: counters for a status page, flush, close, the context manager."""

from __future__ import annotations

import itertools
from types import TracebackType
from typing import Any, Self

from riskengine.core.engine.population import PopulationPrior


def _peek(counter: itertools.count[int]) -> int:
    # itertools.count's repr is "count(N)": the next value, i.e. how many were taken
    return int(repr(counter)[6:-1])



class Lifecycle(PopulationPrior):
    """Health counters, flush and close."""

    def health(self) -> dict[str, Any]:
        """Counters an operator wants on a status page."""
        return {
            "scored": _peek(self._scored),
            "degraded": _peek(self._degraded),
            "store_errors": _peek(self._store_errors) + (self._writer.errors if self._writer else 0),
            "audit_dropped": self.sink.dropped,
            "audit_problems": list(self.audit_problems),
            "geoip_problems": list(self.geoip.problems),
            "trust_key": "ephemeral" if self.trust_key_ephemeral else "configured",
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
            self.sink.close()
        finally:
            self.store.close()
            self.geoip.close()

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

