"""One user, one id: the normalisation every API that takes a user id applies.

``ALICE@x``, ``alice@x`` and ``ａｌｉｃｅ@x`` (full-width) are one account to a person, so they
must be one profile, one failure counter and one second-factor limit to the engine: an
attacker who could pick a case variant would get a fresh profile (cold start) and fresh
counters. The default, ``"nfkc_casefold"``, is Unicode NFKC, then case folding, then
stripping surrounding white space — the comparison form of an identifier (Unicode TR #36 /
UAX #31 practice; RFC 8265 "UsernameCaseMapped" does the same folding). ``"strip"`` only
strips, ``"none"`` keeps ids byte for byte (for a migration from stores keyed before 0.2).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Final, Literal

UserIdNormalization = Literal["nfkc_casefold", "strip", "none"]

MODES: Final[tuple[str, ...]] = ("nfkc_casefold", "strip", "none")


@lru_cache(maxsize=65536)
def _fold_unicode(user_id: str) -> str:
    return unicodedata.normalize("NFKC", user_id).casefold().strip()


def normalize_user_id(user_id: str) -> str:
    """The comparison form of a user id: NFKC, case-folded, stripped.

    >>> normalize_user_id("  Alice@Example.COM ")
    'alice@example.com'
    >>> normalize_user_id("ＡＬＩＣＥ@x") == normalize_user_id("alice@x")
    True
    >>> normalize_user_id("STRASSE") == normalize_user_id("straße")
    True
    """
    if user_id.isascii():
        # ASCII: NFKC is the identity and casefold() is lower()
        return user_id.strip().lower()
    return _fold_unicode(user_id)


def _strip(user_id: str) -> str:
    return user_id.strip()


def _keep(user_id: str) -> str:
    return user_id


def normalizer(mode: UserIdNormalization) -> Callable[[str], str]:
    """The function for a configured mode (``identity.normalize_user_id``).

    >>> normalizer("strip")(" Bob ")
    'Bob'
    """
    if mode == "nfkc_casefold":
        return normalize_user_id
    if mode == "strip":
        return _strip
    if mode == "none":
        return _keep
    raise ValueError(f"identity.normalize_user_id must be one of {', '.join(MODES)}, got {mode!r}")


def checked(normalize: Callable[[str], str], user_id: str) -> str:
    """``normalize(user_id)``, refusing an id that normalises to nothing (``"\\u3000"``)."""
    out = normalize(user_id)
    if not out:
        raise ValueError(f"user_id {user_id[:32]!r} is empty after normalisation")
    return out
