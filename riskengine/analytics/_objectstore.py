"""DuckDB over an audit root on object storage, without DuckDB's httpfs extension.

DuckDB reads ``s3://`` through its httpfs extension, which it downloads from
extensions.duckdb.org on first use: not reachable from many CI runners and locked-down
hosts, and the ``duckdb-extension-httpfs`` wheels on PyPI are built for DuckDB 1.x only.
So the reader hands DuckDB a Python file system instead (``duckdb.register_filesystem``
with an fsspec wrapper around pyarrow's S3 client, the same client the sink writes with,
credentials from the standard AWS chain). DuckDB keeps doing everything else: Parquet
footer and row-group pruning, projection pushdown, hive partitions; only the byte ranges
it asks for cross the network (docs/audit.md, "Object storage", has the figures).

Paths handed to DuckDB use the scheme ``riskengine-s3://`` (not ``s3://``), so DuckDB
never tries to load httpfs for them.

DuckDB's scan threads share one open file and read it as ``seek(at)`` then ``read(n)``: two
calls, between which another thread may seek (pyarrow releases the GIL while it reads). With
a plain file object that race reads the wrong bytes ("Parquet file is likely corrupted" with 4
threads on a 3M-row root). So a file opened for reading keeps its position per thread and
reads with pyarrow's positional ``read_at``: ``seek`` + ``read`` on one thread is a ``pread``.
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb

from riskengine._extras import extra
from riskengine.audit.objectstore import S3Root

with extra("s3", feature="reading an s3:// audit root (AuditDB, report, dashboard)"):
    from fsspec.implementations.arrow import ArrowFSWrapper  # type: ignore[import-untyped]

SCHEME = "riskengine-s3"
PREFIX = f"{SCHEME}://"


class _ThreadPositionFile:
    """A read-only file over a pyarrow random-access file, with one position per thread."""

    def __init__(self, raw: Any, path: str) -> None:
        self._raw = raw
        self.path = path
        self.size = int(raw.size())
        self._pos = threading.local()
        self.closed = False

    def tell(self) -> int:
        return int(getattr(self._pos, "at", 0))

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.tell(), 2: self.size}[whence]
        self._pos.at = max(0, base + int(offset))
        return int(self._pos.at)

    def read(self, n: int = -1) -> bytes:
        at = self.tell()
        n = self.size - at if n is None or n < 0 else min(n, max(0, self.size - at))
        data: bytes = self._raw.read_at(n, at) if n > 0 else b""
        self._pos.at = at + len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._raw.close()

    def __enter__(self) -> _ThreadPositionFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _S3Wrapper(ArrowFSWrapper):  # type: ignore[misc]  # fsspec is untyped
    protocol = SCHEME
    cachable = False

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if "r" in mode:
            stripped = self._strip_protocol(path)
            return _ThreadPositionFile(self.fs.open_input_file(stripped), stripped)
        return super()._open(path, mode, *args, **kwargs)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(path)
        if text.startswith(PREFIX):
            text = text[len(PREFIX):]
        return text.rstrip("/")


def register(con: duckdb.DuckDBPyConnection, store: S3Root) -> None:
    """Let ``con`` read (and write) ``riskengine-s3://bucket/key`` through ``store``'s client."""
    con.register_filesystem(_S3Wrapper(store.fs))


def duck_path(store: S3Root, rel: str) -> str:
    """The path DuckDB opens for ``rel`` (relative to the root).

    >>> duck_path(S3Root.parse("s3://audit/prod"), "decisions/year=2026/month=01/part-1.parquet")
    'riskengine-s3://audit/prod/decisions/year=2026/month=01/part-1.parquet'
    """
    return PREFIX + store.path(rel)


__all__ = ["PREFIX", "SCHEME", "duck_path", "register"]
