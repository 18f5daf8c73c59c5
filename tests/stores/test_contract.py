"""ONE contract suite for every ProfileStore backend: memory, sqlite and redis (a real server).

What the engine relies on: a profile round-trips exactly; concurrent read-modify-writes of one
user (threads, and for the shared backends, processes) lose nothing; failure windows count by
the times passed in; a parked challenge is handed out once; ``snapshot`` is one consistent read.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from riskengine.core.profile import UserProfile
from riskengine.core.stores import ProfileStore, Snapshot, StoreError
from riskengine.core.stores.redis import RedisStore
from riskengine.core.stores.redis_server import free_port

from .conftest import StoreFactory

WINDOW = 1800.0  # the stores' default failure window (30 minutes)
T = 1_772_442_000.0  # 2026-03-02 09:00 UTC


def realistic_profile(devices: int = 8, places: int = 12) -> UserProfile:
    """A user at every bound: 8 devices, 12 countries/regions/ASNs, a full hour histogram,
    one trusted device and a token device — the largest profile the engine keeps."""
    p = UserProfile()
    countries = ["GB", "FR", "DE", "ES", "IT", "NL", "BE", "PT", "IE", "US", "CA", "JP"]
    for i in range(40):
        p = p.learned(
            now=int(T) + i * 86_400 + i * 3_600, device_key=f"{(i % devices) * 0x1f3a5c7e9b:012x}"[-12:],
            country=countries[i % places], region=f"Region-{i % places:02d} Metropolitan",
            asn=64_500 + i % places, latitude=51.5 + i / 100, longitude=-0.12 + i / 100,
            local_hour=i % 24, max_devices=devices, max_places=places)
    p = p.trusted(next(iter(p.devices)), int(T) + 30 * 86_400)
    # a token device (the longest device key) trusted after a verified challenge
    return p.trusted("t:" + "7f3a9c1e2b4d6f80" * 2, int(T) + 71 * 86_400, now=int(T) + 41 * 86_400)


def bump(p: UserProfile | None) -> UserProfile:
    base = p if p is not None else UserProfile(created=int(T))
    return base._replace(logins=base.logins + 1)


# -- profiles -------------------------------------------------------------------------
def test_get_put_update_delete_round_trip(store: ProfileStore) -> None:
    profile = realistic_profile()
    assert store.get("alice") is None
    store.put("alice", profile)
    assert store.get("alice") == profile
    assert store.get("bob") is None

    updated = store.update("alice", bump)
    assert updated is not None and updated.logins == profile.logins + 1
    assert store.get("alice") == updated

    created = store.update("carol", bump)
    assert created == UserProfile(created=int(T), logins=1) == store.get("carol")

    assert store.update("carol", lambda p: None) is None  # fn returning None deletes
    assert store.get("carol") is None

    store.delete("alice")
    assert store.get("alice") is None
    store.delete("nobody")  # deleting an unknown user is not an error


def test_user_ids_are_sorted_and_limited(store: ProfileStore) -> None:
    for uid in ["zed", "amy", "mo", "bea"]:
        store.put(uid, UserProfile(created=int(T), logins=1))
    assert store.user_ids() == ["amy", "bea", "mo", "zed"]
    assert store.user_ids(limit=2) == ["amy", "bea"]
    store.delete("bea")
    assert store.user_ids() == ["amy", "mo", "zed"]


def test_unusual_user_ids_round_trip(store: ProfileStore) -> None:
    """User ids are opaque strings: e-mail addresses, unicode, glob characters."""
    ids = ["a@example.com", "Zoë Ünïcode", "star*[?]\\", "with space", "x" * 256]
    for uid in ids:
        store.update(uid, bump)
    for uid in ids:
        got = store.get(uid)
        assert got is not None and got.logins == 1
    assert store.user_ids() == sorted(ids)


def test_update_is_atomic_under_8_threads(backend: StoreFactory) -> None:
    threads_n, per_thread = 8, 60
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n, timeout=60)  # a thread that dies cannot hang the rest

    def hammer() -> None:
        store = backend.open()
        try:
            barrier.wait()
            for _ in range(per_thread):
                store.update("hot", bump)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=hammer) for _ in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors
    final = backend.open().get("hot")
    assert final is not None and final.logins == threads_n * per_thread


_WORKER = """
import sys
from riskengine.core.profile import UserProfile
from riskengine.core.stores import open_store
store = open_store(sys.argv[1])
for _ in range(int(sys.argv[2])):
    store.update("shared", lambda p: (p or UserProfile())._replace(logins=(p.logins if p else 0) + 1))
    store.add_failure("shared", "203.0.113.9", 1772442000.0)
