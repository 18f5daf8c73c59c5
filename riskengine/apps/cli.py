"""`riskengine …`: one argparse tree; each command lives in the module that owns the feature.

A command module exposes ``register(subparsers)`` which adds its parser and sets
``func`` (called with the parsed namespace, returns an exit code). Command modules are
imported lazily: ``riskengine --help`` and ``riskengine user …`` load no polars, DuckDB or
scikit-learn; only the command being run is imported.

Exit status: 0 success, 1 runtime error (missing file, bad input, store or audit error,
missing optional dependency: one ``riskengine: error: …`` line on stderr, the traceback
with ``--debug`` or ``RISKENGINE_DEBUG=1``), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import riskengine
from riskengine._extras import EXTRAS
from riskengine.apps.cliutil import UsageError

DEBUG_ENV = "RISKENGINE_DEBUG"


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    module: str  # imports the feature and exposes register(subparsers)
    extras: tuple[str, ...]  # what `pip install "riskengine[...]"` it needs; () = the core install
    summary: str

    @property
    def install(self) -> str:
        return f'pip install "riskengine[{",".join(self.extras)}]"' if self.extras else "pip install riskengine"


# in the order `--help` lists them
COMMANDS: tuple[Command, ...] = (
    Command("demo", "riskengine.apps.demo", ("dashboard", "sim"),
            "simulate → score every login → audit → report → dashboard"),
    Command("simulate", "riskengine.apps.commands.simulate", ("sim",),
            "write synthetic logins (native Parquet and/or RBA CSV) with labels"),
    Command("replay", "riskengine.apps.commands.replay", ("sim",),
            "score historical logins (native or RBA CSV) through the engine"),
    Command("evaluate", "riskengine.apps.commands.evaluate", ("sim",),
            "detection quality of a labelled replay (ours vs Freeman et al. 2016)"),
    Command("report", "riskengine.apps.commands.report", ("analytics",), "KPI summary of an audit root"),
    Command("dashboard", "riskengine.apps.dashboard_cli", ("dashboard",),
            "start the Streamlit dashboard on an audit root"),
    Command("audit", "riskengine.apps.commands.audit", ("analytics",), "audit log maintenance (compaction, retention)"),
    Command("user", "riskengine.apps.commands.user", (), "one user, for support: show, untrust, unlock, reset"),
    Command("model", "riskengine.apps.commands.model", ("model",),
            "learned risk model: train a calibrated classifier on labelled logins"),
)
COMMANDS_BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}

# which extra brings a third-party module, for a missing import met while a command runs
# (the first extra listed that provides it, unless the running command's own extras do)
EXTRA_MODULES: dict[str, frozenset[str]] = {
    extra: frozenset(modules) for extra, modules in EXTRAS.items() if extra != "all"}


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default unless its help already explains it (``default`` in the
    text, as for defaults computed at run time); flags (store_true/false) show none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (not action.option_strings or "%(default)" in text or "default" in text.lower()
                or action.default in (None, argparse.SUPPRESS)
                or isinstance(action, argparse._StoreConstAction | argparse._HelpAction | argparse._VersionAction)):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose help shows defaults; nested subparsers inherit the class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


class _Registrar:
    """The subparsers object handed to a command module: the top-level listing shows the
    command's summary and extras from :data:`COMMANDS`, whatever the module passes."""

    def __init__(self, sub: Any, command: Command) -> None:
        self._sub, self._command = sub, command

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs["help"] = _listing(self._command)
        if "description" in kwargs:
            kwargs["description"] = f"{kwargs['description']} Needs: {self._command.install}"
        return cast(argparse.ArgumentParser, self._sub.add_parser(name, **kwargs))


def _listing(command: Command) -> str:
    extras = f"[{','.join(command.extras)}]" if command.extras else "[core]"
    return f"{command.summary}   {extras}"


def build_parser(command: str | None = None, *, full: bool = True) -> argparse.ArgumentParser:
    """The whole tree (``full``), or every command listed and only ``command``'s module imported."""
    parser = Parser(
        prog="riskengine", description="Risk-based step-up authentication engine.",
        epilog='Each command names the extra it needs in brackets: pip install "riskengine[<extra>]" '
               "([core]: the plain pip install riskengine).")
    parser.add_argument("--version", action="version", version=f"riskengine {riskengine.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of an error (also: {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for cmd in COMMANDS:
        if full or cmd.name == command:
            module = _import_command(cmd)
            if module is not None:
                module.register(_Registrar(sub, cmd))
                continue
        stub = sub.add_parser(cmd.name, help=_listing(cmd), description=cmd.summary)
        stub.set_defaults(func=_unavailable(cmd))
    return parser


def _import_command(cmd: Command) -> Any:
    try:
        return importlib.import_module(cmd.module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (exc.name == cmd.module or cmd.module.startswith(f"{exc.name}.")):
            return None  # feature not built into this installation
        raise


def _unavailable(cmd: Command) -> Any:
    def run(args: argparse.Namespace) -> int:
        raise ImportError(f"`riskengine {cmd.name}` is not available in this installation: {cmd.install}")
    return run


def _command_in(argv: Sequence[str]) -> str | None:
    """The command word: the first argument that is not a top-level option (none takes a value)."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def _debug_requested(argv: Sequence[str]) -> bool:
    return "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv


def missing_extra_message(exc: ImportError, command: str | None) -> str:
    """One line naming what to install for a missing optional dependency."""
    text = str(exc)
    if "pip install" in text:
        return text
    top = (exc.name or "").split(".")[0]
    if not top or top == "riskengine":
        return text
    cmd = COMMANDS_BY_NAME.get(command or "")
    if cmd is not None and any(top in EXTRA_MODULES.get(e, frozenset()) for e in cmd.extras):
        install = cmd.install
    else:
        extra = next((e for e, mods in EXTRA_MODULES.items() if top in mods), None)
        install = f'pip install "riskengine[{extra}]"' if extra else f"pip install {top}"
    what = f"`riskengine {command}`" if command else "this"
    return f"{what} needs {top}, which is not installed: {install}"


def _known_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input, a missing file or a failing store, not a bug in riskengine.
    Only libraries already imported are looked at (this must not import polars)."""
    known: list[type[BaseException]] = [OSError, ValueError, sqlite3.Error]
    for module, attr in (("redis.exceptions", "RedisError"), ("polars.exceptions", "PolarsError"),
                         ("duckdb", "Error"), ("pyarrow.lib", "ArrowException")):
        mod = sys.modules.get(module)
        cls = getattr(mod, attr, None) if mod is not None else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            known.append(cls)
    return tuple(known)


def one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args_list) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    command = _command_in(args_list)
    try:
        parser = build_parser(command if command in COMMANDS_BY_NAME else None, full=False)
    except ImportError as exc:
        if debug:
            raise
        print(f"riskengine: error: {missing_extra_message(exc, command)}", file=sys.stderr)
        return 1
    args = parser.parse_args(args_list)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        if debug:
            raise
        print(f"riskengine {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print("riskengine: interrupted", file=sys.stderr)
        return 130
    except ImportError as exc:
        if debug:
            raise
        print(f"riskengine: error: {missing_extra_message(exc, args.command)}", file=sys.stderr)
        return 1
    except Exception as exc:
        if debug or not isinstance(exc, _known_errors()):
            raise
        print(f"riskengine: error: {one_line(exc)}", file=sys.stderr)
        return 1
