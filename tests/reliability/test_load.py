"""Load: many threads (and processes) hammering one store and one audit root.

The oracle is a single-threaded run of the same per-user stories on a fresh store of the same
backend: concurrency must not change a single decision, raise, or lose an audit event.
(Same backend, because the backends may differ on one edge the stories contain: failures
arriving out of order by more than the window — redis prunes each user's and address's
failures relative to the one being added, the memory and sqlite stores only once their tables
are large.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.stores.redis_server import LocalRedisCluster, LocalRedisServer
from riskengine.testing import offline_settings

from .conftest import BACKENDS
from .scenario import counts, play

THREADS = 8
USERS_PER_THREAD = 20
EVENTS = 14
SCENARIO = Path(__file__).with_name("scenario.py")

Decisions = dict[int, list[tuple[str, float, tuple[str, ...], str | None]]]


def reference(users: range, url: str) -> tuple[Decisions, int]:
    """Decisions of a single-threaded run on a fresh store, and its challenge count."""
    sink = MemorySink()
    with Engine(offline_settings(store={"url": url}, policy={"target_stepup_rate": 0.0}), sink=sink) as engine:
        out = {i: play(engine, i, EVENTS) for i in users}
        health = engine.health()
    assert health["store_errors"] == health["degraded"] == 0, health  # a lost lesson would skew it
    return out, len(sink.rows("challenges"))


def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty store of this backend at each call."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'profiles-{uuid.uuid4().hex[:8]}.db'}"
    if backend == "redis-cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        return f"{cluster.url}?prefix=load{uuid.uuid4().hex[:10]}:&socket_timeout=2&socket_connect_timeout=2"
    server: LocalRedisServer = request.getfixturevalue("shared_redis")
    # consistency, not latency, is under test: a generous timeout so a CPU-starved CI box does
    # not turn into dropped lessons (the 100 ms default is for auth threads)
    return f"{server.url}?prefix=load{uuid.uuid4().hex[:10]}:&socket_timeout=2&socket_connect_timeout=2"


def audit_counts(root: Path) -> dict[str, int]:
    out = {}
    for table in ("decisions", "challenges", "failures"):
        files = [str(p) for p in (root / table).glob("**/*.parquet")]
        out[table] = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()[0] \
            if files else 0  # type: ignore[index]
    files = [str(p) for p in (root / "decisions").glob("**/*.parquet")]
    out["distinct_decision_ids"] = duckdb.connect().execute(
        "SELECT count(DISTINCT decision_id) FROM read_parquet(?)", [files]).fetchone()[0]  # type: ignore[index]
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_8_threads_decide_exactly_like_one(backend: str, tmp_path: Path,
                                           request: pytest.FixtureRequest) -> None:
    users = range(THREADS * USERS_PER_THREAD)
    expected, expected_challenges = reference(users, store_url(backend, tmp_path, request))
    root = tmp_path / "audit"
    # a fixed policy: the step-up budget couples users on purpose (its threshold comes from
    # everyone's recent logins), so only the per-user decisions are order-free
    settings = offline_settings(store={"url": store_url(backend, tmp_path, request)},
                                audit={"root": str(root), "flush_seconds": 0.2},
                                policy={"target_stepup_rate": 0.0})
    got: Decisions = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS, timeout=60)  # a thread that dies cannot hang the rest
    with Engine(settings) as engine:
        def worker(t: int) -> None:
            try:
                barrier.wait()
                # interleaved partitions: every thread is busy at every moment of the run
                for i in users[t::THREADS]:
                    got[i] = play(engine, i, EVENTS)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        health = engine.health()
    assert not errors, errors[0]
    assert got == expected
    assert health["degraded"] == 0 and health["store_errors"] == 0 and health["audit_dropped"] == 0
    want = counts(users, EVENTS)
    n_decisions = sum(len(v) for v in expected.values())
    assert n_decisions == want["decisions"]
    assert audit_counts(root) == {
        "decisions": n_decisions, "challenges": expected_challenges, "failures": want["failures"],
        "distinct_decision_ids": n_decisions}
    actions = {a for v in expected.values() for a, *_ in v}
    assert actions >= {"allow", "challenge"}  # the stories exercise more than the happy path


@pytest.mark.parametrize("backend", ["sqlite", "redis", "redis-cluster"])
def test_4_processes_share_one_store_and_one_audit_root(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Four engine processes (like gunicorn workers) on one store and one audit root: every
    decision is the single-threaded one and the audit log holds each event exactly once."""
    processes, per_process = 4, 12
    users = range(processes * per_process)
    expected, expected_challenges = reference(users, store_url(backend, tmp_path, request))
    root = tmp_path / "audit"
    settings: dict[str, Any] = {
        "geo": {"city_db": None, "asn_db": None},
        "store": {"url": store_url(backend, tmp_path, request)},
        "audit": {"root": str(root), "flush_seconds": 0.2},
    }
    procs = [subprocess.Popen(
        [sys.executable, str(SCENARIO), json.dumps(settings), str(p * per_process),
         str((p + 1) * per_process), str(EVENTS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(processes)]
    got: Decisions = {}
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        for line in out.splitlines():
            key, value = json.loads(line)
            if key == "health":
                assert value["degraded"] == value["store_errors"] == value["audit_dropped"] == 0
            else:
                got[int(key)] = [(a, r, tuple(c), f) for a, r, c, f in value]
    assert got == expected
    n_decisions = sum(len(v) for v in expected.values())
    assert audit_counts(root) == {
        "decisions": n_decisions, "challenges": expected_challenges,
        "failures": counts(users, EVENTS)["failures"], "distinct_decision_ids": n_decisions}
