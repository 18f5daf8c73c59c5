"""What the profile store backends (memory, sqlite, redis) share: bounds, the error type, key
helpers. The ProfileStore protocol and the types in its signatures (Snapshot, OtpCounts,
Updater) are in :mod:`riskengine.core.typing`; they are re-exported here for the backends.

Backends share a contract suite (``tests/stores/test_contract.py``), not a base class.
Times are epoch seconds passed in by the caller; stores never read the clock, so replays
of history behave exactly like production.
"""

from __future__ import annotations

from typing import Final

from riskengine.core.typing import OtpCounts, Snapshot, Updater

__all__ = ["MAX_ROWS", "PENDING_GRACE_S", "OtpCounts", "Snapshot", "StoreError", "Updater", "session_key"]


# Bounds the local stores (memory, sqlite) share; redis expires keys by TTL instead.
MAX_ROWS: Final = 100_000
"""Parked challenges (and, for memory, users + addresses with failure counters) before a trim."""
PENDING_GRACE_S: Final = 86_400.0
"""A trim drops parked challenges this long past expiry (relative to the newest) first."""


class StoreError(RuntimeError):
    """The store is unreachable or failed; the engine turns this into its fail-mode decision."""


def session_key(user_id: str, session: str) -> str:
    """One user's session as a counter key (length-prefixed: no user/session split collides).

    >>> session_key("a:b", "c") != session_key("a", "b:c")
    True
    """
    return f"{len(user_id)}:{user_id}:{session}"
