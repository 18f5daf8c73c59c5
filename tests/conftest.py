"""Shared fixtures. Builders live in ``riskengine.testing`` (shipped with the library)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.stores.redis_server import PORTS_ENV, LocalRedisCluster
from riskengine.testing import offline_settings

# Every worker of a deployment shares one device-token key; the test processes (and the
# subprocesses they start) are one deployment. Tests of the missing-key error remove it.
TEST_TRUST_KEY = "test-only-device-token-key-0123456789abcdef"
os.environ.setdefault("RISKENGINE_TRUST_SECRET_KEYS", TEST_TRUST_KEY)

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the clone; found from mutmut's copy (mutants/) and from a worktree too
MAXMIND_TEST = next((d / "shared" / "data" / "maxmind-test" for d in REPO.parents
                     if (d / "shared" / "data" / "maxmind-test").is_dir()),
                    REPO.parent / "shared" / "data" / "maxmind-test")


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


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test``), each worker takes its servers' loopback ports from
    its own range, below the kernel's ephemeral ports: two workers never pick the same one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, …
    if worker.startswith("gw") and worker[2:].isdigit():
        low = 12_000 + 2_000 * int(worker[2:])
        os.environ[PORTS_ENV] = f"{low}-{low + 1_999}"


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


# ---------------------------------------------------------------- object storage (moto server)
@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto in server mode) on the loopback address, for the session;
    the AWS environment points at it while it runs."""
    import logging

    pytest.importorskip("moto", reason="moto[server] (extra [dev]) runs the object-storage tests")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_EC2_METADATA_DISABLED")
_buckets = iter(range(1_000_000))


@pytest.fixture
def s3_root(s3_endpoint: str) -> str:
    """``s3://<a new bucket>/audit`` on the test server."""
    import pyarrow.fs as pafs

    bucket = f"riskengine-test-{os.getpid()}-{next(_buckets)}"
    fs = pafs.S3FileSystem(endpoint_override=s3_endpoint.split("://")[1], scheme="http", region="us-east-1",
                           allow_bucket_creation=True)
    fs.create_dir(bucket)
    return f"s3://{bucket}/audit"
