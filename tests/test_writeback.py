"""Write-behind: one store round trip on the auth thread, nothing lost, fork-safe."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from riskengine import Engine
from riskengine.audit.base import NullSink
from riskengine.core.profile import UserProfile
from riskengine.core.stores.base import Snapshot, Updater
from riskengine.core.stores.redis_server import LocalRedisServer
from riskengine.core.stores.sqlite import SqliteStore
from riskengine.core.typing import ProfileStore
from riskengine.testing import FIREFOX_MAC, T0, make_attempt, offline_settings


class ThreadCountingStore:
    """Delegates to a real store and records which thread made each call."""

    def __init__(self, inner: ProfileStore) -> None:
        self.inner = inner
        self.calls: Counter[tuple[str, int]] = Counter()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[(name, threading.get_ident())] += 1
            return target(*args, **kwargs)

        return call

    def snapshot(self, user_id: str, ip: str, since: float, **windows: Any) -> Snapshot:
        self.calls[("snapshot", threading.get_ident())] += 1
        return self.inner.snapshot(user_id, ip, since, **windows)

    def update(self, user_id: str, fn: Updater) -> UserProfile | None:
        self.calls[("update", threading.get_ident())] += 1
        return self.inner.update(user_id, fn)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "p.db"))
    yield store
    store.close()


def test_allowed_login_costs_the_auth_thread_one_store_call(sqlite_store: SqliteStore) -> None:
    counting = ThreadCountingStore(sqlite_store)
    settings = offline_settings(store={"write_behind": True})
    with Engine(settings, store=counting, sink=NullSink()) as e:  # type: ignore[arg-type]
        for day in range(5):
            e.score(make_attempt(ts=T0 + timedelta(days=day)))
            e.flush()
        me = threading.get_ident()
        # the population prior is read at most once per 2 s (users with no country history) and
        # written in batches by flush(): neither is a per-login round trip
        on_auth_thread = {name: n for (name, tid), n in counting.calls.items()
                          if tid == me and not name.startswith("population")}
        elsewhere = {name: n for (name, tid), n in counting.calls.items() if tid != me}
        assert counting.calls[("population", me)] <= 1
    # the step-up budget merges this worker's sketch with the store's once per refresh period
    # of event time (budget_refresh_seconds): these logins are a day apart, so once each
    budget_merges = on_auth_thread.pop("budget_merge", 0)
    assert budget_merges == 5
    # the store's history start (DORMANT_ACCOUNT) is read only for a login on an account with
    # nothing on record (here the first), at most once per HISTORY_REFRESH_S
    assert on_auth_thread.pop("history_start", 0) == 1
    assert on_auth_thread == {"snapshot": 5}
    assert elsewhere == {"update": 5}
    assert sqlite_store.get("alice") is not None and sqlite_store.get("alice").logins == 5  # type: ignore[union-attr]


def test_write_behind_decides_like_write_through_when_lessons_have_landed(sqlite_store: SqliteStore,
                                                                           tmp_path: Path) -> None:
    def run(engine: Engine) -> list[tuple[str, tuple[str, ...]]]:
        out = []
        for day in range(12):
            ua = FIREFOX_MAC if day in (6, 9) else None
            attempt = make_attempt(ts=T0 + timedelta(days=day), **({"ua": ua} if ua else {}))
            d = engine.score(attempt)
            engine.flush()
            out.append((d.action, d.reason_codes))
        return out

    with Engine(offline_settings(store={"write_behind": True}), store=sqlite_store, sink=NullSink()) as behind:
        a = run(behind)
    with Engine(offline_settings(store={"write_behind": False}),
                store=SqliteStore(str(tmp_path / "q.db")), sink=NullSink()) as through:
        b = run(through)
    assert a == b
    assert ("challenge", ("NEW_DEVICE",)) in a


def test_close_applies_everything_queued(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    settings = offline_settings(store={"url": f"sqlite:///{db}", "write_behind": True})
    with Engine(settings, sink=NullSink()) as e:
        for i in range(300):
            e.score(make_attempt(user_id=f"u{i % 30}", ts=T0 + timedelta(minutes=i)))
    reopened = SqliteStore(str(db))
    assert sum(reopened.get(f"u{i}").logins for i in range(30)) == 300  # type: ignore[union-attr]
    reopened.close()


def _child(out: Any) -> None:
    engine = _inherited["engine"]  # built in the parent, inherited through fork
    for i in range(20):
        engine.score(make_attempt(user_id=f"child-{os.getpid()}", ts=T0 + timedelta(minutes=i)))
    engine.flush()
    out.put(engine.store.get(f"child-{os.getpid()}").logins)  # type: ignore[union-attr]


_inherited: dict[str, Engine] = {}


def test_forked_worker_gets_its_own_writer(tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    settings = offline_settings(store={"url": f"sqlite:///{db}", "write_behind": True})
    engine = Engine(settings, sink=NullSink())
    engine.score(make_attempt(user_id="parent"))  # the parent's writer thread exists before the fork
    _inherited["engine"] = engine
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_child, args=(out,))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert out.get(timeout=5) == 20
    engine.close()


def test_redis_store_uses_write_behind_by_default() -> None:
    if not LocalRedisServer.available():
        if os.environ.get("CI") == "true":  # .ci/run exports CI=true
            pytest.fail("redis-server not installed: run scripts/system-deps.sh")
        pytest.skip("redis-server not installed")
    with LocalRedisServer() as server:
        settings = offline_settings(store={"url": server.url})
        with Engine(settings, sink=NullSink()) as e:
            assert e._writer is not None
            for day in range(3):
                e.score(make_attempt(user_id="r", ts=T0 + timedelta(days=day)))
            e.flush()
            assert e.store.get("r").logins == 3  # type: ignore[union-attr]
    assert Engine(offline_settings(), sink=NullSink())._writer is None  # memory: write-through


class SlowWritesStore(ThreadCountingStore):
    """A real store whose writes take 30 ms: lessons are still queued when the next login comes."""

    def update(self, user_id: str, fn: Updater) -> UserProfile | None:
        import time

        time.sleep(0.03)
        return self.inner.update(user_id, fn)


def test_reads_see_this_process_lessons_while_the_writer_lags(tmp_path: Path) -> None:
    def run(engine: Engine) -> list[tuple[str, tuple[str, ...]]]:
        out = []
        for i in range(8):
            ua = FIREFOX_MAC if i == 5 else None
            d = engine.score(make_attempt(ts=T0 + timedelta(hours=i), **({"ua": ua} if ua else {})))
            out.append((d.action, d.reason_codes))
            if d.action == "challenge":
                engine.record_outcome(d.decision_id, "verified", timestamp=T0 + timedelta(hours=i, minutes=1))
        return out

    slow = SlowWritesStore(SqliteStore(str(tmp_path / "slow.db")))
    with Engine(offline_settings(store={"write_behind": True}), store=slow, sink=NullSink()) as behind:  # type: ignore[arg-type]
        lagging = run(behind)
        assert behind._writer is not None and behind._writer.pending  # the writer really lagged
    with Engine(offline_settings(), store=SqliteStore(str(tmp_path / "fast.db")), sink=NullSink()) as through:
        assert lagging == run(through)


def test_support_reset_is_not_undone_by_a_queued_lesson(tmp_path: Path) -> None:
    slow = SlowWritesStore(SqliteStore(str(tmp_path / "slow.db")))
    with Engine(offline_settings(store={"write_behind": True}), store=slow, sink=NullSink()) as e:  # type: ignore[arg-type]
        for i in range(3):
            e.score(make_attempt(ts=T0 + timedelta(hours=i)))
        assert e._writer is not None and e._writer.pending  # lessons still queued
        e.reset_user("alice", actor="support-1", reason="locked out")
        e.flush()
        kept = slow.inner.get("alice")
        assert kept is not None and kept.logins == 0 and kept.reset_at  # erased, marked reset
