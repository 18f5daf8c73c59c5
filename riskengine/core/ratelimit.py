"""Rate-limited warnings: the first occurrence in full, then one count per interval.

During an outage every ``score()`` returns a degraded decision; logging each one would flood
the log exactly when an operator reads it. :class:`RateLimitedLog` logs the first occurrence
at WARNING, counts the rest, and when the interval has passed logs
``"N more <what> in the last 60 s"`` together with the next occurrence (or at :meth:`flush`).
The clock is injectable, so tests need no sleeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimitedLog:
    """WARNING-level logging of one kind of event, at most once per ``interval_s`` in full.

    >>> import logging
    >>> now = [0.0]
    >>> rl = RateLimitedLog(logging.getLogger("doc"), "degraded decisions", 60.0, clock=lambda: now[0])
    >>> [rl.warning("store down") for _ in range(3)]
    [True, False, False]
    >>> now[0] = 61.0
    >>> rl.pending
    2
    """

    def __init__(self, logger: logging.Logger, what: str, interval_s: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.logger = logger
        self.what = what
        self.interval_s = interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self.pending = 0
        """Occurrences counted but not yet reported in this interval."""

    def warning(self, msg: str, *args: object) -> bool:
        """Record one occurrence; returns whether it was logged in full."""
        now = self.clock()
        with self._lock:
            if self._since is not None and now - self._since < self.interval_s:
                self.pending += 1
                return False
            suppressed, since = self.pending, self._since
            self._since, self.pending = now, 0
        if suppressed:
            self._report(suppressed, now - since if since is not None else self.interval_s)
        self.logger.warning(msg, *args)
        return True

    def flush(self) -> None:
        """Log the count of occurrences not yet reported (at shutdown, or from a health check
        once the interval has passed)."""
        now = self.clock()
        with self._lock:
            suppressed, since = self.pending, self._since
            self.pending = 0
        if suppressed:
            self._report(suppressed, now - since if since is not None else self.interval_s)

    def flush_due(self) -> None:
        """:meth:`flush`, but only once the current interval is over."""
        since = self._since
        if self.pending and since is not None and self.clock() - since >= self.interval_s:
            self.flush()

    def _report(self, count: int, seconds: float) -> None:
        self.logger.warning("%d more %s in the last %.0f s", count, self.what, seconds)


__all__ = ["RateLimitedLog"]
