"""`riskengine report`: the KPI summary of an audit root, in the terminal or as one JSON object."""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riskengine.analytics.db import RATE_DEFINITIONS, AuditDB, Filters


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="KPI summary of an audit root",
        description="Challenge, success, fallback and deny rates plus experiment readouts of an audit root.")
    parser.add_argument("--root", required=True, type=Path, help="audit root folder")
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
    if not args.root.is_dir():
        raise FileNotFoundError(f"audit root {args.root} is not a folder")
    db = AuditDB(args.root)
    try:
        report = db.report(Filters(since=args.since, until=args.until), min_samples=args.min_samples)
    finally:
        db.close()
    warnings = key_warnings(args.root, args.key_file, args.config)
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps({**_finite(report), "audit_key_warnings": warnings}, indent=2, sort_keys=False))
    else:
        print(format_summary(report))
    return 0


def key_warnings(root: Path, key_file: Path | None = None, config: str | None = None) -> list[str]:
    """Where the pseudonymisation key of ``root`` is kept, if that is unsafe: inside the root
    (a reader of the audit log could re-identify users) or readable by group/others."""
    from riskengine.audit.events import key_file_warnings

    if key_file is None:
        from riskengine.core.config import Settings

        configured = Settings.load(config).audit.key_file
        key_file = Path(configured) if configured else None
    return key_file_warnings(root, key_file)


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: those become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f} %"


def format_summary(r: dict[str, Any]) -> str:
    """The terminal summary of a :meth:`AuditDB.report` dict."""
    window = f"{r['since'] or r['data_from'] or '-'} .. {r['until'] or r['data_to'] or '-'}"
    lines = [
        f"Audit root {r['root']}   window {window}",
        "",
        f"  logins scored           {r['logins']:>12,}   users {r['users']:,}",
        f"  challenge rate          {_pct(r['challenge_rate']):>12}   ({r['challenged']:,} challenged "
        f"+ {r['denied']:,} denied)",
        f"  deny rate               {_pct(r['deny_rate']):>12}",
        f"  challenge success rate  {_pct(r['challenge_success_rate']):>12}   ({r['verified']:,} verified "
        f"of {r['challenges']:,} challenges)",
        f"  fallback rate           {_pct(r['fallback_rate']):>12}   ({r['fallbacks']:,} used a 2nd channel)",
        f"  failed passwords        {r['failures']:>12,}",
    ]
    shadow = r.get("shadow") or {}
    if shadow.get("shadow_logins"):
        lines += [
            "",
            f"Shadow policy ({', '.join(shadow['policy_versions']) or '-'}): would-be numbers, not enforced",
            f"  shadow logins           {shadow['shadow_logins']:>12,}",
            f"  would-be challenge rate {_pct(shadow['would_be_challenge_rate']):>12}   "
            f"({shadow['would_be_challenged']:,} challenged + {shadow['would_be_denied']:,} denied)",
            f"  would-be deny rate      {_pct(shadow['would_be_deny_rate']):>12}",
        ]
    for name, e in r["experiments"].items():
        lines += ["", f"Experiment {name}   control {e['control']}   SRM p={e['srm_p_value']:.3g}"
                  + ("   ** SAMPLE RATIO MISMATCH **" if e["srm_flag"] else "")
                  + ("" if e["enough_data"] else f"   (not enough data: < {e['min_samples']} per arm)")]
        lines.append(f"  {'variant':<20}{'n':>9}{'conv':>8}{'rate':>9}{'lift':>9}  {'95 % CI of lift':<20}"
                     f"{'p':>8}{'P(best)':>9}")
        for vname, v in e["variants"].items():
            ci = v["lift_ci"]
            ci_text = f"[{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""
            p = f"{v['p_value']:.3g}" if v["p_value"] is not None else ""
            beat = _pct(v["chance_to_beat_control"], 0) if v["chance_to_beat_control"] is not None else ""
            lift = _pct(v["lift"]) if v["lift"] is not None else ("control" if vname == e["control"] else "n/a")
            lines.append(f"  {vname:<20}{v['n']:>9,}{v['conversions']:>8,}{_pct(v['rate']):>9}{lift:>9}  "
                         f"{ci_text:<20}{p:>8}{beat:>9}")
    lines += ["", "Definitions:"] + [f"  {k}: {v}" for k, v in RATE_DEFINITIONS.items()]
    return "\n".join(lines)
