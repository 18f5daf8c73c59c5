"""The login hot path, for A/B runs of two checkouts on a loaded machine (sensitive events,
issue #17): memory store, null sink, 2,000 established users, 95 % familiar / 5 % new device;
the median of per-round means (each round 20,000 calls), and ``Policy.decide`` on a clean and
a fired login. Run it alternately with PYTHONPATH at each checkout:

    PYTHONPATH=<checkout> python benchmarks/bench_events_ab.py 7
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from riskengine import Engine, LoginAttempt, Settings
from riskengine.audit.base import NullSink
from riskengine.core.policy import Policy
from riskengine.core.signals.base import SignalResult
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE

UAS = [CHROME_WIN, FIREFOX_MAC, IPHONE]
T0 = datetime(2026, 1, 1, 8, tzinfo=UTC)
USERS = 2000
CALLS = 20_000


def _attempt(user: int, day: int, second: int, ua: str) -> LoginAttempt:
    return LoginAttempt(user_id=f"u{user}", timestamp=T0 + timedelta(days=day, seconds=second),
                        ip="81.2.69.160", user_agent=ua)


def _per_call_ns(fn: Callable[[], object], n: int = 200_000) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e9


def main(rounds_n: int) -> None:
    engine = Engine(Settings(), sink=NullSink())
    rng = random.Random(1)
    for day in range(4):
        for u in range(USERS):
            engine.score(_attempt(u, day, u, UAS[u % 3]))
    rounds = []
    for r in range(rounds_n):
        attempts = []
        for i in range(CALLS):
            u = rng.randrange(USERS)
            attempts.append(_attempt(u, 5 + r, i, UAS[(u + 1) % 3] if rng.random() < 0.05 else UAS[u % 3]))
        t = time.perf_counter()
        for a in attempts:
            engine.score(a)
        rounds.append((time.perf_counter() - t) / CALLS * 1e6)
    policy = Policy(Settings())
    clean = [SignalResult("NEW_DEVICE", 0.0, "")]
    fired = [SignalResult("NEW_DEVICE", 1.0, "x"), SignalResult("NEW_ASN", 1.0, "y")]
    clean_ns = statistics.median(_per_call_ns(lambda: policy.decide(clean)) for _ in range(5))
    fired_ns = statistics.median(_per_call_ns(lambda: policy.decide(fired)) for _ in range(5))
    print(f"score() mean per call, median of {rounds_n} rounds: {statistics.median(rounds):.2f} µs; "
          f"Policy.decide clean {clean_ns:.0f} ns, fired {fired_ns:.0f} ns")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
