"""``riskengine model train``: replay labelled logins, fit, calibrate, save.

``--root`` is a data directory as ``riskengine simulate`` writes it (``events.parquet`` or
``logins_rba.csv``, ``labels.parquet``, ``asn.mmdb``); ``--events`` names a logins file
directly. Features come from streaming those logins through the Engine (see
:mod:`riskengine.offline.model.dataset` for why not from the audit log).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from riskengine.apps.cliutil import Progress, UsageError, add_progress_flag, jsonable, want_progress
from riskengine.core.config import Settings
from riskengine.core.model.features import FeatureConfig
from riskengine.offline.formats import check_input_file


def register(subparsers: Any) -> None:
    model: argparse.ArgumentParser = subparsers.add_parser(
        "model", help="learned risk model: train a calibrated classifier on labelled logins",
        description="Learned risk model. Enable a trained model with policy.model = \"<dir>\".")
    sub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    p = sub.add_parser(
        "train", help="replay labelled logins through the engine, fit and calibrate on a time split",
        description="Stream logins through a rules-only Engine recording each login's features, "
                    "split by time (warm-up | train | validation | test weeks, never shuffled), fit "
                    "logistic regression and histogram gradient boosting, calibrate on the validation "
                    "weeks, report PR-AUC and the step-up/catch trade-off on the test weeks, save.")
    p.add_argument("--root", default=None,
                   help="data directory from `riskengine simulate` (events.parquet + labels.parquet)")
    p.add_argument("--events", default=None, help="logins file instead of --root: native parquet or RBA CSV")
    p.add_argument("--labels", default=None,
                   help="labels (index, is_attack[, attack_family, established]); default: "
                        "<root>/labels.parquet, or the RBA CSV's Is Account Takeover column")
    p.add_argument("--feedback", default=None, type=Path, metavar="AUDIT_ROOT",
                   help="audit root whose fraud feedback (engine.report_fraud) overrides the labels of the "
                        "logins it names; default: the config's audit.root when it holds feedback")
    p.add_argument("--out", required=True, help="directory to write model.json, model.joblib, metrics.json")
    p.add_argument("--config", default=None, help="riskengine.toml the replay engine uses (rules, windows)")
    p.add_argument("--estimator", choices=("auto", "logistic", "hgb"), default="auto",
                   help="logistic regression, histogram gradient boosting (hgb), or auto: logistic unless "
                        "boosting is clearly better on the validation weeks")
    p.add_argument("--calibration", choices=("auto", "sigmoid", "isotonic"), default="auto",
                   help="probability calibration on the validation weeks; auto: isotonic when they hold "
                        "enough attacks, else sigmoid")
    p.add_argument("--test-weeks", type=float, default=2.0, help="last weeks held out to report the metrics on")
    p.add_argument("--validation-weeks", type=float, default=1.0,
                   help="weeks before the test weeks used to pick the estimator and calibrate")
    p.add_argument("--warmup-days", type=float, default=7.0,
                   help="leading days left out of training (profiles still empty)")
    p.add_argument("--hosting-asn", type=int, action="append", default=None, metavar="ASN",
                   help="treat this AS as hosting/VPN (repeatable; replaces the built-in list)")
    p.add_argument("--hosting-keyword", action="append", default=None, metavar="WORD",
                   help="AS organisation keyword meaning hosting/VPN (repeatable; replaces the built-in list)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the estimators")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_progress_flag(p)
    p.set_defaults(func=run_train)

    def usage(args: argparse.Namespace) -> int:
        model.print_help()
        return 2

    model.set_defaults(func=usage)


def run_train(args: argparse.Namespace) -> int:
    # training needs the [model] extra (scikit-learn): imported when the command runs, so
    # `riskengine model --help` works on any install
    from riskengine.offline.model.dataset import build_dataset, resolve_inputs
    from riskengine.offline.model.train import format_metrics, train_model

    if args.root is None and args.events is None:
        raise UsageError("give --root (a simulated data directory) or --events (logins file)")
    if args.labels is not None:
        check_input_file(args.labels, "--labels")
    events, fmt, labels = resolve_inputs(args.root, args.events, args.labels)
    if labels is None:
        raise UsageError("no labels: pass --labels (index, is_attack) or a --root holding labels.parquet")
    show = want_progress(args.progress)
    settings = Settings.load(args.config)
    overrides: dict[str, Any] = {}
    if args.hosting_asn:
        overrides["hosting_asns"] = list(args.hosting_asn)
    if args.hosting_keyword:
        overrides["hosting_keywords"] = [k.lower() for k in args.hosting_keyword]
    fcfg = FeatureConfig.from_settings(settings, **overrides)
    feedback = args.feedback
    if feedback is None and settings.audit.root and any(Path(settings.audit.root, "feedback").rglob("*.parquet")):
        feedback = Path(settings.audit.root)
    with Progress(_rows(events, fmt), "replaying logins", enabled=show, unit=" rows") as bar:
        frame = build_dataset(events, fmt=fmt, labels=labels, config=settings, feature_config=fcfg,
                              progress=bar.update, feedback=feedback)
    if show:
        print(f"fitting and calibrating on {frame.height:,} logins…", file=sys.stderr, flush=True)
    metrics = train_model(
        frame, args.out, feature_config=fcfg, estimator=args.estimator, calibration=args.calibration,
        test_weeks=args.test_weeks, validation_weeks=args.validation_weeks, warmup_days=args.warmup_days,
        seed=args.seed, source=events)
    if args.json:
        print(json.dumps(jsonable(metrics), indent=1))
    else:
        print(format_metrics(metrics))
        print(f"saved → {Path(args.out)}/ (enable with policy.model = \"{args.out}\")")
    return 0


def _rows(events: Path, fmt: str) -> int | None:
    """Rows in a native (Parquet) logins file, for the progress total; None for a CSV."""
    if fmt != "native":
        return None
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(events).metadata.num_rows)
