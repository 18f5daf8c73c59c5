"""The default audit sink: append-only, hive-partitioned Parquet segments.

``emit`` is a lock, a length check and a list append: it never touches the disk and never
raises for I/O reasons. ``emit_values`` is the same for a tuple already in :data:`TABLES`
column order (the engine's path: no dict to build, no key lookups when flushing). A daemon
thread turns buffered rows into Parquet segments every ``flush_seconds`` (or as soon as a
table holds ``flush_rows`` rows)::

    <root>/<table>/year=YYYY/month=MM/part-<utc-timestamp>-<pid>-<uuid>.parquet

Each segment is written to ``.<name>.tmp`` in the same folder, fsynced and renamed into
place, so a reader globbing ``**/*.parquet`` sees whole segments or nothing, and a writer
killed mid-flush leaves at most a hidden ``.tmp`` file (removed later by compaction).
Names carry the pid and a uuid, so any number of processes can write one root.
Segments and temp files are created 0600 and the folders the sink creates 0700, whatever
the process umask (see :mod:`riskengine.audit._fs`).

A process killed with SIGKILL loses at most the rows not yet stored: :attr:`ParquetSink.unflushed`
(the buffer plus a flush in progress), one flush interval's worth. With
``flush_on_sigterm=True`` (``audit.flush_on_sigterm``) SIGTERM loses nothing: the sink
flushes, then hands the signal on to the handler that was installed before it.

When the buffer is full or the disk fails, rows are counted in :attr:`ParquetSink.dropped`
and logged (once per kind of problem); scoring goes on regardless.

The root may be ``s3://bucket/prefix`` (:mod:`riskengine.audit.objectstore`): the same layout
as object keys, each segment stored with one upload straight to its final key (an object
becomes visible whole when its upload completes, so no temp name and no rename). The bucket
and the credentials are checked when the sink is made (:class:`ObjectStoreError` otherwise).
A segment whose upload fails (after the client's own retries) stays in memory and is tried
again at the next flush (:attr:`ParquetSink.retried` counts those attempts), as long as the
rows waiting that way stay within ``buffer_rows``; beyond that, or at ``close()``, rows are
dropped and counted like a disk failure.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from riskengine._extras import extra

with extra("audit", feature="the Parquet audit sink (Engine audit.root)"):
    import pyarrow as pa
    import pyarrow.parquet as pq

from riskengine.audit._fs import create_private_file, fsync_dir, fsync_path, private_mkdir
from riskengine.audit.base import Row
from riskengine.audit.layout import TMP_SUFFIX, is_object_root, segment_name
from riskengine.audit.objectstore import S3Root, partition_rel
from riskengine.audit.schema import TABLES, arrow_schema

log = logging.getLogger(__name__)

def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a hidden temp file beside ``path``, fsync it, rename it into place.

    Readers glob ``*.parquet``, so they never see the temp file; the rename is atomic on
    POSIX file systems, so they see the whole segment or nothing. The temp file is created
    0600 before ``write`` fills it, so the segment is private from its first byte.
    """
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    try:
        os.close(create_private_file(tmp))
        write(tmp)
        os.chmod(tmp, 0o600)  # in case ``write`` replaced the file rather than filling it
        fsync_path(tmp)
        os.rename(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    fsync_dir(path.parent)  # make the rename itself durable


class ParquetSink:
    """Buffered, thread-safe, multi-process-safe audit sink writing Parquet segments.

    ``buffer_rows`` bounds each table's buffer; ``flush_rows`` wakes the flusher early.
    ``flush_on_sigterm`` installs a SIGTERM handler (from the main thread only; elsewhere it
    is skipped with a log line) that flushes and then chains to the previous handler.

    >>> import tempfile, datetime as dt
    >>> root = tempfile.mkdtemp()
    >>> with ParquetSink(root) as sink:
    ...     sink.emit("conversions", {"event_time": dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
    ...                               "schema_version": 1, "experiment": "e", "user_key": "k"})
    >>> sorted(p.parent.name for p in Path(root, "conversions").rglob("*.parquet"))
    ['month=01']
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        flush_seconds: float = 1.0,
        flush_rows: int = 50_000,
        buffer_rows: int = 1_000_000,
        flush_on_sigterm: bool = False,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        if flush_seconds <= 0:
            raise ValueError(f"flush_seconds must be > 0, got {flush_seconds}")
        if flush_rows < 1 or buffer_rows < 1:
            raise ValueError(f"flush_rows and buffer_rows must be >= 1, got {flush_rows}, {buffer_rows}")
        self.store: S3Root | None = None
        """The object store of an ``s3://`` root (None for a local folder)."""
        self.root: Path | str
        if is_object_root(root):
            self.store = S3Root.parse(str(root), endpoint_url=endpoint_url, region=region)
            self.store.check()  # a missing bucket or bad credentials: a clear error now, not lost rows later
            self.root = self.store.url()
        else:
            self.root = Path(root)
        self.flush_seconds = float(flush_seconds)
        self.flush_rows = int(flush_rows)
        self.buffer_rows = int(buffer_rows)
        self._schemas = {name: arrow_schema(name) for name in TABLES}
        self._columns = {name: tuple(TABLES[name]) for name in TABLES}
        self._widths = {name: len(cols) for name, cols in self._columns.items()}
        # rows convert as one struct array (pyarrow transposes them in C); zoned timestamps go
        # in as tz-less (aware datetimes are converted to UTC in C) and are cast afterwards
        self._row_types = {name: pa.struct([_naive(f) for f in schema]) for name, schema in self._schemas.items()}
        self._buffers: dict[str, list[Row | tuple[Any, ...]]] = {name: [] for name in TABLES}
        # re-entrant, so the SIGTERM handler (which runs on the main thread between any two
        # bytecodes) can tell that it interrupted a critical section and defer until its end
        self._lock = threading.RLock()  # guards _buffers and the counters
        self._write_lock = threading.RLock()  # one flush at a time (thread vs flush())
        self._pending_signal: tuple[int, FrameType | None] | None = None
        self._wake = threading.Event()
        self._stop = False
        self._closed = False
        self._dropped = 0
        self._written = 0
        self._segments = 0
        self._inflight = 0  # rows taken from the buffers by a flush and not yet stored or counted
        # object store only: segments whose upload failed, tried again at the next flush (their
        # rows stay counted in _inflight)
        self._retry: list[tuple[str, int, int, pa.Table]] = []
        self._retried = 0
        self._logged: set[str] = set()
        self.last_error: str | None = None
        """The most recent storage problem (None while all is well), for status pages."""
        self._warm_up()
        self._thread = self._start_thread()
        atexit.register(self.close)
        _register_fork_handler(self)
        self._sigterm: _SigtermFlush | None = _SigtermFlush.install(self) if flush_on_sigterm else None

    # ------------------------------------------------------------------ hot path
    def emit(self, table: str, row: Row) -> None:
        """Buffer one row. Never blocks on disk; a full buffer drops (and counts) the row."""
        self._append(table, row, None)

    def emit_values(self, table: str, values: tuple[Any, ...]) -> None:
        """Buffer one row given as a tuple in :data:`TABLES` column order (the fast path).

        Aware ``event_time`` values in any time zone are stored as UTC. A tuple of the wrong
        length is a programming error and raises ``ValueError`` (nothing is buffered)."""
        self._append(table, values, len(values))

    def _append(self, table: str, row: Row | tuple[Any, ...], width: int | None) -> None:
        with self._lock:
            try:
                buf = self._buffers[table]
            except KeyError:
                raise ValueError(f"unknown audit table {table!r}; known: {sorted(TABLES)}") from None
            if width is not None and width != self._widths[table]:
                raise ValueError(f"audit table {table!r} has {self._widths[table]} columns, got {width} values")
            n = len(buf)
            if n >= self.buffer_rows or self._closed:
                self._dropped += 1
                full = not self._closed
            else:
                buf.append(row)
                if n + 1 == self.flush_rows:
                    self._wake.set()
                full = None
        if self._pending_signal is not None:  # a SIGTERM arrived inside the critical section
            self._settle()
        if full is not None:
            self._report("buffer" if full else "closed",
                         "audit buffer full, dropping events (is the disk slow or failing?)" if full
                         else "audit sink is closed, dropping events")

    # ------------------------------------------------------------------ status
    @property
    def dropped(self) -> int:
        """Rows accepted by ``emit`` that were not stored (buffer full, disk error, closed)."""
        return self._dropped

    @property
    def written(self) -> int:
        """Rows stored in segments so far."""
        return self._written

    @property
    def segments(self) -> int:
        """Segment files written so far."""
        return self._segments

    @property
    def retried(self) -> int:
        """Segment uploads that failed and were kept for the next flush (object storage only)."""
        return self._retried

    @property
    def buffered(self) -> int:
        """Rows waiting in the buffers (not yet taken by a flush)."""
        with self._lock:
            return sum(len(b) for b in self._buffers.values())

    @property
    def unflushed(self) -> int:
        """Rows accepted and not yet stored (nor counted as dropped): the buffers plus a flush in
        progress. What a SIGKILL at this instant would lose; ``written + dropped + unflushed``
        is the number of rows accepted."""
        with self._lock:
            return sum(len(b) for b in self._buffers.values()) + self._inflight

    # ------------------------------------------------------------------ flushing
    def flush(self) -> None:
        """Write everything buffered now, synchronously. Storage errors are counted, not raised."""
        with self._write_lock:
            with self._lock:
                taken = {t: b for t, b in self._buffers.items() if b}
                for t in taken:
                    self._buffers[t] = []
                self._inflight += sum(len(b) for b in taken.values())
            if self._retry:
                retry, self._retry = self._retry, []
                for table, year, month, part in retry:
                    self._write_part(table, year, month, part)
            for table, rows in taken.items():
                self._write_table(table, rows)
        if self._pending_signal is not None:
            self._settle()

    def close(self) -> None:
        """Flush everything and stop the flusher. Idempotent; also runs at interpreter exit."""
        with self._lock:
            if self._closed:
                return
            self._stop = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            self._closed = True
        self.flush()
        if self._retry:  # the object store is still failing: nothing will try these again
            lost, self._retry = self._retry, []
            self._lost(sum(p.num_rows for *_k, p in lost), "store",
                       f"audit sink closed while {len(lost)} segment(s) could not be uploaded to {self.root}")
        if self._sigterm is not None:
            self._sigterm.uninstall()
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001 - interpreter shutting down
            pass

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="riskengine-audit-flusher", daemon=True)
        thread.start()
        return thread

    def _warm_up(self) -> None:
        """pyarrow imports pandas & co. on its first Python-to-Arrow conversion (~1 s): pay that
        once, at construction, on the caller's thread. Done by the flusher thread instead, the
        import fought a busy scoring thread for the GIL at every file it read (a convoy: each
        hand-over waits out the switch interval) and the first flush came tens of seconds late."""
        try:
            for table in self._schemas:
                self._to_arrow(table, [{}])
        except Exception:  # noqa: BLE001 - only a warm-up
            pass

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - the flusher must survive anything
                self._report("flusher", f"audit flusher error: {type(exc).__name__}: {exc}")

    def _write_table(self, table: str, rows: list[Row | tuple[Any, ...]]) -> None:
        # the caller has counted ``rows`` in ``_inflight``; every row leaves it exactly once,
        # in the same critical section that counts it as written or dropped
        try:
            batch = self._to_arrow(table, rows)
        except Exception as exc:  # noqa: BLE001 - bad rows are a bug upstream; count, don't crash
            self._lost(len(rows), "convert",
                       f"audit rows for {table!r} do not fit its schema: {type(exc).__name__}: {exc}")
            return
        times = batch.column("event_time")
        parts = _split_by_month(batch, times)
        if self.store is not None:
            for (year, month), part in parts:
                self._write_part(table, year, month, part)
            return
        for i, ((year, month), part) in enumerate(parts):
            folder = Path(self.root) / table / f"year={year:04d}" / f"month={month:02d}"
            try:
                private_mkdir(folder)
                write_atomically(folder / segment_name(), _parquet_writer(part))
            except BaseException as exc:
                self._lost(part.num_rows, "disk",
                           f"cannot write audit segment under {folder}: {type(exc).__name__}: {exc}")
                if not isinstance(exc, Exception):  # KeyboardInterrupt & co: the rest is lost too
                    self._lost(sum(p.num_rows for _, p in parts[i + 1:]), "disk", "audit flush interrupted")
                    raise
                continue
            self._stored(part.num_rows)

    def _stored(self, n: int) -> None:
        with self._lock:
            self._written += n
            self._inflight -= n
            self._segments += 1
            if self.last_error is not None:
                log.warning("audit log writes recovered (%d rows dropped so far)", self._dropped)
                self.last_error = None
                self._logged.discard("disk")
                self._logged.discard("store")

    def _write_part(self, table: str, year: int, month: int, part: pa.Table) -> None:
        """Upload one segment to the object store: one PUT (or a multipart upload) straight to
        its final key, visible whole when it completes. A failure keeps the segment for the
        next flush while the rows waiting that way fit in ``buffer_rows``."""
        assert self.store is not None
        key = f"{partition_rel(table, year, month)}/{segment_name()}"
        try:
            sink = pa.BufferOutputStream()
            pq.write_table(part, sink, compression="zstd")
            self.store.put(key, sink.getvalue().to_pybytes())
        except Exception as exc:  # noqa: BLE001 - any client error: keep or count, never raise
            message = f"cannot upload audit segment {self.store.url(key)}: {type(exc).__name__}: {exc}"
            with self._lock:
                waiting = sum(p.num_rows for *_k, p in self._retry)
                keep = not self._closed and waiting + part.num_rows <= self.buffer_rows
                if keep:
                    self._retry.append((table, year, month, part))
                    self._retried += 1
                    self.last_error = message
            if keep:
                self._report("store", f"{message} (kept for the next flush)")
            else:
                self._lost(part.num_rows, "store", message)
            return
        self._stored(part.num_rows)

    def _to_arrow(self, table: str, rows: list[Row | tuple[Any, ...]]) -> pa.Table:
        # dict rows become tuples in column order; then one typed struct array for the whole
        # batch: no per-row type inference, no Python-level transposition into columns
        names = self._columns[table]
        schema = self._schemas[table]
        tuples = [r if type(r) is tuple else tuple(map(r.get, names)) for r in rows]  # type: ignore[union-attr]
        batch = pa.Table.from_struct_array(pa.array(tuples, type=self._row_types[table]))
        for i, f in enumerate(schema):
            if batch.schema.field(i).type != f.type:
                batch = batch.set_column(i, f, batch.column(i).cast(f.type))
        return batch.cast(schema)

    def _lost(self, n: int, kind: str, message: str) -> None:
        with self._lock:
            self._dropped += n
            self._inflight -= n
            self.last_error = message
        self._report(kind, f"{message} ({n} rows dropped)")

    def _report(self, kind: str, message: str) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            log.error("%s", message)

    def _settle(self) -> None:
        """Run a SIGTERM flush deferred because the signal interrupted a critical section."""
        pending, hook = self._pending_signal, self._sigterm
        if pending is None or hook is None or _owned(self._lock) or _owned(self._write_lock):
            return
        self._pending_signal = None
        hook.finish(*pending)

    def _after_fork_in_child(self) -> None:
        # the parent's buffered rows are the parent's to write; the child starts clean
        self._lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._wake = threading.Event()
        self._buffers = {name: [] for name in TABLES}
        self._inflight = 0
        self._retry = []
        self._pending_signal = None
        if not self._closed and not self._stop:
            self._thread = self._start_thread()

    def __repr__(self) -> str:
        return f"ParquetSink(root={str(self.root)!r}, written={self._written}, dropped={self._dropped})"


