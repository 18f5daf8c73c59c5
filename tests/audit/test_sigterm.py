"""audit.flush_on_sigterm: SIGTERM loses no audit row, and the handler that was there before
still runs (chained, never replaced)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import duckdb
import pytest

from riskengine.audit.parquet import ParquetSink

N = 3000

# scores N logins through an Engine whose flusher would not run for an hour, says so, waits
_ENGINE_CHILD = """
import signal, sys
from datetime import timedelta
from riskengine import Engine
from riskengine.testing import T0, make_attempt, offline_settings
root, n = sys.argv[1], int(sys.argv[2])
engine = Engine(offline_settings(audit={"root": root, "key": "k" * 32, "flush_seconds": 3600,
                                        "flush_on_sigterm": True}))
for i in range(n):
    engine.score(make_attempt(f"u{i % 300}", T0 + timedelta(seconds=i)))
print(engine.sink.unflushed, flush=True)
while True:
    signal.pause()
"""

# a service that installed its own graceful-shutdown handler before the sink
_CHAINED_CHILD = """
import glob, os, signal, sys
from datetime import datetime, timezone
import pyarrow.parquet as pq
from riskengine.audit.parquet import ParquetSink
root, n = sys.argv[1], int(sys.argv[2])
def graceful(signum, frame):
    on_disk = sum(pq.read_metadata(p).num_rows for p in glob.glob(root + "/**/*.parquet", recursive=True))
    print("previous handler ran; rows on disk", on_disk, flush=True)
    sys.exit(7)
signal.signal(signal.SIGTERM, graceful)
sink = ParquetSink(root, flush_seconds=3600, flush_on_sigterm=True)
when = datetime(2026, 3, 2, tzinfo=timezone.utc)
for i in range(n):
    sink.emit("conversions", {"event_time": when, "schema_version": 1, "experiment": "e", "user_key": f"u{i}"})
print(sink.unflushed, flush=True)
while True:
    signal.pause()
"""


def rows_on_disk(root: Path, table: str) -> int:
    files = [str(p) for p in root.glob(f"{table}/**/*.parquet")]
    if not files:
        return 0
    return int(duckdb.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchall()[0][0])


def run_and_terminate(code: str, root: Path) -> tuple[int, list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", code, str(root), str(N)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.strip() == str(N), (first, proc.stderr.read() if proc.stderr else "")  # all still buffered
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, [first, *out.splitlines(), err]


def test_sigterm_flushes_every_decision_then_exits_as_sigterm_would(tmp_path: Path) -> None:
    code, output = run_and_terminate(_ENGINE_CHILD, tmp_path)
    assert code == -signal.SIGTERM, output  # the default action still happens: killed by SIGTERM
    assert rows_on_disk(tmp_path, "decisions") == N


def test_sigterm_flushes_then_runs_the_previous_python_handler(tmp_path: Path) -> None:
    code, output = run_and_terminate(_CHAINED_CHILD, tmp_path)
    assert code == 7, output  # the service's own handler decided how to exit
    assert f"previous handler ran; rows on disk {N}" in output  # and it ran after the flush
    assert rows_on_disk(tmp_path, "conversions") == N


@pytest.fixture
def recorded_previous() -> Iterator[list[int]]:
    calls: list[int] = []

    def previous(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    old = signal.signal(signal.SIGTERM, previous)
    try:
        yield calls
    finally:
        signal.signal(signal.SIGTERM, old)


def row(i: int) -> dict[str, object]:
    return {"event_time": datetime(2026, 3, 2, tzinfo=UTC), "schema_version": 1, "experiment": "e",
            "user_key": f"u{i}"}


def test_a_signal_inside_the_sinks_critical_section_is_handled_at_its_end(
        tmp_path: Path, recorded_previous: list[int]) -> None:
    sink = ParquetSink(tmp_path, flush_seconds=3600, flush_on_sigterm=True)
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    try:
        sink.emit("conversions", row(0))
        with sink._lock:  # as if SIGTERM landed while emit() held the lock on the main thread
            handler(signal.SIGTERM, None)
            assert recorded_previous == []  # deferred, not deadlocked
        assert rows_on_disk(tmp_path, "conversions") == 0
        sink.emit("conversions", row(1))  # the end of the next critical section runs it
        assert recorded_previous == [signal.SIGTERM]
        assert rows_on_disk(tmp_path, "conversions") == 2
    finally:
        sink.close()


def test_close_puts_the_previous_handler_back(tmp_path: Path, recorded_previous: list[int]) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    sink = ParquetSink(tmp_path, flush_on_sigterm=True)
    assert signal.getsignal(signal.SIGTERM) != previous
    sink.close()
    assert signal.getsignal(signal.SIGTERM) == previous


def test_off_by_default_and_skipped_off_the_main_thread(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with ParquetSink(tmp_path / "a"):
        assert signal.getsignal(signal.SIGTERM) == before
    made: list[ParquetSink] = []
    thread = threading.Thread(target=lambda: made.append(ParquetSink(tmp_path / "b", flush_on_sigterm=True)))
    thread.start()
    thread.join()
    made[0].close()
    assert signal.getsignal(signal.SIGTERM) == before
