"""`riskengine audit compact|retain`: maintenance of an audit root, safe while engines write."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from riskengine.audit.maintenance import compact, retain


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="audit log maintenance (compaction, retention)",
        description="Maintain an audit root. Both commands are safe while engines are writing.")
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    c = sub.add_parser("compact", help="merge the small Parquet segments of each partition")
    c.add_argument("--root", required=True, type=Path, help="audit root folder")
    c.add_argument("--small-mb", type=float, default=64.0,
                   help="segments below this size are merged (default 64)")
    c.add_argument("--no-rollups", dest="rollups", action="store_false",
                   help="do not (re)build the per-day rollups of closed months under <root>/_rollups")
    c.set_defaults(func=_compact)
    r = sub.add_parser("retain", help="drop whole month partitions older than a cutoff")
    r.add_argument("--root", required=True, type=Path, help="audit root folder")
    r.add_argument("--older-than", default=None, metavar="AGE",
                   help="like 4y, 18m or 90d (default: audit.retention_years from --config / "
                        "RISKENGINE_AUDIT_RETENTION_YEARS, 4y); only whole months before it are dropped")
    r.add_argument("--config", default=None, help="riskengine.toml to read audit.retention_years from")
    r.set_defaults(func=_retain)


def _existing_root(root: Path) -> Path:
    if not root.is_dir():
        raise FileNotFoundError(f"audit root {root} is not a folder")
    return root


def _compact(args: argparse.Namespace) -> int:
    res = compact(_existing_root(args.root), small_bytes=int(args.small_mb * 1024 * 1024), rollups=args.rollups)
    print(f"compacted {res.partitions} partitions: {res.files_in} segments -> {res.files_out} "
          f"({res.rows} rows); recovered {res.recovered} interrupted runs, "
          f"removed {res.stale_tmp_removed} stale temp files")
    if args.rollups:
        print(f"rollups: built {len(res.rollups_built)} months, {res.rollups_current} already current")
    return 0


def _retain(args: argparse.Namespace) -> int:
    older_than = args.older_than
    if older_than is None:
        from riskengine.config import Settings

        older_than = f"{Settings.load(args.config).audit.retention_years:g}y"
    res = retain(_existing_root(args.root), older_than)
    print(f"cutoff {res.cutoff.isoformat()}: dropped {len(res.dropped)} partitions")
    for name in res.dropped:
        print(f"  {name}")
    return 0