store.close()
"""


def test_update_is_atomic_across_2_processes(backend: StoreFactory) -> None:
    if backend.backend == "memory":
        pytest.skip("memory:// is one process by definition")
    per_process = 150
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, backend.url, str(per_process)],
                              stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = backend.open()
    final = store.get("shared")
    assert final is not None and final.logins == 2 * per_process
    snap = store.snapshot("shared", "203.0.113.9", T - 1)
    assert (snap.user_failures, snap.ip_failures) == (2 * per_process, 2 * per_process)


# -- failed passwords -----------------------------------------------------------------
def test_failures_count_within_the_window(store: ProfileStore) -> None:
    assert store.add_failure("alice", "203.0.113.9", T) == 1
    assert store.add_failure("alice", "203.0.113.9", T) == 2  # same instant still counts twice
    assert store.add_failure("alice", "198.51.100.7", T + 60) == 3
    assert store.add_failure("bob", "203.0.113.9", T + 120) == 1

    snap = store.snapshot("alice", "203.0.113.9", since=T - 1)
    assert (snap.user_failures, snap.ip_failures) == (3, 3)  # the IP saw alice twice and bob once
    snap = store.snapshot("alice", "203.0.113.9", since=T + 30)
    assert (snap.user_failures, snap.ip_failures) == (1, 1)
    snap = store.snapshot("nobody", "192.0.2.1", since=T - 1)
    assert (snap.user_failures, snap.ip_failures) == (0, 0)


def test_failures_expire_after_the_window(store: ProfileStore) -> None:
    store.add_failure("alice", "203.0.113.9", T)
    store.add_failure("alice", "203.0.113.9", T + 10)
    later = T + WINDOW + 5
    snap = store.snapshot("alice", "203.0.113.9", since=later - WINDOW)
    assert (snap.user_failures, snap.ip_failures) == (1, 1)  # T fell out, T+10 is still in
    # a failure past the window counts only itself and what is still inside
    assert store.add_failure("alice", "203.0.113.9", T + 2 * WINDOW) == 1
    snap = store.snapshot("alice", "203.0.113.9", since=T + WINDOW)
    assert (snap.user_failures, snap.ip_failures) == (1, 1)


def test_a_late_failure_is_counted_in_its_own_window(store: ProfileStore) -> None:
    # a worker whose clock runs behind reports a failure for T + 100 after one at T + 3000:
    # it counts its own window (both), and no later read counts it once that window is over
    assert store.add_failure("alice", "203.0.113.9", T + 3000) == 1
    assert store.add_failure("alice", "203.0.113.9", T + 100) == 2
    snap = store.snapshot("alice", "203.0.113.9", since=T + 3000 - WINDOW)
    assert (snap.user_failures, snap.ip_failures) == (1, 1)
    assert store.add_failure("alice", "203.0.113.9", T + 3100) == 2  # T + 100 is past its window


def test_reset_failures_clears_the_user_not_the_ip(store: ProfileStore) -> None:
    for i in range(4):
        store.add_failure("alice", "203.0.113.9", T + i)
    store.reset_failures("alice")
    snap = store.snapshot("alice", "203.0.113.9", since=T - 1)
    assert (snap.user_failures, snap.ip_failures) == (0, 4)
    assert store.add_failure("alice", "203.0.113.9", T + 10) == 1


def test_delete_forgets_profile_and_failures(store: ProfileStore) -> None:
    store.put("alice", realistic_profile())
    store.add_failure("alice", "203.0.113.9", T)
    store.delete("alice")
    snap = store.snapshot("alice", "203.0.113.9", since=T - 1)
    assert snap == Snapshot(None, 0, 1)


# -- pending challenges ----------------------------------------------------------------
def test_pending_pop_is_one_shot(store: ProfileStore) -> None:
    payload = b'{"u":"alice","t":1772442000.0}\x00\xff binary ok'
    store.put_pending("d1", payload, expires_at=T + 1800)
    assert store.pop_pending("d1", now=T + 10) == payload
    assert store.pop_pending("d1", now=T + 11) is None
    assert store.pop_pending("never-parked", now=T) is None


def test_pending_expires_by_the_time_passed_in(store: ProfileStore) -> None:
    store.put_pending("d2", b"ctx", expires_at=T + 1800)
    assert store.pop_pending("d2", now=T + 1801) is None
    assert store.pop_pending("d2", now=T + 10) is None  # an expired pop still consumed it
    store.put_pending("d3", b"ctx", expires_at=T + 1800)
    assert store.pop_pending("d3", now=T + 1800) == b"ctx"  # the boundary is still valid


def test_other_users_clocks_days_ahead_drop_nothing_live(store: ProfileStore) -> None:
    # threads replaying different users' histories run days apart: what they write must not
    # prune this user's parked challenge or failures (sqlite did, every 1,000th write)
    store.put_pending("mine", b"ctx", expires_at=T + 1800)
    store.add_failure("alice", "203.0.113.9", T)
    later = T + 10 * 86_400
    for i in range(1_100):
        store.put_pending(f"theirs{i}", b"ctx", expires_at=later + 1800)
        store.add_failure(f"user{i}", f"198.51.100.{i % 250}", later + i)
    assert store.pop_pending("mine", now=T + 60) == b"ctx"
    assert store.snapshot("alice", "203.0.113.9", since=T - 1).user_failures == 1


def test_pending_pop_races_hand_out_one_copy(backend: StoreFactory) -> None:
    """Two workers receiving the same outcome (a retried HTTP call): only one applies it."""
    store = backend.open()
    for i in range(50):
        store.put_pending(f"race{i}", b"ctx", expires_at=T + 60)
    got: list[bytes] = []
    lock = threading.Lock()

    def pop_all() -> None:
        mine = backend.open()
        for i in range(50):
            out = mine.pop_pending(f"race{i}", now=T)
            if out is not None:
                with lock:
                    got.append(out)

    workers = [threading.Thread(target=pop_all) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert len(got) == 50


# -- snapshot --------------------------------------------------------------------------
def test_snapshot_matches_the_individual_reads(store: ProfileStore) -> None:
    profile = realistic_profile()
    store.put("alice", profile)
    store.add_failure("alice", "203.0.113.9", T)
    snap = store.snapshot("alice", "203.0.113.9", since=T - 1)
    assert snap == Snapshot(profile, 1, 1)
    assert store.snapshot("nobody", "203.0.113.9", since=T - 1) == Snapshot(None, 0, 1)


def test_snapshot_is_consistent_while_another_thread_writes(backend: StoreFactory) -> None:
    """A reader never sees a torn or older-than-before profile while a writer updates it."""
    writer_store, reader_store = backend.open(), backend.open()
    writer_store.put("alice", UserProfile(created=int(T)))
    stop = threading.Event()
    seen: list[int] = []

    def write() -> None:
        for _ in range(300):
            writer_store.update("alice", bump)
        stop.set()

    w = threading.Thread(target=write)
    w.start()
    while not stop.is_set():
        snap = reader_store.snapshot("alice", "203.0.113.9", since=T)
        assert snap.profile is not None and snap.profile.created == int(T)
        seen.append(snap.profile.logins)
    w.join(30)
    assert seen == sorted(seen)  # monotonic: no stale read after a newer one
    final = reader_store.snapshot("alice", "203.0.113.9", since=T).profile
    assert final is not None and final.logins == 300


def test_realistic_full_profile_is_at_most_1_kb(store: ProfileStore) -> None:
    profile = realistic_profile()
    assert len(profile.devices) == 8 and len(profile.countries) == 12 and len(profile.asns) == 12
    raw = profile.to_bytes()
    assert len(raw) <= 1024, len(raw)
    store.put("alice", profile)
    assert store.get("alice") == UserProfile.from_bytes(raw)


# -- redis specifics --------------------------------------------------------------------
def _redis_only(backend: StoreFactory) -> RedisStore:
    if backend.backend != "redis":
        pytest.skip("Redis-specific behaviour")
    store = backend.open()
    assert isinstance(store, RedisStore)
    return store


def test_redis_ttls_implement_the_windows(backend: StoreFactory) -> None:
    store = _redis_only(backend)
    r = store._redis
    store.put("alice", realistic_profile())
    store.add_failure("alice", "203.0.113.9", T)
    store.put_pending("d1", b"ctx", T + 60)
    day = 86_400
    assert 399 * day < r.ttl(store._pkey("alice")) <= 400 * day
    assert WINDOW < r.ttl(store._ukey("alice")) <= WINDOW + 60
    assert WINDOW < r.ttl(store._ikey("203.0.113.9")) <= WINDOW + 60
    assert 0 < r.ttl(store._dkey("d1")) <= day
    r.expire(store._pkey("alice"), 5)
    store.update("alice", bump)  # a write refreshes the profile's TTL
    assert r.ttl(store._pkey("alice")) > 399 * day


def test_redis_update_after_snapshot_takes_one_round_trip(
        backend: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's allow path is snapshot + learn: the learn must not re-read the profile."""
    store = _redis_only(backend)
    store.put("alice", realistic_profile())
    # the server's script cache is shared by the session's tests: load the scripts here, or the
    # first EVALSHA of a test that runs before the others answers NOSCRIPT (+ SCRIPT LOAD)
    store.put("warm-up", realistic_profile())
    store.snapshot("warm-up", "203.0.113.9", T)
    store.update("warm-up", bump)
    sent: list[str] = []
    real = store._redis.execute_command

    def counting(*args: object, **options: object) -> object:
        sent.append(str(args[0]))
        return real(*args, **options)

    monkeypatch.setattr(store._redis, "execute_command", counting)
    store.snapshot("alice", "203.0.113.9", T)
    assert sent == ["EVALSHA"]  # GET + 2 ZCOUNT in one script
    store.update("alice", bump)
    assert sent == ["EVALSHA", "EVALSHA"]  # compare-and-set against the snapshot's bytes
    store.update("alice", bump)
    assert sent == ["EVALSHA", "EVALSHA", "GET", "EVALSHA"]  # no snapshot to reuse: read first
    got = store.get("alice")
    assert got is not None and got.logins == realistic_profile().logins + 2


