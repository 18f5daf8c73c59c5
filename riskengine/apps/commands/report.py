"""``riskengine report``: the KPI summary of an audit root in the terminal (extra ``[analytics]``).

The command layer: it reads the configuration (``--config``: where the pseudonymisation key is
kept) and calls :mod:`riskengine.analytics`, which itself knows nothing of the engine's config.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riskengine.analytics.db import AuditDB, Filters
from riskengine.analytics.report import finite, format_summary
from riskengine.apps.cliutil import audit_root, existing_audit_root
from riskengine.audit.events import key_file_warnings
from riskengine.core.config import Settings


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="KPI summary of an audit root",
        description="Challenge, success, fallback and deny rates plus experiment readouts of an audit root.")
    parser.add_argument("--root", required=True, type=audit_root, help="audit root folder or s3://bucket/prefix")
    parser.add_argument("--since", type=_iso,
                        help="ISO date/time, inclusive (UTC if no offset; default: from the first row)")
    parser.add_argument("--until", type=_iso,
                        help="ISO date/time, exclusive (UTC if no offset; default: to the last row)")
    parser.add_argument("--min-samples", type=int, default=100,
                        help="per-arm exposed users before an experiment counts as readable")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.add_argument("--config", default=None,
                        help="riskengine.toml to read audit.key_file from (to check where the key is kept)")
    parser.add_argument("--key-file", default=None, type=Path,
                        help="the pseudonymisation key file to check (default: audit.key_file, else "
                             "<root>.pseudonym-key)")
    parser.set_defaults(func=run)


def _iso(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or date-time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    db = AuditDB(existing_audit_root(args.root))
    try:
        report = db.report(Filters(since=args.since, until=args.until), min_samples=args.min_samples)
    finally:
        db.close()
    warnings = key_warnings(args.root, args.key_file, args.config)
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps({**finite(report), "audit_key_warnings": warnings}, indent=2, sort_keys=False))
    else:
        print(format_summary(report))
    return 0


def key_warnings(root: Path | str, key_file: Path | None = None, config: str | None = None) -> list[str]:
    """Where the pseudonymisation key of ``root`` is kept, if that is unsafe: inside the root
    (a reader of the audit log could re-identify users) or readable by group/others."""
    if key_file is None:
        configured = Settings.load(config).audit.key_file
        key_file = Path(configured) if configured else None
    return key_file_warnings(root, key_file)
