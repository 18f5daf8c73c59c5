"""`riskengine replay`: the command over :mod:`riskengine.offline.replay`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from riskengine.apps.cliutil import add_json_flag, jsonable, print_json
from riskengine.core.config import Settings
from riskengine.offline.formats import FORMATS, infer_format
from riskengine.offline.parallel import cpu_seconds, peak_rss_mb, replay_partitioned
from riskengine.offline.prepass import DEFAULT_PARTITIONS
from riskengine.offline.replay import replay_to_file


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "replay", help="score historical logins (native or RBA CSV) through the engine",
        description="Stream logins in time order through Engine.score(); write one decision row "
                    "per input row (index, decision, risk_score, reasons).")
    p.add_argument("input", metavar="IN", help="events.parquet (native) or an RBA-layout CSV")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default=None,
                   help="input format (default: inferred: Parquet is native, a CSV with the RBA header is rba)")
    p.add_argument("--out", required=True, help="decisions Parquet file to write")
    p.add_argument("--outcomes", choices=("labels", "verified", "simulated"), default=None,
                   help="how challenges end: labels (attackers fail), verified (all pass), simulated "
                        "(native only, default there); RBA default: labels")
    p.add_argument("--config", default=None, help="riskengine.toml (default: built-in settings + RISKENGINE_* env)")
    p.add_argument("--audit-root", default=None, help="write the audit log here (default: no audit log)")
    p.add_argument("--asn-db", default=None, help="ASN mmdb (native default: asn.mmdb beside IN)")
    p.add_argument("--no-baseline", action="store_true", help="skip the Freeman et al. baseline score")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes, each replaying whole user partitions with its own engine "
                        "(default 1; every N writes the same bytes)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the partitions on this Dask distributed scheduler (tcp://host:8786); "
                        "IN and OUT must be on paths every Dask worker can read and write")
    p.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS, metavar="P",
                   help=f"user partitions (default {DEFAULT_PARTITIONS}; keep it fixed to compare runs byte for byte)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal anyway)")
    add_json_flag(p, "the run's statistics")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise SystemExit(f"riskengine replay: --workers must be at least 1, got {args.workers}")
    if args.partitions < 1:
        raise SystemExit(f"riskengine replay: --partitions must be at least 1, got {args.partitions}")
    if args.audit_root is not None and (args.workers > 1 or args.scheduler is not None):
        raise SystemExit("riskengine replay: --audit-root needs one process (--workers 1, no --scheduler)")
    fmt = args.fmt or infer_format(args.input, "IN")
    config: str | Settings | None = args.config
    if args.audit_root is not None:  # a stopped CLI run keeps its audit buffer (SIGTERM flushes it)
        config = Settings.load(args.config).with_overrides(audit={"flush_on_sigterm": True})
    worker_rss_mb: float | None = None
    if args.audit_root is not None:  # one engine, in this process, writing the audit log
        stats = replay_to_file(
            args.input, fmt, args.out, outcomes=args.outcomes, config=config,
            audit_root=args.audit_root, asn_db=args.asn_db, baseline=not args.no_baseline,
            progress=not args.no_progress and sys.stderr.isatty())
    else:
        stats, parts = replay_partitioned(
            args.input, fmt, args.out, workers=args.workers, scheduler=args.scheduler,
            partitions=args.partitions, outcomes=args.outcomes, config=config, asn_db=args.asn_db,
            baseline=not args.no_baseline)
        worker_rss_mb = max((p.peak_rss_mb for p in parts), default=0.0)
    if args.json:
        print_json({"input": args.input, "format": fmt, "out": args.out, **jsonable(stats),
                    "logins_per_second": stats.logins_per_second, "workers": args.workers,
                    "partitions": args.partitions, "peak_worker_rss_mb": worker_rss_mb,
                    "peak_rss_mb": peak_rss_mb(), **cpu_seconds()})
        return 0
    print(f"replayed {stats.rows:,} rows ({stats.logins:,} logins, {stats.failures:,} failed passwords, "
          f"{stats.signups:,} signups) in {stats.seconds:.1f} s: {stats.logins_per_second:,.0f} logins/s")
    print(f"challenged {stats.challenges:,}, denied {stats.denies:,} → {args.out}")
    return 0
