"""``redis://host:port/db``: the scale-out store (Redis or Valkey), shared by many hosts.

Key layout (``prefix`` defaults to ``riskengine:``)::

    <prefix>p:<user_id>     profile bytes (UserProfile.to_bytes), TTL profile_ttl_days, refreshed on write
    <prefix>fu:<user_id>    sorted set of failed-password times (score = epoch seconds)
    <prefix>fi:<ip>         same, per client IP
    <prefix>pd:<decision>   pending challenge context: 8-byte expiry + payload, TTL pending_ttl_s
    <prefix>pu:<user_id>    sorted set of the user's parked decision ids (score = expiry), for the per-user cap
    <prefix>fo:<user_id>    sorted set of failed second-factor times per user
    <prefix>fs:<session>    same per user session (session_key(): length-prefixed user + session)
    <prefix>fx:<user_id>    set of the user's fs: keys (unlock_user clears them without a keyspace scan)
    <prefix>pop             hash country → forward-decayed weight (the population prior)
    <prefix>budget:sketch   hash bin / "forced" / "n" → forward-decayed weight (the step-up budget)

Round trips, because on loopback each costs ~50-100 µs of the 1 ms budget:

* ``snapshot`` is one server-side script: GET + two ZCOUNTs.
* ``add_failure`` is one script: ZADD + ZREMRANGEBYSCORE + EXPIRE for both sets + ZCOUNT,
  atomic by construction.
* ``update`` is optimistic concurrency as compare-and-set: read, apply ``fn``, then a script
  that writes only if the stored bytes are still the ones read, else returns the current bytes
  and the loop re-applies ``fn`` to them. After a ``snapshot`` of the same user on the same
  thread (the engine's score-then-learn), the snapshot's bytes are the read, so the write is
  one round trip. This is WATCH/MULTI/EXEC's guarantee with one round trip instead of three.

Windows are the scores, not the TTLs: counts always filter on the ``since``/``at`` passed
in (stores never read the clock, so replays of history behave like production). TTLs only
reclaim memory: a failure set expires ``window`` seconds after its last write, a profile
``profile_ttl_days`` after its last write, a pending context ``pending_ttl_s`` after parking
(its logical expiry is checked against ``now`` in ``pop_pending``).

Async twin: every hot-path method has an ``a``-prefixed coroutine (``asnapshot``, ``aupdate``,
``aadd_failure``, ``aadd_otp_failures``, ``aput_pending``, ``apop_pending``, ``apopulation``,
``apopulation_add``, ``areset_failures``) that runs the same scripts with the same keys and
arguments over ``redis.asyncio`` — no thread hop. They are methods of this class rather than
an ``AsyncRedisStore`` so that one store object (one URL, prefix and TTL configuration, one
``Engine.store``) serves sync and async callers alike; because an asyncio connection pool
belongs to the event loop that opened its connections, the async client is created lazily,
one per running loop (``aclose()`` releases the running loop's).

Connection errors and timeouts become :class:`StoreError` quickly (socket timeouts default
to 100 ms, ``?socket_timeout=0.05`` in the URL overrides), so a dead Redis costs the auth
thread a fail-mode decision, not a hang.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import secrets
import struct
import threading
import time
import weakref
from collections.abc import Generator, Mapping, Sequence
from typing import Any, Final, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from riskengine._extras import extra

with extra("redis", feature="the redis:// profile store"):
    import redis
    import redis.asyncio as aredis
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff
    from redis.commands.core import AsyncScript
    from redis.retry import Retry

from riskengine.core.profile import UserProfile
from riskengine.core.stores.base import OtpCounts, SendCounts, Snapshot, StoreError, Updater, session_key

DEFAULT_SOCKET_TIMEOUT_S: Final = 0.1
DEFAULT_PROFILE_TTL_DAYS: Final = 400.0
DEFAULT_PENDING_TTL_S: Final = 86_400
ASYNC_MAX_CONNECTIONS: Final = 64
ASYNC_POOL_WAIT_S: Final = 1.0
_MAX_CAS_ATTEMPTS: Final = 64
_CAS_BACKOFF_S: Final = 0.0002  # first backoff after two lost races (random up to this)
_CAS_BACKOFF_CAP_S: Final = 0.02
_EXPIRY = struct.Struct(">d")
# options this store reads from the URL query; everything else goes to redis-py
_OWN_OPTIONS: Final = frozenset({"prefix", "profile_ttl_days", "pending_ttl_s", "pool_wait_s"})

_SNAPSHOT_LUA = """
return {redis.call('GET', KEYS[1]),
        redis.call('ZCOUNT', KEYS[2], ARGV[1], '+inf'),
        redis.call('ZCOUNT', KEYS[3], ARGV[1], '+inf'),
        redis.call('ZCOUNT', KEYS[4], ARGV[2], '+inf'),
        redis.call('ZCOUNT', KEYS[5], ARGV[3], '+inf')}
