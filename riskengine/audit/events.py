"""Audit event schemas (explicit, versioned) and pseudonymisation.

Every table is hive-partitioned by ``year``/``month`` of ``event_time`` when written to
Parquet. Columns only ever get added; ``schema_version`` says which set a row was
written with.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from riskengine.audit.schema import TABLES as TABLES

SCHEMA_VERSION: Final = 1

KEY_ENV: Final = "RISKENGINE_AUDIT_KEY"
KEY_FILE: Final = "_meta/pseudonym.key"


def load_or_create_key(root: str | os.PathLike[str] | None, configured: str | None = None) -> bytes:
    """The pseudonymisation key: config/env if given, else a random key kept in the audit root
    (mode 0600) so every writer process of one root agrees. Never logged."""
    if configured:
        return configured.encode()
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode()
    if root is None:
        return secrets.token_bytes(32)
    path = Path(root) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode())
        try:
            os.link(tmp, path)  # first writer wins; others read its key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_bytes().strip()


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
