"""Health checks: a real round trip to the profile store, timed."""

from __future__ import annotations

import time
from typing import Any, Protocol

from riskengine.core.typing import ProfileStore


class HasHealth(Protocol):
    """What :func:`readiness` reads (an :class:`~riskengine.Engine`)."""

    def health(self) -> dict[str, Any]: ...


def ping_store(store: ProfileStore) -> tuple[bool, float]:
    """(answered, milliseconds) for one ``store.ping()``; a store that raises, or has no
    ``ping``, did not answer.

    >>> from riskengine.core.stores import MemoryStore
    >>> ping_store(MemoryStore())[0]
    True
    """
    started = time.perf_counter()
    try:
        ok = bool(store.ping())
    except Exception:  # noqa: BLE001 - a health check reports, never raises
        ok = False
    return ok, round((time.perf_counter() - started) * 1000.0, 3)


def readiness(engine: HasHealth) -> tuple[bool, dict[str, Any]]:
    """What a ``/readyz`` endpoint answers: ready when the store answers a ping and the GeoIP
    databases loaded; the body says which part is not (no counters, no identifiers)."""
    health = engine.health()
    problems = list(health["geoip_problems"])
    ready = bool(health["store_ok"]) and not problems
    return ready, {"ready": ready, "store_ok": health["store_ok"], "store_ping_ms": health["store_ping_ms"],
                   "geoip_problems": problems}


__all__ = ["ping_store", "readiness"]
