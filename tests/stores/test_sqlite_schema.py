"""SQLite schema creation and migration when several openers meet the same file at once."""

from __future__ import annotations

import threading
from pathlib import Path

from riskengine.core.stores.sqlite import SqliteStore

T = 1_772_442_000.0


def test_eight_threads_opening_a_new_file_at_once_all_get_a_working_store(tmp_path: Path) -> None:
    # each opener looks for the migrated column and adds it when missing; done outside one write
    # transaction, two openers both saw it missing and the second failed ("duplicate column name")
    path = str(tmp_path / "profiles.db")
    barrier = threading.Barrier(8)
    stores: list[SqliteStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            stores.append(SqliteStore(path, checkpoint_s=0))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    for _ in range(5):  # a few rounds: the race needs two openers between the look and the alter
        (tmp_path / "profiles.db").unlink(missing_ok=True)
        threads = [threading.Thread(target=open_one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        stores[0].put_pending("d1", b"ctx", expires_at=T + 600, user_id="alice")
        assert stores[-1].pop_pending("d1", now=T) == b"ctx"
        for s in stores:
            s.close()
        stores.clear()