def test_redis_update_survives_a_concurrent_writer_between_read_and_write(
        backend: StoreFactory) -> None:
    store = _redis_only(backend)
    other = backend.open()
    store.put("alice", UserProfile(created=int(T), logins=10))
    store.snapshot("alice", "203.0.113.9", T)  # store now holds logins=10 as its read
    other.update("alice", bump)  # another worker wins the race: 11
    assert store.update("alice", bump) == UserProfile(created=int(T), logins=12)


def test_redis_down_raises_store_error_fast() -> None:
    dead = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    started = time.perf_counter()
    for call in (lambda: dead.snapshot("u", "192.0.2.1", T), lambda: dead.get("u"),
                 lambda: dead.add_failure("u", "192.0.2.1", T), lambda: dead.update("u", bump),
                 lambda: dead.pop_pending("d", T)):
        with pytest.raises(StoreError, match="redis"):
            call()
    assert time.perf_counter() - started < 2.0
    assert not dead.ping()
    assert "127.0.0.1" not in repr(dead)


def test_redis_url_options(redis_server: object) -> None:
    from riskengine.core.stores.redis_server import LocalRedisServer

    assert isinstance(redis_server, LocalRedisServer)
    store = RedisStore(f"{redis_server.url}?socket_timeout=0.05&prefix=opt:&profile_ttl_days=2")
    assert store.prefix == "opt:"
    conn_kwargs = store._redis.connection_pool.connection_kwargs
    assert conn_kwargs["socket_timeout"] == 0.05
    store.put("alice", UserProfile(created=int(T)))
    assert 86_400 < store._redis.ttl(b"opt:p:alice") <= 2 * 86_400
    store.delete("alice")
    store.close()
    with pytest.raises(ValueError, match="redis"):
        RedisStore(f"{redis_server.url}?socket_timeout=soon")


