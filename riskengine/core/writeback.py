"""Write-behind for profile lessons: ``score()`` makes one store round trip, the write of what an
allowed login taught the profile happens on a background thread.

With a networked store (Redis) an allowed login would otherwise cost two round trips on the
auth thread: the snapshot read, then the learn write. The decision never depends on that
write, so it can trail by a moment. Within one process reads stay consistent: until a lesson
is written, the profile it produced is kept in ``pending`` and :meth:`overlay` hands it to the
next ``score()`` of that user instead of the store's older copy (read-your-writes). Another
process sees the lesson once it lands (typically well under a millisecond). The write itself
is ``store.update`` with the same pure function, so it merges with whatever other workers wrote
meanwhile. The queue is bounded: when it is full the lesson is applied synchronously
(back-pressure, never a dropped lesson). Fork-safe: a worker process forked after the engine
was built starts its own thread (and its own empty ``pending``) on first use.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
from typing import Final, cast

from riskengine.core.profile import UserProfile
from riskengine.core.stores.base import Updater
from riskengine.core.typing import ProfileStore

log = logging.getLogger(__name__)

_STOP: Final = object()


class WriteBehind:
    """A bounded queue of ``(user_id, updater)`` applied with ``store.update`` in order."""

    def __init__(self, store: ProfileStore, max_pending: int = 100_000) -> None:
        self._store = store
        self._max_pending = max_pending
        self._errors = itertools.count()
        self._lock = threading.Lock()
        self._pid = -1
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.pending: dict[str, UserProfile] = {}

    def peek(self, user_id: str) -> UserProfile | None:
        """This process's not-yet-written profile of the user, if any (call before reading
        the store: the writer may land it, and drop it from ``pending``, while the read is in
        flight, and the read may or may not have seen it)."""
        return self.pending.get(user_id) if self.pending else None

    def overlay(self, user_id: str, stored: UserProfile | None,
                before: UserProfile | None) -> UserProfile | None:
        """The profile to score against: the newest local lesson (still pending, or pending
        when the read started), else what the store returned."""
        pending = self.pending.get(user_id) if self.pending else None
        if pending is not None:
            return pending
        return before if before is not None else stored

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid() and self._thread is not None:
            return
        if self._pid != -1 and self._pid != os.getpid():
            # forked: the parent's lock may have been held by a thread that does not exist here
            self._lock = threading.Lock()
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None:
                return
            # a fresh process (or first use): new queue, new thread; a parent's queue is not ours
            self._queue = queue.Queue(maxsize=self._max_pending)
            self.pending = {}
            self._thread = threading.Thread(target=self._run, args=(self._queue,),
                                            name="riskengine-write-behind", daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def submit(self, user_id: str, fn: Updater, expected: UserProfile) -> None:
        """Queue ``store.update(user_id, fn)``; ``expected`` is what ``fn`` made of the profile
        this process scored against (served by :meth:`overlay` until written). Applied
        synchronously when the queue is full or the writer is closed."""
        if not self._closed:
            self._ensure_thread()
            self.pending[user_id] = expected
            try:
                self._queue.put_nowait((user_id, fn, expected))
                return
            except queue.Full:
                pass
        self._apply(user_id, fn, expected)

    def update(self, user_id: str, fn: Updater) -> None:
        """Any other profile write (a verified challenge, OTP failures): queued behind this
        user's pending lessons when there are some, so writes apply in order and reads stay
        consistent; written through (on the caller's thread) when there are none."""
        with self._lock:
            base = self.pending.get(user_id) if self._pid == os.getpid() else None
        if base is None:
            self._store.update(user_id, fn)
            return
        expected = fn(base)
        if expected is None:  # a deletion: let everything queued land first, then delete
            self.flush()
            self._store.update(user_id, fn)
            return
        self.submit(user_id, fn, expected)

    def _apply(self, user_id: str, fn: Updater, expected: UserProfile) -> None:
        try:
            self._store.update(user_id, fn)
        except Exception as exc:  # noqa: BLE001 - a lost lesson must not fail anything
            next(self._errors)
            log.warning("write-behind profile update failed: %s", exc)
        finally:
            with self._lock:
                # a newer lesson of the same user may be queued behind this one: keep its copy
                if self.pending.get(user_id) is expected:
                    del self.pending[user_id]

    def _run(self, q: queue.Queue[object]) -> None:
        while True:
            item = q.get()
            try:
                if item is _STOP:
                    return
                user_id, fn, expected = cast(tuple[str, Updater, UserProfile], item)
                self._apply(user_id, fn, expected)
            finally:
                q.task_done()

    @property
    def errors(self) -> int:
        return int(repr(self._errors)[6:-1])

    def flush(self) -> None:
        """Block until every queued lesson has been applied."""
        if self._thread is not None and self._pid == os.getpid():
            self._queue.join()

    def close(self) -> None:
        """Apply what is queued, stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._pid == os.getpid():
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
