"""Partitioned replay: ``riskengine replay IN --out OUT --workers N`` / ``--scheduler ADDRESS``.

Three steps, every one streaming (memory is bounded by the batch size and the number of
users in one partition, never by the number of rows; the budget post-pass excepted):

1. **pre-pass and scatter** (this process): read IN in batches, validate, add the
   cross-user columns (:mod:`riskengine.offline.prepass`) and write each batch's rows of each
   partition to a chunk file in a work directory beside OUT, marking the batch complete;
2. **replay** each partition with its own :class:`~riskengine.core.engine.Engine` (memory
   store): in N local processes (``--workers``; submitted before the pre-pass, the first
   ones follow it batch by batch), or as tasks on a Dask distributed cluster (``--scheduler``;
   after the pre-pass; the work directory must be on a path every worker can read and write);
3. **merge** the partitions' decisions by input row number into OUT, in input order,
   written to a temporary file and renamed, so a failed run leaves no OUT behind (with a
   step-up budget: in memory, through the budget post-pass).

The partitions (``partitions``, default 16) are fixed independently of the number of
workers and each gets a fresh engine reading the same chunks, so ``--workers 1`` (the same
partitions one after the other) writes exactly the bytes ``--workers N`` and ``--scheduler`` do.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ProcessPoolExecutor, as_completed, wait
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from riskengine._extras import extra

with extra("sim", feature="riskengine replay"):
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

from riskengine.core.config import Settings
from riskengine.core.engine import Engine
from riskengine.core.enrich.geoip import GeoIP
from riskengine.offline.baseline import FreemanBaseline
from riskengine.offline.formats import check_input_file
from riskengine.offline.prepass import DEFAULT_PARTITIONS, SharedPass
from riskengine.offline.replay import (
    BATCH_ROWS,
    BUDGET_SCHEMA,
    OUTPUT_SCHEMA,
    Replayer,
    ReplayStats,
    _batch_gc,
    _settings,
    budget_post_pass,
    native_batches,
    prepass_batch,
    rba_batches,
)

PART_SCHEMA: Final = pa.schema([pa.field("_row", pa.int64()), *OUTPUT_SCHEMA])


class PartitionError(RuntimeError):
    """A partition's replay failed; the message names the partition and the cause."""


@dataclass(slots=True)
class PartitionResult:
    partition: int
    stats: ReplayStats
    peak_rss_mb: float


SCRATCH: Final[dict[str, Any]] = {"compression": "lz4", "use_dictionary": False}
"""Parquet options of the work directory's files (written once, read once): a third cheaper
to write and read back than the defaults, about as small."""


def read_scratch(path: Path) -> pa.Table:
    """A partition's output file, whole. ``ParquetFile.read``, not ``pq.read_table``: that
    goes through ``pyarrow.dataset``, whose import imports pandas (0.3–0.4 CPU s per run)."""
    with pq.ParquetFile(path) as f:
        return f.read()


def part_name(partition: int) -> str:
    return f"part-{partition:05d}.parquet"


def peak_rss_mb() -> float:
    """This process's own peak RSS. ``VmHWM``, not ``ru_maxrss``: Linux carries ``ru_maxrss``
    across fork + exec, so a spawned worker would report the peak of the process that spawned
    it (the pre-pass) whenever that was higher than its own."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB; macOS: bytes


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) of this process (the coordinator: reading, pre-pass,
    merge, budget post-pass) and of its finished child processes (the local workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"coordinator_cpu_s": round(own.ru_utime + own.ru_stime, 2),
            "workers_cpu_s": round(children.ru_utime + children.ru_stime, 2)}


class _ProcessGeoIP(GeoIP):
    """The GeoIP readers and answer caches of one replay process, shared by every engine it
    builds (the pre-pass's and one per partition): a worker replays several partitions, and
    each fresh engine used to open the databases again and warm its own /24 cache on
    addresses the previous partitions had already looked up. Answers do not depend on the
    cache, so decisions are the same. Kept open until the process ends."""

    def close(self) -> None:
        """An engine closing does not close the process's readers (the next partition's use them)."""


_GEOIP: dict[tuple[str | None, str | None, int], tuple[tuple[tuple[int, int] | None, ...], GeoIP]] = {}


def _stamp(path: str | None) -> tuple[int, int] | None:
    """(mtime, size) of a database file: a long-lived worker (a Dask worker runs for days)
    must not keep answering from a database that was replaced since it was opened."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None  # missing: GeoIP itself reports it
    return (st.st_mtime_ns, st.st_size)


