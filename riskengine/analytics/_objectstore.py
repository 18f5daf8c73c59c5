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
import pyarrow as pa
import pyarrow.fs as pafs

from riskengine._extras import extra
from riskengine.audit.objectstore import S3Root

with extra("s3", feature="reading an s3:// audit root (AuditDB, report, dashboard)"):
    from fsspec.implementations.arrow import ArrowFSWrapper  # type: ignore[import-untyped]

_ROLLUP_DIR = "_rollups"  # = riskengine.analytics.rollups.ROLLUP_DIR (rollups imports this module)
SCHEME = "riskengine-s3"
PREFIX = f"{SCHEME}://"


class _ThreadPositionFile:
    """A read-only file over a pyarrow random-access file, with one position per thread."""

    def __init__(self, raw: Any, path: str, on_error: Any = None) -> None:
        self._raw = raw
        self._on_error = on_error
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
        try:
            data: bytes = self._raw.read_at(n, at) if n > 0 else b""
        except OSError as exc:
            if self._on_error is not None and self._on_error(self.path):
                # S3 says 404 in several ways (NO_SUCH_KEY, RESOURCE_NOT_FOUND, …): one wording
                # the reader knows means "listed, then deleted": list and run again
                raise FileNotFoundError(f"No such file: {self.path} was deleted after it was listed") from exc
            raise
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
            if self._on_error is None:  # a handle the wrapper keeps open for the next scan stays open
                self._raw.close()

    def __enter__(self) -> _ThreadPositionFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_INFO_MAX = 100_000
_HANDLES_MAX = 4096
IN_MEMORY_PART = 16 * 1024 * 1024
"""A rollup part up to this size is read whole on first use and kept in memory."""
IN_MEMORY_TOTAL = 256 * 1024 * 1024
"""The rollup parts a reader keeps in memory, in all (beyond it, parts are read from the store)."""


class _S3Wrapper(ArrowFSWrapper):  # type: ignore[misc]  # fsspec is untyped
    """pyarrow's S3 client as an fsspec file system, remembering what it learnt of each object.

    DuckDB asks, for every file of a scan, whether it exists, its size and its modification
    time, then opens it: four HEAD requests before the first byte (pyarrow's
    ``open_input_file`` makes the last one, and its Python binding takes no known size).
    Nothing under an audit root is ever rewritten in place (segments, merged segments, rollup
    builds and their manifests all get new, unique keys), so what a HEAD said about an object
    stays true while it exists: the wrapper asks once per object, and a scan of files it has
    seen costs no HEAD at all: the opened pyarrow file (one HEAD when first opened; reads are
    positional ranged GETs, safe from any thread) is kept for the next scan. A rollup part
    (small, and read by most dashboard queries) is read whole once and kept in memory
    (:data:`IN_MEMORY_PART`, :data:`IN_MEMORY_TOTAL`): later scans of it make no request. Absent objects
    are never remembered (they may appear); a deleted one fails at its next read, which
    forgets it, and the reader retries the query after listing again."""

    protocol = SCHEME
    cachable = False

    def __init__(self, fs: Any, **kwargs: Any) -> None:
        super().__init__(fs, **kwargs)
        self._infos: dict[str, Any] = {}
        self._handles: dict[str, Any] = {}
        self._in_memory = 0
        self._infos_lock = threading.Lock()

    def _file_info(self, path: str) -> Any:
        """The FileInfo of ``path`` (stripped): remembered for files, asked for otherwise."""
        with self._infos_lock:
            known = self._infos.get(path)
        if known is not None:
            return known
        info = self.fs.get_file_info(path)
        if info.is_file:
            with self._infos_lock:
                if len(self._infos) >= _INFO_MAX:
                    self._infos.clear()
                self._infos[path] = info
        return info

    def info(self, path: str, **kwargs: Any) -> Any:
        return self._make_entry(self._file_info(self._strip_protocol(path)))

    def modified(self, path: str) -> Any:
        return self._file_info(self._strip_protocol(path)).mtime

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        stripped = self._strip_protocol(path)
        if "r" in mode:
            with self._infos_lock:
                raw = self._handles.get(stripped)
            if raw is None:
                raw = self._load(stripped)
                with self._infos_lock:
                    if len(self._handles) >= _HANDLES_MAX:
                        for old in self._handles.values():
                            old.close()
                        self._handles.clear()
                        self._in_memory = 0
                    raw = self._handles.setdefault(stripped, raw)
            return _ThreadPositionFile(raw, stripped, on_error=self._forget)
        self._forget(stripped)
        return super()._open(path, mode, *args, **kwargs)

    def _load(self, path: str) -> Any:
        """A random-access file for ``path``: a rollup part (small, read whole every time a
        dashboard query runs) in memory, one GET; anything else opened on the store."""
        if f"/{_ROLLUP_DIR}/" in path:
            size = self._file_info(path).size or 0
            with self._infos_lock:
                fits = size <= IN_MEMORY_PART and self._in_memory + size <= IN_MEMORY_TOTAL
                if fits:
                    self._in_memory += size
            if fits:
                with self.fs.open_input_stream(path) as src:
                    return pa.BufferReader(src.read())
        return self.fs.open_input_file(path)

    def _forget(self, path: str) -> bool:
        """Drop what is remembered of ``path``; whether the object is gone from the store."""
        with self._infos_lock:
            self._infos.pop(path, None)
            handle = self._handles.pop(path, None)
            if isinstance(handle, pa.BufferReader):
                self._in_memory -= handle.size()
        try:
            return bool(self.fs.get_file_info(path).type == pafs.FileType.NotFound)
        except OSError:
            return False

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
