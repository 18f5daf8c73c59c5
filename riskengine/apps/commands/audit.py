"""`riskengine audit compact|retain`: maintenance of an audit root, safe while engines write."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from riskengine.analytics.rollups import build_rollups
from riskengine.apps.cliutil import (
    Progress,
    UsageError,
    add_json_flag,
    add_progress_flag,
    audit_root,
    existing_audit_root,
    jsonable,
    print_json,
    want_progress,
)
from riskengine.audit.layout import maintenance_lock
from riskengine.core.config import Settings
from riskengine.ops.maintenance import compact, parse_age, retain


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="audit log maintenance (compaction, retention)",
        description="Maintain an audit root. Both commands are safe while engines are writing.")
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    c = sub.add_parser("compact", help="merge the small Parquet segments of each partition",
                       description="Merge the small Parquet segments of each month partition into one, "
                                   "then (re)build the per-day rollups of closed months.")
    c.add_argument("--root", required=True, type=audit_root,
                   help="audit root folder or s3://bucket/prefix")
    c.add_argument("--small-mb", type=float, default=64.0, help="segments below this size (MB) are merged")
    c.add_argument("--no-rollups", dest="rollups", action="store_false",
                   help="do not (re)build the per-day rollups of closed months under <root>/_rollups")
    add_progress_flag(c)
    add_json_flag(c, "the compaction result")
    c.set_defaults(func=_compact)
    r = sub.add_parser("retain", help="drop whole month partitions older than a cutoff",
                       description="Drop whole month partitions (and their rollups) that ended before "
                                   "the cutoff; never part of a month.")
    r.add_argument("--root", required=True, type=audit_root,
                   help="audit root folder or s3://bucket/prefix")
    r.add_argument("--older-than", default=None, metavar="AGE",
                   help="like 4y, 18m or 90d (default: audit.retention_years from --config / "
                        "RISKENGINE_AUDIT_RETENTION_YEARS, 4y); only whole months before it are dropped")
    r.add_argument("--config", default=None,
                   help="riskengine.toml to read audit.retention_years from (default: built-in settings + env)")
    r.add_argument("--dry-run", action="store_true", help="list the partitions that would be dropped; drop nothing")
    add_json_flag(r, "the cutoff and the partitions dropped")
    r.set_defaults(func=_retain)


def _existing_root(root: Path | str) -> Path | str:
    return existing_audit_root(root, write=True)


def _compact(args: argparse.Namespace) -> int:
    if args.small_mb <= 0:
        raise UsageError(f"--small-mb must be positive, got {args.small_mb:g}")
    root = _existing_root(args.root)
    with Progress(None, "compacting partitions", enabled=want_progress(args.progress), unit=" partitions") as bar:
        def step(done: int, total: int) -> None:
            bar.set_total(total)
            bar.update()

        res = compact(root, small_bytes=int(args.small_mb * 1024 * 1024), progress=step)
    built: list[str] = []
    current = 0
    if args.rollups:  # analytics builds on the compacted log, not maintenance
        if isinstance(root, Path):
            with maintenance_lock(root):
                rolled = build_rollups(root)
        else:  # object storage has no lock: one maintenance job per root (docs/audit.md)
            rolled = build_rollups(root)
        built, current = rolled.built, rolled.current
    if args.json:
        print_json({**jsonable(res), "rollups_built": built, "rollups_current": current})
        return 0
    print(f"compacted {res.partitions} partitions: {res.files_in} segments -> {res.files_out} "
          f"({res.rows} rows); recovered {res.recovered} interrupted runs, "
          f"removed {res.stale_tmp_removed} stale temp files")
    if args.rollups:
        print(f"rollups: built {len(built)} months, {current} already current")
    return 0


def _retain(args: argparse.Namespace) -> int:
    older_than = args.older_than
    if older_than is None:
        older_than = f"{Settings.load(args.config).audit.retention_years:g}y"
    else:
        try:
            parse_age(older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than: {exc}") from None
    res = retain(_existing_root(args.root), older_than, dry_run=args.dry_run)
    if args.json:
        print_json({**jsonable(res), "root": str(args.root)})
        return 0
    verb = "would drop" if res.dry_run else "dropped"
    print(f"cutoff {res.cutoff.isoformat()}: {verb} {len(res.dropped)} partitions"
          + (" (dry run: nothing dropped)" if res.dry_run else ""))
    for name in res.dropped:
        print(f"  {name}")
    return 0
