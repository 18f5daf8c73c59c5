"""Faults: the profile store dies or hangs, GeoIP files are missing or corrupt, the audit disk
fills up or cannot be written, a process is killed mid-flush. The auth flow always gets a
decision, no exception escapes, and every loss is counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.decision import Decision
from riskengine.core.stores.redis_server import LocalRedisServer
from riskengine.testing import LONDON, PARIS, T0, establish, make_attempt, offline_settings

REPO = Path(__file__).resolve().parents[2]
MAXMIND_TEST = REPO.parent / "shared" / "data" / "maxmind-test"
GEO_REASONS = {"GEOIP_UNAVAILABLE", "GEO_UNKNOWN"}


def _is_fail_mode(d: Decision) -> bool:
    return d.action == "challenge" and d.reason_codes == ("ENGINE_DEGRADED",) and d.factor is not None


# -- the profile store goes away ------------------------------------------------------------
def test_redis_killed_mid_run_fails_safe_and_recovers(dedicated_redis: LocalRedisServer) -> None:
    sink = MemorySink()
    engine = Engine(offline_settings(store={"url": dedicated_redis.url}), sink=sink)
    last = establish(engine, "alice", days=5)
    parked = engine.score(make_attempt("alice", last + timedelta(hours=1), PARIS))
    assert parked.action == "challenge"

    dedicated_redis.kill()
    ts = last + timedelta(days=1)
    for i in range(20):
        started = time.perf_counter()
        d = engine.score(make_attempt("alice", ts + timedelta(minutes=i)))
        assert time.perf_counter() - started < 0.5  # a dead store never blocks the auth thread
        assert _is_fail_mode(d), d
    assert engine.record_failure("alice", "203.0.113.9", ts) == 0  # counted as a store error
    engine.record_outcome(parked.decision_id, "verified", timestamp=ts)  # logged, not raised
    health = engine.health()
    assert health["degraded"] == 20 and health["store_errors"] >= 2

    dedicated_redis.start()  # same port: the pooled connections must heal by themselves
    back = engine.score(make_attempt("alice", ts + timedelta(hours=1)))
    assert not back.degraded
    # no persistence on this server: the profile is gone, so the user is in cold start again
    assert "COLD_START" in back.reason_codes
    assert engine.score(make_attempt("alice", ts + timedelta(hours=2))).action == "allow"
    engine.close()
    rows = sink.rows("decisions")
    assert sum(r["degraded"] for r in rows) == 20  # fail-mode decisions are audited as such
    assert len(rows) == 5 + 1 + 20 + 2


def test_redis_dying_under_concurrent_load(dedicated_redis: LocalRedisServer) -> None:
    """Threads keep scoring through a crash and a restart: every call returns a decision,
    degraded ones are the fail mode, and the audit log holds every one of them."""
    sink = MemorySink()
    engine = Engine(offline_settings(store={"url": dedicated_redis.url}), sink=sink)
    stop = threading.Event()
    errors: list[BaseException] = []
    decisions: list[Decision] = []
    lock = threading.Lock()

    def hammer(t: int) -> None:
        i = 0
        try:
            while not stop.is_set():
                d = engine.score(make_attempt(f"u{t}-{i % 50}", T0 + timedelta(minutes=i)))
                assert d.action == "allow" or _is_fail_mode(d), d
                with lock:
                    decisions.append(d)
                i += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    time.sleep(0.3)
    dedicated_redis.kill()
    time.sleep(0.3)
    dedicated_redis.start()
    time.sleep(0.3)
    stop.set()
    for th in threads:
        th.join(30)
    engine.close()
    assert not errors, errors[0]
    degraded = sum(d.degraded for d in decisions)
    assert 0 < degraded < len(decisions)
    assert not decisions[-1].degraded  # recovered
    assert len(sink.rows("decisions")) == len(decisions)


def test_redis_hung_times_out_fast(dedicated_redis: LocalRedisServer) -> None:
    """SIGSTOP: the server accepts nothing and answers nothing. Socket timeouts bound the wait."""
    engine = Engine(offline_settings(store={"url": dedicated_redis.url + "?socket_timeout=0.05"}),
                    sink=MemorySink())
    engine.score(make_attempt("alice"))
    assert dedicated_redis.pid is not None
    os.kill(dedicated_redis.pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        d = engine.score(make_attempt("alice", T0 + timedelta(hours=1)))
        elapsed = time.perf_counter() - started
    finally:
        os.kill(dedicated_redis.pid, signal.SIGCONT)
    assert _is_fail_mode(d)
    assert elapsed < 0.5
    time.sleep(0.05)
    assert not engine.score(make_attempt("alice", T0 + timedelta(hours=2))).degraded
    engine.close()


# -- GeoIP databases missing or corrupt --------------------------------------------------------
BROKEN_GEOIP = [
    "GeoIP2-City-Test-Broken-Double-Format.mmdb",
    "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
    "MaxMind-DB-test-broken-pointers-24.mmdb",
    "MaxMind-DB-test-broken-search-tree-24.mmdb",
]


def _broken_geoip_path(kind: str, tmp_path: Path) -> Path:
    if kind == "missing":
        return tmp_path / "nowhere" / "GeoLite2-City.mmdb"
    if kind == "garbage":
        path = tmp_path / "garbage.mmdb"
        path.write_bytes(os.urandom(4096))
        return path
    if kind == "empty":
        path = tmp_path / "empty.mmdb"
        path.write_bytes(b"")
        return path
    if kind == "directory":
        return tmp_path
    path = MAXMIND_TEST / kind
    if not path.exists():
        pytest.skip(f"MaxMind test database {kind} not found: expected ../shared/data/maxmind-test")
    return path


@pytest.mark.parametrize("kind", ["missing", "garbage", "empty", "directory", *BROKEN_GEOIP])
def test_broken_geoip_database_still_scores(kind: str, tmp_path: Path) -> None:
    path = _broken_geoip_path(kind, tmp_path)
    sink = MemorySink()
    with Engine(offline_settings(geo={"city_db": str(path)}), sink=sink) as engine:
        for i, ip in enumerate(["81.2.69.160", "2001:218::1", "::ffff:81.2.69.160", "1.1.1.1",
                                "89.160.20.112", "fe80::1"]):
            d = engine.score({"user_id": "alice", "ip": ip, "timestamp": T0 + timedelta(hours=i),
                              "user_agent": "Mozilla/5.0"})
            assert d.action in ("allow", "challenge", "deny")
            assert 0.0 <= d.risk <= 1.0
        first = sink.rows("decisions")[0]
        # the known-good address of the City test database resolves nowhere here: said so
        assert GEO_REASONS & set(first["reasons"]), first["reasons"]
        if kind in ("missing", "garbage", "empty", "directory", "GeoIP2-City-Test-Invalid-Node-Count.mmdb"):
            assert engine.health()["geoip_problems"]  # unusable at start: on the status page


# -- the audit log cannot be written ------------------------------------------------------------
def _score_many(engine: Engine, n: int) -> None:
    for i in range(n):
        d = engine.score(make_attempt(f"user{i % 97}", T0 + timedelta(seconds=i), LONDON,
                                      ua=f"Mozilla/5.0 (load {i}) padding " + "x" * 200))
        assert d.action in ("allow", "challenge", "deny")


def test_unwritable_audit_root_counts_every_lost_event(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the audit root's parent should be")
    root = blocker / "audit"  # mkdir fails even for root: a file is in the way
    settings = offline_settings(audit={"root": str(root), "key": "k" * 32, "flush_seconds": 0.05})
    with Engine(settings) as engine:
        _score_many(engine, 500)
        engine.sink.flush()
        health = engine.health()
    assert health["audit_dropped"] == 500
    assert health["scored"] == 500
    assert engine.health()["audit_dropped"] == 500  # after close: nothing more, nothing less
    # without a configured key the engine would keep one in the root: it cannot, so it still
    # starts and scores, and says why (naming the path) in its health report
    with Engine(offline_settings(audit={"root": str(root)})) as keyless:
        _score_many(keyless, 10)
        problems = keyless.health()["audit_problems"]
        assert keyless.health()["scored"] == 10
    assert problems and "not-a-folder" in problems[0]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> object:
    mount = tmp_path / "tiny"
    mount.mkdir()
    if sys.platform != "linux":
        pytest.skip("tmpfs mounts are a Linux feature")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs here (needs root/CAP_SYS_ADMIN): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_audit_disk_keeps_scoring_and_counts_the_loss(tiny_disk: Path) -> None:
    root = tiny_disk / "audit"
    n = 4000
    engine = Engine(offline_settings(audit={"root": str(root), "flush_seconds": 0.05,
                                            "flush_rows": 250}))
    _score_many(engine, n)
    engine.close()
    health = engine.health()
    sink = engine.sink
    written: int = sink.written  # type: ignore[attr-defined]
    assert health["audit_dropped"] > 0  # 4000 rows of 64 kB: the disk filled up
    assert written + health["audit_dropped"] == n  # every event is either stored or counted
    files = [str(p) for p in root.glob("decisions/**/*.parquet")]
    stored = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()[0] \
        if files else 0  # type: ignore[index]
    assert stored == written  # what was stored is whole and readable


# -- a writer killed mid-flush ----------------------------------------------------------------------
_KILLED_WRITER = """
import sys, time
from datetime import datetime, timedelta, timezone
from riskengine import Engine
from riskengine.testing import make_attempt, offline_settings
root = sys.argv[1]
engine = Engine(offline_settings(audit={"root": root, "flush_seconds": 0.01, "flush_rows": 300}))
t0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
i = 0
while True:
    engine.score(make_attempt(f"u{i % 500}", t0 + timedelta(seconds=i)))
    i += 1
    if i % 2000 == 0:
        print(i, flush=True)
"""


def test_writer_killed_mid_flush_leaves_only_whole_segments(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    for delay in (0.05, 0.2, 0.45):
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(root)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()  # scoring is under way
        before = len(list(root.glob("decisions/**/*.parquet")))
        deadline = time.monotonic() + 60
        while len(list(root.glob("decisions/**/*.parquet"))) == before and time.monotonic() < deadline:
            time.sleep(0.05)  # the flusher has started writing (its first flush warms pyarrow up)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)  # reaps it and closes the pipes
    segments = sorted(root.glob("decisions/**/*.parquet"))
    assert segments
    total = 0
    for path in segments:
        total += pq.read_metadata(path).num_rows  # each visible segment is a whole Parquet file
    files = [str(p) for p in segments]
    assert duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()[0] == total  # type: ignore[index]
    leftovers = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".parquet"
                 and p.name != "pseudonym.key"]
    assert all(p.name.startswith(".") for p in leftovers), leftovers  # half-written = hidden temp
