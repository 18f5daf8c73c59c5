"""``riskengine demo``: simulate → score every login (audit log) → report → dashboard.

Re-running reuses what exists in ``--out``: the simulation when its parameters match, the
replay (and audit log) when it was made from that simulation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

from riskengine._extras import extra

with extra("dashboard,sim", feature="riskengine demo"):
    import polars as pl

from riskengine.core.config import Settings
from riskengine.offline.evaluate import evaluate, plot
from riskengine.offline.replay import replay_to_file
from riskengine.offline.simulate import SimulationConfig, existing_run, simulate
from riskengine.offline.simulate.run import DEFAULT_WARMUP_DAYS
from riskengine.offline.simulate.writer import EVENTS_FILE, LABELS_FILE, MANIFEST_FILE

DEFAULT_USERS: Final = 20_000
"""The full-size service: 20k users × 90 days (+ 90 warm-up days). Measured from a fresh clone on
2 cores: simulate 91 s (with the one-off ~45 s GeoLite2 sample), replay with the audit log and
the baseline 93 s (14,300 logins/s), `make demo-headless` 3 min 51 s including the install. The
warm-up is the simulator's steady-state default, so the detection report is the README's table."""
REPLAY_STAMP: Final = "replay.json"


def _say(msg: str) -> None:
    print(msg, flush=True)


def prepare(out: Path, cfg: SimulationConfig, *, progress: bool = True) -> dict[str, Any]:
    """Simulate and replay into ``out`` unless already there; returns timings."""
    timings: dict[str, Any] = {}
    sim_dir = out / "sim"
    started = time.perf_counter()
    if existing_run(sim_dir, cfg, "native"):
        _say(f"• reusing the simulation in {sim_dir}")
        timings["simulate_s"] = 0.0
    else:
        _say(f"• simulating {cfg.users:,} users × {cfg.days} days (+ {cfg.warmup_days} warm-up days) "
             f"into {sim_dir}")
        simulate(sim_dir, cfg, fmt="native", progress=progress)
        timings["simulate_s"] = round(time.perf_counter() - started, 1)
    manifest = json.loads((sim_dir / MANIFEST_FILE).read_text())
    decisions = out / "decisions.parquet"
    audit = out / "audit"
    stamp = out / REPLAY_STAMP
    if decisions.exists() and stamp.exists() and json.loads(stamp.read_text()).get("simulation") == manifest:
        _say(f"• reusing the replay in {decisions} and the audit log in {audit}")
        timings["replay_s"] = 0.0
        timings["logins_per_s"] = json.loads(stamp.read_text()).get("logins_per_s")
    else:
        if audit.exists():
            shutil.rmtree(audit)  # an audit log of another simulation would mix two runs
        _say(f"• scoring every login through the engine (audit log → {audit})")
        started = time.perf_counter()
        settings = Settings.load().with_overrides(audit={"flush_on_sigterm": True})  # stopped: keep the buffer
        stats = replay_to_file(sim_dir / EVENTS_FILE, "native", decisions, config=settings, audit_root=audit,
                               progress=progress)
        timings["replay_s"] = round(time.perf_counter() - started, 1)
        timings["logins_per_s"] = round(stats.logins_per_second)
        stamp.write_text(json.dumps({"simulation": manifest, "logins_per_s": timings["logins_per_s"]}))
    return timings


def report(out: Path, target: float = 0.02) -> str:
    """The audit log's KPIs and experiment readouts (the same `riskengine.analytics` code the
    dashboard and `riskengine report` use, so the numbers agree), then detection vs baseline."""
    from riskengine.analytics import AuditDB
    from riskengine.analytics.report import format_summary

    sim_dir = out / "sim"
    dec = pl.read_parquet(out / "decisions.parquet")
    db = AuditDB(out / "audit")
    lines = ["", "──────── riskengine demo report ────────", format_summary(db.report())]
    sends, waves = db.send_totals(), db.pumping_alerts()
    if sends["checks"]:
        flagged = [f"{w['dest_country']} {w['bucket']:%Y-%m-%d %H:00}" for w in waves.iter_rows(named=True)]
        refused = int(sends["blocked"] or 0) + int(sends["switched"] or 0)
        lines += ["", f"OTP sends (check_send): {sends['checks']:,} checked, {sends['sent']:,} sent, "
                      f"{refused:,} blocked or switched (cost {float(sends['cost'] or 0):,.2f}, "
                      f"avoided {float(sends['cost_avoided'] or 0):,.2f}); "
                      f"SMS pumping waves flagged: {', '.join(flagged) or 'none'}"]
    ev = evaluate(dec, sim_dir / LABELS_FILE, target)
    lines += ["", "detection (labelled simulated attacks):", ev.summary()]
    try:
        png = plot(ev, out / "tradeoff.png")
        lines.append(f"\ntrade-off plot: {png}")
    except Exception as exc:  # noqa: BLE001 - a plotting problem must not hide the numbers
        lines.append(f"\n(trade-off plot not written: {exc})")
    return "\n".join(lines)


def start_dashboard(audit: Path, port: int) -> int:
    from riskengine.apps.dashboard_cli import build_command

    try:
        cmd = build_command(str(audit), port)
    except FileNotFoundError as exc:
        _say(f"{exc}; run `riskengine dashboard --root {audit}` when it is there")
        return 1
    proc = subprocess.Popen(cmd)
    _say(f"\ndashboard: http://localhost:{port}   (Ctrl-C to stop)")
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="simulate → score every login → audit → report → dashboard",
        description="The whole product on a laptop: ~90 days of a simulated service, every login "
                    "scored, an audit log, a report, then the dashboard.")
    p.add_argument("--headless", action="store_true", help="no dashboard (CI)")
    p.add_argument("--users", type=int, default=DEFAULT_USERS, help="simulated users")
    p.add_argument("--days", type=int, default=90, help="simulated days")
    p.add_argument("--warmup-days", type=int, default=DEFAULT_WARMUP_DAYS,
                   help="days of legitimate traffic before the window that profiles learn from and "
                        "the detection report leaves out")
    p.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    p.add_argument("--out", default="var/demo", help="working folder (data, decisions, audit root)")
    p.add_argument("--port", type=int, default=8501, help="dashboard HTTP port")
    p.add_argument("--target-stepup", type=float, default=0.02,
                   help="legitimate step-up rate the detection report picks its operating point at")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out = Path(args.out)
    cfg = SimulationConfig(users=args.users, days=args.days, seed=args.seed, warmup_days=args.warmup_days)
    timings = prepare(out, cfg, progress=sys.stderr.isatty())
    _say(report(out, args.target_stepup))
    _say(f"\ntimings: simulate {timings['simulate_s']} s, replay {timings['replay_s']} s "
         f"({timings.get('logins_per_s') or 0:,} logins/s), total {time.perf_counter() - started:.0f} s")
    if args.headless:
        return 0
    return start_dashboard(out / "audit", args.port)