"""

# KEYS: user failures, user second factors, session second factors
# ARGV: at, count, horizons (user, otp, session), ttls (user, otp, session), member prefix
_ADD_OTP_LUA = """
local at, n = ARGV[1], tonumber(ARGV[2])
local horizons = {ARGV[3], ARGV[4], ARGV[5]}
local ttls = {tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])}
for k = 1, 3 do
  for i = 1, n do redis.call('ZADD', KEYS[k], at, ARGV[9] .. i) end
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', '(' .. horizons[k])
  if redis.call('EXISTS', KEYS[k]) == 1 then redis.call('EXPIRE', KEYS[k], ttls[k]) end
end
if n > 0 then
  -- the user's session counters, so unlock_user finds them without scanning the keyspace
  redis.call('SADD', KEYS[4], KEYS[3])
  redis.call('EXPIRE', KEYS[4], math.max(ttls[2], ttls[3]))
end
return {redis.call('ZCOUNT', KEYS[3], ARGV[5], '+inf'), redis.call('ZCOUNT', KEYS[2], ARGV[4], '+inf')}
"""

# KEYS: pending key, the user's pending index; ARGV: payload, ttl, decision id, expiry, cap, key prefix
_PUT_PENDING_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if #KEYS < 2 or KEYS[2] == '' then return 0 end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local cap = tonumber(ARGV[5])
local excess = redis.call('ZCARD', KEYS[2]) - cap
if cap > 0 and excess > 0 then
  -- challenges already answered (popped) leave their id behind: drop those first
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if redis.call('EXISTS', ARGV[6] .. id) == 0 then redis.call('ZREM', KEYS[2], id) end
  end
  excess = redis.call('ZCARD', KEYS[2]) - cap
end
if cap > 0 and excess > 0 then
  local victims = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  for _, id in ipairs(victims) do redis.call('DEL', ARGV[6] .. id) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
end
return 0
"""

_ADD_FAILURE_LUA = """
local at, horizon, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], at, ARGV[3 + i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. horizon)
  redis.call('EXPIRE', KEYS[i], ttl)
end
return redis.call('ZCOUNT', KEYS[1], horizon, '+inf')
"""

# ARGV: expected-exists ('0'/'1'), expected bytes, new-exists ('0'/'1'), new bytes, ttl seconds.
# Returns {1} when written, {0, current-or-false} when someone else wrote first.
_CAS_LUA = """
local current = redis.call('GET', KEYS[1])
local matches
if ARGV[1] == '0' then matches = (current == false) else matches = (current == ARGV[2]) end
if not matches then return {0, current} end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])
else
  redis.call('DEL', KEYS[1])
end
return {1}
"""

_POP_LUA = """
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v
"""

# KEYS: the user's second-factor counter, the index of their session counters
_RESET_OTP_LUA = """
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', k) end
redis.call('DEL', KEYS[1], KEYS[2])
return 0
"""


# KEYS: the budget hash; ARGV: field, weight, field, weight, ... — add all, return the whole
# hash, atomically (HINCRBYFLOAT per field, then HGETALL, in one script)
_BUDGET_MERGE_LUA = """
for i = 1, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1]) end
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: prefix sends, prefix verified, user sends, user prefixes
# ARGV: at, prefix since, ratio since, user since, member, prefix, (unused), counter ttl
_ADD_SEND_LUA = """
local at = ARGV[1]
local horizon = math.min(tonumber(ARGV[2]), tonumber(ARGV[3]))
local ttl = tonumber(ARGV[8])
redis.call('ZADD', KEYS[1], at, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. horizon)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[3], at, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[4])
redis.call('EXPIRE', KEYS[3], ttl)
local last = redis.call('ZSCORE', KEYS[4], ARGV[6])
if (not last) or tonumber(last) < tonumber(at) then redis.call('ZADD', KEYS[4], at, ARGV[6]) end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[4])
redis.call('EXPIRE', KEYS[4], ttl)
return {redis.call('ZCOUNT', KEYS[1], ARGV[2], '+inf'), redis.call('ZCOUNT', KEYS[1], ARGV[3], '+inf'),
        redis.call('ZCOUNT', KEYS[2], ARGV[3], '+inf'), redis.call('ZCOUNT', KEYS[3], ARGV[4], '+inf'),
        redis.call('ZCOUNT', KEYS[4], ARGV[4], '+inf')}
