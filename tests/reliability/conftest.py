"""Fixtures for the reliability suite: real backends, a Redis server a test may kill."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from riskengine.core.stores.redis_server import LocalRedisServer

BACKENDS = ("memory", "sqlite", "redis", "redis-cluster")


def _require_redis_binary() -> None:
    if not LocalRedisServer.available():
        message = "redis-server not installed: run scripts/system-deps.sh (Debian package redis-server)"
        if os.environ.get("CI") == "true":  # .ci/run exports CI=true
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[LocalRedisServer]:
    """One server for the load tests (each test uses its own key prefix)."""
    _require_redis_binary()
    server = LocalRedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def dedicated_redis() -> Iterator[LocalRedisServer]:
    """A server of this test's own, to kill and restart."""
    _require_redis_binary()
    server = LocalRedisServer().start()
    yield server
    server.stop()
