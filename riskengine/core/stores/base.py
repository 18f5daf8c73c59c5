"""What the profile store backends (memory, sqlite, redis) share: bounds, the error type, key
helpers. The ProfileStore protocol and the types in its signatures (Snapshot, OtpCounts,
Updater) are in :mod:`riskengine.core.typing`; they are re-exported here for the backends.

Backends share a contract suite (``tests/stores/test_contract.py``), not a base class.
Times are epoch seconds passed in by the caller; stores never read the clock, so replays
of history behave exactly like production.
"""

from __future__ import annotations

import asyncio
from typing import Final

from riskengine.core.profile import UserProfile
from riskengine.core.typing import AsyncProfileStore, OtpCounts, ProfileStore, SendCounts, Snapshot, Updater

__all__ = ["MAX_ROWS", "PENDING_GRACE_S", "AsyncProfileStore", "OtpCounts", "SendCounts", "Snapshot", "StoreError",
           "ThreadOffload", "Updater", "session_key"]


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

    async def ahistory_start(self: ProfileStore, now: float) -> float:
        return await asyncio.to_thread(self.history_start, now)

    async def aput_pending(self: ProfileStore, decision_id: str, payload: bytes, expires_at: float, *,
                           user_id: str = "", max_per_user: int = 0) -> None:
        await asyncio.to_thread(self.put_pending, decision_id, payload, expires_at, user_id=user_id,
                                max_per_user=max_per_user)

    async def apop_pending(self: ProfileStore, decision_id: str, now: float) -> bytes | None:
        return await asyncio.to_thread(self.pop_pending, decision_id, now)

    async def aget(self: ProfileStore, user_id: str) -> UserProfile | None:
        return await asyncio.to_thread(self.get, user_id)

    async def apeek_pending(self: ProfileStore, decision_id: str, now: float) -> bytes | None:
        return await asyncio.to_thread(self.peek_pending, decision_id, now)

    async def aadd_send(self: ProfileStore, user_id: str, prefix: str, at: float, *,
                        prefix_since: float, ratio_since: float, user_since: float) -> SendCounts:
        return await asyncio.to_thread(self.add_send, user_id, prefix, at, prefix_since=prefix_since,
                                       ratio_since=ratio_since, user_since=user_since)

    async def alink_send(self: ProfileStore, decision_id: str, prefix: str, expires_at: float) -> None:
        await asyncio.to_thread(self.link_send, decision_id, prefix, expires_at)

    async def averify_send(self: ProfileStore, decision_id: str, at: float) -> str | None:
        return await asyncio.to_thread(self.verify_send, decision_id, at)

    async def aclose(self) -> None:
        """Nothing async to release: the store is closed by ``close()``."""