def process_geoip(settings: Settings) -> GeoIP:
    """This process's :class:`GeoIP` for ``settings``' databases (opened on first use, and
    again when a database file changed on disk)."""
    key = (settings.geo.city_db, settings.geo.asn_db, settings.geo.cache_size)
    stamps = (_stamp(key[0]), _stamp(key[1]))
    found = _GEOIP.get(key)
    if found is not None and found[0] == stamps:
        return found[1]
    geoip = _ProcessGeoIP(*key)
    _GEOIP[key] = (stamps, geoip)
    return geoip


# ---------------------------------------------------------------------------- 1. scatter
# The pre-pass hands each partition its rows one input batch at a time: a chunk file per
# (partition, batch) with rows, then ``in/progress`` (replaced atomically after every batch)
# says how many batches are complete and whether that was the last. A partition can so be
# replayed while the pre-pass is still reading the rest of the input (``--workers N``: the
# first partitions start at once and follow the pre-pass), and a partition started after
# the pre-pass reads the same chunks: the same rows in the same order, whatever the timing.
IPC: Final = pa.ipc.IpcWriteOptions(compression="lz4")
"""Chunk files: Arrow IPC, lz4 (a fraction of Parquet's cost to write and read back)."""
PROGRESS: Final = "progress"
ABORTED: Final = "aborted"
POLL_S: Final = 0.02
"""How often a partition waiting for the pre-pass's next batch looks at ``in/progress``."""


def chunk_name(partition: int, batch: int) -> str:
    return f"part-{partition:05d}-{batch:06d}.arrow"


def write_progress(workdir: Path, batches: int, final: bool) -> None:
    tmp = workdir / "in" / f".{PROGRESS}.tmp"
    tmp.write_text(f"{batches} {int(final)}\n", encoding="ascii")
    tmp.replace(workdir / "in" / PROGRESS)


def abort_progress(workdir: Path) -> None:
    """Tell partitions waiting for more batches that none will come (the pre-pass failed)."""
    with contextlib.suppress(OSError):
        tmp = workdir / "in" / f".{PROGRESS}.tmp"
        tmp.write_text(f"{ABORTED}\n", encoding="ascii")
        tmp.replace(workdir / "in" / PROGRESS)


def _progress(workdir: Path) -> tuple[int, bool]:
    try:
        text = (workdir / "in" / PROGRESS).read_text(encoding="ascii").split()
    except FileNotFoundError:
        return 0, False  # the pre-pass has not finished its first batch
    if text == [ABORTED]:
        raise PartitionError("the pre-pass stopped before the end of the input (see its error)")
    return int(text[0]), text[1] == "1"


def partition_chunks(workdir: Path, partition: int, *, wait: bool = True) -> Iterator[pa.Table]:
    """A partition's rows, chunk by chunk in input order, as the pre-pass completes batches.
    ``wait=False``: the pre-pass must already have finished (a remote task)."""
    parent = os.getppid()
    k = 0
    while True:
        done, final = _progress(workdir)
        if not final and not wait:
            raise PartitionError(f"{workdir}: the pre-pass has not finished")
        while k < done:
            chunk = workdir / "in" / chunk_name(partition, k)
            k += 1
            if chunk.exists():
                with pa.OSFile(str(chunk), "rb") as source:
                    yield pa.ipc.open_file(source).read_all()
        if final:
            return
        if os.getppid() != parent:
            raise PartitionError("the process that ran the pre-pass is gone")
        time.sleep(POLL_S)


