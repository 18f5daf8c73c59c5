"""Store fixtures: every backend behind one factory, Redis as a real ``redis-server``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from riskengine.core.stores import ProfileStore, open_store
from riskengine.core.stores.redis_server import LocalRedisCluster, LocalRedisServer

BACKENDS = ("memory", "sqlite", "redis", "redis-cluster")
_PATIENT = "socket_timeout=2&socket_connect_timeout=2"


def start_redis_or_skip() -> LocalRedisServer:
    """A real server; skipped only on a developer machine without redis-server — in CI
    (``CI`` set) a missing binary fails, so the Redis contract can never silently vanish."""
    if not LocalRedisServer.available():
        message = "redis-server not installed: run scripts/system-deps.sh (Debian package redis-server)"
        if os.environ.get("CI") == "true":  # .ci/run exports CI=true
            pytest.fail(message)
        pytest.skip(message)
    return LocalRedisServer().start()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedisServer]:
    server = start_redis_or_skip()
    yield server
    server.stop()


@dataclass
class StoreFactory:
    """Opens stores of one backend that all see the same data (``url`` for other processes)."""

    backend: str
    url: str
    open: Callable[[], ProfileStore]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    name: str = request.param
    opened: list[ProfileStore] = []
    if name == "memory":
        shared = open_store("memory://")
        factory = StoreFactory(name, "memory://", lambda: shared)
    elif name == "sqlite":
        url = f"sqlite:///{tmp_path / 'profiles.db'}"
        # the suite pins atomicity under contention, not the (deliberately short) busy timeout
        factory = StoreFactory(name, url, lambda: open_store(url, busy_timeout_s=5.0))
    elif name == "redis-cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        # as for sqlite: the suite pins atomicity, not the deliberately short socket timeouts
        # (100 ms; a busy CI machine missed a connect inside them)
        url = f"{cluster.url}?prefix=t{uuid.uuid4().hex[:12]}:&{_PATIENT}"
        factory = StoreFactory(name, url, lambda: open_store(url))
    else:
        server: LocalRedisServer = request.getfixturevalue("redis_server")
        # a fresh key prefix per test: isolation without FLUSHDB
        url = f"{server.url}?prefix=t{uuid.uuid4().hex[:12]}:&{_PATIENT}"
        factory = StoreFactory(name, url, lambda: open_store(url))

    def tracked() -> ProfileStore:
        store = factory.open()
        opened.append(store)
        return store

    yield StoreFactory(name, factory.url, tracked)
    for store in opened:
        store.close()


@pytest.fixture
def store(backend: StoreFactory) -> ProfileStore:
    return backend.open()
