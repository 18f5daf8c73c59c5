"""Durability measured: a writer killed with SIGKILL loses at most what its sink reported as
unflushed at that instant, that is at most about one flush interval of rows, and leaves only
whole Parquet files behind.

The child reports ``emitted`` and ``sink.unflushed`` just before it kills itself, so the check
is exact: rows only become "not unflushed" once their segment is renamed into place, and a
renamed file survives SIGKILL (the page cache belongs to the kernel, not the process). The
kill points are drawn from a fixed list of seeds, so a failure is reproducible.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

FLUSH_SECONDS = 0.05
SLACK_INTERVALS = 4  # scheduling and the time a flush takes to write, in flush intervals
SEEDS = (11, 23, 37, 41, 53)

_CHILD = """
import bisect, json, os, random, signal, sys, time
from datetime import datetime, timezone
from riskengine.audit.parquet import ParquetSink
root, seed, flush_seconds, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rng = random.Random(seed)
sink = ParquetSink(root, flush_seconds=flush_seconds, flush_rows=10**9)  # time-driven flushes only
when = datetime(2026, 3, 2, tzinfo=timezone.utc)
def emit(i):
    sink.emit("conversions", {"event_time": when, "schema_version": 1, "experiment": "e", "user_key": f"u{i}"})
emit(0)
deadline = time.monotonic() + 60
while sink.written < 1 and time.monotonic() < deadline:  # the flusher is warmed up and flushing
    time.sleep(0.005)
emitted, kill_at = 1, rng.randint(20_000, 60_000)
times, counts = [], []
while emitted < kill_at:
    for _ in range(rng.randint(1, 40)):
        emit(emitted)
        emitted += 1
    times.append(time.monotonic())
    counts.append(emitted)
    time.sleep(rng.choice((0.0, 0.0002, 0.0005)))
unflushed, dropped, now = sink.unflushed, sink.dropped, time.monotonic()
before = bisect.bisect_right(times, now - window) - 1
recent = emitted - (counts[before] if before >= 0 else 0)  # rows emitted in the last `window` seconds
print(json.dumps({"emitted": emitted, "unflushed": unflushed, "dropped": dropped, "recent": recent}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_loses_at_most_the_unflushed_rows(seed: int, tmp_path: Path) -> None:
    root = tmp_path / "audit"
    window = SLACK_INTERVALS * FLUSH_SECONDS
    done = subprocess.run([sys.executable, "-c", _CHILD, str(root), str(seed), str(FLUSH_SECONDS), str(window)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    report = json.loads(done.stdout)
    emitted, unflushed = report["emitted"], report["unflushed"]
    assert report["dropped"] == 0

    segments = sorted(root.glob("conversions/**/*.parquet"))
    on_disk = 0
    for path in segments:  # every visible file is a whole Parquet file, readable to the end
        on_disk += pq.read_table(path).num_rows
    leftovers = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".parquet"]
    assert all(p.name.startswith(".") and p.name.endswith(".tmp") for p in leftovers), leftovers

    assert on_disk <= emitted
    assert on_disk >= emitted - unflushed, f"lost {emitted - on_disk} rows, only {unflushed} were unflushed"
    # the promise: a kill loses about one flush interval of rows, never more than a few
    assert unflushed <= report["recent"], (
        f"{unflushed} rows unflushed at the kill, but only {report['recent']} were emitted in the last "
        f"{window:.2f} s ({SLACK_INTERVALS} flush intervals)")
