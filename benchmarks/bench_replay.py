"""Replay throughput (logins/s, one core) and peak RSS, with a breakdown of where time goes.

    python benchmarks/bench_replay.py [--users 20000] [--days 90] [--warmup-days 0] [--out var/bench]

Printed, never asserted. Each stage runs in a fresh process so peak RSS is per stage.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _stage(stage: str, events: str) -> dict[str, float]:
    import polars as pl

    from riskengine.core.attempt import LoginAttempt
    from riskengine.offline.replay import ReplayStats, native_batches, replay_to_file

    started = time.perf_counter()
    logins = 0
    if stage == "read":
        for batch in native_batches(Path(events), 65_536):
            logins += int((batch["kind"] == "login").sum())
            for _ in zip(*(batch[c].to_list() for c in ("event_time", "user_id", "ip", "user_agent")),
                         strict=True):
                pass
    elif stage == "score":
        # the engine's own floor: score() over attempts built beforehand (timed from here),
        # so no reading, no column work, no failed passwords and no challenge outcomes
        attempts = _prebuilt_attempts(Path(events))
        from riskengine.core.config import Settings
        from riskengine.core.engine import Engine

        asn_db = Path(events).parent / "asn.mmdb"
        engine = Engine(Settings().with_overrides(geo={"asn_db": str(asn_db) if asn_db.exists() else None}))
        gc.freeze()  # as replay's batch collector settings: the built attempts are long-lived
        gc.set_threshold(200_000, 50, 100)
        started = time.perf_counter()
        score = engine.score_validated
        for attempt in attempts:
            score(attempt)
        logins = len(attempts)
    elif stage == "validate":
        for batch in native_batches(Path(events), 65_536):
            b = batch.filter(pl.col("kind") == "login")
            for ts, u, ip, ua, dev in zip(*(b[c].to_list() for c in (
                    "event_time", "user_id", "ip", "user_agent", "device_id")), strict=True):
                LoginAttempt(user_id=u, timestamp=ts, ip=ip, user_agent=ua, device_id=dev)
                logins += 1
    else:
        stats = ReplayStats()
        kwargs = {"baseline": stage in ("full", "audit"), "progress": False}
        out = Path(events).parent / f"decisions-{stage}.parquet"
        if stage == "audit":
            kwargs["audit_root"] = str(Path(events).parent / "bench-audit")
        stats = replay_to_file(events, "native", out, **kwargs)  # type: ignore[arg-type]
        logins = stats.logins
    seconds = time.perf_counter() - started
    rss_mb = _peak_rss_mb()
    return {"logins": logins, "seconds": seconds, "logins_per_s": logins / seconds, "peak_rss_mb": rss_mb}


def _prebuilt_attempts(events: Path) -> list[object]:
    import polars as pl

    from riskengine.core.attempt import ValidatedAttempt

    logins = pl.read_parquet(events, columns=["kind", "event_time", "user_id", "ip", "user_agent",
                                              "device_id", "session_id"]).filter(pl.col("kind") == "login")
    micros = logins["event_time"].dt.epoch("us").to_list()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [ValidatedAttempt(u, epoch + timedelta(microseconds=m), ip, ua, dev, session_id=sid)
            for m, u, ip, ua, dev, sid in zip(micros, *(logins[c].to_list() for c in (
                "user_id", "ip", "user_agent", "device_id", "session_id")), strict=True)]


def _peak_rss_mb() -> float:
    """This process's own peak RSS. Not ``ru_maxrss``: Linux carries it across fork+exec, so
    the stage processes would report the parent's peak (it ran the simulation)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--out", default="var/bench")
    parser.add_argument("--warmup-days", type=int, default=0)
    parser.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--events", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(_stage(args.stage, args.events)))
        return
    from riskengine.offline.simulate import SimulationConfig, existing_run, simulate

    sim = Path(args.out) / "sim"
    # no warm-up by default: the figures stay comparable with the earlier ones in the README
    cfg = SimulationConfig(users=args.users, days=args.days, warmup_days=args.warmup_days)
    if not existing_run(sim, cfg, "native"):
        simulate(sim, cfg, fmt="native", progress=True)
    events = str(sim / "events.parquet")
    print(f"replay benchmark: {args.users:,} users × {args.days} days (native events, memory store)")
    stages = [
        ("read", "read batches + to_list (no scoring)"),
        ("validate", "+ a LoginAttempt per row (what replay no longer does)"),
        ("score", "score() alone over pre-built attempts (floor)"),
        ("engine", "replay, engine only (no baseline, no audit)"),
        ("full", "replay + Freeman baseline"),
        ("audit", "replay + baseline + Parquet audit log"),
    ]
    for stage, label in stages:
        raw = subprocess.run([sys.executable, __file__, "--stage", stage, "--events", events],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(raw.strip().splitlines()[-1])
        print(f"  {label:48s} {r['logins_per_s']:>10,.0f} logins/s  {r['seconds']:7.1f} s  "
              f"peak RSS {r['peak_rss_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