def scatter(path: Path, fmt: str, settings: Settings, workdir: Path, *, baseline: bool,
            partitions: int, batch_rows: int, sizes: dict[int, int] | None = None) -> int:
    """Pre-pass IN and write each batch's rows of each partition to a chunk file (rows in
    input order), marking each batch complete in ``in/progress``; returns rows (and, into
    ``sizes``, each partition's)."""
    batches = native_batches(path, batch_rows) if fmt == "native" else rba_batches(path, batch_rows)
    schema: pa.Schema | None = None
    rows = 0
    done = 0
    with Engine(settings.with_overrides(audit={"root": None}), geoip=process_geoip(settings)) as engine:
        shared = SharedPass(engine, fmt, baseline=baseline, partitions=partitions)
        for batch in batches:
            if batch.height == 0:
                continue
            table = prepass_batch(shared, batch).to_arrow()
            if schema is None:
                schema = table.schema
            else:
                table = table.cast(schema)  # a CSV block may infer a column differently
            rows += table.num_rows
            by_part = pl.from_arrow(table.select(["_part"]))
            assert isinstance(by_part, pl.DataFrame)
            groups = by_part.with_row_index("_i").group_by("_part", maintain_order=True).agg(pl.col("_i"))
            # the row indices stay Arrow arrays: pa.array() of a Python list imports pandas (1.5 s)
            indices = groups["_i"].to_arrow()
            for k, part in enumerate(groups["_part"].to_list()):
                if sizes is not None:
                    sizes[part] = sizes.get(part, 0) + len(indices[k])
                with pa.OSFile(str(workdir / "in" / chunk_name(part, done)), "wb") as sink, \
                        pa.ipc.new_file(sink, schema, options=IPC) as writer:
                    writer.write_table(table.take(indices[k].values))
            done += 1
            write_progress(workdir, done, final=False)
    write_progress(workdir, done, final=True)
    return rows


# ---------------------------------------------------------------------------- 2. replay
def replay_partition(partition: int, workdir: str, fmt: str, outcomes: str, settings: Settings,
                     baseline: bool, batch_rows: int, wait: bool = False) -> PartitionResult:
    """Replay one partition with a fresh engine; writes ``out/part-NNNNN.parquet``. ``wait``:
    follow a pre-pass still running (a local worker), else it must have finished. A plain
    function of plain arguments: what a process pool or a Dask task runs."""
    dst = Path(workdir) / "out" / part_name(partition)
    stats = ReplayStats()
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack, Engine(settings, geoip=process_geoip(settings)) as engine:
            replayer = Replayer(engine, fmt, outcomes, FreemanBaseline() if baseline else None)
            replayer.stats = stats
            replayer.session_period = batch_rows
            part_schema = pa.schema([pa.field("_row", pa.int64()), *replayer.schema])
            writer = stack.enter_context(pq.ParquetWriter(dst, part_schema, **SCRATCH))
            for chunk in partition_chunks(Path(workdir), partition, wait=wait):
                # one input batch's rows of this partition at a time, as the pre-pass completes them
                # (RBA session ids still count rows as the partition's batch_rows batches: Replayer)
                frame = pl.from_arrow(chunk)
                assert isinstance(frame, pl.DataFrame)
                with _batch_gc():
                    out = replayer.run_batch(frame)
                rows = frame["_row"].to_arrow().cast(pa.int64())
                writer.write_batch(pa.RecordBatch.from_arrays([rows, *out.columns], schema=part_schema))
    except Exception as exc:
        raise PartitionError(f"replay partition {partition} ({workdir}) failed: {type(exc).__name__}: {exc}") \
            from exc
    stats.seconds = time.perf_counter() - started
    return PartitionResult(partition, stats, peak_rss_mb())


Runner = Callable[[list[int], Callable[..., PartitionResult], tuple[Any, ...]], list[PartitionResult]]


def warm_up() -> None:
    """A no-op task: unpickling it in a fresh worker imports this module and what the replay
    needs (polars, pyarrow, the engine)."""


def run_serial(parts: list[int], fn: Callable[..., PartitionResult], args: tuple[Any, ...]) -> list[PartitionResult]:
    return [fn(p, *args) for p in parts]


def executor_runner(pool: Executor) -> Runner:
    """Partitions on an executor the caller owns and keeps (a process pool kept warm across
    runs: spawning workers and importing riskengine in them costs seconds per run)."""

    def run(parts: list[int], fn: Callable[..., PartitionResult], args: tuple[Any, ...]) -> list[PartitionResult]:
        return collect([pool.submit(fn, p, *args) for p in parts])

    return run


def collect(futures: list[Future[PartitionResult]]) -> list[PartitionResult]:
    """The partitions' results; the first failure (the others cancelled or waited for) as a
    :class:`PartitionError`."""
    wait(futures, return_when=FIRST_EXCEPTION)
    for f in futures:
        if f.done() and f.exception() is not None:
            for other in futures:
                other.cancel()
            wait(futures)  # nothing of this run still writing into its work directory
            exc = f.exception()
            assert exc is not None
            if isinstance(exc, PartitionError):
                raise PartitionError(str(exc)) from exc
            raise PartitionError(f"a replay worker process failed: {type(exc).__name__}: {exc}") from exc
    return [f.result() for f in futures]


