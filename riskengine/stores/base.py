"""The ProfileStore contract every backend (memory, sqlite, redis) passes.

Backends share a contract suite (``tests/stores/test_contract.py``), not a base class.
Times are epoch seconds passed in by the caller; stores never read the clock, so replays
of history behave exactly like production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple, Protocol, runtime_checkable

from riskengine.profile import UserProfile

Updater = Callable[[UserProfile | None], UserProfile | None]

# Bounds the local stores (memory, sqlite) share; redis expires keys by TTL instead.
MAX_ROWS: Final = 100_000
"""Parked challenges (and, for memory, users + addresses with failure counters) before a trim."""
PENDING_GRACE_S: Final = 86_400.0
"""A trim drops parked challenges this long past expiry (relative to the newest) first."""


class StoreError(RuntimeError):
    """The store is unreachable or failed; the engine turns this into its fail-mode decision."""


class Snapshot(NamedTuple):
    """Everything ``score()`` needs from the store, fetched in one read."""

    profile: UserProfile | None
    user_failures: int
    ip_failures: int


@runtime_checkable
class ProfileStore(Protocol):
    def get(self, user_id: str) -> UserProfile | None: ...

    def put(self, user_id: str, profile: UserProfile) -> None: ...

    def update(self, user_id: str, fn: Updater) -> UserProfile | None:
        """Atomic read-modify-write: concurrent updates of one user are never lost.
        ``fn`` returning None deletes the profile."""
        ...

    def delete(self, user_id: str) -> None: ...

    def add_failure(self, user_id: str, ip: str, at: float) -> int:
        """Record a failed password; return the user's failures in the store's window."""
        ...

    def reset_failures(self, user_id: str) -> None: ...

    def snapshot(self, user_id: str, ip: str, since: float) -> Snapshot: ...

    def put_pending(self, decision_id: str, payload: bytes, expires_at: float) -> None:
        """Park a challenge's context until its outcome arrives (possibly at another worker)."""
        ...

    def pop_pending(self, decision_id: str, now: float) -> bytes | None: ...

    def user_ids(self, limit: int = 1000) -> list[str]: ...

    def close(self) -> None: ...
