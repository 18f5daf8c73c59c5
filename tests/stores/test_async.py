"""The async twins of the store calls (``asnapshot``, ``aupdate``, …) on every backend.

Redis runs them over ``redis.asyncio`` against the real server; memory and sqlite offload the
sync calls to a thread. What is pinned: the async path returns exactly what the sync path
returns for the same sequence of calls, read-modify-writes from many concurrent tasks on one
loop lose nothing, a parked challenge is handed out once, and Redis's learn-after-snapshot is
still one round trip when the snapshot was an ``asnapshot`` of the same task.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from riskengine.core.profile import UserProfile
from riskengine.core.stores import ProfileStore, StoreError, open_store
from riskengine.core.stores.base import AsyncProfileStore
from riskengine.core.stores.redis import RedisStore
from riskengine.core.stores.redis_server import LocalRedisServer, free_port

from .conftest import StoreFactory

T = 1_772_442_000.0  # 2026-03-02 09:00 UTC
OTP_WINDOW, SESSION_WINDOW = 3600.0, 1800.0


def bump(p: UserProfile | None) -> UserProfile:
    base = p if p is not None else UserProfile(created=int(T))
    return base._replace(logins=base.logins + 1)


def learned(p: UserProfile | None) -> UserProfile:
    base = p if p is not None else UserProfile(created=int(T))
    return base.learned(now=int(T) + base.logins * 3600, device_key=f"{base.logins % 3:012x}", country="GB",
                        region="England", asn=64_500, latitude=51.5, longitude=-0.12,
                        local_hour=9 + base.logins % 5)


def run(store: ProfileStore, body: Callable[[AsyncProfileStore], Awaitable[Any]]) -> Any:
    """Run ``body(store)`` on a fresh event loop, then release that loop's async client."""
    assert isinstance(store, AsyncProfileStore)

    async def main() -> Any:
        try:
            return await body(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


def independent_store(backend: StoreFactory, tmp_path: Path, name: str) -> ProfileStore:
    """A second store of the backend that shares no data with ``backend``'s."""
    if backend.backend == "memory":
        return open_store("memory://")
    if backend.backend == "sqlite":
        return open_store(f"sqlite:///{tmp_path / f'{name}.db'}", busy_timeout_s=5.0)
    return open_store(backend.url.split("?")[0] + f"?prefix=t{uuid.uuid4().hex[:12]}:")


# One scripted session of store calls, written once and run through both paths. Every call's
# result is recorded; the sync and async records must be identical.
Step = tuple[str, tuple[Any, ...], dict[str, Any]]
SCRIPT: list[Step] = [
    ("snapshot", ("alice", "203.0.113.9", T - 1800), {}),
    ("update", ("alice", learned), {}),
    ("snapshot", ("alice", "203.0.113.9", T - 1800), {}),
    ("update", ("alice", learned), {}),
    ("update", ("alice", learned), {}),
    ("add_failure", ("alice", "203.0.113.9", T), {}),
    ("add_failure", ("alice", "203.0.113.9", T + 1), {}),
    ("add_failure", ("bob", "203.0.113.9", T + 2), {}),
    ("add_failure", ("alice", "198.51.100.7", T + 3000), {}),  # the first two have left the window
    ("add_otp_failures", ("alice", "s1", 3, T + 3010),
     {"otp_since": T + 3010 - OTP_WINDOW, "session_since": T + 3010 - SESSION_WINDOW}),
    ("add_otp_failures", ("alice", "s2", 2, T + 3020),
     {"otp_since": T + 3020 - OTP_WINDOW, "session_since": T + 3020 - SESSION_WINDOW}),
    ("snapshot", ("alice", "203.0.113.9", T + 3030 - 1800),
     {"session": "s1", "otp_since": T + 3030 - OTP_WINDOW, "session_since": T + 3030 - SESSION_WINDOW}),
    ("reset_failures", ("alice",), {}),
    ("snapshot", ("alice", "203.0.113.9", T - 1800), {}),
    ("population_add", ("GB", 2.5), {}),
    ("population_add", ("FR", 1.0), {}),
    ("population_add", ("GB", 0.25), {}),
    ("population", (), {}),
    ("history_start", (T,), {}),
    ("history_start", (T + 5,), {}),  # set once: the first call's time
    ("put_pending", ("d1", b"ctx-1", T + 600), {"user_id": "alice", "max_per_user": 2}),
    ("put_pending", ("d2", b"ctx-2", T + 600), {"user_id": "alice", "max_per_user": 2}),
    ("put_pending", ("d3", b"ctx-3", T + 600), {"user_id": "alice", "max_per_user": 2}),  # evicts d1
    ("put_pending", ("d4", b"ctx-4", T + 10), {}),
    ("pop_pending", ("d1", T), {}),
    ("pop_pending", ("d2", T), {}),
    ("pop_pending", ("d2", T), {}),  # one shot
    ("pop_pending", ("d3", T), {}),
    ("pop_pending", ("d4", T + 11), {}),  # expired by the time passed in
    ("put_pending", ("d5", b"ctx-5", T + 600), {"user_id": "alice"}),
    ("peek_pending", ("d5", T), {}),
    ("peek_pending", ("d5", T), {}),  # a peek leaves it in place
    ("peek_pending", ("d5", T + 601), {}),  # expired by the time passed in
    ("get", ("alice",), {}),
    ("add_send", ("alice", "GB:+447400", T), {"prefix_since": T - 3600, "ratio_since": T - 86400,
                                              "user_since": T - 86400}),
    ("add_send", ("bob", "GB:+447400", T + 5), {"prefix_since": T + 5 - 3600, "ratio_since": T + 5 - 86400,
                                                "user_since": T + 5 - 86400}),
    ("link_send", ("d5", "GB:+447400", T + 600), {}),
    ("verify_send", ("d5", T + 30), {}),
    ("verify_send", ("d5", T + 40), {}),  # consumed
    ("add_send", ("alice", "FR:+33612", T + 60), {"prefix_since": T + 60 - 3600, "ratio_since": T + 60 - 86400,
                                                  "user_since": T + 60 - 86400}),
    ("add_send", ("carol", "GB:+447400", T + 70), {"prefix_since": T + 70 - 3600,
                                                   "ratio_since": T + 70 - 86400, "user_since": T + 70 - 86400}),
    ("update", ("alice", lambda p: None), {}),  # fn returning None deletes
    ("snapshot", ("alice", "203.0.113.9", T - 1800), {}),
]


def test_the_script_covers_every_async_twin() -> None:
    twins = {name for name in vars(AsyncProfileStore) if name.startswith("a") and not name.startswith("_")}
    assert {"a" + name for name, _, _ in SCRIPT} | {"aclose"} == twins


def test_async_path_returns_exactly_what_the_sync_path_returns(backend: StoreFactory, tmp_path: Path) -> None:
    sync_store, async_store = backend.open(), independent_store(backend, tmp_path, "async")
    try:
        want = [getattr(sync_store, name)(*args, **kwargs) for name, args, kwargs in SCRIPT]

        async def body(store: AsyncProfileStore) -> list[Any]:
            return [await getattr(store, "a" + name)(*args, **kwargs) for name, args, kwargs in SCRIPT]

        got = run(async_store, body)
    finally:
        async_store.close()
    assert got == want
    # and the results are the ones the contract promises, not merely equal
    assert [r.user_failures for r in want if hasattr(r, "user_failures")] == [0, 0, 6, 0, 0]
    assert want[SCRIPT.index(next(s for s in SCRIPT if s[0] == "population"))] == {"GB": 2.75, "FR": 1.0}
    assert [r for (name, _, _), r in zip(SCRIPT, want, strict=True) if name == "history_start"] == [T, T]
    assert [r for (name, _, _), r in zip(SCRIPT, want, strict=True) if name == "pop_pending"] == [
        None, b"ctx-2", None, b"ctx-3", None]
    final = want[-1]
    assert final.profile is None and final.ip_failures == 3
    # the async writes are visible to the sync reads of the same store
    reopened = independent_store(backend, tmp_path, "async") if backend.backend == "sqlite" else None
    if reopened is not None:
        try:
            assert reopened.population() == {"GB": 2.75, "FR": 1.0}
        finally:
            reopened.close()


def test_concurrent_aupdates_on_one_loop_lose_nothing(store: ProfileStore) -> None:
    tasks_n = 200

    async def body(s: AsyncProfileStore) -> UserProfile | None:
        await asyncio.gather(*(s.aupdate("hot", bump) for _ in range(tasks_n)))
        return (await s.asnapshot("hot", "192.0.2.1", T)).profile

    final = run(store, body)
    assert final is not None and final.logins == tasks_n == store.get("hot").logins  # type: ignore[union-attr]


def test_snapshot_then_update_per_task_does_not_mix_users(store: ProfileStore) -> None:
    """Each task's learn-after-score writes its own user, even with every task interleaved."""
    users = [f"user{i}" for i in range(50)]
    for i, uid in enumerate(users):
        store.put(uid, UserProfile(created=int(T), logins=i))

    async def score_then_learn(s: AsyncProfileStore, uid: str) -> None:
        await s.asnapshot(uid, "192.0.2.1", T)
        await asyncio.sleep(0)  # let the other tasks snapshot in between
        await s.aupdate(uid, bump)

    async def body(s: AsyncProfileStore) -> None:
        await asyncio.gather(*(score_then_learn(s, uid) for uid in users))

    run(store, body)
    assert [store.get(uid).logins for uid in users] == [i + 1 for i in range(50)]  # type: ignore[union-attr]


def test_concurrent_apop_pending_hands_out_one_copy(store: ProfileStore) -> None:
    store.put_pending("d", b"context", T + 600)

    async def body(s: AsyncProfileStore) -> list[bytes | None]:
        return list(await asyncio.gather(*(s.apop_pending("d", T) for _ in range(20))))

    got = run(store, body)
    assert sorted(got, key=lambda x: x is None) == [b"context"] + [None] * 19


def test_async_and_sync_writers_together_lose_nothing(backend: StoreFactory) -> None:
    store = backend.open()
    other = backend.open()  # one sync store for the writer thread (not a client per update)

    async def body(s: AsyncProfileStore) -> None:
        writer = asyncio.to_thread(lambda: [other.update("hot", bump) for _ in range(100)])
        await asyncio.gather(writer, *(s.aupdate("hot", bump) for _ in range(100)))

    run(store, body)
    final = store.get("hot")
    assert final is not None and final.logins == 200


# -- redis: redis.asyncio end to end -----------------------------------------------------
def _redis(backend: StoreFactory) -> RedisStore:
    if backend.backend != "redis":
        pytest.skip("Redis-specific behaviour")
    store = backend.open()
    assert isinstance(store, RedisStore)
    return store


def test_redis_async_uses_redis_asyncio_and_one_round_trip_per_call(
        backend: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """asnapshot + aupdate is two EVALSHAs on the asyncio client, and none on the sync one."""
    store = _redis(backend)
    store.put("alice", UserProfile(created=int(T), logins=4))
    store.snapshot("warm-up", "192.0.2.1", T)  # load the scripts into the server's cache
    store.update("warm-up", bump)
    sync_sent: list[str] = []
    monkeypatch.setattr(store._redis, "execute_command",
                        lambda *a, **k: sync_sent.append(str(a[0])))  # any sync call is a failure

    async def body(s: AsyncProfileStore) -> tuple[list[str], UserProfile | None]:
        assert isinstance(s, RedisStore)
        client = s._aclient()[0]
        sent: list[str] = []
        real = client.execute_command

        async def counting(*args: Any, **options: Any) -> Any:
            sent.append(str(args[0]))
            return await real(*args, **options)

        monkeypatch.setattr(client, "execute_command", counting)
        await s.asnapshot("alice", "192.0.2.1", T)
        updated = await s.aupdate("alice", bump)  # compare-and-set against the snapshot's bytes
        await s.aupdate("alice", bump)  # no snapshot to reuse: read first
        return sent, updated

    sent, updated = run(store, body)
    assert sent == ["EVALSHA", "EVALSHA", "GET", "EVALSHA"]
    assert sync_sent == []
    assert updated == UserProfile(created=int(T), logins=5)
    monkeypatch.undo()
    assert store.get("alice") == UserProfile(created=int(T), logins=6)


def test_redis_one_store_serves_several_event_loops(backend: StoreFactory) -> None:
    store = _redis(backend)
    for n in (1, 2, 3):  # asyncio.run: a new loop each time, so a new asyncio client each time
        assert run(store, lambda s, at=T + n: s.aadd_failure("alice", "192.0.2.1", at)) == n


def test_redis_async_survives_a_concurrent_writer_between_read_and_write(backend: StoreFactory) -> None:
    store = _redis(backend)
    store.put("alice", UserProfile(created=int(T), logins=10))

    async def body(s: AsyncProfileStore) -> UserProfile | None:
        await s.asnapshot("alice", "192.0.2.1", T)  # this task now holds logins=10 as its read
        backend.open().update("alice", bump)  # another worker wins the race: 11
        return await s.aupdate("alice", bump)

    assert run(store, body) == UserProfile(created=int(T), logins=12)


def test_redis_down_raises_store_error_fast_on_the_async_path() -> None:
    dead = RedisStore(f"redis://127.0.0.1:{free_port()}/0")

    async def body(s: AsyncProfileStore) -> None:
        for call in (lambda: s.asnapshot("u", "192.0.2.1", T), lambda: s.aadd_failure("u", "192.0.2.1", T),
                     lambda: s.aupdate("u", bump), lambda: s.apop_pending("d", T), lambda: s.apopulation()):
            with pytest.raises(StoreError, match="redis"):
                await call()

    try:
        run(dead, body)
    finally:
        dead.close()


def test_redis_bad_url_option_fails_at_construction(redis_server: LocalRedisServer) -> None:
    with pytest.raises(ValueError, match="redis"):
        RedisStore(f"{redis_server.url}?socket_timeout=soon")
    for bad in ("soon", "0", "-1"):
        with pytest.raises(ValueError, match="pool_wait_s"):
            RedisStore(f"{redis_server.url}?pool_wait_s={bad}")


def test_redis_async_pool_options(redis_server: LocalRedisServer) -> None:
    store = RedisStore(f"{redis_server.url}?max_connections=3&pool_wait_s=2.5&prefix=pool:")

    async def body(s: AsyncProfileStore) -> tuple[int, float, list[int]]:
        assert isinstance(s, RedisStore)
        pool = s._aclient().client.connection_pool
        counts = await asyncio.gather(*(s.aadd_failure("alice", "192.0.2.1", T + i) for i in range(20)))
        return pool.max_connections, pool.timeout, sorted(counts)

    try:
        # 20 concurrent calls through 3 connections: they queue, none fails
        assert run(store, body) == (3, 2.5, list(range(1, 21)))
    finally:
        store.close()
