"""Private files and folders for the audit log: 0600 files, 0700 folders, set explicitly.

The modes are set with ``chmod``/``fchmod`` after creation rather than left to the umask,
which is process-wide state an embedding service may have set to anything (0 included).
Only what the audit log creates is changed: an existing folder (say, an operator-made
root) keeps the mode its owner gave it. Standard library only: the core imports this.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Final

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700


def private_mkdir(path: Path) -> None:
    """``mkdir -p path``; every folder this call creates is 0700 (existing ones are left alone)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another writer made it first: its mode is its business
            continue
        os.chmod(folder, DIR_MODE)


def create_private_file(path: Path) -> int:
    """Create ``path`` (which must not exist) as a 0600 file; returns a writable descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable; not every file system allows fsync on a folder."""
    try:
        fsync_path(folder)
    except OSError:
        pass


def publish_folder(tmp: Path, folder: Path) -> None:
    """Make the finished folder ``tmp`` visible as ``folder`` in one rename: every file in it
    private and synced first; an existing ``folder`` is moved aside to a ``.trash`` name (a
    reader holding its files keeps them; the next reader sees the new one)."""
    for p in tmp.iterdir():
        os.chmod(p, FILE_MODE)
        fsync_path(p)
    if folder.exists():
        os.rename(folder, folder.parent / f".{folder.name}.{uuid.uuid4().hex}.trash")
    os.rename(tmp, folder)
