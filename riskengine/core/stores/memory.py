"""``memory://``: one process, tests and replays. Thread-safe; profiles are immutable objects.

Failure and second-factor counters are sorted lists of event times per key, in bounded,
insertion-ordered tables: a key touched again moves to the end, and past ``max_counters``
keys the least recently touched goes first, so memory stays bounded whatever a stuffing wave
sends (the byte cost per live counter is measured in ``benchmarks/bench_store_memory.py``).
Each kind (user, address, second factor per user, per session) has its own table, so a flood
of addresses cannot evict a user's counter.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections.abc import Mapping

from riskengine.core.profile import UserProfile
from riskengine.core.stores.base import (
    MAX_ROWS,
    PENDING_GRACE_S,
    OtpCounts,
    SendCounts,
    Snapshot,
    ThreadOffload,
    Updater,
    session_key,
)

_MAX_EVENTS_PER_KEY = 10_000
_STRIPES = 64
DEFAULT_MAX_COUNTERS = 250_000


class _Counters:
    """Event times per key, bounded in keys (least recently touched evicted) and per key."""

    __slots__ = ("events", "cap")

    def __init__(self, cap: int) -> None:
        self.events: dict[str, list[float]] = {}
        self.cap = cap

    def add(self, key: str, at: float, horizon: float, n: int = 1) -> list[float]:
        events = self.events.pop(key, None)  # re-inserted below: now the most recent key
        if events is None:
            events = []
        for _ in range(n):
            if not events or at >= events[-1]:
                events.append(at)
            else:
                insort(events, at)  # out of order (clock skew between workers)
        cut = bisect_left(events, horizon)
        if len(events) - cut > _MAX_EVENTS_PER_KEY:
            cut = len(events) - _MAX_EVENTS_PER_KEY
        if cut:
            del events[:cut]
        self.events[key] = events
        while len(self.events) > self.cap:
            del self.events[next(iter(self.events))]
        return events

    def count(self, key: str, since: float) -> int:
        events = self.events.get(key)
        if not events:
            return 0
        return len(events) - bisect_left(events, since)

    def sweep(self, horizon: float) -> None:
        for key in [k for k, ev in self.events.items() if not ev or ev[-1] < horizon]:
            del self.events[key]

    def __len__(self) -> int:
        return len(self.events)


class MemoryStore(ThreadOffload):
    """Dict-backed store. Failure timestamps are kept for ``failure_window_s``."""

    sweep_floor: int = MAX_ROWS
    """Users + addresses with failure counters at which stale ones are first swept."""

    def __init__(self, failure_window_s: float = 1800.0, max_pending: int = MAX_ROWS,
                 max_counters: int = DEFAULT_MAX_COUNTERS) -> None:
        self._profiles: dict[str, UserProfile] = {}
        self._users = _Counters(max_counters)
        self._ips = _Counters(max_counters)
        self._otp_users = _Counters(max_counters)
        self._otp_sessions = _Counters(max_counters)
        self._pending: dict[str, tuple[float, bytes, str]] = {}
        self._pending_by_user: dict[str, dict[str, float]] = {}
        self._population: dict[str, float] = {}
        self._budget: dict[str, float] = {}
        # second-factor sends: per prefix, verified per prefix, per user; the prefixes each user
        # sent to (prefix -> last send); decision id -> (prefix, link expiry)
        self._sends_prefix = _Counters(max_counters)
        self._verified_prefix = _Counters(max_counters)
        self._sends_user = _Counters(max_counters)
        self._user_prefixes: dict[str, dict[str, float]] = {}
        self._send_links: dict[str, tuple[str, float]] = {}
        self._max_counters = max_counters
        self._sends_lock = threading.Lock()
        self._window = failure_window_s
        self._max_pending = max(max_pending, 4)
        self._sweep_at = self.sweep_floor
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        self._failures_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._population_lock = threading.Lock()
        self._history_start: float | None = None

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

    # -- failed passwords and second factors ---------------------------------------------
    def add_failure(self, user_id: str, ip: str, at: float) -> int:
        # the window of the failure being added, as the sqlite and redis stores count it (a
        # late one from a worker whose clock runs behind keeps what its own window holds)
        horizon = at - self._window
        with self._failures_lock:
            self._users.add(user_id, at, horizon)
            self._ips.add(ip, at, horizon)
            if len(self._users) + len(self._ips) >= self._sweep_at:
                self._sweep(horizon)
            return self._users.count(user_id, horizon)

    def _sweep(self, horizon: float) -> None:
        """Forget users and addresses whose last failure is out of the window. Only once the
        tables are large (and then at twice what stays), because ``horizon`` comes from the
        caller's clock: threads replaying different users' histories run days apart."""
        self._users.sweep(horizon)
        self._ips.sweep(horizon)
        self._sweep_at = max(self.sweep_floor, 2 * (len(self._users) + len(self._ips)))

    def reset_failures(self, user_id: str) -> None:
        with self._failures_lock:
            self._users.events.pop(user_id, None)

    def add_otp_failures(self, user_id: str, session: str, count: int, at: float, *,
                         otp_since: float, session_since: float) -> OtpCounts:
        skey = session_key(user_id, session)
        with self._failures_lock:
            if count > 0:
                self._users.add(user_id, at, at - self._window, count)
                self._otp_users.add(user_id, at, otp_since, count)
                self._otp_sessions.add(skey, at, session_since, count)
            return OtpCounts(self._otp_sessions.count(skey, session_since),
                             self._otp_users.count(user_id, otp_since))

    def reset_otp_failures(self, user_id: str) -> None:
        prefix = session_key(user_id, "")
        with self._failures_lock:
            self._otp_users.events.pop(user_id, None)
            for key in [k for k in self._otp_sessions.events if k.startswith(prefix)]:
                del self._otp_sessions.events[key]

    def snapshot(self, user_id: str, ip: str, since: float, *, session: str = "",
                 otp_since: float | None = None, session_since: float | None = None) -> Snapshot:
        return Snapshot._make((
            self._profiles.get(user_id),
            self._users.count(user_id, since),
            self._ips.count(ip, since),
            self._otp_users.count(user_id, otp_since) if otp_since is not None else 0,
            self._otp_sessions.count(session_key(user_id, session), session_since)
            if session_since is not None else 0,
        ))

    # -- population prior ------------------------------------------------------------------
    def population_add(self, country: str, weight: float) -> None:
        with self._population_lock:
            self._population[country] = self._population.get(country, 0.0) + weight

    def population(self) -> dict[str, float]:
        return dict(self._population)

    def history_start(self, now: float) -> float:
        with self._population_lock:
            if self._history_start is None:
                self._history_start = float(now)
            return self._history_start

    def budget_merge(self, delta: Mapping[str, float]) -> dict[str, float]:
        with self._population_lock:
            for key, weight in delta.items():
                self._budget[key] = self._budget.get(key, 0.0) + weight
            return dict(self._budget)

    # -- pending challenges ----------------------------------------------------------------
    def put_pending(self, decision_id: str, payload: bytes, expires_at: float, *,
                    user_id: str = "", max_per_user: int = 0) -> None:
        with self._pending_lock:
            if len(self._pending) >= self._max_pending:
                self._trim(expires_at)
            old = self._pending.get(decision_id)
            if old is not None:
                self._forget(decision_id, old[2])
            self._pending[decision_id] = (expires_at, payload, user_id)
            mine = self._pending_by_user.setdefault(user_id, {})
            mine[decision_id] = expires_at
            if max_per_user and len(mine) > max_per_user:
                # this user's own earliest-expiring challenges make room, nobody else's
                for victim, _ in sorted(mine.items(), key=lambda kv: kv[1])[:len(mine) - max_per_user]:
                    self._pending.pop(victim, None)
                    del mine[victim]

    def _forget(self, decision_id: str, user_id: str) -> None:
        mine = self._pending_by_user.get(user_id)
        if mine is not None:
            mine.pop(decision_id, None)
            if not mine:
                del self._pending_by_user[user_id]

    def _trim(self, newest: float) -> None:
        """Challenges nobody finished (abandoned, or a caller that never reports outcomes)
        pile up here. At the cap, drop those a day past expiry and, if that is not enough,
        the earliest-expiring quarter: one O(n log n) pass per n/4 new challenges, not an
        O(n) pass on every one once the map is full."""
        horizon = newest - PENDING_GRACE_S
        live = [(e, k) for k, (e, _, _) in self._pending.items() if e >= horizon]
        keep_n = self._max_pending * 3 // 4
        if len(live) > keep_n:
            live.sort(reverse=True)
            del live[keep_n:]
        keep = {k for _, k in live}
        for k in [k for k in self._pending if k not in keep]:
            _, _, user = self._pending.pop(k)
            self._forget(k, user)

    def pop_pending(self, decision_id: str, now: float) -> bytes | None:
        with self._pending_lock:
            item = self._pending.pop(decision_id, None)
            if item is not None:
                self._forget(decision_id, item[2])
        if item is None or item[0] < now:
            return None
        return item[1]

    def peek_pending(self, decision_id: str, now: float) -> bytes | None:
        item = self._pending.get(decision_id)
        if item is None or item[0] < now:
            return None
        return item[1]

    # -- second-factor sends ---------------------------------------------------------------
    def add_send(self, user_id: str, prefix: str, at: float, *, prefix_since: float,
                 ratio_since: float, user_since: float) -> SendCounts:
        with self._sends_lock:
            self._sends_prefix.add(prefix, at, min(prefix_since, ratio_since))
            self._sends_user.add(user_id, at, user_since)
            mine = self._user_prefixes.pop(user_id, None) or {}
            mine[prefix] = max(at, mine.get(prefix, at))
            for old in [p for p, t in mine.items() if t < user_since]:
                del mine[old]
            self._user_prefixes[user_id] = mine  # most recently touched last
            while len(self._user_prefixes) > self._max_counters:
                del self._user_prefixes[next(iter(self._user_prefixes))]
            return SendCounts(
                self._sends_prefix.count(prefix, prefix_since), self._sends_prefix.count(prefix, ratio_since),
                self._verified_prefix.count(prefix, ratio_since), self._sends_user.count(user_id, user_since),
                sum(1 for t in mine.values() if t >= user_since))

    def link_send(self, decision_id: str, prefix: str, expires_at: float) -> None:
        with self._sends_lock:
            self._send_links.pop(decision_id, None)
            self._send_links[decision_id] = (prefix, expires_at)
            while len(self._send_links) > self._max_counters:
                del self._send_links[next(iter(self._send_links))]

    def verify_send(self, decision_id: str, at: float) -> str | None:
        with self._sends_lock:
            link = self._send_links.pop(decision_id, None)
            if link is None or link[1] < at:
                return None
            # kept as long as the send counters of the prefix (the longest window read)
            events = self._sends_prefix.events.get(link[0])
            horizon = events[0] if events else at
            self._verified_prefix.add(link[0], at, min(horizon, at))
            return link[0]

    def user_ids(self, limit: int = 1000) -> list[str]:
        return sorted(self._profiles)[:limit]

    def ping(self) -> bool:
        """In-process: always reachable."""
        return True

    def close(self) -> None:
        pass
