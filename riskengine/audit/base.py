"""The AuditSink contract, and the null and in-memory sinks."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any, Protocol, runtime_checkable

Row = dict[str, Any]


@runtime_checkable
class AuditSink(Protocol):
    """Where audit events go. ``emit`` never blocks on I/O and never raises."""

    def emit(self, table: str, row: Row) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    @property
    def dropped(self) -> int:
        """Events accepted by ``emit`` that could not be stored (buffer full, disk error)."""
        ...


class NullSink:
    """No audit log configured."""

    dropped = 0

    def emit(self, table: str, row: Row) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemorySink:
    """Keeps every event in lists per table: for tests and notebooks.

    >>> s = MemorySink(); s.emit("decisions", {"action": "allow"}); len(s.rows("decisions"))
    1
    """

    dropped = 0

    def __init__(self) -> None:
        self._tables: dict[str, list[Row]] = defaultdict(list)
        self._lock = threading.Lock()

    def emit(self, table: str, row: Row) -> None:
        with self._lock:
            self._tables[table].append(row)

    def rows(self, table: str) -> list[Row]:
        with self._lock:
            return list(self._tables.get(table, ()))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
