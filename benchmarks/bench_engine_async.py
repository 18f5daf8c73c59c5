"""``Engine.ascore`` on one event loop vs ``Engine.score`` in a thread pool, on a Redis store.

What is measured: bursts of 1,000 concurrent logins of 1,000 established users (one each,
familiar device and place: allowed, so each makes the snapshot read and its lesson) against a
throwaway ``redis-server`` on 127.0.0.1, GeoIP off (the attempts carry their geo), write-behind
off (the lesson is awaited on the async path, written through on the sync one), audit to a
null sink. async: 1,000 ``ascore`` tasks on ONE event loop; sync: 1,000 ``score`` jobs in a
``ThreadPoolExecutor`` of 16 or 64 threads. Latency per login from the burst's start;
throughput = logins/s over the bursts. Figures only. ``python benchmarks/bench_engine_async.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import percentiles_us, table  # noqa: E402

from riskengine import Engine  # noqa: E402
from riskengine.audit import NullSink  # noqa: E402
from riskengine.core.stores.redis_server import LocalRedisServer  # noqa: E402
from riskengine.testing import T0, establish, make_attempt, offline_settings  # noqa: E402

CONCURRENT = 1_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=10)
    args = parser.parse_args()
    server = LocalRedisServer().start()
    try:
        url = f"{server.url}?prefix=benchengine:&socket_timeout=5&pool_wait_s=30"
        settings = offline_settings(store={"url": url, "write_behind": False},
                                    trust={"secret_keys": ["bench-only-key-0123456789abcdefghij"]})
        engine = Engine(settings, sink=NullSink())
        users = [f"user{i:04d}" for i in range(CONCURRENT)]
        last = T0
        for uid in users:
            last = establish(engine, uid, days=4)
        rows: list[dict[str, object]] = []

        def attempts(burst: int) -> list[object]:
            return [make_attempt(uid, last + timedelta(days=1, minutes=burst)) for uid in users]

        async def run_async() -> tuple[list[int], float]:
            samples: list[int] = []
            elapsed = 0.0
            for burst in range(args.bursts):
                batch = attempts(burst)
                t0 = time.perf_counter_ns()

                async def one(a: object, t0: int = t0) -> None:
                    d = await engine.ascore(a)  # type: ignore[arg-type]
                    assert d.action == "allow"
                    samples.append(time.perf_counter_ns() - t0)

                await asyncio.gather(*(one(a) for a in batch))
                elapsed += (time.perf_counter_ns() - t0) / 1e9
            await engine.aclose()
            return samples, elapsed

        def run_threads(threads: int) -> tuple[list[int], float]:
            samples: list[int] = []
            elapsed = 0.0
            with ThreadPoolExecutor(threads) as pool:
                for burst in range(args.bursts):
                    batch = attempts(burst + 1000)
                    t0 = time.perf_counter_ns()

                    def one(a: object, t0: int = t0) -> None:
                        d = engine.score(a)  # type: ignore[arg-type]
                        assert d.action == "allow"
                        samples.append(time.perf_counter_ns() - t0)

                    list(pool.map(one, batch))
                    elapsed += (time.perf_counter_ns() - t0) / 1e9
            return samples, elapsed

        for name, run in (("ascore, one event loop (redis.asyncio)", lambda: asyncio.run(run_async())),
                          ("score, 16 threads", lambda: run_threads(16)),
                          ("score, 64 threads", lambda: run_threads(64))):
            gc.collect()
            samples, elapsed = run()
            p = percentiles_us(samples)
            rows.append({"path": name, "logins": len(samples), "logins/s": len(samples) / elapsed,
                         "p50 ms": p["p50"] / 1000, "p99 ms": p["p99"] / 1000})
        engine.close()
        print(table(rows, f"{CONCURRENT:,} concurrent logins per burst, {args.bursts} bursts, "
                          "redis-server on loopback"))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
