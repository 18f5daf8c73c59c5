"""What observability costs score(): metrics off vs Prometheus on vs Prometheus + OpenTelemetry.

Memory store, 5,000 established users, 30,000 calls, single thread, warm caches, pre-resolved
geo (no GeoIP: the difference is the point), null audit sink; 95 % familiar logins, 5 % new
devices. "off" is the default engine (no observer: one attribute check). "prometheus" counts
into a private CollectorRegistry. "prometheus + otel" also runs each score() in a span of an
SDK TracerProvider with a no-op span processor (the exporter's own cost is not ours to measure).
The three runs interleave in rounds, so VM drift hits them alike.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import percentiles_us, table, time_each  # noqa: E402

from riskengine import Engine, LoginAttempt  # noqa: E402
from riskengine.audit.base import NullSink  # noqa: E402
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE, LONDON, offline_settings  # noqa: E402

USERS = 5_000
CALLS = 30_000
ROUNDS = 3
UAS = [CHROME_WIN, FIREFOX_MAC, IPHONE]
T0 = datetime(2026, 1, 1, 8, tzinfo=UTC)


def build(registry: object | None) -> Engine:
    engine = Engine(offline_settings(), sink=NullSink(), metrics_registry=registry)
    for day in range(6):
        for u in range(USERS):
            engine.score(LoginAttempt(user_id=f"user-{u}", timestamp=T0 + timedelta(days=day, seconds=u),
                                      ip="81.2.69.160", user_agent=UAS[u % 3], **LONDON))
    return engine


def probe(seed: int) -> list[LoginAttempt]:
    rng = random.Random(seed)
    out = []
    for i in range(CALLS):
        u = rng.randrange(USERS)
        ua = UAS[(u + 1) % 3] if rng.random() < 0.05 else UAS[u % 3]
        out.append(LoginAttempt(user_id=f"user-{u}", timestamp=T0 + timedelta(days=7, seconds=i),
                                ip="81.2.69.160", user_agent=ua, session_id=f"s-{i}", **LONDON))
    return out


def main() -> None:
    from prometheus_client import CollectorRegistry

    samples: dict[str, list[int]] = {"off": [], "prometheus": [], "prometheus + otel": []}
    engines = {"off": build(None), "prometheus": build(CollectorRegistry())}
    otel = False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())  # no span processor: spans are made and dropped
        engines["prometheus + otel"] = build(CollectorRegistry())
        otel = True
    except ImportError:
        del samples["prometheus + otel"]
    for r in range(ROUNDS):
        for name, engine in engines.items():
            attempts = probe(100 * r + len(name))
            for a in attempts[:1000]:
                engine.score(a)
            got, _ = time_each(engine.score, attempts[1000:])
            samples[name].extend(got)
    rows = []
    for name, got in samples.items():
        p = percentiles_us(got)
        rows.append({"observability": name, **{f"{k} µs": v for k, v in p.items()}})
    for engine in engines.values():
        engine.close()
    print(table(rows, f"score() with metrics off/on, memory store, {USERS:,} users, "
                      f"{ROUNDS} × {CALLS - 1000:,} calls" + ("" if otel else " (opentelemetry-sdk missing)")))


if __name__ == "__main__":
    main()
