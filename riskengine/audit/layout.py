"""The audit root's layout on disk, shared by the writers (the Parquet sink), the readers
(:mod:`riskengine.analytics`) and the maintenance jobs (:mod:`riskengine.ops.maintenance`):
``<root>/<table>/year=YYYY/month=MM/part-….parquet``, the names a compaction gives its
temporary, hidden and merged files, and the maintenance lock.

Pure filesystem code (no pyarrow, no DuckDB), so every layer above can list segments the
same way: :func:`segment_files` sees each row exactly once at every step of a compaction.
"""

from __future__ import annotations

import fcntl
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from riskengine.audit._fs import FILE_MODE, private_mkdir

SEGMENT_PREFIX = "part-"
TMP_SUFFIX = ".tmp"
S3_SCHEME = "s3://"


def is_object_root(root: object) -> bool:
    """Whether an audit root names object storage (``s3://bucket/prefix``) rather than a folder.

    >>> is_object_root("s3://audit/prod"), is_object_root("/var/lib/riskengine/audit")
    (True, False)
    """
    return isinstance(root, str) and root.startswith(S3_SCHEME)


def segment_name(now: datetime | None = None) -> str:
    """A segment file name unique across processes and time, sortable by creation time."""
    ts = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{SEGMENT_PREFIX}{ts}-{os.getpid()}-{uuid.uuid4().hex}.parquet"


META = "_meta"
LOCK_FILE = "maintenance.lock"
HIDDEN_INPUT = re.compile(r"^\.(?P<name>.+\.parquet)\.compacting-(?P<id>[0-9a-f]{32})$")
MERGED_TMP = re.compile(r"^\.merged-(?P<id>[0-9a-f]{32})\.parquet" + re.escape(TMP_SUFFIX) + "$")
COMPACTED = re.compile(r"-compacted-(?P<id>[0-9a-f]{32})\.parquet$")
PARTITION = re.compile(r"^year=(\d{4})$"), re.compile(r"^month=(\d{2})$")


@contextmanager
def maintenance_lock(root: Path) -> Iterator[None]:
    """One compactor/retainer per root at a time (writers never take it)."""
    meta = root / META
    private_mkdir(meta)
    fd = os.open(meta / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def segment_files(folder: Path) -> list[Path]:
    """The segments of one partition folder that hold its rows, each row exactly once, at
    every step of a compaction: the ``*.parquet`` files plus the hidden inputs of any
    compaction that has not published its merged file yet. One directory listing."""
    names = os.listdir(folder)
    published = {m.group("id") for n in names if (m := COMPACTED.search(n)) and not n.startswith(".")}
    out = []
    for name in names:
        if name.endswith(".parquet") and not name.startswith("."):
            out.append(folder / name)
        elif (m := HIDDEN_INPUT.match(name)) and m.group("id") not in published:
            out.append(folder / name)
    return sorted(out)


def partitions(root: Path, table: str) -> list[tuple[int, int, Path]]:
    """``(year, month, folder)`` of every partition of ``table``, oldest first."""
    out: list[tuple[int, int, Path]] = []
    base = root / table
    if not base.is_dir():
        return out
    for ydir in base.iterdir():
        ym = PARTITION[0].match(ydir.name)
        if not ym or not ydir.is_dir():
            continue
        for mdir in ydir.iterdir():
            mm = PARTITION[1].match(mdir.name)
            if mm and mdir.is_dir():
                out.append((int(ym.group(1)), int(mm.group(1)), mdir))
    return sorted(out)


__all__ = ["COMPACTED", "HIDDEN_INPUT", "LOCK_FILE", "MERGED_TMP", "META", "PARTITION", "S3_SCHEME", "SEGMENT_PREFIX",
           "TMP_SUFFIX", "is_object_root", "maintenance_lock", "partitions", "segment_files", "segment_name"]
