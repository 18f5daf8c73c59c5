"""Redis Cluster specifics: hash tags keep one user's keys in one slot, URL forms, the sharded
population prior. (The behaviour every store shares runs in test_contract.py, parametrized.)"""

from __future__ import annotations

import uuid

import pytest
from redis.crc import key_slot

from riskengine.core.profile import UserProfile
from riskengine.core.stores import open_store
from riskengine.core.stores.redis_cluster import RedisClusterStore, parse_cluster_url
from riskengine.core.stores.redis_server import LocalRedisCluster

T = 1_772_442_000.0
# user ids that try to break the hash tag: braces, an empty-looking tag, surrogates, colons
AWKWARD_USERS = ["alice", "a}b", "{x}", "}", "{", "u:bob", "", "\udcff", "e:1:f"]


@pytest.fixture
def store(redis_cluster: LocalRedisCluster) -> RedisClusterStore:
    opened = open_store(f"{redis_cluster.url}?prefix=c{uuid.uuid4().hex[:10]}:")
    assert isinstance(opened, RedisClusterStore)
    return opened


def _user_keys(store: RedisClusterStore, user: str) -> list[bytes]:
    return [store._pkey(user), store._ukey(user), store._user_key("fo", user), store._user_key("fx", user),
            store._user_key("pu", user), store._session_key(user, "s}1{"), store._pending_key(user, "d1"),
            store._pending_key(user)]


@pytest.mark.parametrize("user", AWKWARD_USERS)
def test_every_key_of_one_user_is_in_one_slot(redis_cluster: LocalRedisCluster, user: str) -> None:
    store = open_store(f"{redis_cluster.url}?prefix=slot:")
    assert isinstance(store, RedisClusterStore)
    assert len({key_slot(k) for k in _user_keys(store, user)}) == 1


def test_users_and_addresses_spread_over_the_masters(store: RedisClusterStore) -> None:
    users = {key_slot(store._pkey(f"user-{i}")) for i in range(200)}
    addresses = {key_slot(store._ikey(f"203.0.113.{i}")) for i in range(200)}
    assert len(users) > 150 and len(addresses) > 150  # not one hot slot


@pytest.mark.parametrize("user", AWKWARD_USERS)
def test_every_operation_runs_on_the_cluster_for_awkward_ids(store: RedisClusterStore, user: str) -> None:
    """Each multi-key script on the real cluster: a CROSSSLOT (or redis-py's same-slot check)
    would be a StoreError here."""
    ip = "2001:db8::1"
    store.put(user, UserProfile(created=1, logins=3))
    assert store.add_failure(user, ip, T) == 1
    assert store.add_failure(user, ip, T + 1) == 2
    counts = store.add_otp_failures(user, "s}1{", 2, T, otp_since=T - 3600, session_since=T - 600)
    assert (counts.session, counts.user) == (2, 2)
    snap = store.snapshot(user, ip, T - 10, session="s}1{", otp_since=T - 3600, session_since=T - 600)
    assert snap.profile is not None and snap.profile.logins == 3
    # second-factor failures count as failed attempts of the user too (the contract)
    assert (snap.user_failures, snap.ip_failures, snap.otp_user_failures, snap.otp_session_failures) == (4, 2, 2, 2)
    assert store.update(user, lambda p: (p or UserProfile())._replace(logins=4)) is not None
    for n in range(3):
        store.put_pending(f"d{n}", b"payload%d" % n, T + 600, user_id=user, max_per_user=2)
    # the cap evicted the oldest, atomically in the user's slot (no user id: no index, no cap)
    assert store.pop_pending("d0", T) == (b"payload0" if user == "" else None)
    assert store.pop_pending("d2", T) == b"payload2"
    assert store.pop_pending("d2", T) is None
    store.reset_otp_failures(user)
    store.reset_failures(user)
    snap = store.snapshot(user, ip, T - 10, session="s}1{", otp_since=T - 3600, session_since=T - 600)
    assert (snap.user_failures, snap.ip_failures, snap.otp_user_failures, snap.otp_session_failures) == (0, 2, 0, 0)
    assert user in store.user_ids()
    store.delete(user)
    assert store.get(user) is None and user not in store.user_ids()


def test_population_is_sharded_and_merged_on_read(store: RedisClusterStore) -> None:
    for _ in range(200):
        store.population_add("FR", 0.5)
    store.population_add("DE", 2.0)
    assert store.population() == pytest.approx({"FR": 100.0, "DE": 2.0})
    raw = store._redis
    used = [k for k in store.sharded_keys("pop") if raw.hlen(k)]
    assert len(used) > 1  # the writes spread over the shards (8 by default)
    assert len({key_slot(k) for k in store.sharded_keys("pop")}) == store.population_shards


def test_async_population_and_pending_match_sync(store: RedisClusterStore) -> None:
    import asyncio

    async def main() -> tuple[dict[str, float], bytes | None]:
        try:
            await store.apopulation_add("NL", 1.5)
            await store.aput_pending("ad1", b"x", T + 60, user_id="bo}b", max_per_user=3)
            return await store.apopulation(), await store.apop_pending("ad1", T)
        finally:
            await store.aclose()

    assert asyncio.run(main()) == ({"NL": 1.5}, b"x")
    assert store.population() == {"NL": 1.5}


def test_store_cluster_flag_reads_a_redis_url_as_a_cluster(redis_cluster: LocalRedisCluster) -> None:
    first = redis_cluster.url.removeprefix("redis+cluster://").split(",")[0]
    store = open_store(f"redis://{first}/0?prefix=flag:", cluster=True)
    assert isinstance(store, RedisClusterStore)
    store.put("zed", UserProfile(created=1))
    # seeded with one node, it found the others: every slot answers
    assert all(store.get(f"user-{i}") is None for i in range(50)) and store.get("zed") is not None
    with pytest.raises(ValueError, match="cluster = true needs a redis"):
        open_store("sqlite:///x.db", cluster=True)


def test_cluster_url_forms() -> None:
    nodes, options, own = parse_cluster_url(
        "rediss+cluster://me:s%40cret@10.0.0.1:7000,[::1]:7001,redis-2?prefix=a:&socket_timeout=0.2")
    assert nodes == [("10.0.0.1", 7000), ("::1", 7001), ("redis-2", 6379)]
    assert options == {"ssl": True, "username": "me", "password": "s@cret", "socket_timeout": 0.2}
    assert own == {"prefix": "a:"}


@pytest.mark.parametrize(("url", "problem"), [
    ("redis+cluster://a:7000/2", "only database 0"),
    ("redis+cluster://a:port", "bad cluster node"),
    ("redis+cluster://a:7000?socket_timeout=soon", "not a number"),
    ("redis+cluster://a:7000?db=1", "unknown cluster store URL option 'db'"),
    ("redis+cluster://a:7000?population_shards=0", "population_shards"),
    ("redis+cluster://127.0.0.1:1?prefix={x}:", "braces"),
])
def test_bad_cluster_urls_fail_at_construction_naming_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        open_store(url)


def test_a_cluster_that_is_down_opens_and_fails_each_call_as_a_store_error() -> None:
    from riskengine.core.stores.base import StoreError
    from riskengine.core.stores.redis_server import free_port

    store = open_store(f"redis+cluster://127.0.0.1:{free_port()}")  # no node answers: still opens
    with pytest.raises(StoreError, match="redis"):
        store.get("x")
    with pytest.raises(StoreError, match="redis"):
        store.snapshot("x", "203.0.113.1", T)
    assert store.ping() is False