def _owned(lock: Any) -> bool:
    """Whether the current thread holds the re-entrant ``lock``."""
    return bool(lock._is_owned())


class _SigtermFlush:
    """SIGTERM → flush the sink → the handler that was there before (chained, never replaced).

    A previous Python handler is called; SIG_DFL is restored and the signal raised again, so
    the process ends with the status SIGTERM gives; SIG_IGN stays ignored. Python runs signal
    handlers on the main thread between bytecodes: one that lands inside the sink's own
    critical section (an ``emit`` on the main thread) is deferred to that section's end rather
    than deadlocking on the sink's lock.
    """

    def __init__(self, sink: ParquetSink, previous: Any) -> None:
        self._sink = weakref.ref(sink)
        self.previous = previous

    @classmethod
    def install(cls, sink: ParquetSink) -> _SigtermFlush | None:
        if threading.current_thread() is not threading.main_thread():
            log.info("audit.flush_on_sigterm: not on the main thread, no SIGTERM handler installed")
            return None
        previous = signal.getsignal(signal.SIGTERM)
        if previous is None:  # installed outside Python: it could not be chained
            log.warning("audit.flush_on_sigterm: the SIGTERM handler was not set from Python and "
                        "cannot be chained; not installing one")
            return None
        hook = cls(sink, previous)
        signal.signal(signal.SIGTERM, hook.handle)
        return hook

    def handle(self, signum: int, frame: FrameType | None) -> None:
        sink = self._sink()
        if sink is not None and (_owned(sink._lock) or _owned(sink._write_lock)):
            sink._pending_signal = (signum, frame)  # finished by sink._settle()
            return
        self.finish(signum, frame)

    def finish(self, signum: int, frame: FrameType | None) -> None:
        sink = self._sink()
        if sink is not None:
            try:
                sink.flush()
            except Exception as exc:  # noqa: BLE001 - the previous handler must still run
                log.error("audit flush on SIGTERM failed: %s: %s", type(exc).__name__, exc)
        self.chain(signum, frame)

    def chain(self, signum: int, frame: FrameType | None) -> None:
        previous = self.previous
        if previous == signal.SIG_IGN:
            return
        if previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        if callable(previous):
            previous(signum, frame)

    def uninstall(self) -> None:
        """Put the previous handler back if ours is still the installed one (else keep chaining)."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) == self.handle:
            signal.signal(signal.SIGTERM, self.previous)


def _naive(f: pa.Field) -> pa.Field:
    """``f`` with a zoned timestamp type made tz-less: pyarrow then converts aware datetimes
    to UTC in C, where asking for the zoned type goes through Python tz objects per value."""
    if pa.types.is_timestamp(f.type) and f.type.tz is not None:
        return pa.field(f.name, pa.timestamp(f.type.unit), nullable=f.nullable)
    return f


def _split_by_month(batch: pa.Table, times: Any) -> list[tuple[tuple[int, int], pa.Table]]:
    """Rows grouped by the UTC year/month of ``event_time`` (rows without a time: now)."""
    import pyarrow.compute as pc

    if times.null_count:
        now = pa.scalar(datetime.now(UTC), type=times.type)
        times = pc.fill_null(times, now)
        batch = batch.set_column(batch.schema.get_field_index("event_time"), "event_time", times)
    keys = pc.add(pc.multiply(pc.year(times), 100), pc.month(times))
    distinct = pc.unique(keys).to_pylist()
    if len(distinct) == 1:
        k = int(distinct[0])
        return [((k // 100, k % 100), batch)]
    out = []
    for k in sorted(int(x) for x in distinct):
        out.append(((k // 100, k % 100), batch.filter(pc.equal(keys, k))))
    return out


def _parquet_writer(part: pa.Table) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        pq.write_table(part, tmp, compression="zstd")

    return write


_live_sinks: weakref.WeakSet[ParquetSink] = weakref.WeakSet()
_fork_handler_installed = False


def _register_fork_handler(sink: ParquetSink) -> None:
    global _fork_handler_installed
    _live_sinks.add(sink)
    if not _fork_handler_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reinit_after_fork)
        _fork_handler_installed = True


def _reinit_after_fork() -> None:
    for sink in list(_live_sinks):
        sink._after_fork_in_child()


__all__ = ["ParquetSink", "arrow_schema", "segment_name", "write_atomically"]
