"""Partitioned replay (`--workers N`, `--scheduler`): the same bytes for every worker count,
input order, cross-user address failures as the serial engine counts them, parity with
score(), and clear errors."""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from riskengine.apps.cli import main
from riskengine.core.attempt import LoginAttempt
from riskengine.core.config import Settings
from riskengine.core.engine import Engine
from riskengine.offline.parallel import PartitionError, replay_partitioned
from riskengine.offline.prepass import partition_of
from riskengine.offline.simulate import SimulationConfig, simulate

HEADER = ("index,Login Timestamp,User ID,IP Address,Country,Region,City,ASN,User Agent String,"
          "Login Successful,Is Account Takeover")
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
USERS = 40
ATTACKER = "203.0.113.9"


def _rows() -> list[tuple[datetime, str, str, bool]]:
    """(time, user, ip, ok): each user logs in from home daily; on day 5 one address fails
    passwords on every user (a stuffing wave), and a third of the users then log in from it."""
    start = datetime(2021, 3, 1, 8, 0)
    rows = []
    for day in range(8):
        for u in range(USERS):
            ts = start + timedelta(days=day, minutes=u)
            rows.append((ts, f"user{u:02d}", f"198.51.100.{u + 1}", True))
        if day == 5:
            wave = start + timedelta(days=day, hours=2)
            for u in range(USERS):
                rows.append((wave + timedelta(seconds=u), f"user{u:02d}", ATTACKER, False))
            for u in range(0, USERS, 3):
                rows.append((wave + timedelta(minutes=5, seconds=u), f"user{u:02d}", ATTACKER, True))
    return rows