# -- second factors, the population prior, the per-user pending cap (security issue #12) ----------
OTP_WINDOW = 3600.0
SESSION_WINDOW = 1800.0


def _otp(store: ProfileStore, user: str, session: str, n: int, at: float) -> tuple[int, int]:
    counts = store.add_otp_failures(user, session, n, at, otp_since=at - OTP_WINDOW,
                                    session_since=at - SESSION_WINDOW)
    return counts.session, counts.user


def test_second_factor_failures_count_per_session_and_per_user(store: ProfileStore) -> None:
    assert _otp(store, "alice", "s1", 3, T) == (3, 3)
    assert _otp(store, "alice", "s2", 2, T + 60) == (2, 5)  # a new session does not reset the user
    assert _otp(store, "alice", "s1", 1, T + 120) == (4, 6)
    assert _otp(store, "bob", "s1", 1, T + 120) == (1, 1)  # another user's session of the same name
    snap = store.snapshot("alice", "203.0.113.9", T + 120 - WINDOW, session="s1",
                          otp_since=T + 120 - OTP_WINDOW, session_since=T + 120 - SESSION_WINDOW)
    assert (snap.otp_session_failures, snap.otp_user_failures) == (4, 6)
    assert snap.user_failures == 6  # failed second factors count as the user's failures too
    # windows are the times passed in: an hour and a second later only the later ones remain
    late = T + 60 + OTP_WINDOW + 1
    snap = store.snapshot("alice", "", late - WINDOW, session="s1", otp_since=late - OTP_WINDOW,
                          session_since=late - SESSION_WINDOW)
    assert (snap.otp_session_failures, snap.otp_user_failures) == (0, 1)


