"""``redis+cluster://host:port[,host:port…]``: the Redis store on a Redis Cluster (or Valkey).

Same scripts, TTLs, windows and fail behaviour as :class:`~riskengine.core.stores.redis.RedisStore`
(this class is a subclass); what changes is where keys live. A Redis Cluster runs a multi-key
command or script only when every key hashes to one slot (else ``CROSSSLOT``), so the keys
carry **hash tags** — the part between the first ``{`` and the next ``}`` is what is hashed:

    <prefix>p:{u:<user>}              profile
    <prefix>fu:{u:<user>}             failed-password times of the user
    <prefix>fo:{u:<user>}             failed second-factor times of the user
    <prefix>fs:{u:<user>}<session>    … of one session (session_key(user, session))
    <prefix>fx:{u:<user>}             set of the user's fs: keys
    <prefix>pu:{u:<user>}             index of the user's parked challenges
    <prefix>pd:{u:<user>}<decision>   a parked challenge (8-byte expiry + payload)
    <prefix>pt:{<decision>}           decision → user id: where its parked challenge is
    <prefix>fi:{<ip>}                 failed-password times of one address (its own slot)
    <prefix>pop:{pop<k>}              population prior, shard k of ``population_shards``

Every key of one user — profile, counters, session counters, parked challenges (device-token
revocations live in the profile) — is in the slot of ``{u:<user>}``, so the snapshot, the
compare-and-set, the second-factor script and the parked-challenge cap stay single scripts,
atomic as on one server. (The tag is cut at the first ``}``: a user id containing one still
maps all of that user's keys to one slot, because everything before it is the same.)

What spans slots is split, and each part stays atomic on its own:

* ``snapshot``: the user's script (GET + three ZCOUNTs) and the address's ZCOUNT, in one
  cluster pipeline (both nodes are asked at once: one round trip of wall time).
* ``add_failure``: the user's window and the address's window, each one script, in one pipeline.
  A failure can be counted against the user and not the address if a node dies between the
  two; the count returned is the user's.
* ``put_pending``: the record and the user's index in one script (the per-user cap evicts
  atomically), plus the ``pt:`` pointer; ``pop_pending`` takes the pointer (GETDEL: one
  caller wins) and then the record: two round trips. A pointer outliving its record (the
  cap evicted it) finds nothing, as an unknown decision should.
* the population prior: ``population_add`` adds to one of ``population_shards`` hashes
  (default 8, ``?population_shards=`` in the URL), chosen at random, so the writes of many
  processes spread over several slots (and nodes) instead of one hot key; ``population()``
  reads every shard in one pipeline and sums per country. Any other global aggregate should
  follow the same pattern (:meth:`RedisClusterStore.sharded_keys`).

The key layout differs from the single-server store's (the tags), so pointing a cluster
store at data written by ``redis://`` finds nothing: migrating means re-learning profiles
(or copying keys under their new names), see docs/operations.md.

Failover: when a master dies, its slots fail (``StoreError`` → the engine's fail mode) until
the cluster promotes its replica (``cluster-node-timeout`` plus an election); redis-py then
follows the new slot map. Replication is asynchronous: a write the old master acknowledged
but had not yet sent to its replica is lost.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from riskengine._extras import extra

with extra("redis", feature="the redis+cluster:// profile store"):
    import redis
    import redis.asyncio.cluster as acluster
    import redis.cluster as rcluster
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff
    from redis.commands.core import Script
    from redis.retry import Retry

from riskengine.core.stores.base import StoreError, session_key
from riskengine.core.stores.redis import (
    _SCRIPTS,
    ASYNC_MAX_CONNECTIONS,
    DEFAULT_SOCKET_TIMEOUT_S,
    RedisStore,
    _pending_from,
    _ScriptCall,
)

SCHEMES: Final = ("redis+cluster://", "rediss+cluster://")
DEFAULT_POPULATION_SHARDS: Final = 8
# URL options passed on to redis-py, with their parser
_CLIENT_OPTIONS: Final = {"socket_timeout": float, "socket_connect_timeout": float}

# the snapshot script without the address: KEYS profile, user failures, user second factors,
# session second factors; ARGV since, otp since, session since
_SNAPSHOT_USER_LUA = """
return {redis.call('GET', KEYS[1]),
        redis.call('ZCOUNT', KEYS[2], ARGV[1], '+inf'),
        redis.call('ZCOUNT', KEYS[3], ARGV[2], '+inf'),
        redis.call('ZCOUNT', KEYS[4], ARGV[3], '+inf')}