"""

# KEYS: prefix verified, prefix sends; ARGV: at, member (the link was popped first: once)
_VERIFY_SEND_LUA = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local ttl = redis.call('TTL', KEYS[2])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) else redis.call('EXPIRE', KEYS[1], 172800) end
return 0
"""

_PEEK_LUA = """
return redis.call('GET', KEYS[1])
"""


# KEYS: the store's history start; ARGV: now (set once: the first caller wins, all read it back)
_HISTORY_START_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""


_SCRIPTS: Final = {
    "snapshot": _SNAPSHOT_LUA, "add_failure": _ADD_FAILURE_LUA, "update": _CAS_LUA, "pop_pending": _POP_LUA,
    "add_otp_failures": _ADD_OTP_LUA, "put_pending": _PUT_PENDING_LUA, "reset_otp_failures": _RESET_OTP_LUA,
    "budget_merge": _BUDGET_MERGE_LUA,
    "add_send": _ADD_SEND_LUA, "verify_send": _VERIFY_SEND_LUA, "peek_pending": _PEEK_LUA,
    "get": _PEEK_LUA, "history_start": _HISTORY_START_LUA,
}
"""Every script, by the operation that runs it: the sync and async clients register the same text."""

# A script call: (operation = key of _SCRIPTS, KEYS, ARGV)
_ScriptCall = tuple[str, Sequence[bytes], Sequence[Any]]
# One compare-and-set attempt asked of the driver: (seconds to back off first, the CAS call)
_CasStep = tuple[float, _ScriptCall]

# the async path's "bytes of the last snapshot" (see update): per task, as threading.local is
# per thread — concurrent tasks on one loop must not see each other's read
_ALAST: contextvars.ContextVar[tuple[int, str, bytes | None] | None] = contextvars.ContextVar(
    "riskengine_redis_last_snapshot", default=None)