@pytest.fixture(scope="module")
def rba_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rba") / "logins.csv"
    lines = [HEADER]
    for i, (ts, user, ip, ok) in enumerate(_rows()):
        lines.append(f"{1000 + i},{ts:%Y-%m-%d %H:%M:%S.000},{user},{ip},US,,,7922,\"{CHROME}\","
                     f"{ok},{ip == ATTACKER}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def native_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, SimulationConfig(users=60, days=6, seed=7, warmup_days=0), fmt="native", progress=False)
    return out / "events.parquet"


@pytest.fixture(scope="module")
def pools() -> Iterator[dict[int, ProcessPoolExecutor]]:
    """Process pools of 2 and 3 spawned workers, shared by this module's runs: spawning and
    importing riskengine in fresh workers for every run was most of this module's time.
    (`test_cli_workers_flag` still has replay spawn its own pool.)"""
    ctx = multiprocessing.get_context("spawn")
    made = {n: ProcessPoolExecutor(max_workers=n, mp_context=ctx) for n in (2, 3)}
    yield made
    for pool in made.values():
        pool.shutdown()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_users_land_in_several_partitions() -> None:
    parts = {partition_of(f"user{u:02d}", 16) for u in range(USERS)}
    assert len(parts) >= 8
    assert partition_of("user01", 16) == partition_of("user01", 16)


@pytest.mark.parametrize("fmt", ["rba", "native"])
def test_every_worker_count_writes_the_same_bytes(fmt: str, rba_csv: Path, native_events: Path,
                                                  tmp_path: Path, pools: dict[int, ProcessPoolExecutor]) -> None:
    src = rba_csv if fmt == "rba" else native_events
    digests = {}
    for workers in (1, 2, 3):
        out = tmp_path / f"w{workers}.parquet"
        stats, parts = replay_partitioned(src, fmt, out, workers=workers, partitions=5, batch_rows=97,
                                          executor=pools.get(workers))
        digests[workers] = _digest(out)
        assert stats.rows == pl.read_parquet(out).height
        assert len(parts) == 5
    assert digests[1] == digests[2] == digests[3]
    assert not list(tmp_path.glob(".*work-*")) and not list(tmp_path.glob(".*tmp-*"))


def test_dask_local_cluster_writes_the_same_bytes(rba_csv: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    serial = tmp_path / "serial.parquet"
    replay_partitioned(rba_csv, "rba", serial, workers=1, partitions=4)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        on_dask = tmp_path / "dask.parquet"
        replay_partitioned(rba_csv, "rba", on_dask, scheduler=cluster.scheduler_address, partitions=4)
        again = tmp_path / "dask-client.parquet"
        replay_partitioned(rba_csv, "rba", again, scheduler=client, partitions=4)
    assert _digest(serial) == _digest(on_dask) == _digest(again)


def test_output_keeps_input_order(rba_csv: Path, tmp_path: Path, pools: dict[int, ProcessPoolExecutor]) -> None:
    out = tmp_path / "d.parquet"
    replay_partitioned(rba_csv, "rba", out, partitions=7, batch_rows=50, executor=pools[2])
    assert pl.read_parquet(out)["index"].to_list() == pl.read_csv(rba_csv)["index"].to_list()


def _serial_engine(rba_csv: Path, settings: Settings) -> tuple[list[str], list[list[str]], list[float]]:
    """The online engine, one process, score() and record_failure() in file order."""
    decisions, reasons, risks = [], [], []
    with Engine(settings) as engine:
        for row in pl.read_csv(rba_csv).iter_rows(named=True):
            ts = datetime.fromisoformat(row["Login Timestamp"]).replace(tzinfo=None)
            from datetime import UTC
            ts = ts.replace(tzinfo=UTC)
            if not row["Login Successful"]:
                engine.record_failure(row["User ID"], row["IP Address"], ts)
                decisions.append("")
                reasons.append([])
                risks.append(0.0)
                continue
            d = engine.score(LoginAttempt(user_id=row["User ID"], timestamp=ts, ip=row["IP Address"],
                                          user_agent=row["User Agent String"], country=row["Country"],
                                          asn=row["ASN"], session_id="s"))
            if d.action == "challenge":
                engine.record_outcome(d.decision_id, "failed" if row["Is Account Takeover"] else "verified",
                                      timestamp=ts + timedelta(seconds=30))
            decisions.append(d.action)
            reasons.append([r.code for r in d.reasons])
            risks.append(d.risk)
    return decisions, reasons, risks


def test_parity_with_score_and_cross_user_address_failures(rba_csv: Path, tmp_path: Path,
                                                           pools: dict[int, ProcessPoolExecutor]) -> None:
    # the population prior is the one intentional difference (replay: the input's
    # population; online: this engine's accepted logins), so it is off for the comparison
    settings = Settings().with_overrides(geo={"rare_country_weight": 0.0})
    out = tmp_path / "d.parquet"
    replay_partitioned(rba_csv, "rba", out, partitions=6, config=settings, baseline=False, executor=pools[2])
    got = pl.read_parquet(out)
    decisions, reasons, risks = _serial_engine(rba_csv, settings)
    assert got["decision"].to_list() == decisions
    assert got["reasons"].to_list() == reasons
    assert got["risk_score"].to_list() == pytest.approx(risks, abs=0)
    # the address's failures came from other users' partitions and still count
    frame = pl.read_csv(rba_csv).with_columns(got["reasons"])
    from_attacker = frame.filter((pl.col("IP Address") == ATTACKER) & pl.col("Login Successful"))
    assert from_attacker.height == len(range(0, USERS, 3))
    assert all("FAILED_ATTEMPTS_IP" in r for r in from_attacker["reasons"].to_list())


def test_bad_worker_counts_are_refused(rba_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("0", "-2"):
        with pytest.raises(SystemExit, match="--workers must be at least 1"):
            main(["replay", str(rba_csv), "--format", "rba", "--out", str(tmp_path / "o.parquet"), "--workers", bad])
    with pytest.raises(ValueError, match="--workers"):
        replay_partitioned(rba_csv, "rba", tmp_path / "o.parquet", workers=0)
    assert not (tmp_path / "o.parquet").exists()


def _crash_the_partition_of(user: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Make every batch of ``user``'s partition (of 4) fail with "disk on fire"; its number."""
    from riskengine.offline import replay as replay_module

    real = replay_module.Replayer.run_batch
    victim = partition_of(user, 4)

    def crash_in_one_partition(self: replay_module.Replayer, batch: pl.DataFrame) -> object:
        if batch["_part"][0] == victim:
            raise RuntimeError("disk on fire")
        return real(self, batch)

    monkeypatch.setattr(replay_module.Replayer, "run_batch", crash_in_one_partition)
    return victim


def test_a_failing_partition_is_named_and_leaves_no_output(rba_csv: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    victim = _crash_the_partition_of("user07", monkeypatch)
    out = tmp_path / "d.parquet"
    with pytest.raises(PartitionError, match=rf"partition {victim} .*disk on fire"):
        replay_partitioned(rba_csv, "rba", out, workers=1, partitions=4)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary output, no work directory


def test_cli_workers_flag(rba_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    assert main(["replay", str(rba_csv), "--format", "rba", "--out", str(one), "--workers", "1"]) == 0
    assert main(["replay", str(rba_csv), "--format", "rba", "--out", str(two), "--workers", "2"]) == 0
    assert _digest(one) == _digest(two)
    assert "replayed" in capsys.readouterr().out


def test_a_failing_partition_on_a_callers_executor(rba_csv: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    victim = _crash_the_partition_of("user11", monkeypatch)
    out = tmp_path / "d.parquet"
    with ThreadPoolExecutor(max_workers=2) as pool:
        with pytest.raises(PartitionError, match=rf"partition {victim} .*disk on fire"):
            replay_partitioned(rba_csv, "rba", out, partitions=4, executor=pool)
        assert not out.exists()
        assert list(tmp_path.iterdir()) == []
        # the pool is the caller's: still usable after the failed run
        monkeypatch.undo()
        replay_partitioned(rba_csv, "rba", out, partitions=4, executor=pool)
    assert out.exists()


def test_worker_peak_rss_is_the_workers_own(rba_csv: Path, tmp_path: Path,
                                            pools: dict[int, ProcessPoolExecutor]) -> None:
    """Spawned workers inherit the spawning process's ``ru_maxrss``; the figure reported per
    worker must not: blow this process's peak up well past a worker's, then compare."""
    from riskengine.offline.parallel import peak_rss_mb

    ballast = bytearray(600 * 1024 * 1024)  # touched: resident
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    here = peak_rss_mb()
    del ballast
    _, parts = replay_partitioned(rba_csv, "rba", tmp_path / "d.parquet", partitions=2, workers=2)
    assert here > 600
    assert all(0 < p.peak_rss_mb < here - 300 for p in parts)


def test_a_partition_follows_the_pre_pass_batch_by_batch(tmp_path: Path) -> None:
    """A local worker's partition reads each batch's chunk once the pre-pass marks the batch
    complete, before the pre-pass has finished; a pre-pass that stops makes it fail, not wait."""
    import pyarrow as pa

    from riskengine.offline.parallel import abort_progress, chunk_name, partition_chunks, write_progress

    (tmp_path / "in").mkdir()

    def chunk(batch: int, rows: list[int]) -> None:
        table = pa.table({"_row": pa.array(rows, pa.int64())})
        with pa.OSFile(str(tmp_path / "in" / chunk_name(3, batch)), "wb") as sink, \
                pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    chunk(0, [1, 4])
    write_progress(tmp_path, 1, final=False)
    following = partition_chunks(tmp_path, 3)
    assert next(following)["_row"].to_pylist() == [1, 4]  # batch 0, the pre-pass still running
    chunk(2, [9])  # batch 1 had no row of partition 3
    write_progress(tmp_path, 3, final=True)
    assert [t["_row"].to_pylist() for t in following] == [[9]]
    # a remote task (wait=False) refuses a pre-pass still running; an aborted one fails the partition
    write_progress(tmp_path, 1, final=False)
    with pytest.raises(PartitionError, match="has not finished"):
        list(partition_chunks(tmp_path, 3, wait=False))
    waiting = partition_chunks(tmp_path, 3)
    assert next(waiting)["_row"].to_pylist() == [1, 4]
    abort_progress(tmp_path)
    with pytest.raises(PartitionError, match="pre-pass stopped"):
        next(waiting)


def test_a_pre_pass_error_stops_the_workers_following_it(native_events: Path, tmp_path: Path,
                                                         pools: dict[int, ProcessPoolExecutor]) -> None:
    """A bad row after several complete batches: the workers already replaying the first
    batches stop, and the run fails with the row's own error (no hang, no output)."""
    events = pl.read_parquet(native_events)
    bad_at = events.height - 5
    broken = events.with_columns(pl.when(pl.int_range(pl.len()) == bad_at).then(pl.lit("bogus"))
                                 .otherwise(pl.col("kind")).alias("kind"))
    src = tmp_path / "src" / "events.parquet"
    src.parent.mkdir()
    broken.write_parquet(src)
    out = tmp_path / "out" / "d.parquet"
    bad_id = events["event_id"][bad_at]
    with pytest.raises(ValueError, match=rf"index {bad_id}: unknown event kind 'bogus'"):
        replay_partitioned(src, "native", out, workers=2, partitions=4, batch_rows=500, executor=pools[2])
    assert not out.exists() and list(out.parent.iterdir()) == []
    # the pool is still usable: nothing of the failed run is left running in it
    replay_partitioned(native_events, "native", out, workers=2, partitions=4, batch_rows=500, executor=pools[2])
    assert out.exists()


def test_a_replay_process_does_not_import_pandas(rba_csv: Path, tmp_path: Path) -> None:
    """pandas is not a replay dependency: pyarrow imports it on the first ``pa.array`` of a
    Python list and through ``pyarrow.dataset`` (0.3 CPU s in every process, workers included)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from riskengine.offline.parallel import replay_partitioned\n"
            f"replay_partitioned({str(rba_csv)!r}, 'rba', {str(tmp_path / 'o.parquet')!r}, workers=1)\n"
            "print('pandas' in sys.modules, 'riskengine.offline.simulate' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert pl.read_parquet(tmp_path / "o.parquet").height == len(rba_csv.read_text().splitlines()) - 1


def test_the_engines_of_one_replay_process_share_one_geoip_that_outlives_them() -> None:
    from riskengine.offline.parallel import process_geoip

    settings = Settings()
    geoip = process_geoip(settings)
    assert process_geoip(settings) is geoip
    with Engine(settings, geoip=geoip) as first:
        before = first.geoip.lookup("81.2.69.160")
    with Engine(settings, geoip=process_geoip(settings)) as second:  # the first one closed
        assert second.geoip is geoip
        assert second.geoip.lookup("81.2.69.160") == before  # a cache hit
        # another /24: read from the database, which closing the first engine left open
        found, problem = second.geoip.lookup("89.160.20.112")
    assert before[0] is not None and before[0].country == "GB"
    assert problem is None and found is not None and found.country == "SE"


def test_a_replaced_database_file_is_opened_again(tmp_path: Path, maxmind: Callable[[str], Path]) -> None:
    """A long-lived worker process (a Dask worker runs for days) must not keep answering from a
    GeoIP database that was replaced on disk since the process opened it."""
    import os
    import shutil

    from riskengine.offline.parallel import process_geoip

    city = tmp_path / "city.mmdb"
    shutil.copyfile(maxmind("GeoIP2-City-Test.mmdb"), city)
    settings = Settings().with_overrides(geo={"city_db": str(city)})
    first = process_geoip(settings)
    assert process_geoip(settings) is first  # unchanged file: the same readers
    shutil.copyfile(maxmind("GeoLite2-City-Test.mmdb"), city)
    os.utime(city, ns=(1, 1))  # a different stamp even on a coarse clock
    second = process_geoip(settings)
    assert second is not first
    assert process_geoip(settings) is second
    found, problem = second.lookup("81.2.69.160")
    assert problem is None and found is not None and found.country == "GB"