def dask_runner(scheduler: str | Any) -> Runner:
    """Partitions as tasks on a Dask distributed cluster: ``scheduler`` is an address
    (``tcp://host:8786``) or a ``distributed.Client``/``LocalCluster`` already running."""
    from riskengine._extras import extra

    with extra("distributed", feature="riskengine replay --scheduler"):
        from distributed import Client

    def run(parts: list[int], fn: Callable[..., PartitionResult], args: tuple[Any, ...]) -> list[PartitionResult]:
        own = not isinstance(scheduler, Client)
        client: Any = Client(scheduler) if own else scheduler  # type: ignore[no-untyped-call]
        try:
            futures = [client.submit(fn, p, *args, key=f"riskengine-replay-{os.getpid()}-{time.time_ns()}-{p}",
                                     pure=False, retries=0) for p in parts]
            try:
                results: list[PartitionResult] = client.gather(futures)
            except PartitionError:
                raise
            except Exception as exc:
                raise PartitionError(f"a replay task failed on the Dask cluster: {type(exc).__name__}: {exc}") from exc
            return results
        finally:
            if own:
                client.close()

    return run


# ---------------------------------------------------------------------------- 3. merge
def _batches(path: Path, batch_rows: int) -> Iterator[pl.DataFrame]:
    if not path.exists():
        return
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield frame


def merge(workdir: Path, partitions: int, rows: int, out: Path, batch_rows: int,
          schema: pa.Schema = OUTPUT_SCHEMA) -> None:
    """Merge the partitions' decisions by input row number, streaming, into ``out``."""
    sources = [_batches(workdir / "out" / part_name(p), batch_rows) for p in range(partitions)]
    buffers: list[pl.DataFrame | None] = [None] * partitions
    with pq.ParquetWriter(out, schema) as writer:
        for start in range(0, rows, batch_rows):
            end = min(rows, start + batch_rows)
            pieces: list[pl.DataFrame] = []
            for p in range(partitions):
                while True:
                    buf = buffers[p]
                    if buf is not None and buf.height and buf["_row"][-1] >= end:
                        break
                    nxt = next(sources[p], None)
                    if nxt is None:
                        break
                    buffers[p] = nxt if buf is None else pl.concat([buf, nxt])
                buf = buffers[p]
                if buf is None:
                    continue
                cut = int((buf["_row"] < end).sum())
                pieces.append(buf.head(cut))
                buffers[p] = buf.slice(cut)
            window = pl.concat(pieces).sort("_row")
            if window.height != end - start or (window.height and (
                    window["_row"][0] != start or window["_row"][-1] != end - 1)):
                raise PartitionError(f"merging the partitions: rows {start}..{end - 1} incomplete "
                                     f"({window.height} of {end - start})")
            writer.write_table(window.drop("_row").to_arrow().cast(schema), row_group_size=batch_rows)


def gather(workdir: Path, partitions: int, rows: int, schema: pa.Schema,
           read: dict[int, pa.Table] | None = None) -> pa.Table:
    """Every partition's decisions in one table, in input order (what :func:`merge` writes,
    held in memory: for the budget post-pass, which needs all rows at once). ``read``: the
    partitions' outputs already read (as they finished), by partition."""
    read = read or {}
    tables = [read[p] if p in read else read_scratch(path) for p in range(partitions)
              if p in read or (path := workdir / "out" / part_name(p)).exists()]
    frame = pl.from_arrow(pa.concat_tables(tables) if tables else
                          pa.schema([pa.field("_row", pa.int64()), *schema]).empty_table())
    assert isinstance(frame, pl.DataFrame)
    frame = frame.sort("_row")
    if frame.height != rows or (rows and (frame["_row"][0] != 0 or frame["_row"][-1] != rows - 1
                                          or not bool((frame["_row"].diff().fill_null(1) == 1).all()))):
        raise PartitionError(f"merging the partitions: rows 0..{rows - 1} incomplete ({frame.height} of {rows})")
    return frame.drop("_row").to_arrow().cast(schema)


