"""Shared fixtures. Builders live in ``riskengine.testing`` (shipped with the library)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.stores.redis_server import LocalRedisCluster
from riskengine.testing import offline_settings

# Every worker of a deployment shares one device-token key; the test processes (and the
# subprocesses they start) are one deployment. Tests of the missing-key error remove it.
TEST_TRUST_KEY = "test-only-device-token-key-0123456789abcdef"
os.environ.setdefault("RISKENGINE_TRUST_SECRET_KEYS", TEST_TRUST_KEY)

REPO = Path(__file__).resolve().parents[1]
MAXMIND_TEST = REPO.parent / "shared" / "data" / "maxmind-test"


def _maxmind(name: str) -> Path:
    path = MAXMIND_TEST / name
    if not path.exists():
        if os.environ.get("CI") == "true":  # .ci/run: ../shared is always beside the clone
            pytest.fail(f"MaxMind test database {name} not found in ../shared/data/maxmind-test")
        pytest.skip(f"MaxMind test database {name} not found: expected ../shared/data/maxmind-test "
                    "beside the repository")
    return path


@pytest.fixture
def maxmind() -> Callable[[str], Path]:
    """``maxmind("GeoIP2-City-Test.mmdb")``: path of a MaxMind test database, or a clear skip
    when ../shared is absent (CI always has it)."""
    return _maxmind


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def engine(sink: MemorySink) -> Iterator[Engine]:
    with Engine(offline_settings(), sink=sink) as e:
        yield e


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A real Redis Cluster on loopback (3 masters, 3 replicas), one per session: the store
    suites use it with a key prefix per test. Skipped only on a developer machine without
    redis-server; in CI (``CI=true``) a missing binary fails."""
    if not LocalRedisCluster.available():
        message = "redis-server / redis-cli not installed: run scripts/system-deps.sh (Debian package redis-server)"
        if os.environ.get("CI") == "true":  # .ci/run exports CI=true
            pytest.fail(message)
        pytest.skip(message)
    cluster = LocalRedisCluster().start()
    yield cluster
    cluster.stop()
