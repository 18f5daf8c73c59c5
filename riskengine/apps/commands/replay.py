"""`riskengine replay`: the command over :mod:`riskengine.offline.replay`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from riskengine.apps.cliutil import add_json_flag, jsonable, print_json
from riskengine.core.config import Settings
from riskengine.offline.formats import FORMATS, infer_format
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal anyway)")
    add_json_flag(p, "the run's statistics")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    fmt = args.fmt or infer_format(args.input, "IN")
    config: str | Settings | None = args.config
    if args.audit_root is not None:  # a stopped CLI run keeps its audit buffer (SIGTERM flushes it)
        config = Settings.load(args.config).with_overrides(audit={"flush_on_sigterm": True})
    stats = replay_to_file(
        args.input, fmt, args.out, outcomes=args.outcomes, config=config,
        audit_root=args.audit_root, asn_db=args.asn_db, baseline=not args.no_baseline,
        progress=not args.no_progress and sys.stderr.isatty())
    if args.json:
        print_json({"input": args.input, "format": fmt, "out": args.out, **jsonable(stats),
                    "logins_per_second": stats.logins_per_second})
        return 0
    print(f"replayed {stats.rows:,} rows ({stats.logins:,} logins, {stats.failures:,} failed passwords, "
          f"{stats.signups:,} signups) in {stats.seconds:.1f} s: {stats.logins_per_second:,.0f} logins/s")
    print(f"challenged {stats.challenges:,}, denied {stats.denies:,} → {args.out}")
    return 0
