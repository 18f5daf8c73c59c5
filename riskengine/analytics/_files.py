"""File discovery: which Parquet segments of an audit root a query window has to read.

The audit layout is ``<root>/<table>/year=YYYY/month=MM/part-….parquet``: a window maps to
month partitions, so narrow windows list few folders. Listing goes through
:func:`riskengine.audit.layout.segment_files`, which sees each row exactly once at
every step of a compaction. Pure filesystem code, no DuckDB: the reader decides what to do
when a listed file vanishes before it is opened (:func:`vanished`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from riskengine.audit import objectstore as s3
from riskengine.audit.layout import segment_files


def segments(root: Path | s3.S3Root, table: str, since: datetime | None, until: datetime | None,
             skip: frozenset[int] = frozenset()) -> list[str]:
    """Segments of the month partitions of ``table`` overlapping [since, until), except the
    ``skip`` months (``YYYYMM``), sorted. On object storage the paths are DuckDB's
    (``riskengine-s3://…``, :mod:`._objectstore`)."""
    if isinstance(root, s3.S3Root):
        return _object_segments(root, table, *month_range(since, until), skip)
    base = root / table
    if not base.is_dir():
        return []
    lo_key, hi_key = month_range(since, until)
    out: list[str] = []
    for ydir in base.glob("year=*"):
        try:
            year = int(ydir.name[5:])
        except ValueError:
            continue
        if year * 100 + 12 < lo_key or year * 100 + 1 > hi_key:
            continue
        for mdir in ydir.glob("month=*"):
            try:
                key = year * 100 + int(mdir.name[6:])
            except ValueError:
                continue
            if lo_key <= key <= hi_key and key not in skip:
                out.extend(str(p) for p in segment_files(mdir))
    return sorted(out)


def month_range(since: datetime | None, until: datetime | None) -> tuple[int, int]:
    lo = since.astimezone(UTC) if since else None
    hi = (until.astimezone(UTC) - timedelta(microseconds=1)) if until else None
    return (lo.year * 100 + lo.month if lo else 0), (hi.year * 100 + hi.month if hi else 999_999)


def _object_segments(root: s3.S3Root, table: str, lo_key: int, hi_key: int, skip: frozenset[int]) -> list[str]:
    from riskengine.analytics._objectstore import duck_path

    out: list[str] = []
    for year, month, folder in s3.partitions(root, table):
        key = year * 100 + month
        if lo_key <= key <= hi_key and key not in skip:
            out.extend(duck_path(root, rel) for rel in s3.segment_files(root, folder))
    return sorted(out)


def month_of(path: str) -> int:
    """``YYYYMM`` of a segment path ``…/year=YYYY/month=MM/…`` (0 when it is not one).

    >>> month_of("/a/decisions/year=2026/month=03/part-1.parquet")
    202603
    """
    try:
        return int(path.split("year=")[1][:4]) * 100 + int(path.split("month=")[1][:2])
    except (IndexError, ValueError):
        return 0


def months_of(paths: list[str]) -> set[int]:
    return {month_of(p) for p in paths}


def previous_month(key: int) -> int:
    """
    >>> previous_month(202601), previous_month(202603)
    (202512, 202602)
    """
    y, m = divmod(key, 100)
    return (y - 1) * 100 + 12 if m == 1 else key - 1


def vanished(exc: Exception) -> bool:
    """Whether a DuckDB error says a listed segment was gone when it was opened (compaction
    renamed or removed it): the query is then listed and run again."""
    text = str(exc)
    return any(s in text for s in ("No such file", "No files found", "Cannot open file", "could not be opened",
                                   # object storage (pyarrow's S3 client through fsspec)
                                   "Path does not exist", "NoSuchKey", "NO_SUCH_KEY", "FileNotFoundError"))