def test_session_keys_do_not_collide(store: ProfileStore) -> None:
    assert _otp(store, "a:b", "c", 1, T) == (1, 1)
    assert _otp(store, "a", "b:c", 1, T) == (1, 1)


def test_reset_otp_failures_clears_every_session_of_the_user_only(store: ProfileStore) -> None:
    _otp(store, "alice", "s1", 3, T)
    _otp(store, "alice", "s2", 3, T)
    _otp(store, "alicia", "s1", 2, T)
    store.reset_otp_failures("alice")
    assert _otp(store, "alice", "s1", 0, T) == (0, 0)
    assert _otp(store, "alice", "s2", 0, T) == (0, 0)
    assert _otp(store, "alicia", "s1", 0, T) == (2, 2)


def test_second_factor_counting_is_atomic_under_8_threads(backend: StoreFactory) -> None:
    threads_n, per_thread = 8, 25
    seen: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n, timeout=60)

    def guess() -> None:
        store = backend.open()
        try:
            barrier.wait()
            for _ in range(per_thread):
                seen.append(_otp(store, "victim", f"session-{threading.get_ident()}", 1, T)[1])
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=guess) for _ in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors
    # every failure counted, and each caller saw a distinct running count: no read-then-write race
    assert sorted(seen) == list(range(1, threads_n * per_thread + 1))


def test_population_prior_accumulates_and_is_shared(backend: StoreFactory) -> None:
    a, b = backend.open(), backend.open()
    a.population_add("GB", 1.5)
    b.population_add("GB", 2.25)
    b.population_add("FR", 0.5)
    assert a.population() == {"GB": 3.75, "FR": 0.5}


def test_history_start_is_set_once_by_the_first_caller_and_shared(backend: StoreFactory) -> None:
    a, b = backend.open(), backend.open()
    assert a.history_start(T) == T
    # a later worker, a later time, even an earlier one: the first caller's time stands
    assert b.history_start(T + 86_400) == T
    assert a.history_start(T - 5) == T


def test_concurrent_first_history_start_calls_agree(backend: StoreFactory) -> None:
    stores = [backend.open() for _ in range(8)]
    seen: list[float] = []
    errors: list[BaseException] = []
    go = threading.Barrier(len(stores))

    def first(k: int) -> None:
        try:
            go.wait(10)
            seen.append(stores[k].history_start(T + k))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=first, args=(k,)) for k in range(len(stores))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors
    assert len(seen) == len(stores) and len(set(seen)) == 1 and seen[0] in {T + k for k in range(len(stores))}


def test_budget_merge_adds_and_reads_back_the_shared_sketch(backend: StoreFactory) -> None:
    a, b = backend.open(), backend.open()
    assert a.budget_merge({}) == {}
    assert a.budget_merge({"12": 1.5, "n": 1.0}) == {"12": 1.5, "n": 1.0}
    # the other worker's merge returns both deltas; an empty delta only reads
    assert b.budget_merge({"12": 0.25, "forced": 2.0, "n": 2.0}) == {"12": 1.75, "forced": 2.0, "n": 3.0}
    assert a.budget_merge({}) == {"12": 1.75, "forced": 2.0, "n": 3.0}


def test_budget_merge_is_atomic_under_contention(backend: StoreFactory) -> None:
    threads_n, per_thread = 4, 25
    errors: list[BaseException] = []
    seen: list[float] = []
    lock = threading.Lock()

    def merge() -> None:
        store = backend.open()
        try:
            for _ in range(per_thread):
                got = store.budget_merge({"7": 1.0, "n": 1.0})["n"]
                with lock:
                    seen.append(got)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=merge) for _ in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors
    # each merge read back its own addition and every earlier one: a distinct running total
    assert sorted(seen) == [float(i) for i in range(1, threads_n * per_thread + 1)]
    assert backend.open().budget_merge({}) == {"7": 100.0, "n": 100.0}


