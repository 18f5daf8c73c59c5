"""ParquetSink: nothing lost across threads and processes, nothing partial after a kill,
disk failures counted while scoring goes on, pseudonymised by default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from riskengine import Engine
from riskengine.audit.parquet import ParquetSink, arrow_schema
from riskengine.audit.schema import TABLES
from riskengine.testing import establish, make_attempt, offline_settings

T = datetime(2026, 3, 2, 9, tzinfo=UTC)


def conversion(i: int, when: datetime = T) -> dict[str, object]:
    return {"event_time": when, "schema_version": 1, "experiment": "e", "user_key": f"u{i}"}


def count(root: Path, table: str) -> int:
    glob = str(root / table / "**" / "*.parquet")
    return int(duckdb.connect().sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true)")
               .fetchall()[0][0])  # type: ignore[index]


# children run as separate interpreters (not fork): a real second writer process
WRITE_N = """
import sys
from datetime import UTC, datetime
from riskengine.audit.parquet import ParquetSink
root, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sink = ParquetSink(root, flush_seconds=0.05, flush_rows=500)
for i in range(start, start + n):
    sink.emit("conversions", {"event_time": datetime(2026, 3, 2, 9, tzinfo=UTC), "schema_version": 1,
                              "experiment": "e", "user_key": f"u{i}"})
sink.close()
"""

WRITE_FOREVER = """
import sys
import time
from datetime import UTC, datetime
from riskengine.audit.parquet import ParquetSink
sink = ParquetSink(sys.argv[1], flush_seconds=0.05, flush_rows=20_000)
t = datetime(2026, 3, 2, 9, tzinfo=UTC)
i = 0
while True:
    for _ in range(500):
        sink.emit("decisions", {"event_time": t, "schema_version": 1, "decision_id": f"d{i}",
                                "reasons": ["NEW_DEVICE", "NEW_COUNTRY"], "city": "x" * 200})
        i += 1
    time.sleep(0.005)  # an engine between bursts of logins
