"""Dotted version strings ("120.0.6099", "17_1", "10") as comparable tuples of ints.

Used by the User-Agent version signals and the profile's "newest version seen": anything that
is not dotted (or underscored) non-negative integers is *unparseable* (None), and an
unparseable version never fires a signal nor moves the newest version.
"""

from __future__ import annotations

import hashlib
from typing import Final

MAX_PARTS: Final = 4
"""Parts compared (major.minor.patch.build): longer strings are cut, so a crafted
"1.2.3.4.5.6…" costs no more than a real one."""
MAX_PART: Final = 10**6
"""A part above this is not a real release number (browsers are at ~10², builds ~10⁴)."""

Version = tuple[int, ...]


def parse_version(text: str | None) -> Version | None:
    """The version as a tuple of ints, trailing zeros dropped; None when it is not one.

    >>> parse_version("120.0.6099.109")
    (120, 0, 6099, 109)
    >>> parse_version("17_1") == parse_version("17.1.0")
    True
    >>> parse_version("Vista") is None, parse_version("") is None, parse_version("1.x") is None
    (True, True, True)
    >>> parse_version("99999999.0") is None   # a bogus huge version is not a version
    True
    """
    if not text:
        return None
    parts = text.replace("_", ".").split(".")[:MAX_PARTS]
    out: list[int] = []
    for part in parts:
        if not part.isdigit() or not part.isascii() or len(part) > 7:
            return None
        n = int(part)
        if n > MAX_PART:
            return None
        out.append(n)
    while len(out) > 1 and out[-1] == 0:
        out.pop()
    return tuple(out)


def format_version(version: Version) -> str:
    """Back to a dotted string (how the profile stores it).

    >>> format_version((120, 0, 6099))
    '120.0.6099'
    """
    return ".".join(str(p) for p in version)


def ua_version_digest(browser: str | None, browser_version: str, os: str | None, os_version: str) -> str:
    """8 hex characters naming an exact (browser, OS) version pair: the profile keeps digests
    (only equality is ever asked of them).

    >>> ua_version_digest("Chrome", "120.0.0", "Windows", "10")
    '0b6ad40a'
    """
    return hashlib.blake2b(f"{browser}/{browser_version}|{os}/{os_version}".encode(), digest_size=4).hexdigest()
