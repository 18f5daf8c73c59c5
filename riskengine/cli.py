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

from riskengine._extras import MissingExtraError

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
        prog="riskengine", description="Risk-based step-up authentication engine.", epilog=_extras_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except MissingExtraError as exc:
            _register_missing(sub, name, exc)
            continue
        except ModuleNotFoundError as exc:
            if exc.name == name or name.startswith(f"{exc.name}."):
                continue  # feature not built into this installation
            raise
        module.register(sub)
    return parser


# the extra each command needs (None: the core install); `--help` prints the table
COMMAND_EXTRAS: dict[str, str | None] = {
    "demo": "all", "simulate": "sim", "replay": "sim", "evaluate": "sim", "report": "analytics",
    "dashboard": "dashboard", "audit": "analytics", "user": None, "model": "model",
}


def _extras_epilog() -> str:
    lines = ["extras (pip install \"riskengine[EXTRA]\"):"]
    for command, extra in COMMAND_EXTRAS.items():
        lines.append(f"  {command:<12} {f'[{extra}]' if extra else 'core install'}")
    lines.append("  (`user show` reads a user's audit-log history with [analytics])")
    return "\n".join(lines)


# the command each module registers: listed even when the module's extra is not installed
COMMAND_NAMES: dict[str, str] = {
    "riskengine.demo": "demo",
    "riskengine.simulate.cli": "simulate",
    "riskengine.replay": "replay",
    "riskengine.evaluate": "evaluate",
    "riskengine.analytics.report": "report",
    "riskengine.dashboard_cli": "dashboard",
    "riskengine.audit.cli": "audit",
    "riskengine.support": "user",
    "riskengine.model.cli": "model",
}


def _register_missing(sub: argparse._SubParsersAction[argparse.ArgumentParser], module: str,
                      exc: MissingExtraError) -> None:
    """A placeholder for a command whose extra is not installed: listed by ``--help``, and
    running it prints what to install (exit 1) instead of an ImportError traceback."""
    command = COMMAND_NAMES.get(module, module.rpartition(".")[2])
    # no option prefix: every argument lands in `args`, so any command line gets the message
    parser = sub.add_parser(command, help=f'not installed: pip install "riskengine[{exc.extra}]"',
                            description=str(exc), add_help=False, prefix_chars="\x00")
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)

    def unavailable(args: argparse.Namespace) -> int:
        print(f"riskengine {command}: error: {exc}", file=sys.stderr)
        return 1

    parser.set_defaults(func=unavailable)


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
    except MissingExtraError as exc:
        print(f"riskengine {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as exc:
        print(f"riskengine {args.command}: error: {exc}", file=sys.stderr)
        return 2
