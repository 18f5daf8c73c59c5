"""Profile stores: ``memory://``, ``sqlite:///path``, ``redis://host:port/db``,
``redis+cluster://host:port[,host:port…]``."""

from __future__ import annotations

from riskengine.core.stores.base import Snapshot, StoreError
from riskengine.core.stores.memory import MemoryStore
from riskengine.core.typing import ProfileStore

__all__ = ["MemoryStore", "ProfileStore", "Snapshot", "StoreError", "open_store"]


def open_store(url: str, failure_window_s: float = 1800.0, *, busy_timeout_s: float = 1.0,
               max_counters: int | None = None, retain_s: float | None = None,
               cluster: bool = False) -> ProfileStore:
    """Open a store from its URL. ``cluster=True`` (``[store] cluster``) reads a ``redis://``
    (``rediss://``) URL as ``redis+cluster://`` (``rediss+cluster://``): a Redis Cluster.

    >>> type(open_store("memory://")).__name__
    'MemoryStore'
    """
    if cluster:
        if not url.startswith(("redis://", "rediss://", "redis+cluster://", "rediss+cluster://")):
            raise ValueError(f"store.cluster = true needs a redis:// or rediss:// URL, not {url.split(':')[0]}:")
        scheme, _, rest = url.partition("://")
        url = f"{scheme.removesuffix('+cluster')}+cluster://{rest}"
    if url.startswith("memory://"):
        if max_counters is None:
            return MemoryStore(failure_window_s)
        return MemoryStore(failure_window_s, max_counters=max_counters)
    if url.startswith("sqlite://"):
        from riskengine.core.stores.sqlite import SqliteStore

        path = url[len("sqlite://"):]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel/path → rel/path, sqlite:////abs → /abs
        if not path:
            raise ValueError("sqlite store URL needs a path: sqlite:///path/to/profiles.db")
        return SqliteStore(path, failure_window_s, timeout_s=busy_timeout_s, retain_s=retain_s)
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        from riskengine.core.stores.redis_cluster import (  # type: ignore[import-not-found,unused-ignore]
            RedisClusterStore,
        )

        clustered: ProfileStore = RedisClusterStore(url, failure_window_s)
        return clustered
    if url.startswith(("redis://", "rediss://", "unix://")):
        from riskengine.core.stores.redis import RedisStore  # type: ignore[import-not-found,unused-ignore]

        store: ProfileStore = RedisStore(url, failure_window_s)
        return store
    raise ValueError(f"unknown store URL {url!r}: use memory://, sqlite:///path, redis://host "
                     "or redis+cluster://host:port[,host:port]")
