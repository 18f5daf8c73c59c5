"""``memory://``: one process, tests and replays. Thread-safe; profiles are immutable objects."""

from __future__ import annotations

import threading
from collections import deque

from riskengine.profile import UserProfile
from riskengine.stores.base import MAX_ROWS, PENDING_GRACE_S, Snapshot, Updater

_MAX_EVENTS_PER_KEY = 10_000
_STRIPES = 64


class MemoryStore:
    """Dict-backed store. Failure timestamps are kept for ``failure_window_s``."""

    sweep_floor: int = MAX_ROWS
    """Users + addresses with failure counters at which stale ones are first swept."""

    def __init__(self, failure_window_s: float = 1800.0, max_pending: int = MAX_ROWS) -> None:
        self._profiles: dict[str, UserProfile] = {}
        self._user_failures: dict[str, deque[float]] = {}
        self._ip_failures: dict[str, deque[float]] = {}
        self._pending: dict[str, tuple[float, bytes]] = {}
        self._window = failure_window_s
        self._max_pending = max(max_pending, 4)
        self._sweep_at = self.sweep_floor
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        self._failures_lock = threading.Lock()
        self._pending_lock = threading.Lock()

    def _lock(self, user_id: str) -> threading.Lock:
        return self._locks[hash(user_id) % _STRIPES]

    def get(self, user_id: str) -> UserProfile | None:
        return self._profiles.get(user_id)

    def put(self, user_id: str, profile: UserProfile) -> None:
        self._profiles[user_id] = profile

    def update(self, user_id: str, fn: Updater) -> UserProfile | None:
        with self._lock(user_id):
            new = fn(self._profiles.get(user_id))
            if new is None:
                self._profiles.pop(user_id, None)
            else:
                self._profiles[user_id] = new
            return new

    def delete(self, user_id: str) -> None:
        with self._lock(user_id):
            self._profiles.pop(user_id, None)
        self.reset_failures(user_id)

    @staticmethod
    def _count(events: deque[float] | None, since: float) -> int:
        if not events:
            return 0
        n = 0
        for ts in reversed(events):
            if ts < since:
                break
            n += 1
        return n

    def _append(self, table: dict[str, deque[float]], key: str, at: float) -> deque[float]:
        events = table.get(key)
        if events is None:
            events = table[key] = deque(maxlen=_MAX_EVENTS_PER_KEY)
        if events and at < events[-1]:
            # out of order (clock skew between workers): keep the deque sorted
            items = sorted([*events, at])
            events.clear()
            events.extend(items)
        else:
            events.append(at)
        # the window of the failure being added, as the sqlite and redis stores count it (a
        # late one from a worker whose clock runs behind keeps what its own window holds)
        horizon = at - self._window
        while events and events[0] < horizon:
            events.popleft()
        return events

    def add_failure(self, user_id: str, ip: str, at: float) -> int:
        with self._failures_lock:
            events = self._append(self._user_failures, user_id, at)
            self._append(self._ip_failures, ip, at)
            if len(self._user_failures) + len(self._ip_failures) >= self._sweep_at:
                self._sweep(at - self._window)
            return self._count(events, at - self._window)

    def _sweep(self, horizon: float) -> None:
        """Forget users and addresses whose last failure is out of the window: a deque per key
        ever seen would grow with every address a stuffing wave used, not users. Only once
        the tables are large (and then at twice what stays), because ``horizon`` comes from
        the caller's clock: threads replaying different users' histories run days apart."""
        for table in (self._user_failures, self._ip_failures):
            for key in [k for k, events in table.items() if not events or events[-1] < horizon]:
                del table[key]
        self._sweep_at = max(self.sweep_floor, 2 * (len(self._user_failures) + len(self._ip_failures)))

    def reset_failures(self, user_id: str) -> None:
        with self._failures_lock:
            self._user_failures.pop(user_id, None)

    def snapshot(self, user_id: str, ip: str, since: float) -> Snapshot:
        user_events = self._user_failures.get(user_id)
        ip_events = self._ip_failures.get(ip)
        return Snapshot(
            self._profiles.get(user_id),
            self._count(user_events, since) if user_events else 0,
            self._count(ip_events, since) if ip_events else 0,
        )

    def put_pending(self, decision_id: str, payload: bytes, expires_at: float) -> None:
        with self._pending_lock:
            if len(self._pending) >= self._max_pending:
                self._pending = self._trimmed(expires_at)
            self._pending[decision_id] = (expires_at, payload)

    def _trimmed(self, newest: float) -> dict[str, tuple[float, bytes]]:
        """Challenges nobody finished (abandoned, or a caller that never reports outcomes)
        pile up here. At the cap, drop those a day past expiry and, if that is not enough,
        the earliest-expiring quarter: one O(n log n) pass per n/4 new challenges, not an
        O(n) pass on every one once the map is full."""
        horizon = newest - PENDING_GRACE_S
        live = [(e, k) for k, (e, _) in self._pending.items() if e >= horizon]
        keep_n = self._max_pending * 3 // 4
        if len(live) > keep_n:
            live.sort(reverse=True)
            del live[keep_n:]
        keep = {k for _, k in live}
        return {k: v for k, v in self._pending.items() if k in keep}

    def pop_pending(self, decision_id: str, now: float) -> bytes | None:
        with self._pending_lock:
            item = self._pending.pop(decision_id, None)
        if item is None or item[0] < now:
            return None
        return item[1]

    def user_ids(self, limit: int = 1000) -> list[str]:
        return sorted(self._profiles)[:limit]

    def close(self) -> None:
        pass
