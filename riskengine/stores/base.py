"""The ProfileStore contract every backend (memory, sqlite, redis) passes.

Backends share a contract suite (``tests/stores/test_contract.py``), not a base class.
Times are epoch seconds passed in by the caller; stores never read the clock, so replays
of history behave exactly like production.
"""

from __future__ import annotations

import asyncio
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
    otp_user_failures: int = 0
    """Failed second factors of the user since ``otp_since`` (any session)."""
    otp_session_failures: int = 0
    """Failed second factors in this login's session since ``session_since``."""


class OtpCounts(NamedTuple):
    """Failed second factors after an ``add_otp_failures``, counted in the same atomic step."""

    session: int
    user: int


def session_key(user_id: str, session: str) -> str:
    """One user's session as a counter key (length-prefixed: no user/session split collides).

    >>> session_key("a:b", "c") != session_key("a", "b:c")
    True
    """
    return f"{len(user_id)}:{user_id}:{session}"


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

    def reset_failures(self, user_id: str) -> None:
        """Forget the user's failed passwords (a verified challenge, or ``unlock_user``)."""
        ...

    def add_otp_failures(self, user_id: str, session: str, count: int, at: float, *,
                         otp_since: float, session_since: float) -> OtpCounts:
        """Atomically record ``count`` failed second factors of ``user_id`` in ``session`` at
        ``at`` (they also count as the user's failed passwords) and return the session's and
        the user's counts in their windows, including these."""
        ...

    def reset_otp_failures(self, user_id: str) -> None:
        """Forget the user's failed second factors, every session (``unlock_user``)."""
        ...

    def snapshot(self, user_id: str, ip: str, since: float, *, session: str = "",
                 otp_since: float | None = None, session_since: float | None = None) -> Snapshot:
        """Profile + failure counts in one read (second-factor counts when ``otp_since`` /
        ``session_since`` are given, else 0)."""
        ...

    def population_add(self, country: str, weight: float) -> None:
        """Add ``weight`` to ``country`` in the service-wide population prior (atomic)."""
        ...

    def population(self) -> dict[str, float]:
        """The population prior: country → accumulated (forward-decayed) weight."""
        ...

    def put_pending(self, decision_id: str, payload: bytes, expires_at: float, *,
                    user_id: str = "", max_per_user: int = 0) -> None:
        """Park a challenge's context until its outcome arrives (possibly at another worker).
        With ``max_per_user``, the user's own oldest parked challenges beyond it are dropped."""
        ...

    def pop_pending(self, decision_id: str, now: float) -> bytes | None: ...

    def user_ids(self, limit: int = 1000) -> list[str]: ...

    def ping(self) -> bool:
        """Whether the backend answers a trivial request now (health checks; never raises)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncProfileStore(Protocol):
    """The async twins of the hot-path calls (what ``Engine.ascore``/``arecord_*`` need).

    Same arguments, same results as the sync methods. :class:`~riskengine.stores.redis.RedisStore`
    implements them over ``redis.asyncio``; the local stores offload to a thread
    (:class:`ThreadOffload`)."""

    async def asnapshot(self, user_id: str, ip: str, since: float, *, session: str = "",
                        otp_since: float | None = None, session_since: float | None = None) -> Snapshot: ...

    async def aupdate(self, user_id: str, fn: Updater) -> UserProfile | None: ...

    async def aadd_failure(self, user_id: str, ip: str, at: float) -> int: ...

    async def areset_failures(self, user_id: str) -> None: ...

    async def aadd_otp_failures(self, user_id: str, session: str, count: int, at: float, *,
                                otp_since: float, session_since: float) -> OtpCounts: ...

    async def apopulation_add(self, country: str, weight: float) -> None: ...

    async def apopulation(self) -> dict[str, float]: ...

    async def aput_pending(self, decision_id: str, payload: bytes, expires_at: float, *,
                           user_id: str = "", max_per_user: int = 0) -> None: ...

    async def apop_pending(self, decision_id: str, now: float) -> bytes | None: ...

    async def aclose(self) -> None:
        """Release the async resources of the running event loop (not the store itself)."""
        ...


class ThreadOffload:
    """The async twins for a store whose calls are local (memory, sqlite): each runs the sync
    method in the default executor (``asyncio.to_thread``), so a sqlite busy wait or a
    contended lock never stalls the event loop. Mixed into the store class."""

    async def asnapshot(self: ProfileStore, user_id: str, ip: str, since: float, *, session: str = "",
                        otp_since: float | None = None, session_since: float | None = None) -> Snapshot:
        return await asyncio.to_thread(self.snapshot, user_id, ip, since, session=session,
                                       otp_since=otp_since, session_since=session_since)

    async def aupdate(self: ProfileStore, user_id: str, fn: Updater) -> UserProfile | None:
        return await asyncio.to_thread(self.update, user_id, fn)

    async def aadd_failure(self: ProfileStore, user_id: str, ip: str, at: float) -> int:
        return await asyncio.to_thread(self.add_failure, user_id, ip, at)

    async def areset_failures(self: ProfileStore, user_id: str) -> None:
        await asyncio.to_thread(self.reset_failures, user_id)

    async def aadd_otp_failures(self: ProfileStore, user_id: str, session: str, count: int, at: float, *,
                                otp_since: float, session_since: float) -> OtpCounts:
        return await asyncio.to_thread(self.add_otp_failures, user_id, session, count, at,
                                       otp_since=otp_since, session_since=session_since)

    async def apopulation_add(self: ProfileStore, country: str, weight: float) -> None:
        await asyncio.to_thread(self.population_add, country, weight)

    async def apopulation(self: ProfileStore) -> dict[str, float]:
        return await asyncio.to_thread(self.population)

    async def aput_pending(self: ProfileStore, decision_id: str, payload: bytes, expires_at: float, *,
                           user_id: str = "", max_per_user: int = 0) -> None:
        await asyncio.to_thread(self.put_pending, decision_id, payload, expires_at, user_id=user_id,
                                max_per_user=max_per_user)

    async def apop_pending(self: ProfileStore, decision_id: str, now: float) -> bytes | None:
        return await asyncio.to_thread(self.pop_pending, decision_id, now)

    async def aclose(self) -> None:
        """Nothing async to release: the store is closed by ``close()``."""
