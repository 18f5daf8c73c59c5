"""`riskengine …`: one argparse tree; each command lives in the module that owns the feature.

A command module exposes ``register(subparsers)`` which adds its parser and sets
``func`` (called with the parsed namespace, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# module that registers each command, in the order `--help` lists them
COMMAND_MODULES: tuple[str, ...] = (
    "riskengine.demo",
    "riskengine.simulate.cli",
    "riskengine.replay",
    "riskengine.evaluate",
    "riskengine.analytics.report",
    "riskengine.dashboard_cli",
    "riskengine.audit.cli",
    "riskengine.support",
    "riskengine.model.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskengine", description="Risk-based step-up authentication engine.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name or name.startswith(f"{exc.name}."):
                continue  # feature not built into this installation
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"riskengine {args.command}: error: {exc}", file=sys.stderr)
        return 2
