"""Latency of Engine.score() with warm caches: memory and sqlite stores, single thread.

What is measured: wall time of `engine.score(attempt)` for pre-built LoginAttempt objects
(the auth service builds the attempt; its pydantic validation is measured separately),
10,000 established users, GeoIP through the real maxminddb reader on the built-in
GeoLite2-City (LRU warm), UA parse through the LRU (warm), audit to a null sink (the
audit sink's own cost is in bench_audit.py). Mix: 95 % known device/home logins (allow,
which also writes the learned profile back), 5 % new device (challenge, parks context).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import percentiles_us, table, time_each  # noqa: E402

from riskengine import Engine, LoginAttempt, Settings  # noqa: E402
from riskengine.audit.base import NullSink  # noqa: E402
from riskengine.core.stores import open_store  # noqa: E402
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE  # noqa: E402

USERS = 10_000
CALLS = 50_000
IPS = ["81.2.69.160", "89.160.20.112", "216.160.83.56", "2.125.160.216", "175.16.199.0",
       "81.2.69.142", "152.216.7.110", "67.43.156.0"]
UAS = [CHROME_WIN, FIREFOX_MAC, IPHONE]
T0 = datetime(2026, 1, 1, 8, tzinfo=UTC)


def build(store_url: str) -> Engine:
    settings = Settings().with_overrides(store={"url": store_url})
    return Engine(settings, store=open_store(store_url), sink=NullSink())


def attempts(rng: random.Random, n: int, day: int) -> list[LoginAttempt]:
    out = []
    for i in range(n):
        u = rng.randrange(USERS)
        new_device = rng.random() < 0.05
        ua = UAS[(u + 1) % 3] if new_device else UAS[u % 3]
        out.append(LoginAttempt(
            user_id=f"user-{u}", timestamp=T0 + timedelta(days=day, seconds=i), ip=IPS[u % len(IPS)],
            user_agent=ua, session_id=f"s-{i}"))
    return out


def run(store_url: str) -> dict[str, object]:
    engine = build(store_url)
    rng = random.Random(7)
    # history: every user logs in on 6 days from their usual place and device
    for day in range(6):
        for u in range(USERS):
            engine.score(LoginAttempt(user_id=f"user-{u}", timestamp=T0 + timedelta(days=day, seconds=u),
                                      ip=IPS[u % len(IPS)], user_agent=UAS[u % 3]))
    probe = attempts(rng, CALLS, day=7)
    for a in probe[:2000]:  # warm-up
        engine.score(a)
    cpu_started = time.thread_time()
    samples, elapsed = time_each(engine.score, probe)
    cpu = time.thread_time() - cpu_started
    engine.close()
    p = percentiles_us(samples)
    # CPU time of this thread: what the calls cost when the machine is shared (wall-clock
    # percentiles then include waiting for a core)
    return {"store": store_url.split(":")[0], **{f"{k} µs": v for k, v in p.items()},
            "CPU µs/call": round(cpu / len(probe) * 1e6, 2), "calls/s": int(len(probe) / elapsed)}


def validation_cost() -> dict[str, object]:
    raw = {"user_id": "user-1", "timestamp": T0, "ip": "81.2.69.160", "user_agent": CHROME_WIN,
           "country": "GB", "region": "England", "asn": 2856, "session_id": "s-1"}
    samples, _ = time_each(lambda _: LoginAttempt(**raw), range(20000))
    p = percentiles_us(samples)
    return {"store": "LoginAttempt(...) validation", **{f"{k} µs": v for k, v in p.items()},
            "CPU µs/call": "", "calls/s": int(1e6 / p["mean"])}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run("memory://"), run(f"sqlite:///{tmp}/profiles.db"), validation_cost()]
    print(table(rows, f"score() latency, {USERS:,} users, {CALLS:,} calls, single thread, warm caches"))
    print("targets (DESIGN.md): memory p50 ≤ 15 µs, p99 ≤ 50 µs; sqlite p99 ≤ 1,000 µs")


if __name__ == "__main__":
    main()
