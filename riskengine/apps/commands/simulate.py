"""``riskengine simulate --out DIR [--users N] [--days D] [--warmup-days W] [--seed S]
[--format native|rba|both] [--profile default|heldout] [--ato-share F]``."""

from __future__ import annotations

import argparse
import time
from datetime import date
from typing import Any

from riskengine.apps.cliutil import UsageError, add_json_flag, print_json
from riskengine.offline.simulate.profiles import PROFILES
from riskengine.offline.simulate.run import (
    DEFAULT_ATO_SHARE,
    DEFAULT_WARMUP_DAYS,
    MAX_ATO_SHARE,
    SimulationConfig,
    simulate,
)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "simulate", help="write synthetic logins (native Parquet and/or RBA CSV) with labels",
        description="Simulate a service's logins with labelled attacks, 2FA behaviour and a signup "
                    "experiment. Writes events.parquet, logins_rba.csv, labels.parquet, asn.mmdb.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--users", type=int, default=20_000, help="simulated users (at least 10)")
    p.add_argument("--days", type=int, default=90, help="simulated days after --start (1..3650)")
    p.add_argument("--warmup-days", type=int, default=DEFAULT_WARMUP_DAYS,
                   help="days of legitimate-only traffic of existing users before --start, flagged "
                        "`warmup` in labels.parquet and left out by `riskengine evaluate` "
                        f"(default {DEFAULT_WARMUP_DAYS}; 0: profiles start empty)")
    p.add_argument("--seed", type=int, default=42, help="random seed (same seed, same files)")
    p.add_argument("--format", dest="fmt", choices=("native", "rba", "both"), default="both",
                   help="native: events.parquet; rba: logins_rba.csv (RBA dataset layout); both")
    p.add_argument("--profile", choices=tuple(PROFILES), default="default",
                   help="parameter set: default (tune on this one only) or heldout (other countries, "
                        "operators, shares of odd-but-legitimate users, RTT bands and attack mix)")
    p.add_argument("--ato-share", type=float, default=DEFAULT_ATO_SHARE,
                   help="victims per takeover family as a share of users per 90 days (default "
                        f"{DEFAULT_ATO_SHARE}; raise it, up to {MAX_ATO_SHARE}, for evaluation files with "
                        "hundreds of attack logins per family)")
    p.add_argument("--start", default="2025-09-01", help="first simulated day (UTC), YYYY-MM-DD")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_json_flag(p, "the files written and the run's size and time")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        date.fromisoformat(args.start)
    except ValueError:
        raise UsageError(f"--start must be a date YYYY-MM-DD, got {args.start!r}") from None
    try:
        cfg = SimulationConfig(users=args.users, days=args.days, seed=args.seed, start=args.start,
                               warmup_days=args.warmup_days, profile=args.profile, ato_share=args.ato_share)
        cfg.validate()
    except ValueError as exc:  # every field comes straight from a flag
        raise UsageError(str(exc)) from exc
    started = time.perf_counter()
    written = simulate(args.out, cfg, fmt=args.fmt, progress=not args.no_progress)
    seconds = time.perf_counter() - started
    if args.json:
        print_json({"files": written, "users": cfg.users, "days": cfg.days, "warmup_days": cfg.warmup_days,
                    "seed": cfg.seed, "profile": cfg.profile, "ato_share": cfg.ato_share, "seconds": round(seconds, 3)})
        return 0
    for name, path in written.items():
        print(f"{name:9s} {path}")
    print(f"simulated {cfg.users} users × {cfg.days} days (+ {cfg.warmup_days} warm-up days) in {seconds:.1f} s")
    return 0