def test_pending_per_user_cap_evicts_that_users_oldest_only(store: ProfileStore) -> None:
    store.put_pending("victim-1", b"v", T + 600, user_id="victim", max_per_user=3)
    for i in range(50):
        store.put_pending(f"spam-{i}", b"s", T + 600 + i, user_id="attacker", max_per_user=3)
    assert store.pop_pending("victim-1", T) == b"v"
    kept = [i for i in range(50) if store.pop_pending(f"spam-{i}", T) is not None]
    assert kept == [47, 48, 49]


def test_pending_cap_does_not_count_answered_challenges(store: ProfileStore) -> None:
    for i in range(3):
        store.put_pending(f"d{i}", b"x", T + 600 + i, user_id="alice", max_per_user=3)
    assert store.pop_pending("d2", T) == b"x"  # the newest answered
    store.put_pending("d3", b"x", T + 700, user_id="alice", max_per_user=3)
    assert store.pop_pending("d0", T) == b"x"  # still there: only 3 outstanding


# -- second-factor sends (Engine.check_send: SMS pumping) -----------------------------------
HOUR, DAY = 3600.0, 86_400.0


def _send(store: ProfileStore, user: str, prefix: str, at: float) -> tuple[int, int, int, int, int]:
    return tuple(store.add_send(user, prefix, at, prefix_since=at - HOUR, ratio_since=at - DAY,
                                user_since=at - DAY))  # type: ignore[return-value]


def test_send_counts_per_prefix_and_user_in_their_windows(store: ProfileStore) -> None:
    assert _send(store, "alice", "GB:+447400", T) == (1, 1, 0, 1, 1)
    assert _send(store, "bob", "GB:+447400", T + 60) == (2, 2, 0, 1, 1)  # the prefix counts every user
    assert _send(store, "alice", "FR:+33612", T + 120) == (1, 1, 0, 2, 2)  # a second prefix of alice
    assert _send(store, "alice", "GB:+447400", T + 180) == (3, 3, 0, 3, 2)  # same prefix: still 2 distinct
    # an hour later the prefix window (1 h) has dropped the first two; the day windows keep all
    later = T + 60 + HOUR + 1
    assert _send(store, "carol", "GB:+447400", later) == (2, 4, 0, 1, 1)
    # a day and a bit later alice's old sends and prefixes are out of her window
    assert _send(store, "alice", "DE:+49151", T + 180 + DAY + 1) == (1, 1, 0, 1, 1)


def test_verify_send_credits_the_linked_prefix_once(store: ProfileStore) -> None:
    _send(store, "alice", "GB:+447400", T)
    store.link_send("d1", "GB:+447400", T + 1800)
    assert store.verify_send("d1", T + 30) == "GB:+447400"
    assert store.verify_send("d1", T + 40) is None  # consumed: one verification per link
    assert store.verify_send("never-sent", T + 40) is None
    assert _send(store, "bob", "GB:+447400", T + 60) == (2, 2, 1, 1, 1)


def test_send_link_expires_by_the_time_passed_in_and_last_link_wins(store: ProfileStore) -> None:
    store.link_send("d1", "GB:+447400", T + 600)
    assert store.verify_send("d1", T + 601) is None  # after the link's expiry
    store.link_send("d2", "GB:+447400", T + 600)
    store.link_send("d2", "FR:+33612", T + 600)  # a resend to another number
    assert store.verify_send("d2", T + 10) == "FR:+33612"
    assert _send(store, "x", "GB:+447400", T + 20)[2] == 0
    assert _send(store, "x", "FR:+33612", T + 20)[2] == 1


def test_peek_pending_leaves_the_challenge_in_place(store: ProfileStore) -> None:
    store.put_pending("d1", b"ctx", T + 600, user_id="alice")
    assert store.peek_pending("d1", T) == b"ctx"
    assert store.peek_pending("d1", T + 601) is None  # expired by the time passed in
    assert store.peek_pending("nope", T) is None
    assert store.pop_pending("d1", T) == b"ctx"  # still there for record_outcome
    assert store.peek_pending("d1", T) is None


def test_send_counting_is_atomic_under_8_threads(backend: StoreFactory) -> None:
    threads_n, per_thread = 8, 25
    seen: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n, timeout=60)

    def pump() -> None:
        store = backend.open()
        try:
            barrier.wait()
            for i in range(per_thread):
                seen.append(_send(store, f"fresh-{threading.get_ident()}-{i}", "UZ:+99890", T)[0])
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=pump) for _ in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors
    # every send counted once, each caller saw its own running count: no read-then-write race
    assert sorted(seen) == list(range(1, threads_n * per_thread + 1))
