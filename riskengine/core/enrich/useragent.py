"""User-agent parsing for the device signal: fast resolver, user-agents' classification, LRU.

Measured (``benchmarks/bench_enrich.py``): ``user_agents.parse`` of an unseen string runs
ua-parser's legacy pure-Python path (~0.7–1 ms). ua-parser 1.x with the ``ua-parser-rs``
resolver parses the same string in ~15–35 µs. We take the fields from the fast resolver and
hand them to user-agents' own classification (``is_mobile``/``is_tablet``/``is_pc``/
``is_bot``) without its slow parse, then keep a bounded LRU of results: repeat visitors
(the common case) cost a dictionary hit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Final

import ua_parser
from user_agents.parsers import Browser, Device, OperatingSystem, UserAgent

from riskengine.core.enrich.versions import Version, parse_version, ua_version_digest

DEVICE_TYPES: Final = ("mobile", "tablet", "pc", "bot", "other")


@dataclass(frozen=True, slots=True)
class ParsedUA:
    browser_family: str
    browser_version: str
    os_family: str
    os_version: str
    device_family: str
    device_brand: str
    device_model: str
    device_type: str
    ua_key: str = ""
    """Device key derived from the stable parts, computed once per distinct user agent."""
    browser_version_key: Version | None = None
    """``browser_version`` parsed (:func:`~riskengine.core.enrich.versions.parse_version`),
    once per distinct user agent (the LRU keeps it): None when unparseable."""
    os_version_key: Version | None = None
    version_digest: str = ""
    """:func:`~riskengine.core.enrich.versions.ua_version_digest` of the families and versions."""

    @property
    def stable_parts(self) -> str:
        """What identifies a device across browser auto-updates: families, not versions."""
        return f"{self.browser_family}|{self.os_family}|{self.device_family}|{self.device_type}"


def _digest(material: str) -> str:
    return hashlib.blake2b(material.encode(), digest_size=6).hexdigest()


UNKNOWN_UA: Final = ParsedUA("Other", "", "Other", "", "Other", "", "", "other",
                             _digest("ua:Other|Other|Other|other"))


def _version(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


def classify(ua_string: str) -> ParsedUA:
    """Parse one user agent (no cache).

    >>> classify("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    ...          "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1").device_type
    'mobile'
    """
    if not ua_string:
        return UNKNOWN_UA
    result = ua_parser.parse(ua_string)
    browser = result.user_agent
    os_ = result.os
    device = result.device
    # user-agents' classifiers only read these attributes; building the object this way
    # skips its legacy parse while keeping its device-type rules.
    browser_version = _version(*(browser.major, browser.minor, browser.patch) if browser else ())
    os_version = _version(*(os_.major, os_.minor, os_.patch) if os_ else ())
    # user-agents' classifiers only read families, `version_string` and the raw string;
    # building the object this way skips its legacy parse (and its version parsing) while
    # keeping its device-type rules
    ua = UserAgent.__new__(UserAgent)
    ua.ua_string = ua_string
    ua.browser = Browser(browser.family if browser else "Other", (), browser_version)
    ua.os = OperatingSystem(os_.family if os_ else "Other", (), os_version)
    ua.device = Device(device.family if device else "Other",
                       device.brand if device else None, device.model if device else None)
    if ua.is_bot:
        device_type = "bot"
    elif ua.is_tablet:
        device_type = "tablet"
    elif ua.is_mobile:
        device_type = "mobile"
    elif ua.is_pc:
        device_type = "pc"
    else:
        device_type = "other"
    parsed = ParsedUA(
        browser_family=ua.browser.family,
        browser_version=browser_version,
        os_family=ua.os.family,
        os_version=os_version,
        device_family=ua.device.family or "Other",
        device_brand=ua.device.brand or "",
        device_model=ua.device.model or "",
        device_type=device_type,
    )
    return replace(parsed, ua_key=_digest(f"ua:{parsed.stable_parts}"),
                   browser_version_key=parse_version(browser_version), os_version_key=parse_version(os_version),
                   version_digest=ua_version_digest(parsed.browser_family, browser_version, parsed.os_family,
                                                    os_version))


class UAParser:
    """Bounded-LRU front of :func:`classify`. Thread-safe (``functools.lru_cache``)."""

    def __init__(self, cache_size: int = 16384) -> None:
        self.parse = lru_cache(maxsize=cache_size)(classify) if cache_size else classify
        # ua-parser compiles its resolver lazily (~0.2 s): pay that here, not in a login
        classify("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0")

    def warm(self, user_agents: list[str]) -> None:
        for ua in user_agents:
            self.parse(ua)


def device_key(device_id: str | None, ua: ParsedUA) -> str:
    """12 hex characters naming a device for one user.

    A caller-supplied ``device_id`` (cookie, platform fingerprint) wins; otherwise the UA's
    stable parts, so Chrome 120 → 121 is the same device.

    >>> win = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    >>> a = classify(win + " Chrome/120.0.0.0 Safari/537.36")
    >>> b = classify(win + " Chrome/121.0.0.0 Safari/537.36")
    >>> device_key(None, a) == device_key(None, b)
    True
    """
    if device_id:
        key = _DEVICE_KEYS.get(device_id)
        if key is None:
            if len(_DEVICE_KEYS) >= _DEVICE_KEYS_MAX:
                _DEVICE_KEYS.clear()  # bounded: start over (a dict hit is cheaper than an LRU's)
            key = _DEVICE_KEYS[device_id] = _digest(f"id:{device_id}")
        return key
    return ua.ua_key or _digest(f"ua:{ua.stable_parts}")


# device_id → key; plain dict get/set is atomic under the GIL, and every value is a pure
# function of its key, so concurrent callers can only ever store the same answer
_DEVICE_KEYS: dict[str, str] = {}
_DEVICE_KEYS_MAX: Final = 65536
