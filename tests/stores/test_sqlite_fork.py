"""A worker forked while other threads are inside SQLite (gunicorn --preload with the
write-behind writer and the WAL checkpointer running) must not inherit a held SQLite mutex."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

from riskengine.core.profile import UserProfile
from riskengine.core.stores.sqlite import SqliteStore

_inherited: dict[str, SqliteStore] = {}


def _child(out: Any) -> None:
    store = _inherited["store"]
    # the child's first SQLite call opens its own connection: it hung when a parent thread
    # held one of SQLite's process-wide mutexes at the moment of fork()
    store.update("child", lambda p: (p or UserProfile())._replace(logins=(p.logins if p else 0) + 1))
    out.put(store.get("child").logins)  # type: ignore[union-attr]


def test_forks_during_busy_sqlite_threads_never_hang_the_child(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "p.db"), checkpoint_s=0.001, timeout_s=5.0)
    _inherited["store"] = store
    stop = threading.Event()

    def hammer(k: int) -> None:
        i = 0
        while not stop.is_set():
            store.update(f"busy-{k}", lambda p, i=i: (p or UserProfile())._replace(logins=i))
            store.snapshot(f"busy-{k}", "198.51.100.7", 0.0)
            i += 1

    threads = [threading.Thread(target=hammer, args=(k,), daemon=True) for k in range(2)]
    for t in threads:
        t.start()
    ctx = multiprocessing.get_context("fork")
    try:
        for _ in range(25):  # without the fork gate about one fork in five hung
            out = ctx.Queue()
            proc = ctx.Process(target=_child, args=(out,))
            proc.start()
            proc.join(timeout=20)
            if proc.exitcode is None:
                proc.kill()
            assert proc.exitcode == 0, "the forked child hung inside SQLite"
            assert out.get(timeout=5) >= 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        store.close()