class _LoopClient(NamedTuple):
    """One event loop's asyncio client, its registered scripts, per-user update locks, and the
    fair queue for its connections."""

    client: Any
    """``redis.asyncio.Redis``, or ``redis.asyncio.cluster.RedisCluster`` for a cluster store."""
    scripts: dict[str, AsyncScript]
    user_locks: weakref.WeakValueDictionary[str, asyncio.Lock]
    slots: asyncio.Semaphore
    """As many as the pool has connections: tasks queue here first come, first served (the
    pool's own wait lets a task that just released a connection take it straight back, which
    starves others under a burst)."""


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """Separate this store's own query options from the ones redis-py understands."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        (ours.__setitem__(key, value) if key in _OWN_OPTIONS else theirs.append((key, value)))
    return urlunsplit(parts._replace(query=urlencode(theirs))), ours


class RedisStore:
    """Profiles, failure windows and pending challenges in Redis/Valkey.

    Thread-safe and fork-safe (redis-py's pool reconnects in a child process).
    """

    _errors: tuple[type[Exception], ...] = (redis.RedisError,)
    """What the client raises that becomes a StoreError (the cluster client adds its own)."""

    def __init__(
        self,
        url: str,
        failure_window_s: float = 1800.0,
        *,
        prefix: str | None = None,
        profile_ttl_days: float | None = None,
        pending_ttl_s: int | None = None,
    ) -> None:
        redis_url, own = _split_url(url)
        self.prefix = prefix if prefix is not None else own.get("prefix", "riskengine:")
        ttl_days = profile_ttl_days if profile_ttl_days is not None else float(
            own.get("profile_ttl_days", DEFAULT_PROFILE_TTL_DAYS))
        self._profile_ttl = max(1, int(ttl_days * 86400))
        try:
            self._pool_wait_s = float(own.get("pool_wait_s", ASYNC_POOL_WAIT_S))
        except ValueError as exc:
            raise ValueError(f"bad redis store URL option pool_wait_s: {exc}") from None
        if not self._pool_wait_s > 0:
            raise ValueError("redis store URL option pool_wait_s must be positive")
        self._pending_ttl = max(1, int(pending_ttl_s if pending_ttl_s is not None
                                       else own.get("pending_ttl_s", DEFAULT_PENDING_TTL_S)))
        if failure_window_s <= 0:
            raise ValueError("failure_window_s must be positive")
        self._window = float(failure_window_s)
        self._failure_ttl = int(failure_window_s) + 60
        self._redis_url = redis_url
        try:
            self._redis: redis.Redis[bytes] = self._connect(redis_url, own)
        except ValueError as exc:
            raise ValueError(f"bad redis store URL {url!r}: {exc}") from exc
        self._snapshot = self._redis.register_script(_SNAPSHOT_LUA)
        self._add_failure = self._redis.register_script(_ADD_FAILURE_LUA)
        self._cas = self._redis.register_script(_CAS_LUA)
        self._pop = self._redis.register_script(_POP_LUA)
        self._add_otp = self._redis.register_script(_ADD_OTP_LUA)
        self._put_pending = self._redis.register_script(_PUT_PENDING_LUA)
        self._reset_otp = self._redis.register_script(_RESET_OTP_LUA)
        self._scripts = {"snapshot": self._snapshot, "add_failure": self._add_failure, "update": self._cas,
                         "pop_pending": self._pop, "add_otp_failures": self._add_otp,
                         "put_pending": self._put_pending, "reset_otp_failures": self._reset_otp,
                         "budget_merge": self._redis.register_script(_BUDGET_MERGE_LUA),
                         **{what: self._redis.register_script(_SCRIPTS[what])
                            for what in ("add_send", "verify_send", "peek_pending", "get", "history_start")}}
        assert self._scripts.keys() == _SCRIPTS.keys()
        self._local = threading.local()
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary())
        self._aclients_lock = threading.Lock()

    def _connect(self, redis_url: str, own: dict[str, str]) -> redis.Redis[bytes]:
        """The sync client (RedisClusterStore overrides it: a cluster client)."""
        # querystring options win over these defaults (redis-py's from_url rule)
        client: redis.Redis[bytes] = redis.Redis.from_url(
            redis_url,
            # one immediate retry on a dropped connection: a pooled socket that died
            # with a restarted server is replaced transparently; a down server still
            # fails fast (refused connects cost microseconds)
            retry=Retry(NoBackoff(), 1),
            **self._client_options(),
        )
        # parse the URL the async way too, now: a bad option fails here, not on first await
        self._async_pool()
        return client

    def _new_async_client(self) -> tuple[Any, int]:
        """A new asyncio client for the running loop, and how many connections it may open."""
        client: aredis.Redis[bytes] = aredis.Redis.from_pool(  # type: ignore[attr-defined]
            self._async_pool())  # (types-redis predates from_pool, redis 5.0.1)
        return client, client.connection_pool.max_connections

    def _async_pool(self) -> aredis.BlockingConnectionPool[Any]:
        """An asyncio pool that makes a task wait for a free connection (up to ``?pool_wait_s=``,
        default ``ASYNC_POOL_WAIT_S``, then StoreError) rather than fail when all
        ``ASYNC_MAX_CONNECTIONS`` are busy: a thousand concurrent logins share a few dozen
        sockets. ``?max_connections=`` in the URL overrides the cap."""
        return aredis.BlockingConnectionPool.from_url(
            self._redis_url, max_connections=ASYNC_MAX_CONNECTIONS, timeout=self._pool_wait_s,
            retry=AsyncRetry(NoBackoff(), 1), **self._client_options())

    @staticmethod
    def _client_options() -> dict[str, Any]:
        """What the sync and the async clients share (each adds its own ``retry``)."""
        return {"socket_timeout": DEFAULT_SOCKET_TIMEOUT_S, "socket_connect_timeout": DEFAULT_SOCKET_TIMEOUT_S,
                "retry_on_error": [redis.ConnectionError], "health_check_interval": 0}

    # -- keys ----------------------------------------------------------------------
    # user ids are arbitrary str (even lone surrogates from surrogateescape-decoded input):
    # keys are encoded here, losslessly, rather than by redis-py's strict UTF-8
    # (RedisClusterStore overrides the per-user ones to put a hash tag in them)
    def _user_key(self, kind: str, user_id: str) -> bytes:
        """One of the user's keys (``p``, ``fu``, ``fo``, ``fx``, ``pu``)."""
        return f"{self.prefix}{kind}:{user_id}".encode("utf-8", "surrogatepass")

    def _session_key(self, user_id: str, session: str) -> bytes:
        return f"{self.prefix}fs:{session_key(user_id, session)}".encode("utf-8", "surrogatepass")

    def _pkey(self, user_id: str) -> bytes:
        return self._user_key("p", user_id)

    def _ukey(self, user_id: str) -> bytes:
        return self._user_key("fu", user_id)

    def _ikey(self, ip: str) -> bytes:
        return f"{self.prefix}fi:{ip}".encode("utf-8", "surrogatepass")

    def _dkey(self, decision_id: str) -> bytes:
        return f"{self.prefix}pd:{decision_id}".encode("utf-8", "surrogatepass")

    def _key(self, kind: str, name: str) -> bytes:
        return f"{self.prefix}{kind}:{name}".encode("utf-8", "surrogatepass")

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._errors as exc:
            raise StoreError(f"redis {what} failed: {type(exc).__name__}: {exc}") from exc

    def _run(self, call: _ScriptCall) -> Any:
        what, keys, args = call
        return self._call(what, self._scripts[what], keys=keys, args=args)

    # -- the async client ------------------------------------------------------------
    def _aclient(self) -> _LoopClient:
        """This event loop's client and its scripts, created on first use."""
        loop = asyncio.get_running_loop()
        found = self._aclients.get(loop)
        if found is None:
            with self._aclients_lock:
                found = self._aclients.get(loop)
                if found is None:
                    client, connections = self._new_async_client()
                    found = _LoopClient(client, {what: client.register_script(text) for what, text in _SCRIPTS.items()},
                                        weakref.WeakValueDictionary(), asyncio.Semaphore(connections))
                    self._aclients[loop] = found
        return found

    async def _acall(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        slots = self._aclient().slots
        try:
            async with asyncio.timeout(self._pool_wait_s):
                await slots.acquire()
        except TimeoutError:
            raise StoreError(f"redis {what} failed: every connection of this event loop's pool stayed "
                             f"busy for {self._pool_wait_s} s (?pool_wait_s=)") from None
        try:
            return await fn(*args, **kwargs)
        except self._errors as exc:
            raise StoreError(f"redis {what} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            slots.release()

    async def _arun(self, call: _ScriptCall) -> Any:
        what, keys, args = call
        return await self._acall(what, self._aclient().scripts[what], keys=keys, args=args)

    async def aclose(self) -> None:
        """Close the running event loop's async client (the sync client stays open: ``close()``)."""
        found = self._aclients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found.client.aclose()  # (client: Any; types-redis predates aclose, redis 5)

    # -- profiles --------------------------------------------------------------------
    def get(self, user_id: str) -> UserProfile | None:
        raw = self._call("GET", self._redis.get, self._pkey(user_id))
        return UserProfile.from_bytes(raw) if raw is not None else None

    def put(self, user_id: str, profile: UserProfile) -> None:
        self._call("SET", self._redis.set, self._pkey(user_id), profile.to_bytes(),
                   ex=self._profile_ttl)

    def update(self, user_id: str, fn: Updater) -> UserProfile | None:
        key = self._pkey(user_id)
        last: tuple[str, bytes | None] | None = getattr(self._local, "last", None)
        self._local.last = None
        if last is not None and last[0] == user_id:
            current = last[1]
        else:
            current = self._call("GET", self._redis.get, key)
        steps = self._cas_steps(key, current, fn)
        try:
            step = next(steps)
            while True:
                backoff, call = step
                if backoff:
                    time.sleep(backoff)
                step = steps.send(self._run(call))
        except StopIteration as done:
            result: UserProfile | None = done.value
            return result

    def _cas_steps(self, key: bytes, current: bytes | None,
                   fn: Updater) -> Generator[_CasStep, Any, UserProfile | None]:
        """The compare-and-set loop of ``update``/``aupdate`` as a generator: it yields each
        attempt (backoff, script call), is sent the script's reply, and returns the new profile."""
        for attempt in range(_MAX_CAS_ATTEMPTS):
            if attempt >= 2:
                # lost twice: many writers on one user (or a starved thread that loses every
                # time because the others re-read first). A short random sleep, doubling up
                # to a cap, breaks the lockstep. The lost race's reply carried fresh bytes, but
                # they go stale while this thread sleeps and the others keep writing: read
                # again after the sleep, or the thread that backs off longest loses every race
                # (64 in a row seen with 8 threads on one key of a loaded cluster).
                backoff = random.random() * min(_CAS_BACKOFF_CAP_S, _CAS_BACKOFF_S * 2 ** (attempt - 2))
                current = yield backoff, ("get", [key], [])
            new = fn(UserProfile.from_bytes(current) if current is not None else None)
            args = ("0" if current is None else "1", current or b"",
                    "0" if new is None else "1", new.to_bytes() if new is not None else b"",
                    self._profile_ttl)
            result = yield 0.0, ("update", [key], args)
            if int(result[0]) == 1:
                return new
            current = result[1] if result[1] else None
        raise StoreError(f"profile update of one user lost {_MAX_CAS_ATTEMPTS} races in a row")

    def delete(self, user_id: str) -> None:
        self._call("DEL", self._redis.delete, self._pkey(user_id), self._ukey(user_id))

    # -- failed passwords --------------------------------------------------------------
    def add_failure(self, user_id: str, ip: str, at: float) -> int:
        return int(self._run(self._add_failure_call(user_id, ip, at)))

    def _add_failure_call(self, user_id: str, ip: str, at: float) -> _ScriptCall:
        # a random member suffix: two failures in the same microsecond both count
        member = f"{at!r}:{secrets.token_hex(4)}"
        return ("add_failure", [self._ukey(user_id), self._ikey(ip)],
                [repr(float(at)), repr(float(at) - self._window), self._failure_ttl, member, member])

    def reset_failures(self, user_id: str) -> None:
        self._call("DEL", self._redis.delete, self._ukey(user_id))

    def snapshot(self, user_id: str, ip: str, since: float, *, session: str = "",
                 otp_since: float | None = None, session_since: float | None = None) -> Snapshot:
        reply = self._run(self._snapshot_call(user_id, ip, since, session, otp_since, session_since))
        # remembered so that the learn-after-allow update of this user needs no second read
        self._local.last = (user_id, reply[0])
        return _snapshot_from(reply)

    def _snapshot_call(self, user_id: str, ip: str, since: float, session: str,
                       otp_since: float | None, session_since: float | None) -> _ScriptCall:
        return ("snapshot",
                [self._pkey(user_id), self._ukey(user_id), self._ikey(ip), self._user_key("fo", user_id),
                 self._session_key(user_id, session)],
                [repr(float(since)), "+inf" if otp_since is None else repr(float(otp_since)),
                 "+inf" if session_since is None else repr(float(session_since))])

    # -- second factors ----------------------------------------------------------------
    def add_otp_failures(self, user_id: str, session: str, count: int, at: float, *,
                         otp_since: float, session_since: float) -> OtpCounts:
        session_n, user_n = self._run(self._add_otp_call(user_id, session, count, at, otp_since, session_since))
        return OtpCounts(int(session_n), int(user_n))

    def _add_otp_call(self, user_id: str, session: str, count: int, at: float, otp_since: float,
                      session_since: float) -> _ScriptCall:
        at = float(at)
        return ("add_otp_failures",
                [self._ukey(user_id), self._user_key("fo", user_id), self._session_key(user_id, session),
                 self._user_key("fx", user_id)],
                [repr(at), max(0, int(count)), repr(at - self._window), repr(float(otp_since)),
                 repr(float(session_since)), self._failure_ttl, int(at - otp_since) + 60,
                 int(at - session_since) + 60, f"{at!r}:{secrets.token_hex(4)}:"])

    def reset_otp_failures(self, user_id: str) -> None:
        self._call("reset_otp_failures", self._reset_otp,
                   keys=[self._user_key("fo", user_id), self._user_key("fx", user_id)])

    # -- population prior ----------------------------------------------------------------
    def population_add(self, country: str, weight: float) -> None:
        self._call("HINCRBYFLOAT", self._redis.hincrbyfloat, self._key("pop", "countries"), country, weight)

    def population(self) -> dict[str, float]:
        return _population_from(self._call("HGETALL", self._redis.hgetall, self._key("pop", "countries")))

    def history_start(self, now: float) -> float:
        return float(self._run(self._history_start_call(now)))

    def _history_start_call(self, now: float) -> _ScriptCall:
        return "history_start", [self._key("meta", "history_start")], [repr(float(now))]

    def budget_merge(self, delta: Mapping[str, float]) -> dict[str, float]:
        args: list[Any] = []
        for key, weight in delta.items():
            args += [key, repr(float(weight))]
        reply = self._run(("budget_merge", [self._key("budget", "sketch")], args))
        return {reply[i].decode(): float(reply[i + 1]) for i in range(0, len(reply), 2)}

    # -- pending challenges -------------------------------------------------------------
    def put_pending(self, decision_id: str, payload: bytes, expires_at: float, *,
                    user_id: str = "", max_per_user: int = 0) -> None:
        self._run(self._put_pending_call(decision_id, payload, expires_at, user_id, max_per_user))

    def _put_pending_call(self, decision_id: str, payload: bytes, expires_at: float, user_id: str,
                          max_per_user: int) -> _ScriptCall:
        index = self._user_key("pu", user_id) if user_id else b""
        return ("put_pending", [self._dkey(decision_id), index],
                [_EXPIRY.pack(expires_at) + payload, self._pending_ttl, decision_id,
                 repr(float(expires_at)), max_per_user, self._dkey("")])

    def pop_pending(self, decision_id: str, now: float) -> bytes | None:
        return _pending_from(self._run(("pop_pending", [self._dkey(decision_id)], [])), now)

    def peek_pending(self, decision_id: str, now: float) -> bytes | None:
        return _pending_from(self._run(("peek_pending", [self._dkey(decision_id)], [])), now)

    # -- second-factor sends -------------------------------------------------------------
    def add_send(self, user_id: str, prefix: str, at: float, *, prefix_since: float,
                 ratio_since: float, user_since: float) -> SendCounts:
        reply = self._run(self._add_send_call(user_id, prefix, at, prefix_since, ratio_since, user_since))
        return SendCounts(*(int(v) for v in reply))

    def link_send(self, decision_id: str, prefix: str, expires_at: float) -> None:
        # the expiry travels with the value, as for parked challenges: stores never read the clock
        self._call("SET", self._redis.set, self._key("sl", decision_id),
                   _EXPIRY.pack(expires_at) + prefix.encode("utf-8", "surrogatepass"), ex=self._pending_ttl)

    def _add_send_call(self, user_id: str, prefix: str, at: float, prefix_since: float,
                       ratio_since: float, user_since: float) -> _ScriptCall:
        at = float(at)
        ttl = int(at - min(prefix_since, ratio_since, user_since)) + 60
        return ("add_send",
                [self._key("sp", prefix), self._key("sv", prefix), self._key("su", user_id),
                 self._key("sx", user_id)],
                [repr(at), repr(float(prefix_since)), repr(float(ratio_since)), repr(float(user_since)),
                 f"{at!r}:{secrets.token_hex(4)}", prefix, 0, ttl])

    def verify_send(self, decision_id: str, at: float) -> str | None:
        raw = _pending_from(self._run(("pop_pending", [self._key("sl", decision_id)], [])), at)
        if raw is None:
            return None
        prefix = raw.decode("utf-8", "surrogatepass")
        self._run(self._verify_call(prefix, at))
        return prefix

    def _verify_call(self, prefix: str, at: float) -> _ScriptCall:
        return ("verify_send", [self._key("sv", prefix), self._key("sp", prefix)],
                [repr(float(at)), f"{float(at)!r}:{secrets.token_hex(4)}"])

    # -- async twins: the same calls as above, over redis.asyncio ------------------------
    async def asnapshot(self, user_id: str, ip: str, since: float, *, session: str = "",
                        otp_since: float | None = None, session_since: float | None = None) -> Snapshot:
        reply = await self._arun(self._snapshot_call(user_id, ip, since, session, otp_since, session_since))
        _ALAST.set((id(self), user_id, reply[0]))
        return _snapshot_from(reply)

    async def aupdate(self, user_id: str, fn: Updater) -> UserProfile | None:
        # Tasks of this loop updating one user take turns: racing each other over the network
        # would cost every loser a round trip per winner (and starve some); the compare-and-set
        # still guards against other loops, threads, processes and hosts.
        loop_client = self._aclient()
        lock = loop_client.user_locks.get(user_id)
        if lock is None:
            lock = loop_client.user_locks[user_id] = asyncio.Lock()
        async with lock:
            return await self._aupdate(user_id, fn)

    async def _aupdate(self, user_id: str, fn: Updater) -> UserProfile | None:
        key = self._pkey(user_id)
        last = _ALAST.get()
        _ALAST.set(None)
        if last is not None and last[:2] == (id(self), user_id):
            current = last[2]  # a stale read only costs a lost compare-and-set, never a wrong write
        else:
            current = await self._acall("GET", self._aclient().client.get, key)
        steps = self._cas_steps(key, current, fn)
        try:
            step = next(steps)
            while True:
                backoff, call = step
                if backoff:
                    await asyncio.sleep(backoff)
                step = steps.send(await self._arun(call))
        except StopIteration as done:
            result: UserProfile | None = done.value
            return result

    async def aadd_failure(self, user_id: str, ip: str, at: float) -> int:
        return int(await self._arun(self._add_failure_call(user_id, ip, at)))

    async def areset_failures(self, user_id: str) -> None:
        await self._acall("DEL", self._aclient().client.delete, self._ukey(user_id))

    async def aadd_otp_failures(self, user_id: str, session: str, count: int, at: float, *,
                                otp_since: float, session_since: float) -> OtpCounts:
        session_n, user_n = await self._arun(
            self._add_otp_call(user_id, session, count, at, otp_since, session_since))
        return OtpCounts(int(session_n), int(user_n))

    async def apopulation_add(self, country: str, weight: float) -> None:
        await self._acall("HINCRBYFLOAT", self._aclient().client.hincrbyfloat, self._key("pop", "countries"),
                          country, weight)

    async def apopulation(self) -> dict[str, float]:
        return _population_from(
            await self._acall("HGETALL", self._aclient().client.hgetall, self._key("pop", "countries")))

    async def ahistory_start(self, now: float) -> float:
        return float(await self._arun(self._history_start_call(now)))

    async def aput_pending(self, decision_id: str, payload: bytes, expires_at: float, *,
                           user_id: str = "", max_per_user: int = 0) -> None:
        await self._arun(self._put_pending_call(decision_id, payload, expires_at, user_id, max_per_user))

    async def apop_pending(self, decision_id: str, now: float) -> bytes | None:
        return _pending_from(await self._arun(("pop_pending", [self._dkey(decision_id)], [])), now)

    async def aget(self, user_id: str) -> UserProfile | None:
        raw = await self._acall("GET", self._aclient().client.get, self._pkey(user_id))
        return UserProfile.from_bytes(raw) if raw is not None else None

    async def apeek_pending(self, decision_id: str, now: float) -> bytes | None:
        return _pending_from(await self._arun(("peek_pending", [self._dkey(decision_id)], [])), now)

    async def aadd_send(self, user_id: str, prefix: str, at: float, *, prefix_since: float,
                        ratio_since: float, user_since: float) -> SendCounts:
        reply = await self._arun(self._add_send_call(user_id, prefix, at, prefix_since, ratio_since, user_since))
        return SendCounts(*(int(v) for v in reply))

    async def alink_send(self, decision_id: str, prefix: str, expires_at: float) -> None:
        await self._acall("SET", self._aclient().client.set, self._key("sl", decision_id),
                          _EXPIRY.pack(expires_at) + prefix.encode("utf-8", "surrogatepass"), ex=self._pending_ttl)

    async def averify_send(self, decision_id: str, at: float) -> str | None:
        raw = _pending_from(await self._arun(("pop_pending", [self._key("sl", decision_id)], [])), at)
        if raw is None:
            return None
        prefix = raw.decode("utf-8", "surrogatepass")
        await self._arun(self._verify_call(prefix, at))
        return prefix

    # -- support -----------------------------------------------------------------------
    def user_ids(self, limit: int = 1000) -> list[str]:
        """Sorted user ids, first ``limit``. Scans the keyspace: a support tool, not a hot path."""
        prefix = self._pkey("")
        found: list[str] = []
        try:
            for key in self._redis.scan_iter(match=_glob_escape(prefix) + b"*", count=1000):
                found.append(key[len(prefix):].decode("utf-8", "surrogatepass"))
        except self._errors as exc:
            raise StoreError(f"redis SCAN failed: {exc}") from exc
        return sorted(found)[:limit]

    def ping(self) -> bool:
        """True when the server answers (for health checks)."""
        try:
            return bool(self._redis.ping())
        except self._errors:
            return False

    def close(self) -> None:
        self._redis.close()

    def __repr__(self) -> str:  # never the URL: it may carry a password
        return f"RedisStore(prefix={self.prefix!r})"


def _snapshot_from(reply: Sequence[Any]) -> Snapshot:
    raw, user_failures, ip_failures, otp_user, otp_session = reply
    profile = UserProfile.from_bytes(raw) if raw is not None else None
    return Snapshot(profile, int(user_failures), int(ip_failures), int(otp_user), int(otp_session))


def _population_from(raw: dict[bytes, bytes]) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in raw.items()}


def _pending_from(raw: bytes | None, now: float) -> bytes | None:
    if raw is None:
        return None
    (expires_at,) = _EXPIRY.unpack_from(raw)
    if expires_at < now:
        return None
    return bytes(raw[_EXPIRY.size:])


def _glob_escape(text: bytes) -> bytes:
    return b"".join(b"\\" + bytes([c]) if c in b"*?[]\\" else bytes([c]) for c in text)