"""

# one failure window (the user's or the address's): ARGV at, horizon, ttl, member
_ADD_ONE_FAILURE_LUA = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return redis.call('ZCOUNT', KEYS[1], ARGV[2], '+inf')
"""


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any], dict[str, str]]:
    """Seed nodes, redis-py options and this store's own options of a ``redis+cluster://`` URL.

    >>> parse_cluster_url("redis+cluster://a:7000,b:7001?prefix=x:")[0]
    [('a', 7000), ('b', 7001)]
    >>> parse_cluster_url("redis+cluster://a:7000/3")
    Traceback (most recent call last):
    ...
    ValueError: a Redis Cluster has only database 0, not /3
    """
    scheme, sep, rest = url.partition("://")
    if not sep or f"{scheme}://" not in SCHEMES:
        raise ValueError(f"a cluster store URL starts with {' or '.join(SCHEMES)}")
    parts = urlsplit("redis://" + rest)  # netloc with commas: urlsplit keeps it whole
    userinfo, at, hosts = parts.netloc.rpartition("@")
    options: dict[str, Any] = {"ssl": scheme == "rediss+cluster"}
    if at:
        username, colon, password = userinfo.partition(":")
        if colon:
            options["password"] = unquote(password)
            if username:
                options["username"] = unquote(username)
        else:
            options["password"] = unquote(username)
    nodes: list[tuple[str, int]] = []
    for node in hosts.split(","):
        host, colon, port = node.strip().rpartition(":")
        if not colon:
            host, port = port, "6379"
        host = host.strip("[]")  # [::1]:7000
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad cluster node {node!r}: use host:port")
        nodes.append((host, int(port)))
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"a Redis Cluster has only database 0, not {parts.path}")
    own: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _CLIENT_OPTIONS:
            try:
                options[key] = _CLIENT_OPTIONS[key](value)
            except ValueError:
                raise ValueError(f"option {key}={value!r} is not a number") from None
        elif key in ("prefix", "profile_ttl_days", "pending_ttl_s", "pool_wait_s", "population_shards"):
            own[key] = value
        else:
            raise ValueError(f"unknown cluster store URL option {key!r}")
    return nodes, options, own