# ---------------------------------------------------------------------------- all three
def replay_partitioned(
    path: str | Path, fmt: str, out: str | Path, *, workers: int = 1, scheduler: str | Any | None = None,
    partitions: int = DEFAULT_PARTITIONS, outcomes: str | None = None,
    config: str | Path | Settings | None = None, asn_db: str | Path | None = None, baseline: bool = True,
    batch_rows: int = BATCH_ROWS, workdir: str | Path | None = None, executor: Executor | None = None,
) -> tuple[ReplayStats, list[PartitionResult]]:
    """Replay ``path`` into ``out`` over ``partitions`` user partitions run by ``workers``
    processes (or on the Dask cluster at ``scheduler``, or on ``executor``, a pool the caller
    keeps). Returns the summed statistics (``seconds``: wall clock of the whole run) and each
    partition's own."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a whole number of at least 1, got {workers!r}")
    if partitions < 1:
        raise ValueError(f"--partitions must be at least 1, got {partitions!r}")
    path = check_input_file(path, "replay input")
    if fmt not in ("rba", "native"):
        raise ValueError(f"--format must be rba or native, got {fmt!r}")
    if outcomes is None:
        outcomes = "simulated" if fmt == "native" else "labels"
    Replayer.check(fmt, outcomes)
    if asn_db is None and fmt == "native" and (path.parent / "asn.mmdb").exists():
        asn_db = path.parent / "asn.mmdb"
    settings = _settings(config, None, asn_db)
    if settings.audit.root is not None:
        raise ValueError("a partitioned replay writes no audit log: leave audit.root unset (or use replay() in "
                         "one process)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    base = Path(workdir) if workdir is not None else out.parent
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.work-", dir=base))
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        (work / "in").mkdir()
        (work / "out").mkdir()
        budget_on = bool(settings.policy.target_stepup_rate)
        read: dict[int, pa.Table] = {}
        with contextlib.ExitStack() as pools:
            args = (str(work), fmt, outcomes, settings, baseline, batch_rows)
            parts = list(range(partitions))
            pool: Executor | None = executor
            if scheduler is None and executor is None and workers > 1:
                # started before the pre-pass, so spawning them and importing riskengine in them
                # (about a second each) overlaps the pre-pass instead of following it
                pool = pools.enter_context(ProcessPoolExecutor(
                    max_workers=workers, mp_context=multiprocessing.get_context("spawn")))
                for _ in range(workers):
                    pool.submit(warm_up)
            if scheduler is not None or pool is None:  # the pre-pass, then the partitions
                rows = scatter(path, fmt, settings, work, baseline=baseline, partitions=partitions,
                               batch_rows=batch_rows)
                runner = dask_runner(scheduler) if scheduler is not None else run_serial
                results = runner(parts, replay_partition, args)
            else:
                # one partition per worker submitted first: they follow the pre-pass batch by batch
                # (partition_chunks) on the cores it leaves, instead of waiting for its end; the
                # rest after it, largest first, so the run does not end on one worker's big partition
                futures = [pool.submit(replay_partition, p, *args, True) for p in parts[:workers]]
                sizes: dict[int, int] = {}
                try:
                    rows = scatter(path, fmt, settings, work, baseline=baseline, partitions=partitions,
                                   batch_rows=batch_rows, sizes=sizes)
                except BaseException:
                    abort_progress(work)
                    for pending in futures:
                        pending.cancel()
                    wait(futures)
                    raise
                rest = sorted(parts[workers:], key=lambda p: (-sizes.get(p, 0), p))
                futures += [pool.submit(replay_partition, p, *args) for p in rest]
                if budget_on:  # read each output as its partition ends, while the last ones still run
                    for done in as_completed(futures):
                        if done.exception() is not None:
                            break  # collect() names it
                        finished = done.result()
                        read[finished.partition] = read_scratch(work / "out" / part_name(finished.partition))
                results = collect(futures)
        counted = ReplayStats()
        if budget_on:  # the post-pass reads every row anyway: merge in memory, write once
            merged = gather(work, partitions, rows, BUDGET_SCHEMA, read)
            read.clear()
            pq.write_table(budget_post_pass(merged, settings, counted), tmp)
        else:
            merge(work, partitions, rows, tmp, batch_rows)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed replay leaves no half-written decisions behind
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = ReplayStats()
    for r in results:
        for f in fields(ReplayStats):
            if f.name != "seconds":
                setattr(total, f.name, getattr(total, f.name) + getattr(r.stats, f.name))
    if budget_on:  # the budget's decisions, not the scoring pass's
        total.challenges, total.denies = counted.challenges, counted.denies
    total.seconds = time.perf_counter() - started
    return total, sorted(results, key=lambda r: r.partition)

