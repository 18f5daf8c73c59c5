"""The login file formats ``replay``, ``evaluate --events`` and ``model train`` read, and how
one is recognised from a file (no heavy imports: the CLI uses this before loading polars).

- ``native``: Parquet as ``riskengine simulate`` writes it (``events.parquet``);
- ``rba``: a CSV with the columns of the public RBA login dataset (Wiefling et al.).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Final

FORMATS: Final = ("rba", "native")
RBA_REQUIRED: Final = ("index", "Login Timestamp", "User ID", "IP Address", "User Agent String", "Login Successful")
NATIVE_REQUIRED: Final = ("event_id", "event_time", "kind", "user_id", "ip", "user_agent")
PARQUET_MAGIC: Final = b"PAR1"
PARQUET_SUFFIXES: Final = (".parquet", ".pq")
CSV_SUFFIXES: Final = (".csv",)
_HEADER_BYTES: Final = 64 * 1024


def check_input_file(path: str | Path, label: str = "input") -> Path:
    """``path`` as a :class:`Path` if it is a non-empty file; otherwise an error naming it.

    >>> check_input_file("no/such/file.csv", "IN")
    Traceback (most recent call last):
    ...
    FileNotFoundError: IN no/such/file.csv: no such file
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{label} {p} is a directory, not a file")
    if not p.exists():
        raise FileNotFoundError(f"{label} {p}: no such file")
    if p.stat().st_size == 0:
        raise ValueError(f"{label} {p} is empty")
    return p


def check_parquet_file(path: str | Path, label: str = "input") -> Path:
    """:func:`check_input_file`, and the file must be Parquet (by its magic bytes, not its name)."""
    p = check_input_file(path, label)
    with open(p, "rb") as fh:
        if fh.read(len(PARQUET_MAGIC)) != PARQUET_MAGIC:
            raise ValueError(f"{label} {p} is not a Parquet file")
    return p


def csv_header(path: Path) -> list[str]:
    """The first row of a CSV file (empty when the file has none)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        first = fh.readline(_HEADER_BYTES)
    rows = list(csv.reader([first]))
    return [c.strip() for c in rows[0]] if rows else []


def infer_format(path: str | Path, label: str = "input") -> str:
    """``native`` or ``rba`` from the suffix; for a ``.csv`` or an unknown suffix, from the
    file itself (Parquet magic bytes, or the RBA header row). An error says why not.

    >>> infer_format("events.parquet")
    Traceback (most recent call last):
    ...
    FileNotFoundError: input events.parquet: no such file
    """
    p = check_input_file(path, label)
    with open(p, "rb") as fh:
        magic = fh.read(len(PARQUET_MAGIC))
    suffix = p.suffix.lower()
    if magic == PARQUET_MAGIC:
        return "native"
    if suffix in PARQUET_SUFFIXES:
        raise ValueError(f"{label} {p} is named like Parquet but is not a Parquet file")
    header = csv_header(p)
    missing = [c for c in RBA_REQUIRED if c not in header]
    if not missing:
        return "rba"
    if suffix in CSV_SUFFIXES:
        raise ValueError(f"{label} {p}: a CSV without the RBA header (missing columns {missing}); "
                         "the formats are rba (RBA-layout CSV) and native (Parquet)")
    raise ValueError(f"cannot tell the format of {label} {p} (neither Parquet nor an RBA-layout CSV): "
                     "give --format rba|native")


__all__ = ["FORMATS", "NATIVE_REQUIRED", "RBA_REQUIRED", "check_input_file", "check_parquet_file", "csv_header",
           "infer_format"]
