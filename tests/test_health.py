"""health(): a real store ping; degraded decisions logged once, then counted per interval."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.ratelimit import RateLimitedLog
from riskengine.core.stores.redis_server import free_port
from riskengine.testing import T0, make_attempt, offline_settings

KEY = "k" * 40


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_health_pings_a_live_store(engine: Engine) -> None:
    health = engine.health()
    assert health["store_ok"] is True
    assert isinstance(health["store_ping_ms"], float) and health["store_ping_ms"] >= 0.0


def dead_redis_engine() -> Engine:
    url = f"redis://127.0.0.1:{free_port()}/0?socket_timeout=0.05&socket_connect_timeout=0.05"
    return Engine(offline_settings(store={"url": url}, trust={"secret_keys": [KEY]}), sink=MemorySink())


def test_health_reports_an_unreachable_store() -> None:
    with dead_redis_engine() as engine:
        health = engine.health()
    assert health["store_ok"] is False


def test_rate_limited_log_counts_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    rl = RateLimitedLog(logging.getLogger("t.rl"), "degraded decisions", 60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t.rl"):
        assert rl.warning("down: %s", "first") is True
        for _ in range(9):
            clock.now += 5  # all within the first 60 s
            assert rl.warning("down: %s", "again") is False
        assert [r.getMessage() for r in caplog.records] == ["down: first"]
        clock.now += 20  # 65 s after the first
        assert rl.warning("down: %s", "later") is True
    assert [r.getMessage() for r in caplog.records] == [
        "down: first", "9 more degraded decisions in the last 65 s", "down: later"]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_rate_limited_log_flushes_its_count_and_rejects_a_bad_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    rl = RateLimitedLog(logging.getLogger("t.rl2"), "things", 10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t.rl2"):
        rl.warning("x")
        rl.warning("x")
        rl.flush_due()  # the interval is not over: nothing yet
        assert len(caplog.records) == 1
        clock.now += 10
        rl.flush_due()
        rl.flush()  # nothing left to report
    assert [r.getMessage() for r in caplog.records] == ["x", "1 more things in the last 10 s"]
    with pytest.raises(ValueError, match="interval_s"):
        RateLimitedLog(logging.getLogger("t"), "x", 0)


def test_engine_logs_degraded_decisions_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with dead_redis_engine() as engine:
        engine.degraded_log.clock = engine.store_error_log.clock = clock
        with caplog.at_level(logging.WARNING, logger="riskengine.core.engine"):
            for i in range(5):
                assert engine.score(make_attempt(ts=T0 + timedelta(seconds=i))).degraded
            degraded = [r for r in caplog.records if "degraded" in r.getMessage()]
            assert len(degraded) == 1 and "fail-mode decision" in degraded[0].getMessage()
            clock.now += 61
            engine.score(make_attempt(ts=T0 + timedelta(minutes=2)))
        assert engine.health()["degraded"] == 6
    messages = [r.getMessage() for r in caplog.records if "degraded" in r.getMessage()]
    assert messages[1] == "4 more degraded decisions in the last 61 s"
    assert "fail-mode decision" in messages[2] and len(messages) == 3
    # the fail-mode challenges cannot be parked either: those store errors are rate-limited too
    parks = [r.getMessage() for r in caplog.records if "park" in r.getMessage() or "store errors" in r.getMessage()]
    assert len(parks) == 3 and parks[1] == "4 more store errors in the last 61 s"


def test_readiness_needs_the_store_and_the_geoip_databases() -> None:
    from riskengine.core.health import readiness

    with Engine(offline_settings(), sink=MemorySink()) as ok:
        ready, body = readiness(ok)
    assert ready and body["ready"] is True and body["store_ok"] is True and body["geoip_problems"] == []
    assert set(body) == {"ready", "store_ok", "store_ping_ms", "geoip_problems"}
    with dead_redis_engine() as dead:
        ready, body = readiness(dead)
        assert not ready and body["store_ok"] is False
    with Engine(offline_settings(geo={"city_db": "/nonexistent/City.mmdb"}), sink=MemorySink()) as no_geo:
        ready, body = readiness(no_geo)
        assert not ready and body["store_ok"] is True and "City database" in body["geoip_problems"][0]


def test_an_outage_behind_failed_passwords_logs_once_and_counts_every_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    with dead_redis_engine() as engine, caplog.at_level(logging.WARNING, logger="riskengine"):
        for i in range(30):
            assert engine.record_failure("alice", "198.51.100.7", T0 + timedelta(seconds=i)) == 0
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "record_failure: store unavailable" in warnings[0].getMessage()
        assert engine.health()["store_errors"] == 30
