"""The stores' bounds: parked challenges nobody finished, failure counters out of the window."""

from __future__ import annotations

from pathlib import Path

from riskengine.core.stores.memory import MemoryStore
from riskengine.core.stores.sqlite import SqliteStore

T = 1_772_442_000.0


def test_full_pending_map_drops_the_earliest_expiring_quarter_and_keeps_the_rest() -> None:
    store = MemoryStore(max_pending=100)
    for i in range(100):
        store.put_pending(f"d{i}", b"ctx", expires_at=T + 600 + i)
    store.put_pending("newest", b"ctx", expires_at=T + 1000)  # the 101st: trims first
    assert len(store._pending) == 76  # 75 kept + the new one
    assert store.pop_pending("d0", now=T) is None and store.pop_pending("d24", now=T) is None
    assert store.pop_pending("d25", now=T) == b"ctx" and store.pop_pending("d99", now=T) == b"ctx"
    assert store.pop_pending("newest", now=T) == b"ctx"


def test_trimming_is_amortised_not_once_per_challenge() -> None:
    store = MemoryStore(max_pending=100)
    trims = 0
    original = store._trim

    def counting(newest: float) -> None:
        nonlocal trims
        trims += 1
        original(newest)

    store._trim = counting  # type: ignore[method-assign]
    for i in range(1_000):
        store.put_pending(f"d{i}", b"ctx", expires_at=T + i)
    # trims before challenges 100, 125, …, 975: one per 25 new challenges, 36 in all (the
    # old rule rebuilt the map on every challenge once it was full: 900 times here)
    assert trims == 36
    assert len(store._pending) <= 100


def test_contexts_a_day_past_expiry_go_first_even_when_they_were_parked_last() -> None:
    store = MemoryStore(max_pending=8)
    for i in range(4):
        store.put_pending(f"live{i}", b"ctx", expires_at=T + 600)
    for i in range(4):  # parked late, but with an expiry far in the past (a replayed clock)
        store.put_pending(f"stale{i}", b"ctx", expires_at=T - 2 * 86_400)
    store.put_pending("new", b"ctx", expires_at=T + 600)
    assert sorted(store._pending) == ["live0", "live1", "live2", "live3", "new"]


def test_failure_counters_of_keys_out_of_the_window_are_forgotten() -> None:
    store = MemoryStore(failure_window_s=1800.0)
    store.sweep_floor = store._sweep_at = 200
    for i in range(99):  # a stuffing wave: one failure from each of 99 addresses, for 99 users
        store.add_failure(f"user{i}", f"198.51.100.{i}", T + i)
    assert len(store._ips.events) == 99
    later = T + 7200  # two hours on: the wave is out of the window
    assert store.add_failure("alice", "203.0.113.9", later) == 1  # 200 keys now: sweeps
    assert sorted(store._ips.events) == ["203.0.113.9"] and sorted(store._users.events) == ["alice"]
    assert store._sweep_at == 200  # the floor: twice the 2 keys left is less
    snap = store.snapshot("alice", "203.0.113.9", since=later - 1800)
    assert (snap.user_failures, snap.ip_failures) == (1, 1)
    assert store.snapshot("user5", "198.51.100.5", since=T).user_failures == 0  # forgotten, as expired


def test_sqlite_tables_past_their_bound_lose_the_oldest_rows_first(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "bounds.db"))
    store.max_rows = 100
    try:
        for i in range(1_200):  # the size is checked every 1,000th write
            store.put_pending(f"d{i}", b"ctx", expires_at=T + i)
        conn = store._conn()
        assert conn.execute("SELECT count(*) FROM pending").fetchone()[0] == 75 + 200
        assert store.pop_pending("d924", now=T) is None  # the 925 earliest-expiring went
        assert store.pop_pending("d925", now=T) == b"ctx" and store.pop_pending("d1199", now=T) == b"ctx"
    finally:
        store.close()


def test_sqlite_never_drops_a_live_failure_past_its_bound(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "failures.db"), failure_window_s=1800.0)
    store.max_rows = 100
    try:
        store.add_failure("victim", "203.0.113.9", T)
        for i in range(1_199):  # a wave inside the window, far past the bound
            store.add_failure(f"bot{i}", f"198.51.100.{i % 250}", T + 1 + i / 10)
        snap = store.snapshot("victim", "203.0.113.9", since=T - 1)
        assert snap.user_failures == 1  # the oldest row, still in the window: kept
        for i in range(1_000):  # two hours later: the wave is stale and goes at the next check
            store.add_failure(f"late{i}", "192.0.2.1", T + 7_200 + i / 10)
        rows = store._conn().execute("SELECT count(*) FROM failures").fetchone()[0]
        assert rows == 2 * 1_000  # the late failures (user + address rows), nothing stale
    finally:
        store.close()
