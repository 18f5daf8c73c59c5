"""The full User-Agent, not only its families: a never-seen version, and a downgrade.

Browsers and operating systems auto-update, so a user's versions only ever go up: a browser
or OS *older* than the newest this user has shown on that family is what an attack kit with a
fixed User-Agent looks like (``UA_DOWNGRADE``, strong). A never-seen exact version on a device
the user already has is weak evidence (``NEW_UA_VERSION``): mostly an update, sometimes an
imitation. Unparseable versions never fire.
"""

from __future__ import annotations

from collections.abc import Mapping

from riskengine.core import reasons
from riskengine.core.enrich.versions import Version, format_version, parse_version
from riskengine.core.signals.base import SignalResult

_NO_DOWNGRADE = SignalResult(reasons.UA_DOWNGRADE, 0.0, "no older browser or OS than before")
_SEEN_VERSION = SignalResult(reasons.NEW_UA_VERSION, 0.0, "browser and OS versions seen before")
_UNKNOWN_DEVICE = SignalResult(reasons.NEW_UA_VERSION, 0.0, "device not known: versions say nothing more")


def ua_downgrade(
    browser: str, browser_version: Version | None, os: str, os_version: Version | None,
    newest: Mapping[str, str], seen: bool,
) -> SignalResult:
    """1.0 when the browser or the OS is older than the newest version this user has shown on
    that family, and this exact version pair was never accepted before (a user's second,
    not-yet-updated machine of the same family is not a downgrade once it has been seen).

    >>> newest = {"b:Chrome": "121", "o:Windows": "10"}
    >>> ua_downgrade("Chrome", (118,), "Windows", (10,), newest, False).value
    1.0
    >>> ua_downgrade("Chrome", (122,), "Windows", (10,), newest, False).value
    0.0
    >>> ua_downgrade("Chrome", (118,), "Windows", (10,), newest, True).value  # seen before
    0.0
    >>> ua_downgrade("Chrome", None, "Windows", (10,), newest, False).value   # unparseable
    0.0
    """
    if seen:
        return _NO_DOWNGRADE
    older: list[str] = []
    for kind, family, version in (("browser", browser, browser_version), ("OS", os, os_version)):
        if version is None:
            continue
        known = parse_version(newest.get(f"{'b' if kind == 'browser' else 'o'}:{family}"[:40]))
        if known is not None and version < known:
            older.append(f"{kind} {family} {format_version(version)} (newest seen {format_version(known)})")
    if not older:
        return _NO_DOWNGRADE
    return SignalResult(reasons.UA_DOWNGRADE, 1.0, "older than this user has shown: " + "; ".join(older))


def new_ua_version(
    browser: str, browser_version: str, os: str, os_version: str, seen: bool, device_known: bool,
) -> SignalResult:
    """1.0 when this exact (browser, OS) version pair is new on a device the user already has.

    A new device already fires ``NEW_DEVICE``: its versions add nothing, so it stays quiet.

    >>> new_ua_version("Chrome", "122", "Windows", "10", False, True).value
    1.0
    >>> new_ua_version("Chrome", "122", "Windows", "10", True, True).value
    0.0
    >>> new_ua_version("Chrome", "122", "Windows", "10", False, False).value
    0.0
    """
    if not device_known:
        return _UNKNOWN_DEVICE
    if seen or not (browser_version or os_version):
        return _SEEN_VERSION
    return SignalResult(reasons.NEW_UA_VERSION, 1.0,
                        f"first login with {browser} {browser_version or '?'} on {os} {os_version or '?'}")


__all__ = ["new_ua_version", "ua_downgrade"]