class RedisClusterStore(RedisStore):
    """The Redis store with hash-tagged keys, on a Redis Cluster (see the module docstring).

    Thread-safe; one sync cluster client per store, one async cluster client per event loop.
    Both connect on first use, so an engine starts while the cluster is down (its logins get
    the fail mode until it answers), as with the single-server store.
    """

    # RedisClusterException (no redirection left, keys in different slots, no node reachable)
    # is not a RedisError
    _errors = (redis.RedisError, redis.exceptions.RedisClusterException)

    def __init__(
        self,
        url: str,
        failure_window_s: float = 1800.0,
        *,
        prefix: str | None = None,
        profile_ttl_days: float | None = None,
        pending_ttl_s: int | None = None,
        population_shards: int | None = None,
    ) -> None:
        try:
            self._nodes, self._options, own = parse_cluster_url(url)
        except ValueError as exc:
            raise ValueError(f"bad redis cluster store URL: {exc}") from None
        try:
            shards = population_shards if population_shards is not None else int(
                own.get("population_shards", DEFAULT_POPULATION_SHARDS))
        except ValueError:
            raise ValueError("redis cluster store URL option population_shards must be an integer") from None
        if not 1 <= shards <= 1024:
            raise ValueError("population_shards must be between 1 and 1024")
        self.population_shards = shards
        # the base class reads its own options from the query; the cluster client gets nothing
        # from the URL string itself (see _connect)
        own_query = "&".join(f"{k}={v}" for k, v in own.items() if k != "population_shards")
        super().__init__(f"redis://cluster/?{own_query}", failure_window_s, prefix=prefix,
                         profile_ttl_days=profile_ttl_days, pending_ttl_s=pending_ttl_s)
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError(f"a cluster store's key prefix may not contain braces (hash tags): {self.prefix!r}")

    # -- clients ---------------------------------------------------------------------
    def _options_with_defaults(self) -> dict[str, Any]:
        options: dict[str, Any] = {"socket_timeout": DEFAULT_SOCKET_TIMEOUT_S,
                                   "socket_connect_timeout": DEFAULT_SOCKET_TIMEOUT_S}
        options.update(self._options)
        return options

    def _connect(self, redis_url: str, own: dict[str, str]) -> redis.Redis[bytes]:
        # No retry: redis-py's cluster retry re-sends a command that timed out, and a
        # compare-and-set whose write landed but whose reply was lost would then be applied
        # twice (measured: 201 increments of 200). A failed call is a StoreError (the engine's
        # fail mode, not a stalled auth thread); redis-py refreshes its slot map, so after a
        # failover the next call goes to the promoted replica.
        def make() -> rcluster.RedisCluster[bytes]:
            return rcluster.RedisCluster(
                startup_nodes=[rcluster.ClusterNode(host, port) for host, port in self._nodes],
                retry=Retry(NoBackoff(), 0), require_full_coverage=False, **self._options_with_defaults())

        # RedisCluster speaks the commands this store uses with the same signatures
        return _LazyClient(make)  # type: ignore[return-value]

    def _new_async_client(self) -> tuple[Any, int]:
        client: acluster.RedisCluster[bytes] = acluster.RedisCluster(
            startup_nodes=[acluster.ClusterNode(host, port) for host, port in self._nodes],
            # (types-redis 4.6 declares the sync Retry here; redis-py 5+ takes the asyncio one)
            retry=AsyncRetry(NoBackoff(), 0), require_full_coverage=False,  # type: ignore[arg-type]
            max_connections=ASYNC_MAX_CONNECTIONS, **self._options_with_defaults())
        return client, ASYNC_MAX_CONNECTIONS

    # -- keys ------------------------------------------------------------------------
    def _tagged(self, kind: str, tag: str, suffix: str = "") -> bytes:
        return f"{self.prefix}{kind}:{{{tag}}}{suffix}".encode("utf-8", "surrogatepass")

    def _user_key(self, kind: str, user_id: str) -> bytes:
        return self._tagged(kind, f"u:{user_id}")

    def _session_key(self, user_id: str, session: str) -> bytes:
        return self._tagged("fs", f"u:{user_id}", session_key(user_id, session))

    def _ikey(self, ip: str) -> bytes:
        return self._tagged("fi", ip)

    def _dkey(self, decision_id: str) -> bytes:
        """The pointer decision → user (the record itself is in the user's slot)."""
        return self._tagged("pt", decision_id)

    def _pending_key(self, user_id: str, decision_id: str = "") -> bytes:
        return self._tagged("pd", f"u:{user_id}", decision_id)

    def sharded_keys(self, name: str) -> list[bytes]:
        """The shard keys of one global aggregate (``population_shards`` of them, each its
        own hash tag): write to one, read and merge all."""
        return [self._tagged(name, f"{name}{k}") for k in range(self.population_shards)]

    # -- calls that span slots ---------------------------------------------------------
    def _split(self, call: _ScriptCall) -> list[tuple[str, Sequence[bytes], Sequence[Any]]]:
        """One single-slot script per slot for the operations whose keys span slots:
        (script text, KEYS, ARGV) each; the replies are combined by :meth:`_combine`."""
        what, keys, args = call
        if what == "snapshot":
            profile, user_failures, ip_failures, otp_user, otp_session = keys
            since, otp_since, session_since = args
            return [(_SNAPSHOT_USER_LUA, [profile, user_failures, otp_user, otp_session],
                     [since, otp_since, session_since]),
                    ("return redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf')", [ip_failures], [since])]
        if what == "add_failure":
            at, horizon, ttl, member, _ = args
            return [(_ADD_ONE_FAILURE_LUA, [key], [at, horizon, ttl, member]) for key in keys]
        return [(_SCRIPTS[what], keys, args)]

    @staticmethod
    def _combine(what: str, replies: list[Any]) -> Any:
        if what == "snapshot":
            (raw, user_failures, otp_user, otp_session), ip_failures = replies
            return [raw, user_failures, ip_failures, otp_user, otp_session]
        return replies[0]  # add_failure: the user's count; others: their one reply

    def _run(self, call: _ScriptCall) -> Any:
        what = call[0]
        if what not in ("snapshot", "add_failure"):
            return super()._run(call)
        def fill(pipe: Any) -> None:
            for text, keys, args in self._split(call):
                pipe.execute_command("EVAL", text, len(keys), *keys, *args)
        return self._combine(what, self._pipelined(what, fill))

    async def _arun(self, call: _ScriptCall) -> Any:
        what = call[0]
        if what not in ("snapshot", "add_failure"):
            return await super()._arun(call)
        def fill(pipe: Any) -> None:
            for text, keys, args in self._split(call):
                pipe.execute_command("EVAL", text, len(keys), *keys, *args)
        return self._combine(what, await self._apipelined(what, fill))

    def _pipelined(self, what: str, fill: Callable[[Any], None]) -> list[Any]:
        """One cluster pipeline (each node asked once, all at the same time); errors, including
        making the client, become StoreError."""
        def go() -> list[Any]:
            pipe = self._redis.pipeline()
            fill(pipe)
            return list(pipe.execute())
        result: list[Any] = self._call(what, go)
        return result

    async def _apipelined(self, what: str, fill: Callable[[Any], None]) -> list[Any]:
        async def go() -> list[Any]:
            pipe = self._aclient().client.pipeline()
            fill(pipe)
            return list(await pipe.execute())
        result: list[Any] = await self._acall(what, go)
        return result

    # -- pending challenges: the record in the user's slot, a pointer in the decision's ---
    def _put_pending_call(self, decision_id: str, payload: bytes, expires_at: float, user_id: str,
                          max_per_user: int) -> _ScriptCall:
        what, _, args = super()._put_pending_call(decision_id, payload, expires_at, user_id, max_per_user)
        keys = [self._pending_key(user_id, decision_id)]
        if user_id:
            keys.append(self._user_key("pu", user_id))
        # ARGV[6]: the prefix of this user's records, which the cap script appends ids to
        return what, keys, [*args[:5], self._pending_key(user_id)]

    def put_pending(self, decision_id: str, payload: bytes, expires_at: float, *,
                    user_id: str = "", max_per_user: int = 0) -> None:
        self._pipelined("put_pending", lambda pipe: self._queue_put_pending(
            pipe, decision_id, payload, expires_at, user_id, max_per_user))

    async def aput_pending(self, decision_id: str, payload: bytes, expires_at: float, *,
                           user_id: str = "", max_per_user: int = 0) -> None:
        await self._apipelined("put_pending", lambda pipe: self._queue_put_pending(
            pipe, decision_id, payload, expires_at, user_id, max_per_user))

    def _queue_put_pending(self, pipe: Any, decision_id: str, payload: bytes, expires_at: float,
                           user_id: str, max_per_user: int) -> None:
        """The pointer and the record (with the user's index and cap), sent together: the two
        nodes answer in one round trip of wall time."""
        pipe.set(self._dkey(decision_id), user_id.encode("utf-8", "surrogatepass"), ex=self._pending_ttl)
        what, keys, args = self._put_pending_call(decision_id, payload, expires_at, user_id, max_per_user)
        pipe.execute_command("EVAL", _SCRIPTS[what], len(keys), *keys, *args)

    def pop_pending(self, decision_id: str, now: float) -> bytes | None:
        user = self._call("GETDEL", self._redis.getdel, self._dkey(decision_id))
        if user is None:
            return None
        key = self._pending_key(user.decode("utf-8", "surrogatepass"), decision_id)
        return _pending_from(self._run(("pop_pending", [key], [])), now)

    async def apop_pending(self, decision_id: str, now: float) -> bytes | None:
        user = await self._acall("GETDEL", self._aclient().client.getdel, self._dkey(decision_id))
        if user is None:
            return None
        key = self._pending_key(user.decode("utf-8", "surrogatepass"), decision_id)
        return _pending_from(await self._arun(("pop_pending", [key], [])), now)

    # -- population prior: sharded ---------------------------------------------------------
    def population_add(self, country: str, weight: float) -> None:
        self._call("HINCRBYFLOAT", self._redis.hincrbyfloat, random.choice(self.sharded_keys("pop")),
                   country, weight)

    def population(self) -> dict[str, float]:
        return _merge(self._pipelined("HGETALL", self._read_shards))

    async def apopulation_add(self, country: str, weight: float) -> None:
        await self._acall("HINCRBYFLOAT", self._aclient().client.hincrbyfloat,
                          random.choice(self.sharded_keys("pop")), country, weight)

    async def apopulation(self) -> dict[str, float]:
        return _merge(await self._apipelined("HGETALL", self._read_shards))

    def _read_shards(self, pipe: Any) -> None:
        for key in self.sharded_keys("pop"):
            pipe.hgetall(key)

    # -- support ---------------------------------------------------------------------------
    def user_ids(self, limit: int = 1000) -> list[str]:
        """Sorted user ids, first ``limit``: a SCAN of every master (a support tool)."""
        head = f"{self.prefix}p:{{u:".encode()
        found: list[str] = []
        try:
            for key in self._redis.scan_iter(match=_glob_escape(head) + b"*}", count=1000):
                found.append(key[len(head):-1].decode("utf-8", "surrogatepass"))
        except self._errors as exc:
            raise StoreError(f"redis SCAN failed: {exc}") from exc
        return sorted(found)[:limit]

    def __repr__(self) -> str:  # never the URL: it may carry a password
        return f"RedisClusterStore(prefix={self.prefix!r}, nodes={len(self._nodes)})"


class _LazyClient:
    """A sync RedisCluster made on first use: redis-py's constructor asks the seed nodes for
    the slot map at once, and a store must open while its cluster is down."""

    def __init__(self, make: Callable[[], rcluster.RedisCluster[bytes]]) -> None:
        self._make = make
        self._client: rcluster.RedisCluster[bytes] | None = None
        self._lock = threading.Lock()

    def _get(self) -> rcluster.RedisCluster[bytes]:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()  # raises while no seed node answers
        return self._client

    def register_script(self, script: str) -> Script:
        return Script(self, script.encode())  # bytes: the script needs no encoder (no connection) yet

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # the client is made when a method is called, not looked up, so that the store's
        # error handling (around the call) sees a cluster that cannot be reached
        def method(*args: Any, **kwargs: Any) -> Any:
            return getattr(self._get(), name)(*args, **kwargs)
        return method


def _merge(shards: list[dict[bytes, bytes]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for shard in shards:
        for country, weight in shard.items():
            name = country.decode()
            total[name] = total.get(name, 0.0) + float(weight)
    return total


def _glob_escape(text: bytes) -> bytes:
    return b"".join(b"\\" + bytes([c]) if c in b"*?[]\\" else bytes([c]) for c in text)
