"""``Engine.ascore`` / ``arecord_outcome`` / ``arecord_failure`` / ``arecord_signup`` decide exactly
as the sync calls.

Property-tested: the same random story of signups, logins, failed passwords and challenge outcomes is
played through a sync engine and an async one, each on its own store of the same backend
(memory, sqlite, and the real redis-server), and every decision must agree — action, risk,
reasons, factor, whether a device token came back.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskengine import Engine, UnknownDecisionError
from riskengine.audit import MemorySink
from riskengine.core.stores import open_store
from riskengine.core.stores.redis_server import LocalRedisCluster, LocalRedisServer
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE, LONDON, PARIS, T0, make_attempt, offline_settings

PLACES = (LONDON, PARIS, {**LONDON, "asn": 16509})
AGENTS = (CHROME_WIN, FIREFOX_MAC, IPHONE)

step = st.one_of(
    st.tuples(st.just("login"), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(1, 3000)),
    st.tuples(st.just("failure"), st.integers(0, 2), st.integers(0, 3), st.just(0), st.integers(1, 600)),
    st.tuples(st.just("outcome"), st.sampled_from(["verified", "failed"]), st.integers(1, 6), st.booleans(),
              st.integers(1, 120)),
    # a signup session for u<c> (learned into a blank profile only; refused after any history)
    st.tuples(st.just("signup"), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(1, 600)),
)


def _play(engine: Engine, story: list[tuple[Any, ...]], use_async: bool) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        ts = T0
        pending: list[tuple[str, Any]] = []  # (decision id, token presented next)
        token: str | None = None
        for kind, a, b, c, gap in story:
            ts += timedelta(minutes=gap)
            if kind == "login":
                attempt = make_attempt(f"u{c}", ts, PLACES[a], AGENTS[b], session_id=f"s{gap % 3}",
                                       device_token=token if a == 0 else None)
                d = await engine.ascore(attempt) if use_async else engine.score(attempt)
                out.append((d.action, d.risk, d.reason_codes, d.factor, d.user_id))
                if d.action == "challenge":
                    pending.append((d.decision_id, None))
            elif kind == "signup":
                attempt = make_attempt(f"u{c}", ts, PLACES[a], AGENTS[b], device_id=f"dev{a}{b}")
                learned = await engine.arecord_signup(attempt) if use_async else engine.record_signup(attempt)
                out.append(("signup", learned))
            elif kind == "failure":
                ip = f"198.51.100.{b}"
                n = await engine.arecord_failure(f"u{a}", ip, ts) if use_async else \
                    engine.record_failure(f"u{a}", ip, ts)
                out.append(("failure", n))
            elif pending:
                decision_id, _ = pending.pop()
                args = (decision_id, a, ["sms"], b, c)
                try:
                    got = await engine.arecord_outcome(*args, timestamp=ts) if use_async else \
                        engine.record_outcome(*args, timestamp=ts)
                except UnknownDecisionError:  # expired: both paths must say so
                    out.append(("outcome", "unknown"))
                    continue
                out.append(("outcome", got is None))
                if got is not None:
                    token = got
        if use_async:
            await engine.aclose()  # the loop's redis connections
        return out

    return asyncio.run(run())


@pytest.fixture
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A factory of two fresh stores of one backend (sync engine's, async engine's)."""
    backend: str = request.param
    counter = iter(range(10**6))

    def make() -> Any:
        n = next(counter)
        if backend == "memory":
            return open_store("memory://"), open_store("memory://")
        if backend == "sqlite":
            return (open_store(f"sqlite:///{tmp_path}/sync{n}.db", busy_timeout_s=5.0),
                    open_store(f"sqlite:///{tmp_path}/async{n}.db", busy_timeout_s=5.0))
        if backend == "redis-cluster":
            cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
            return (open_store(f"{cluster.url}?prefix=s{uuid.uuid4().hex[:10]}:"),
                    open_store(f"{cluster.url}?prefix=a{uuid.uuid4().hex[:10]}:"))
        server: LocalRedisServer = request.getfixturevalue("redis_server")
        return (open_store(f"{server.url}?prefix=s{uuid.uuid4().hex[:10]}:"),
                open_store(f"{server.url}?prefix=a{uuid.uuid4().hex[:10]}:"))
    return make


@pytest.mark.parametrize("pair", ["memory", "sqlite", "redis", "redis-cluster"], indirect=True)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(story=st.lists(step, min_size=1, max_size=30))
def test_async_calls_decide_exactly_like_the_sync_ones(pair: Any, story: list[tuple[Any, ...]]) -> None:
    sync_store, async_store = pair()
    with Engine(offline_settings(store={"write_behind": False}), store=sync_store, sink=MemorySink()) as sync, \
            Engine(offline_settings(store={"write_behind": False}), store=async_store, sink=MemorySink()) as aio:
        assert _play(aio, story, use_async=True) == _play(sync, story, use_async=False)


@pytest.mark.parametrize("pair", ["redis"], indirect=True)
def test_redis_ascore_never_touches_the_sync_client(pair: Any) -> None:
    _, store = pair()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the sync redis client was used on the async path")

    for name in ("snapshot", "update", "put_pending", "pop_pending", "add_failure", "add_otp_failures",
                 "reset_failures"):
        setattr(store, name, refuse)
    with Engine(offline_settings(store={"write_behind": False}), store=store, sink=MemorySink()) as engine:
        async def story() -> None:
            for i in range(3):  # three failed passwords: the next login steps up
                assert await engine.arecord_failure("alice", "198.51.100.7", T0 + timedelta(seconds=i)) == i + 1
            first = await engine.ascore(make_attempt("alice", T0 + timedelta(minutes=1)))
            assert first.action == "challenge" and "FAILED_ATTEMPTS_USER" in first.reason_codes
            token = await engine.arecord_outcome(first.decision_id, "verified", ["totp"], 1, True,
                                                 timestamp=T0 + timedelta(minutes=2))
            assert token is not None
            again = await engine.ascore(make_attempt("alice", T0 + timedelta(minutes=3), device_token=token))
            assert again.action == "allow"
            await engine.aclose()
        asyncio.run(story())
        assert engine.health()["degraded"] == 0 and engine.health()["store_errors"] == 0


def test_a_store_without_async_twins_runs_in_a_thread() -> None:
    class Plain:
        def __init__(self) -> None:
            self.inner = open_store("memory://")

        def __getattr__(self, name: str) -> Any:
            if name.startswith("a") and name not in ("add_failure", "add_otp_failures"):
                raise AttributeError(name)
            return getattr(self.inner, name)

    with Engine(offline_settings(), store=Plain(), sink=MemorySink()) as engine:  # type: ignore[arg-type]
        d = asyncio.run(engine.ascore(make_attempt("bob", T0)))
        assert d.action == "allow" and d.user_id == "bob"
        assert asyncio.run(engine.arecord_failure("bob", "198.51.100.9", T0 + timedelta(minutes=1))) == 1
