"""Device tokens: the only thing that makes a device *trusted*.

After a verified challenge with "trust this device", the engine mints a random device id and
hands the caller a token for it, to be kept as a long-lived HttpOnly cookie. A later login
presents it (``LoginAttempt.device_token``); only a token that verifies, for this user, not
expired, whose device the profile still trusts, makes the login ``TRUSTED_DEVICE``. Browser
families and caller-chosen ``device_id`` strings are familiarity, never trust: any attacker
can copy a User-Agent or invent an id, nobody can forge an HMAC without the key.

Layout (URL-safe base64, no padding, 87 characters)::

    version (1) | device id (16, random) | issued (8, epoch s) | expires (8, epoch s) | HMAC-SHA256 (32)

The MAC covers a domain tag, the (normalised) user id and the first 33 bytes, so a token is
bound to its user without carrying the id. Keys rotate: the first configured key signs,
every key verifies (``[trust] secret_keys``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from collections.abc import Sequence
from typing import Final, NamedTuple

VERSION: Final = 1
DEVICE_ID_BYTES: Final = 16
_BODY = struct.Struct(">B16sQQ")
_MAC_BYTES: Final = 32
_TOKEN_BYTES: Final = _BODY.size + _MAC_BYTES
TOKEN_CHARS: Final = (4 * _TOKEN_BYTES + 2) // 3
"""Length of every token this version mints."""
MAX_TOKEN_CHARS: Final = 256
_DOMAIN: Final = b"riskengine device token v1\x00"
KEY_PREFIX: Final = "t:"
"""Profile device keys of token devices: ``t:`` + the device id in hex."""


class TokenCheck(NamedTuple):
    """What a presented token says: the device key when it verifies, else why not."""

    device_key: str | None
    expires: int
    problem: str | None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DeviceTokens:
    """Mint and verify device tokens with a list of keys (first signs, all verify).

    >>> tokens = DeviceTokens([b"k" * 32])
    >>> t = tokens.issue("alice", bytes(16), issued=1_000, expires=2_000)
    >>> len(t) <= MAX_TOKEN_CHARS, tokens.verify(t, "alice", now=1_500).problem
    (True, None)
    >>> tokens.verify(t, "bob", now=1_500).problem
    'device token does not verify for this user'
    >>> tokens.verify(t, "alice", now=2_001).problem
    'device token expired'
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("device tokens need at least one key")
        for key in keys:
            if len(key) < 32:
                raise ValueError("device token keys must be at least 32 bytes")
        self._keys = tuple(keys)

    @staticmethod
    def new_device_id() -> bytes:
        return secrets.token_bytes(DEVICE_ID_BYTES)

    @staticmethod
    def device_key(device_id: bytes) -> str:
        return KEY_PREFIX + device_id.hex()

    @staticmethod
    def device_id_of(device_key: str) -> bytes | None:
        """The device id of a token device key (``None`` for any other device key)."""
        if not device_key.startswith(KEY_PREFIX):
            return None
        try:
            raw = bytes.fromhex(device_key[len(KEY_PREFIX):])
        except ValueError:
            return None
        return raw if len(raw) == DEVICE_ID_BYTES else None

    def _mac(self, key: bytes, user_id: str, body: bytes) -> bytes:
        return hmac.new(key, _DOMAIN + user_id.encode("utf-8", "surrogatepass") + b"\x00" + body,
                        hashlib.sha256).digest()

    def issue(self, user_id: str, device_id: bytes, *, issued: int, expires: int) -> str:
        if len(device_id) != DEVICE_ID_BYTES:
            raise ValueError(f"device id must be {DEVICE_ID_BYTES} bytes")
        body = _BODY.pack(VERSION, device_id, max(0, issued), max(0, expires))
        return _b64(body + self._mac(self._keys[0], user_id, body))

    def verify(self, token: str, user_id: str, now: float) -> TokenCheck:
        """Check a presented token for ``user_id`` at ``now``. Never raises on bad input."""
        if len(token) != TOKEN_CHARS:
            return TokenCheck(None, 0, "malformed device token")
        try:
            raw = _unb64(token)
        except (binascii.Error, ValueError):
            return TokenCheck(None, 0, "malformed device token")
        if len(raw) != _TOKEN_BYTES:
            return TokenCheck(None, 0, "malformed device token")
        body, mac = raw[:_BODY.size], raw[_BODY.size:]
        version, device_id, _issued, expires = _BODY.unpack(body)
        if version != VERSION:
            return TokenCheck(None, 0, "unknown device token version")
        # every key is tried (constant-time compare each), so timing does not tell which matched
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(self._mac(key, user_id, body), mac)
        if not matched:
            return TokenCheck(None, 0, "device token does not verify for this user")
        if expires < now:
            return TokenCheck(None, expires, "device token expired")
        return TokenCheck(self.device_key(device_id), expires, None)


def parse_keys(value: str | Sequence[str]) -> tuple[str, ...]:
    """Keys from config or the environment: a list, or one comma-separated string.

    >>> parse_keys("a" * 32 + "," + "b" * 32) == ("a" * 32, "b" * 32)
    True
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(k.strip() for k in items if k.strip())
