"""The README stays short, and the docs name only commands and settings that exist.

The configuration and CLI reference pages are generated from the code by the MkDocs hook in
``docs/_hooks/generated.py``; these tests check the generator covers every setting and every
flag, and that every ``riskengine …`` command written in the README or a docs page is one that
``riskengine --help`` lists.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
# a `riskengine` in command position: line start, shell prompt, code span, path or `python -m`
COMMAND = re.compile(r"(?:^|\$ |`|/bin/|-m |&& |\| )riskengine[ \t]+([a-z][a-z0-9-]*)(?:[ \t]+([a-z][a-z0-9-]*))?",
                     re.MULTILINE)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hook", REPO / "docs" / "_hooks" / "generated.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _code(text: str) -> list[str]:
    blocks = FENCE.findall(text)
    prose = FENCE.sub("", text)
    return blocks + [f"`{span}" for span in INLINE.findall(prose)]


def mentioned_commands(text: str) -> set[tuple[str, str | None]]:
    """(command, word after it) for each `riskengine COMMAND` in the code parts of a page.

    >>> sorted(mentioned_commands("run `riskengine report --root x`; from riskengine import Engine"))
    [('report', None)]
    >>> sorted(mentioned_commands("```\\n$ riskengine audit compact --root a\\n```"))
    [('audit', 'compact')]
    """
    found: set[tuple[str, str | None]] = set()
    for code in _code(text):
        for match in COMMAND.finditer(code):
            found.add((match.group(1), match.group(2)))
    return found


def _help(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "riskengine", *args, "--help"],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _listed(help_text: str) -> set[str]:
    """The subcommand names an argparse help text lists (4-space indent under the positional)."""
    return set(re.findall(r"^ {4}([a-z][a-z0-9-]*)(?: |$)", help_text, re.MULTILINE))


def test_readme_stays_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


def test_every_command_in_readme_and_docs_exists() -> None:
    mentions: dict[tuple[str, str | None], list[str]] = {}
    for path in _doc_files():
        if path.parts[-2] == "_hooks":
            continue
        for mention in mentioned_commands(path.read_text(encoding="utf-8")):
            mentions.setdefault(mention, []).append(str(path.relative_to(REPO)))
    assert mentions, "no riskengine command found: the scan is broken"
    top = _listed(_help())
    assert {"demo", "replay", "report"} <= top, "could not read the command list from riskengine --help"
    missing = {cmd: where for (cmd, _), where in mentions.items() if cmd not in top}
    assert not missing, f"commands not in `riskengine --help`: {missing}"
    for command in sorted({cmd for cmd, _ in mentions}):
        subcommands = _listed(_help(command))
        if not subcommands:
            continue
        wrong = {(cmd, sub): where for (cmd, sub), where in mentions.items()
                 if cmd == command and sub is not None and sub not in subcommands}
        assert not wrong, f"subcommands not in `riskengine {command} --help`: {wrong}"


def test_the_settings_page_lists_every_setting_with_its_default() -> None:
    from riskengine import Settings

    page = _hook().settings_markdown()
    defaults = Settings()
    for section, field in Settings.model_fields.items():
        assert f"### `[{section}]`" in page
        section_cls = field.annotation
        assert isinstance(section_cls, type)
        for key in section_cls.model_fields:  # type: ignore[attr-defined]
            rows = [line for line in page.splitlines() if line.startswith(f"| `{key}` |")
                    and f"RISKENGINE_{section.upper()}_{key.upper()}" in line]
            assert len(rows) == 1, f"[{section}] {key} missing from the settings page"
            value = getattr(getattr(defaults, section), key)
            if isinstance(value, float | int) and not isinstance(value, bool):
                assert f"`{value!r}`" in rows[0], f"[{section}] {key}: default {value!r} not shown"


def test_the_settings_page_never_shows_a_secret() -> None:
    hook = _hook()
    assert hook._default_text("s3cret-value", secret=True) == "(secret)"
    assert hook._default_text(None, secret=True) == "none"


def test_the_cli_page_lists_every_command_and_flag() -> None:
    hook = _hook()
    page = hook.cli_markdown()
    commands = list(hook.walk_cli(hook.cli_parser()))
    assert len(commands) > 10
    for command, parser in commands:
        assert f"`{command}`" in page, f"{command} missing from the CLI page"
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in page, f"{command} {flag} missing from the CLI page"
    assert "riskengine audit compact" in page and "riskengine user reset" in page


def test_mkdocs_nav_names_existing_pages() -> None:
    nav = re.findall(r":\s*([\w./-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.MULTILINE)
    assert "threat-model.md" in nav and "benchmarks.md" in nav
    assert [page for page in nav if not (REPO / "docs" / page).is_file()] == []
