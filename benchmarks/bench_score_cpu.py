"""score() per call on a shared machine: CPU time of the scoring thread and the wall-clock p50,
as medians of repeated runs (what to compare two commits with when other jobs load the cores).

Same engine, users and login mix as bench_score.py (memory store, null sink). Run two commits
alternately: ``PYTHONPATH=<checkout> python benchmarks/bench_score_cpu.py [runs]``.
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_score as b  # noqa: E402

from riskengine import LoginAttempt  # noqa: E402

CHUNK = 10_000


def main(runs: int = 5) -> None:
    engine = b.build("memory://")
    for day in range(6):
        for u in range(b.USERS):
            engine.score(LoginAttempt(user_id=f"user-{u}", timestamp=b.T0 + timedelta(days=day, seconds=u),
                                      ip=b.IPS[u % len(b.IPS)], user_agent=b.UAS[u % 3]))
    probe = b.attempts(random.Random(7), runs * CHUNK, day=7)
    for a in b.attempts(random.Random(8), 2000, day=6)[:2000]:  # warm-up, earlier in event time
        engine.score(a)
    cpu: list[float] = []
    p50: list[float] = []
    score = engine.score
    gc.collect()
    gc.disable()
    try:
        for r in range(runs):
            part = probe[r * CHUNK:(r + 1) * CHUNK]
            samples: list[int] = []
            started = time.thread_time_ns()
            for a in part:
                t = time.perf_counter_ns()
                score(a)
                samples.append(time.perf_counter_ns() - t)
            cpu.append((time.thread_time_ns() - started) / len(part) / 1000)
            p50.append(sorted(samples)[len(samples) // 2] / 1000)
    finally:
        gc.enable()
    engine.close()
    print(f"CPU µs/call median {statistics.median(cpu):.2f} {[round(x, 1) for x in cpu]}; "
          f"p50 µs median {statistics.median(p50):.2f} {[round(x, 1) for x in p50]}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
