"""The async Redis client vs the sync client in a thread pool: 1,000 concurrent store round trips.

What is measured: bursts of 1,000 concurrent "score + learn" store calls (``snapshot`` then
``update`` of the same user: the two round trips an allowed login makes with write-through)
against a throwaway ``redis-server`` on 127.0.0.1, 1,000 established users, one per call.

* async: ``asnapshot`` + ``aupdate`` as 1,000 tasks on ONE event loop (``redis.asyncio``, the
  store's blocking pool of 64 connections);
* sync: ``snapshot`` + ``update`` as 1,000 jobs submitted to a ``ThreadPoolExecutor`` of 16 or
  64 threads (what ``asyncio.to_thread`` / ``run_in_executor`` would do with the sync client).

Latency is per call from the burst's start (all 1,000 are issued at once, so it includes the
wait for a connection or a thread), throughput is calls per second over the bursts. Figures
only; nothing is asserted. ``python benchmarks/bench_async.py [--bursts N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import percentiles_us, table  # noqa: E402

from riskengine.core.profile import UserProfile  # noqa: E402
from riskengine.core.stores.redis import RedisStore  # noqa: E402
from riskengine.core.stores.redis_server import LocalRedisServer  # noqa: E402

CONCURRENT = 1_000
T = 1_772_442_000.0
IP = "81.2.69.160"


def established(i: int) -> UserProfile:
    p = UserProfile(created=int(T) - 90 * 86_400)
    for day in range(20):
        p = p.learned(now=int(T) - (20 - day) * 86_400, device_key=f"{i % 7:012x}", country="GB",
                      region="England", asn=64_500 + i % 5, latitude=51.5, longitude=-0.12, local_hour=9)
    return p


def learn(p: UserProfile | None) -> UserProfile:
    base = p if p is not None else UserProfile(created=int(T))
    return base._replace(logins=base.logins + 1)


def run_async(store: RedisStore, users: list[str], bursts: int) -> tuple[list[int], float]:
    async def one(uid: str, started: int, out: list[int]) -> None:
        await store.asnapshot(uid, IP, T - 1800)
        await store.aupdate(uid, learn)
        out.append(time.perf_counter_ns() - started)

    async def main() -> tuple[list[int], float]:
        samples: list[int] = []
        await asyncio.gather(*(one(uid, time.perf_counter_ns(), []) for uid in users[:100]))  # warm the pool
        elapsed = 0.0
        for _ in range(bursts):
            t0 = time.perf_counter()
            started = time.perf_counter_ns()
            await asyncio.gather(*(one(uid, started, samples) for uid in users))
            elapsed += time.perf_counter() - t0
        await store.aclose()
        return samples, elapsed

    return asyncio.run(main())


def run_threads(store: RedisStore, users: list[str], bursts: int, threads: int) -> tuple[list[int], float]:
    def one(uid: str, started: int) -> int:
        store.snapshot(uid, IP, T - 1800)
        store.update(uid, learn)
        return time.perf_counter_ns() - started

    samples: list[int] = []
    elapsed = 0.0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda u: one(u, time.perf_counter_ns()), users[:100]))  # warm the pool
        for _ in range(bursts):
            t0 = time.perf_counter()
            started = time.perf_counter_ns()
            samples += list(pool.map(lambda u, s=started: one(u, s), users))
            elapsed += time.perf_counter() - t0
    return samples, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=20)
    args = parser.parse_args()
    server = LocalRedisServer().start()
    try:
        # generous timeouts: this measures throughput of a burst on a possibly busy host, not fail-fast
        store = RedisStore(f"{server.url}?prefix=bench:&socket_timeout=5&pool_wait_s=30")
        users = [f"user{i:04d}" for i in range(CONCURRENT)]
        for i, uid in enumerate(users):
            store.put(uid, established(i))
        rows: list[dict[str, object]] = []
        for name, run in (
            ("async, one event loop (redis.asyncio)", lambda: run_async(store, users, args.bursts)),
            ("sync client, 16 threads", lambda: run_threads(store, users, args.bursts, 16)),
            ("sync client, 64 threads", lambda: run_threads(store, users, args.bursts, 64)),
        ):
            gc.collect()
            samples, elapsed = run()
            p = percentiles_us(samples)
            rows.append({"path": name, "calls": len(samples), "calls/s": len(samples) / elapsed,
                         "p50 ms": p["p50"] / 1000, "p99 ms": p["p99"] / 1000, "max ms": max(samples) / 1e6})
        final = store.get(users[0])
        assert final is not None  # every call learned: 3 runs x (bursts + warm-up) updates of user0
        store.close()
        print(table(rows, f"{CONCURRENT:,} concurrent snapshot+update round-trip pairs per burst, "
                          f"{args.bursts} bursts, redis-server on loopback"))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
