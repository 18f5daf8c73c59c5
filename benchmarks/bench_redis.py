"""Engine.score() with the redis store on loopback: latency (one thread) and throughput (4 processes).

What is measured: wall time of ``engine.score(attempt)`` for pre-built LoginAttempts against a
throwaway ``redis-server`` on 127.0.0.1 (no persistence), 2,000 established users, GeoIP via
the built-in GeoLite2-City (warm LRU), null audit sink. Mix: 95 % known device (allow: the
snapshot script; the learn compare-and-set goes to the write-behind thread by default, so the
auth thread makes 1 round trip — measured also with write-behind off = 2 round trips), 5 % new
device (challenge: snapshot + parking the context = 2 round trips). Also the store calls alone, to show what
the round trips cost, and 4 processes scoring in parallel (each with its own engine and
connection pool) for throughput. ``--cluster`` runs the latency part on a local Redis Cluster
instead (3 masters + 3 replicas, appendonly on, loopback): the snapshot is then one cluster
pipeline to the user's node and the address's node. Figures only; nothing is asserted.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import percentiles_us, table  # noqa: E402

from riskengine import Engine, LoginAttempt, Settings  # noqa: E402
from riskengine.audit.base import NullSink  # noqa: E402
from riskengine.core.profile import UserProfile  # noqa: E402
from riskengine.core.stores.redis import RedisStore  # noqa: E402
from riskengine.core.stores.redis_server import LocalRedisCluster, LocalRedisServer  # noqa: E402
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE  # noqa: E402

USERS = 2_000
CALLS = 20_000
IPS = ["81.2.69.160", "89.160.20.112", "216.160.83.56", "2.125.160.216", "81.2.69.142"]
UAS = [CHROME_WIN, FIREFOX_MAC, IPHONE]
T0 = datetime(2026, 1, 1, 8, tzinfo=UTC)


def engine_for(url: str, write_behind: bool | None = None) -> Engine:
    return Engine(Settings().with_overrides(store={"url": url, "write_behind": write_behind}), sink=NullSink())


def attempts(seed: int, n: int, day: int, users: int = USERS) -> list[LoginAttempt]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        u = rng.randrange(users)
        ua = UAS[(u + 1) % 3] if rng.random() < 0.05 else UAS[u % 3]
        out.append(LoginAttempt(user_id=f"user-{u}", timestamp=T0 + timedelta(days=day, seconds=i),
                                ip=IPS[u % len(IPS)], user_agent=ua, session_id=f"s{i}"))
    return out


def establish(engine: Engine, users: int = USERS) -> None:
    for day in range(4):
        for u in range(users):
            engine.score(LoginAttempt(user_id=f"user-{u}", timestamp=T0 + timedelta(days=day, minutes=u % 600),
                                      ip=IPS[u % len(IPS)], user_agent=UAS[u % 3]))


def time_calls(fn: object, items: list[LoginAttempt]) -> dict[str, float]:
    samples: list[int] = []
    call = fn  # type: ignore[assignment]
    gc.disable()
    try:
        for a in items:
            t = time.perf_counter_ns()
            call(a)  # type: ignore[operator]
            samples.append(time.perf_counter_ns() - t)
    finally:
        gc.enable()
    return percentiles_us(samples)


def _worker(url: str, seed: int, n: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    engine = engine_for(url)
    items = attempts(seed, n, day=10 + seed)
    for a in items[:500]:
        engine.score(a)  # warm the caches
    t = time.perf_counter()
    for a in items[500:]:
        engine.score(a)
    out.put((n - 500, time.perf_counter() - t))
    engine.close()


def main() -> None:
    with LocalRedisServer() as server:
        url = server.url
        engine = engine_for(url)
        establish(engine)
        items = attempts(1, CALLS, day=5)
        for a in items[:2000]:
            engine.score(a)  # warm LRUs and the connection pool
        allow = items[2000:]
        rows = [{"what": "score(), write-behind (default): 1 round trip on allow",
                 **time_calls(engine.score, allow)}]
        engine.flush()
        through = engine_for(url, write_behind=False)
        later = attempts(2, CALLS, day=6)
        for a in later[:2000]:
            through.score(a)
        rows.append({"what": "score(), write-through: 2 round trips on allow",
                     **time_calls(through.score, later[2000:])})
        through.close()

        store = engine.store
        assert isinstance(store, RedisStore)
        snap = [a for a in items[:5000]]
        rows.append({"what": "store.snapshot() alone (1 round trip)",
                     **time_calls(lambda a: store.snapshot(a.user_id, a.ip, 0.0), snap)})

        def snapshot_then_update(a: LoginAttempt) -> None:
            store.snapshot(a.user_id, a.ip, 0.0)
            store.update(a.user_id, lambda p: p or UserProfile())

        rows.append({"what": "snapshot + learn update (2 round trips)",
                     **time_calls(snapshot_then_update, snap)})
        rows.append({"what": "store.update() cold (GET + CAS, 2 round trips)",
                     **time_calls(lambda a: store.update(a.user_id, lambda p: p or UserProfile()), snap)})
        print(table(rows, f"Engine.score() latency with the redis store on loopback, µs ({len(allow):,} calls)"))
        engine.close()

        processes, per_process = 4, 6000
        queue: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(url, 100 + i, per_process, queue)) for i in range(processes)]
        wall = time.perf_counter()
        for p in procs:
            p.start()
        results = [queue.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(60)
        wall = time.perf_counter() - wall
        calls = sum(n for n, _ in results)
        per_proc = [n / s for n, s in results]
        print(table([{"processes": processes, "calls": calls,
                      "sum of per-process rates /s": sum(per_proc),
                      "slowest process /s": min(per_proc)}],
                    "throughput, 4 processes on one redis-server (machine has "
                    f"{mp.cpu_count()} cores; redis and the 4 workers share them)"))


def main_cluster() -> None:
    """score() latency on a local Redis Cluster (same mix and calls as the single server)."""
    with LocalRedisCluster() as cluster:
        url = cluster.url
        engine = engine_for(url)
        establish(engine)
        items = attempts(1, CALLS, day=5)
        for a in items[:2000]:
            engine.score(a)
        rows = [{"what": "cluster: score(), write-behind (default)", **time_calls(engine.score, items[2000:])}]
        engine.flush()
        store = engine.store
        rows.append({"what": "cluster: store.snapshot() alone (user + address slots, 1 pipeline)",
                     **time_calls(lambda a: store.snapshot(a.user_id, a.ip, 0.0), items[:5000])})
        print(table(rows, f"Engine.score() latency with the redis+cluster:// store on loopback, µs "
                          f"({CALLS - 2000:,} calls; 6 redis-server processes share the machine)"))
        engine.close()


if __name__ == "__main__":
    if "--cluster" in sys.argv[1:]:
        main_cluster()
    else:
        main()
