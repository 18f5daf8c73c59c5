"""MkDocs hook: pages whose tables come from the code, so they cannot drift from it.

A page holding the marker ``<!-- generated: settings -->`` gets one table per settings
section, built from ``riskengine.Settings`` (defaults, types, environment variables and each
field's docstring); ``<!-- generated: cli -->`` gets the ``--help`` of every ``riskengine``
command and subcommand, walked from the real argparse tree. Only public names are imported
(``riskengine.Settings``, the ``riskengine`` console entry point), so module moves inside the
package do not break the build.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import textwrap
import types
import typing
from collections.abc import Iterator
from typing import Any

SETTINGS_MARKER = "<!-- generated: settings -->"
CLI_MARKER = "<!-- generated: cli -->"
ENV_PREFIX = "RISKENGINE_"
HELP_WIDTH = "100"


def on_page_markdown(markdown: str, **_: Any) -> str:
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_markdown())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_markdown())
    return markdown


# --- settings ---------------------------------------------------------------------------

def _field_docstrings(cls: type) -> dict[str, str]:
    """The string literal right under each annotated field of a class body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    statements = body.body
    for stmt, nxt in zip(statements, statements[1:], strict=False):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a).replace("'", '"') for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"list of {_type_name(args[0])}"
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "none"
    return str(annotation).replace("typing.", "")


def _default_text(value: Any, secret: bool) -> str:
    if secret and value:
        return "(secret)"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        if len(value) > 6:
            return f"{len(value)} built-in entries"
        return "[" + ", ".join(_default_text(v, False) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_markdown() -> str:
    from riskengine import Settings

    out: list[str] = []
    defaults = Settings()
    for section, section_field in Settings.model_fields.items():
        section_cls = section_field.annotation
        assert isinstance(section_cls, type)
        docs = _field_docstrings(section_cls)
        own_doc = section_cls.__dict__.get("__doc__")  # not pydantic's inherited BaseModel text
        out.append(f"### `[{section}]`\n")
        if isinstance(own_doc, str) and own_doc.strip():
            out.append(inspect.cleandoc(own_doc) + "\n")
        out.append("| key | type | default | environment variable | meaning |")
        out.append("|---|---|---|---|---|")
        values = getattr(defaults, section)
        for key, field in section_cls.model_fields.items():  # type: ignore[attr-defined]
            secret = field.repr is False
            meaning = field.description or docs.get(key, "")
            env = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            out.append(f"| `{key}` | {_type_name(field.annotation)} | "
                       f"`{_default_text(getattr(values, key), secret)}` | `{env}` | {_cell(meaning)} |")
        out.append("")
    return "\n".join(out)


# --- CLI --------------------------------------------------------------------------------

def _subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def walk_cli(parser: argparse.ArgumentParser, prefix: str = "riskengine"
             ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command of the tree, depth first, as (``riskengine audit compact``, parser)."""
    yield prefix, parser
    for name, sub in _subparsers(parser):
        yield from walk_cli(sub, f"{prefix} {name}")


def cli_parser() -> argparse.ArgumentParser:
    from importlib import import_module
    from importlib.metadata import entry_points

    # The console script's module owns the parser; fall back to the historic location.
    module_name = "riskengine.apps.cli"
    for ep in entry_points(group="console_scripts", name="riskengine"):
        module_name = ep.value.split(":")[0]
    parser = import_module(module_name).build_parser()
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def cli_markdown() -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH  # argparse wraps help to the terminal width
    try:
        out: list[str] = []
        for command, parser in walk_cli(cli_parser()):
            level = "##" if command.count(" ") <= 1 else "###"
            out.append(f"{level} `{command}`\n")
            out.append("```text\n" + parser.format_help().rstrip() + "\n```\n")
        return "\n".join(out)
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
