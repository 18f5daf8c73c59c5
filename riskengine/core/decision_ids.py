"""Decision ids: 64 random bits from the OS CSPRNG, 16 hex characters, unpredictable.

One ``os.urandom`` system call per id cost about a microsecond of every ``score()``, so ids are
drawn in batches: one call fills a buffer of :data:`BATCH` ids, and ``list.pop`` (atomic under
the GIL) hands each out once. The bytes are the same kind ``secrets.token_hex`` returns;
only the moment they are read from the kernel changes. A forked child (gunicorn's workers
after a preloaded app) drops the buffer it inherited, so two processes never hand out the
same id.
"""

from __future__ import annotations

import os
from typing import Final

BATCH: Final = 256
_ids: list[str] = []


def new_decision_id() -> str:
    """A fresh 16-hex-character id (64 bits from ``os.urandom``)."""
    try:
        return _ids.pop()
    except IndexError:
        _refill()
        return new_decision_id()


def _refill() -> None:
    raw = os.urandom(8 * BATCH).hex()
    # extend, not replace: a thread that refills at the same moment only adds more unused ids
    _ids.extend([raw[i:i + 16] for i in range(0, len(raw), 16)])


def _forget_after_fork() -> None:
    _ids.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
