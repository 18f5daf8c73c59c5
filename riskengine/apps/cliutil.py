"""What every ``riskengine`` command shares: the usage error, ``--json`` output and progress
flags. Import-light (standard library only) so any command module can use it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO


class UsageError(ValueError):
    """An argument (or a combination of arguments) that cannot work: exit status 2, like argparse."""


def add_json_flag(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as one JSON object on stdout")


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress on stderr (default: only when stderr is a terminal)")


def want_progress(flag: bool | None, stream: TextIO | None = None) -> bool:
    """``--progress``/``--no-progress`` if given, else whether stderr is a terminal."""
    if flag is not None:
        return flag
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def jsonable(value: Any) -> Any:
    """Plain JSON values: dataclasses and mappings become objects, paths and times strings,
    NaN and infinities null (JSON has none)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return jsonable(item())
    return str(value)


def print_json(value: Any) -> None:
    print(json.dumps(jsonable(value), indent=2, allow_nan=False))


class Progress:
    """A progress bar on stderr (tqdm when installed, else one line per step), or nothing.

    >>> with Progress(3, "steps", enabled=False) as bar:
    ...     bar.update()
    """

    def __init__(self, total: int | None, desc: str, *, enabled: bool, unit: str = "") -> None:
        self._bar: Any = None
        self._done = 0
        self._total = total
        self._desc = desc
        self._enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=0.5)

    def __enter__(self) -> Progress:
        return self

    def set_total(self, total: int) -> None:
        if total != self._total:
            self._total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()

    def update(self, n: int = 1) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._enabled:
            of = f"/{self._total}" if self._total is not None else ""
            print(f"{self._desc}: {self._done}{of}", file=sys.stderr, flush=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()


__all__ = ["Progress", "UsageError", "add_json_flag", "add_progress_flag", "jsonable", "print_json",
           "want_progress"]


def audit_root(text: str) -> Path | str:
    """``--root`` of the audit commands: a folder, or ``s3://bucket/prefix`` kept as it is
    (``Path`` would fold its ``//``)."""
    return text if text.startswith("s3://") else Path(text)


def existing_audit_root(root: Path | str, *, write: bool = False) -> Path | str:
    """``root`` if it can be read: a folder that exists, or a bucket that exists and that these
    credentials may list (and write to, with ``write``). Raises ``FileNotFoundError`` or
    :class:`riskengine.audit.objectstore.ObjectStoreError`, naming the root and the cause."""
    if isinstance(root, str):
        from riskengine.audit.objectstore import S3Root

        S3Root.parse(root).check(write=write)
        return root
    if not root.is_dir():
        raise FileNotFoundError(f"audit root {root} is not a folder")
    return root
