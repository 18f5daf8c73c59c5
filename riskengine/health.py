"""Health checks: a real round trip to the profile store, timed."""

from __future__ import annotations

import time

from riskengine.stores.base import ProfileStore


def ping_store(store: ProfileStore) -> tuple[bool, float]:
    """(answered, milliseconds) for one ``store.ping()``; a store that raises, or has no
    ``ping``, did not answer.

    >>> from riskengine.stores import MemoryStore
    >>> ping_store(MemoryStore())[0]
    True
    """
    started = time.perf_counter()
    try:
        ok = bool(store.ping())
    except Exception:  # noqa: BLE001 - a health check reports, never raises
        ok = False
    return ok, round((time.perf_counter() - started) * 1000.0, 3)


__all__ = ["ping_store"]
