"""Bytes per live failure counter in the memory store, and the cap that bounds them.

What is measured: tracemalloc's net allocation after a stuffing wave against a fresh
``MemoryStore`` — one failed password from each of N addresses against each of N usernames
(2N live counters: one per user, one per address), every failure inside the window. Then the
same wave at 4× the cap, to show the hard cap (``store.max_counters``) holding memory flat.
The 0.1 store measured +514 MB for 300k counters (1.8 kB each, a deque per key) with no cap.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import table  # noqa: E402

from riskengine.stores import MemoryStore  # noqa: E402


def wave(store: MemoryStore, n: int) -> None:
    for i in range(n):
        store.add_failure(f"user{i:07d}@example.com", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                          1_772_442_000.0 + i / 1000)


def measure(n: int, cap: int) -> tuple[int, int, float]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = MemoryStore(max_counters=cap)
    store.sweep_floor = store._sweep_at = 10**9  # every failure is live: no sweep helps
    wave(store, n)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    live = len(store._users) + len(store._ips)
    return live, used, used / live


def main() -> None:
    rows = []
    for n, cap in ((150_000, 250_000), (1_000_000, 250_000)):
        live, used, per = measure(n, cap)
        rows.append({"wave": f"{n:,} users x {n:,} addresses", "cap per kind": f"{cap:,}",
                     "live counters": f"{live:,}", "memory": f"{used / 1e6:.1f} MB",
                     "per counter": f"{per:.0f} B"})
    print(table(rows, "memory store: failure counters (tracemalloc, net)"))


if __name__ == "__main__":
    main()
