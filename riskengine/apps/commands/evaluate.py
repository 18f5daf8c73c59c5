"""`riskengine evaluate`: the command over :mod:`riskengine.offline.evaluate`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from riskengine.apps.cliutil import UsageError, add_json_flag, print_json
from riskengine.offline.evaluate import evaluate, format_per_family, plot, with_model
from riskengine.offline.formats import FORMATS, check_input_file, check_parquet_file, infer_format


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate", help="detection quality of a labelled replay (ours vs Freeman et al. 2016)",
        description="Legitimate step-up rates, catch rate per attack family, the trade-off curve and "
                    "the threshold meeting a target step-up rate.")
    p.add_argument("--decisions", required=True, help="decisions.parquet from `riskengine replay`")
    p.add_argument("--labels", required=True,
                   help="labels.parquet (simulate; its warm-up rows are left out) or an RBA-layout CSV")
    p.add_argument("--target-stepup", type=float, default=0.02,
                   help="share of established users' legitimate logins allowed a step-up, in [0, 1]")
    p.add_argument("--out", default=None,
                   help="directory for curve.csv, curve_baseline.csv, tradeoff.png (default: write no files)")
    p.add_argument("--model", default=None,
                   help="trained model dir: also compare rules-only, model-only, blended and Freeman "
                        "side by side (replays --events twice)")
    p.add_argument("--events", default=None, help="the logins the decisions came from (with --model)")
    p.add_argument("--events-format", choices=FORMATS, default=None,
                   help="format of --events (default: inferred from the file)")
    add_json_flag(p, "the evaluation")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.target_stepup <= 1.0:
        raise UsageError(f"--target-stepup must be in [0, 1], got {args.target_stepup}")
    if getattr(args, "model", None) and not args.events:
        raise UsageError("--model needs --events (the logins to replay with and without the model)")
    check_parquet_file(args.decisions, "--decisions")
    check_input_file(args.labels, "--labels")
    ev = evaluate(args.decisions, args.labels, args.target_stepup)
    result: dict[str, Any] = {
        "logins": ev.logins, "legit": ev.legit, "attacks": ev.attacks, "warmup_excluded": ev.warmup_excluded,
        "stepup_overall": ev.stepup_overall, "stepup_established": ev.stepup_established,
        "stepup_cold": ev.stepup_cold, "catch": ev.catch, "catch_established": ev.catch_established,
        "target_stepup": ev.target, "operating_point": ev.table.to_dicts(),
        "per_family": ev.per_family.to_dicts(), "files": []}
    if not args.json:
        print(ev.summary())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        ev.ours.frame().write_csv(out / "curve.csv")
        files = [out / "curve.csv"]
        if ev.baseline is not None:
            ev.baseline.frame().write_csv(out / "curve_baseline.csv")
            files.append(out / "curve_baseline.csv")
        ev.table.write_csv(out / "operating_point.csv")
        ev.per_family.write_csv(out / "per_family.csv")
        files += [out / "operating_point.csv", out / "per_family.csv", plot(ev, out / "tradeoff.png")]
        result["files"] = [str(f) for f in files]
        if not args.json:
            print(f"\nwrote {out / 'curve.csv'}, {files[-1]}")
    if getattr(args, "model", None):
        from riskengine.offline.model.compare import compare_scorers, format_comparison

        fmt = getattr(args, "events_format", None) or infer_format(args.events, "--events")
        comparison = compare_scorers(args.events, args.labels, args.model, fmt=fmt,
                                     target_stepup=args.target_stepup)
        result["comparison"] = comparison.table.to_dicts()
        per_family = with_model(ev.per_family, comparison.table)
        result["per_family"] = per_family.to_dicts()
        if args.out:
            per_family.write_csv(Path(args.out) / "per_family.csv")
        if not args.json:
            print("\n" + format_comparison(comparison, args.target_stepup))
            print("\n" + format_per_family(per_family, ev.stepup_established, args.target_stepup))
    if args.json:
        print_json(result)
    return 0
