"""Every store answers ``ping()`` with a real round trip, and says False when it cannot."""

from __future__ import annotations

import shutil
from pathlib import Path

from riskengine.core.health import ping_store
from riskengine.core.stores import open_store
from riskengine.core.stores.redis import RedisStore
from riskengine.core.stores.redis_server import free_port

from .conftest import StoreFactory


def test_every_backend_answers_ping(backend: StoreFactory) -> None:
    store = backend.open()
    assert store.ping() is True
    ok, ms = ping_store(store)
    assert ok is True and ms >= 0.0


def test_sqlite_store_whose_volume_is_gone_does_not_answer(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    store = open_store(f"sqlite:///{volume / 'p.db'}")
    assert store.ping()
    store.close()  # drops the connections: the next ping must open the file again
    shutil.rmtree(volume)
    assert store.ping() is False


def test_dead_redis_does_not_answer() -> None:
    dead = RedisStore(f"redis://127.0.0.1:{free_port()}/0?socket_timeout=0.05")
    assert ping_store(dead)[0] is False
