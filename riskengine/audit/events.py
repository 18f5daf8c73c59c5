"""Audit event schemas (explicit, versioned) and pseudonymisation.

Every table is hive-partitioned by ``year``/``month`` of ``event_time`` when written to
Parquet. Columns only ever get added; ``schema_version`` says which set a row was
written with.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from riskengine.audit._fs import FILE_MODE, create_private_file, fsync_dir, private_mkdir
from riskengine.audit.layout import is_object_root

if TYPE_CHECKING:
    from riskengine.audit.schema import TABLES as TABLES

SCHEMA_VERSION: Final = 2
"""1: the first layout (columns added later read as NULL); 2: ``decisions.event`` (NULL in
version-1 rows, which were all logins: AuditDB reads them as ``"login"``)."""

KEY_ENV: Final = "RISKENGINE_AUDIT_KEY"
KEY_FILE: Final = "_meta/pseudonym.key"
"""Where older versions generated the key: INSIDE the root (moved out on start-up)."""
KEY_FILE_SUFFIX: Final = ".pseudonym-key"

log = logging.getLogger(__name__)


def default_key_file(root: str | os.PathLike[str]) -> Path:
    """``<root>.pseudonym-key``: a sibling of the audit root, so a reader of the root alone
    (a dashboard, an analyst's copy, a backup of the audit data) never holds the key.

    >>> default_key_file("/var/lib/riskengine/audit/").as_posix()
    '/var/lib/riskengine/audit.pseudonym-key'
    """
    absolute = Path(os.path.abspath(root))
    return absolute.with_name(absolute.name + KEY_FILE_SUFFIX)


@dataclass(frozen=True)
class AuditKey:
    """The pseudonymisation key, where it came from, and what an operator should fix."""

    key: bytes = field(repr=False)
    path: Path | None
    """The key file in use (None for a configured key or a per-process random one)."""
    warnings: tuple[str, ...] = ()


def resolve_key(
    root: str | os.PathLike[str] | None,
    configured: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> AuditKey:
    """The pseudonymisation key: ``configured`` (``audit.key``) or ``RISKENGINE_AUDIT_KEY`` if
    set; else the key in ``key_file`` (default :func:`default_key_file`), generated there
    once (0600) so every writer process of one root agrees. No root: a per-process random key.

    The key file must lie outside the root: a key the old layout kept inside the root
    (``<root>/_meta/pseudonym.key``) is moved out to ``key_file`` with a warning, so the
    pseudonyms already written stay stable. Raises ``ValueError`` for a ``key_file`` inside
    the root and ``OSError`` when the key file cannot be read or created. Never logs the key.
    """
    environ = os.environ if env is None else env
    secret = configured or environ.get(KEY_ENV)
    if root is None:
        return AuditKey(secret.encode() if secret else secrets.token_bytes(32), None)
    legacy = Path(root) / KEY_FILE
    if secret and is_object_root(root):
        return AuditKey(secret.encode(), None)
    if secret:
        warnings = []
        if legacy.exists():
            warnings.append(f"an old generated pseudonymisation key file sits inside the audit root ({legacy}); "
                            "a configured key is in use, so it only re-identifies old rows: delete it")
        return AuditKey(secret.encode(), None, tuple(warnings))
    if is_object_root(root):
        if not key_file:
            raise ValueError(f"audit.root {root} is on object storage: set the pseudonymisation key "
                             f"(audit.key or env {KEY_ENV}) or audit.key_file (a local path), the same for "
                             "every writer of the root")
        path = Path(key_file)
        if not path.exists():
            _create_key_file(path)
        key = path.read_bytes().strip()
        if not key:
            raise OSError(f"pseudonymisation key file {path} is empty")
        return AuditKey(key, path)
    path = Path(key_file) if key_file else default_key_file(root)
    if _inside(path, Path(root)):
        raise ValueError(f"audit.key_file {path} lies inside audit.root {root}: anyone who can read the audit "
                         f"log could re-identify users; put it outside (default: {default_key_file(root)})")
    moved: list[str] = []
    if legacy.exists():
        moved.append(_move_out(legacy, path))
        log.warning("%s", moved[-1])
    if not path.exists():
        _create_key_file(path)
    key = path.read_bytes().strip()
    if not key:
        raise OSError(f"pseudonymisation key file {path} is empty")
    return AuditKey(key, path, tuple(moved) + tuple(key_file_warnings(root, path)))


def load_or_create_key(
    root: str | os.PathLike[str] | None,
    configured: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
) -> bytes:
    """The key alone (see :func:`resolve_key`)."""
    return resolve_key(root, configured, key_file).key


def key_file_warnings(root: str | os.PathLike[str], key_file: str | os.PathLike[str] | None = None) -> list[str]:
    """What is wrong with where the key of ``root`` is kept: a key file readable or writable by
    group/others, a key file inside the root, an old-layout key left in the root."""
    out: list[str] = []
    legacy = Path(root) / KEY_FILE
    if legacy.exists():
        out.append(f"pseudonymisation key file {legacy} sits inside the audit root: anyone who can read the "
                   "root can re-identify users (start an engine on this root to move it out)")
    path = Path(key_file) if key_file else default_key_file(root)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return out
    if mode & 0o077:
        out.append(f"pseudonymisation key file {path} is accessible by group/others (mode {mode:04o}): "
                   f"chmod 600 {path}")
    if _inside(path, Path(root)):
        out.append(f"pseudonymisation key file {path} sits inside the audit root {root}: anyone who can read "
                   "the root can re-identify users")
    return out


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def _create_key_file(path: Path) -> None:
    private_mkdir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = create_private_file(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # first writer wins; the others read its key
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)


def _move_out(legacy: Path, path: Path) -> str:
    """Move an old-layout key out of the root to ``path`` (several processes may race here)."""
    private_mkdir(path.parent)
    old = legacy.read_bytes()
    try:
        _link_or_copy(legacy, path)
        message = f"moved the pseudonymisation key out of the audit root: {legacy} -> {path}"
    except FileExistsError:
        if path.read_bytes().strip() == old.strip():  # another process moved it first
            message = f"moved the pseudonymisation key out of the audit root: {legacy} -> {path}"
        else:  # two different keys: the one outside is in use; keep the old one beside it
            aside = path.with_name(f"{path.name}.from-root-{secrets.token_hex(4)}")
            _link_or_copy(legacy, aside)
            message = (f"an old pseudonymisation key sat inside the audit root ({legacy}) while {path} holds "
                       f"another; the old one (for rows written before) is now {aside}")
    os.chmod(path, FILE_MODE)
    legacy.unlink(missing_ok=True)
    fsync_dir(legacy.parent)
    return message


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` becomes ``src``'s content (0600) atomically; FileExistsError if ``dst`` exists."""
    try:
        os.link(src, dst)
        return
    except FileExistsError:
        raise
    except OSError:  # another file system (EXDEV) or no hard links: copy, then link into place
        pass
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = create_private_file(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(src.read_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, dst)
    finally:
        os.unlink(tmp)


class Pseudonymizer:
    """Keyed hashes for user ids, /24 (IPv4) or /48 (IPv6) prefixes for IPs.

    >>> p = Pseudonymizer(b"k")
    >>> p.user("alice") == p.user("alice") != p.user("bob")
    True
    >>> p.ip("81.2.69.160"), p.ip("2001:db8:1:2::1")
    ('81.2.69.0/24', '2001:db8:1::/48')
    >>> Pseudonymizer(b"k", enabled=False).user("alice")
    'alice'
    """

    def __init__(self, key: bytes, enabled: bool = True) -> None:
        self.enabled = enabled
        self._key = hashlib.blake2b(key, digest_size=32).digest()
        self.user = lru_cache(maxsize=65536)(self._user)
        self.ip = lru_cache(maxsize=65536)(self._ip)
        # session ids rarely repeat: hashed uncached, so they cannot evict users from the LRU
        self.session = self._user

    def _user(self, user_id: str) -> str:
        if not self.enabled:
            return user_id
        return hashlib.blake2b(user_id.encode(), key=self._key, digest_size=8).hexdigest()

    def _ip(self, ip: str) -> str:
        if not self.enabled:
            return ip
        parts = ip.split(".")
        if len(parts) == 4 and all(p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
            # dotted-quad IPv4 (the engine's models have validated it): string work, not a parse
            return f"{parts[0]}.{parts[1]}.{parts[2]}.0/24"
        addr = ipaddress.ip_address(ip)
        bits = 24 if addr.version == 4 else 48
        return ipaddress.ip_network(f"{ip}/{bits}", strict=False).compressed

    def __repr__(self) -> str:  # the key never appears in logs or tracebacks
        return f"Pseudonymizer(enabled={self.enabled})"


def __getattr__(name: str) -> Any:
    # ``TABLES`` moved to riskengine.audit.schema (it needs pyarrow); still importable from here
    if name == "TABLES":
        from riskengine.audit.schema import TABLES

        return TABLES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
