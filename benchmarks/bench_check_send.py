"""What ``Engine.check_send`` costs per OTP send: medians of repeated runs (the machine may be
loaded: compare the rows with each other, not with another machine's figures).

- parse (first time): ``phonenumbers`` parsing, validation and typing of a number not seen before;
- parse (cached): the same number again (resends, fallbacks: the engine caches parses);
- check_send (memory / sqlite store): one call on a pending challenge — peek the parked
  challenge, read the profile, count the send atomically, link it, the audit row (NullSink).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import table  # noqa: E402

from riskengine import Engine, LoginAttempt, Settings  # noqa: E402
from riskengine.core.sms import _parsed, parse_destination  # noqa: E402

T = datetime(2026, 3, 2, 9, tzinfo=UTC)
RUNS, CALLS = 7, 2000
LIMITS = {"user_max_sends": 10**9, "prefix_max_sends": 10**9}


def median_us(fn: Callable[[int], None]) -> float:
    per_call = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn(CALLS)
        per_call.append((time.perf_counter() - started) / CALLS * 1e6)
    return statistics.median(per_call)


def fresh_parses(n: int) -> None:
    _parsed.cache_clear()
    for i in range(n):
        parse_destination(f"+4474{i % 10}0{i:06d}", 4)


def cached_parses(n: int) -> None:
    for _ in range(n):
        parse_destination("+447400123456", 4)


def engine_calls(store_url: str) -> Callable[[int], None]:
    settings = Settings().with_overrides(
        geo={"city_db": None}, coldstart={"min_logins": 0}, sms=LIMITS, store={"url": store_url},
        trust={"secret_keys": ["k" * 40]})
    engine = Engine(settings)
    d = engine.score(LoginAttempt(user_id="alice", timestamp=T, ip="81.2.69.160", country="GB",
                                  user_agent="Mozilla/5.0"))
    assert d.action == "challenge", d

    def run(n: int) -> None:
        for _ in range(n):
            engine.check_send(d.decision_id, "sms", "+447400123456", now=T)

    return run


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows: list[dict[str, object]] = [
            {"what": "parse (first time)", "us_per_call": round(median_us(fresh_parses), 1)},
            {"what": "parse (cached)", "us_per_call": round(median_us(cached_parses), 2)},
            {"what": "check_send, memory store", "us_per_call": round(median_us(engine_calls("memory://")), 1)},
            {"what": "check_send, sqlite store",
             "us_per_call": round(median_us(engine_calls(f"sqlite:///{tmp}/p.db")), 1)},
        ]
    print(table(rows, "check_send cost (median of 7 runs x 2,000 calls)"))


if __name__ == "__main__":
    main()