"""


def test_threads_and_two_processes_lose_nothing(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITE_N, str(tmp_path), str(k * 10_000), "7000"])
             for k in (1, 2)]
    sink = ParquetSink(tmp_path, flush_seconds=0.05, flush_rows=1_000)

    def work(k: int) -> None:
        for i in range(3_000):
            sink.emit("conversions", conversion(k * 100_000 + i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    for p in procs:
        assert p.wait(120) == 0
    assert sink.dropped == 0
    assert count(tmp_path, "conversions") == 4 * 3_000 + 2 * 7_000
    keys = duckdb.connect().sql(
        f"SELECT count(DISTINCT user_key) FROM read_parquet('{tmp_path}/conversions/**/*.parquet')")
    assert keys.fetchall()[0][0] == 4 * 3_000 + 2 * 7_000  # type: ignore[index]


def test_writer_killed_mid_flush_leaves_only_whole_segments(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITE_FOREVER, str(tmp_path)])
    folder = tmp_path / "decisions" / "year=2026" / "month=03"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(folder.glob("part-*.parquet"))) < 3:
        time.sleep(0.02)
    # kill while a temp file exists if we catch one within a few seconds: that is "mid-flush"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not list(folder.glob(".*.tmp")):
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    segments = list(folder.glob("*.parquet"))
    assert len(segments) >= 3
    assert all(p.name.startswith("part-") for p in segments), "a temp file is visible to readers"
    total = 0
    for p in segments:
        total += pq.read_metadata(p).num_rows  # every visible segment is complete and readable
    assert total > 0
    assert count(tmp_path, "decisions") == total


def test_unwritable_root_counts_drops_and_scoring_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the audit root should be")
    settings = offline_settings(audit={"root": str(blocker / "audit"), "key": "k", "flush_seconds": 0.05})
    engine = Engine(settings)
    decisions = [engine.score(make_attempt(ts=T + timedelta(minutes=i))) for i in range(20)]
    assert [d.action for d in decisions][:1] == ["allow"]
    engine.sink.flush()
    assert engine.sink.dropped == 20
    assert engine.health()["audit_dropped"] == 20
    assert engine.sink.last_error is not None and "cannot write audit segment" in engine.sink.last_error  # type: ignore[attr-defined]
    engine.close()


def test_full_buffer_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, flush_seconds=3600, flush_rows=10**9, buffer_rows=100)
    for i in range(150):
        sink.emit("conversions", conversion(i))
    assert sink.dropped == 50
    sink.close()
    assert count(tmp_path, "conversions") == 100


def test_rows_are_cast_to_the_table_schema_and_split_by_month(tmp_path: Path) -> None:
    with ParquetSink(tmp_path) as sink:
        sink.emit("conversions", conversion(1, datetime(2026, 1, 31, 23, 59, tzinfo=UTC)))
        # an aware time in another zone lands in the UTC month
        plus2 = datetime(2026, 2, 1, 1, 0, tzinfo=UTC).astimezone(
            __import__("datetime").timezone(timedelta(hours=2)))
        sink.emit("conversions", conversion(2, plus2))
        sink.emit("conversions", conversion(3, datetime(2026, 2, 1, 0, 0, tzinfo=UTC)))
    months = sorted(str(p.parent.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert months == ["conversions/year=2026/month=01", "conversions/year=2026/month=02"]
    per_month = duckdb.connect().sql(f"SELECT month, count(*) FROM read_parquet('{tmp_path}/conversions/**/*.parquet', "
                           "hive_partitioning=true, hive_types={'month': INTEGER}) "
                           "GROUP BY month ORDER BY month").fetchall()
    assert per_month == [(1, 1), (2, 2)]
    for p in tmp_path.rglob("*.parquet"):
        assert pq.read_schema(p).names == list(TABLES["conversions"])
        assert pq.read_schema(p).remove_metadata() == arrow_schema("conversions").remove_metadata()


def test_unknown_table_is_a_programming_error(tmp_path: Path) -> None:
    with ParquetSink(tmp_path) as sink, pytest.raises(ValueError, match="unknown audit table 'decision'"):
        sink.emit("decision", {})


def test_close_is_idempotent_and_later_events_are_counted(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    sink.emit("conversions", conversion(1))
    sink.close()
    sink.close()
    sink.emit("conversions", conversion(2))
    assert sink.dropped == 1 and sink.written == 1


def test_flush_seconds_writes_without_close(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, flush_seconds=0.05)
    sink.emit("conversions", conversion(1))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sink.written == 0:
        time.sleep(0.01)
    assert count(tmp_path, "conversions") == 1
    sink.close()


def _scored_root(root: Path, pseudonymize: bool) -> None:
    settings = offline_settings(audit={"root": str(root), "pseudonymize": pseudonymize})
    with Engine(settings) as engine:
        last = establish(engine, user_id="alice@example.com", days=3)
        engine.record_failure("alice@example.com", "81.2.69.160", last)
        engine.assign("signup_2fa", "alice@example.com", {"a": 0.5, "b": 0.5}, timestamp=last)
        engine.record_conversion("signup_2fa", "alice@example.com", timestamp=last)
        d = engine.score(make_attempt("alice@example.com", last + timedelta(days=1), ua="curl/8.0",
                                      place={"country": "CN", "city": "Changchun"}))
        assert d.action != "allow"
        if d.action == "challenge":
            engine.record_outcome(d.decision_id, "verified", ["sms"], timestamp=last + timedelta(days=1))


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*.parquet"))


def _all_text(root: Path) -> str:
    glob = str(root / "*" / "**" / "*.parquet")
    return str(duckdb.connect().sql(f"SELECT * FROM read_parquet('{glob}', union_by_name=true)").fetchall())


def test_no_raw_user_id_or_ip_by_default(tmp_path: Path) -> None:
    _scored_root(tmp_path, pseudonymize=True)
    text = _all_text(tmp_path)
    assert "alice@example.com" not in text and "81.2.69.160" not in text
    assert b"alice@example.com" not in _all_bytes(tmp_path) and b"81.2.69.160" not in _all_bytes(tmp_path)
    assert "81.2.69.0/24" in text


def test_pseudonymize_false_keeps_raw_values(tmp_path: Path) -> None:
    _scored_root(tmp_path, pseudonymize=False)
    text = _all_text(tmp_path)
    assert "alice@example.com" in text and "81.2.69.160" in text


@pytest.mark.skipif(sys.platform != "linux", reason="fork semantics")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_writes_its_own_rows(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, flush_seconds=0.05)
    sink.emit("conversions", conversion(1))
    pid = os.fork()
    if pid == 0:  # child: its own flusher thread must exist after fork
        try:
            sink.emit("conversions", conversion(2))
            sink.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    sink.close()
    assert count(tmp_path, "conversions") == 2
