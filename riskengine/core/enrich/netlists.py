"""Operator network lists (``[network] allow_cidrs`` / ``deny_cidrs``) and the anonymous-IP
database (``geo.anonymous_db``).

Lists: a login from a ``deny_cidrs`` network is denied (``NETWORK_DENYLIST``); a login from an
``allow_cidrs`` network (the office egress, a partner's NAT) skips the **network** signals —
``NEW_ASN``, ``HOSTING_NETWORK`` and ``ANONYMOUS_PROXY`` — but never device, failure, geo
(country, region, travel) or any other signal. Deny wins when a network is on both lists.

Anonymous IP: a MaxMind GeoIP2 Anonymous IP database, an IPinfo privacy-detection mmdb or an
IP2Proxy mmdb, read through the same maxminddb path as the City and ASN databases. Each
record is reduced to categories (:data:`CATEGORIES`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Literal

import maxminddb

from riskengine.core.enrich.geoip import _open as open_mmdb

log = logging.getLogger(__name__)

Listed = Literal["allow", "deny"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

CATEGORIES = ("vpn", "tor", "public_proxy", "residential_proxy", "hosting", "relay", "anonymous")
"""What an anonymous-IP record can say. ``relay`` (iCloud Private Relay and the like: ordinary
users ride them) and ``hosting`` alone never make ``ANONYMOUS_PROXY``; ``hosting`` feeds
``HOSTING_NETWORK`` instead."""

_MAXMIND = {"is_anonymous_vpn": "vpn", "is_tor_exit_node": "tor", "is_public_proxy": "public_proxy",
            "is_residential_proxy": "residential_proxy", "is_hosting_provider": "hosting",
            "is_anonymous": "anonymous"}
_IPINFO = {"vpn": "vpn", "tor": "tor", "proxy": "public_proxy", "hosting": "hosting", "relay": "relay"}
_IP2PROXY = {"VPN": "vpn", "TOR": "tor", "PUB": "public_proxy", "WEB": "public_proxy",
             "RES": "residential_proxy", "DCH": "hosting", "SES": "hosting", "CPN": "relay", "EPN": "relay"}


def parse_cidrs(values: Iterable[str], name: str) -> tuple[Network, ...]:
    """Networks from CIDR strings (a bare address is a /32 or /128); a bad entry is an error
    naming the setting and the entry.

    >>> [str(n) for n in parse_cidrs(["10.0.0.0/8", "2001:db8::1"], "network.allow_cidrs")]
    ['10.0.0.0/8', '2001:db8::1/128']
    >>> parse_cidrs(["10.0.0.0/33"], "network.deny_cidrs")
    Traceback (most recent call last):
    ...
    ValueError: network.deny_cidrs: '10.0.0.0/33' is not a network (CIDR) or address
    """
    out: list[Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a network (CIDR) or address") from None
    return tuple(out)


class NetworkLists:
    """``match(ip)`` → ``"deny"``, ``"allow"`` or None (cached per address)."""

    def __init__(self, allow: Iterable[str] = (), deny: Iterable[str] = (), cache_size: int = 65536) -> None:
        self.allow = parse_cidrs(allow, "network.allow_cidrs")
        self.deny = parse_cidrs(deny, "network.deny_cidrs")
        self.match = lru_cache(maxsize=cache_size)(self._match)

    def __bool__(self) -> bool:
        return bool(self.allow or self.deny)

    def _match(self, ip: str) -> Listed | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None  # not an address: lists cannot say anything about it
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self.deny):
            return "deny"
        if any(addr in net for net in self.allow):
            return "allow"
        return None


def categories_of(record: Mapping[str, Any] | None) -> frozenset[str]:
    """The :data:`CATEGORIES` a MaxMind, IPinfo or IP2Proxy record states.

    >>> sorted(categories_of({"is_anonymous": True, "is_public_proxy": True}))
    ['anonymous', 'public_proxy']
    >>> sorted(categories_of({"relay": "true", "service": "iCloud Private Relay"}))
    ['relay']
    >>> sorted(categories_of({"proxy_type": "TOR"}))
    ['tor']
    >>> categories_of({})
    frozenset()
    """
    if not record:
        return frozenset()
    found: set[str] = set()
    for table in (_MAXMIND, _IPINFO):
        for field, category in table.items():
            value = record.get(field)
            if value is True or (isinstance(value, str) and value.lower() == "true"):
                found.add(category)
    proxy_type = record.get("proxy_type")
    if isinstance(proxy_type, str) and proxy_type.upper() in _IP2PROXY:
        found.add(_IP2PROXY[proxy_type.upper()])
    return frozenset(found)


class AnonymousIP:
    """Lookups in an anonymous-IP mmdb; ``problem`` says why it is unavailable (then every
    lookup is empty and the engine scores without it, as with a missing City database)."""

    def __init__(self, path: str, cache_size: int = 65536) -> None:
        self._reader, self.problem = open_mmdb(path, "Anonymous IP database")
        if self.problem:
            log.warning("GeoIP degraded: %s", self.problem)
        self.lookup = lru_cache(maxsize=cache_size)(self._lookup)

    def _lookup(self, ip: str) -> frozenset[str]:
        if self._reader is None:
            return frozenset()
        try:
            record = self._reader.get(ip)
        except (maxminddb.InvalidDatabaseError, ValueError, OSError, RuntimeError):
            return frozenset()  # not an address, or a corrupt node: no evidence either way
        return categories_of(record if isinstance(record, dict) else None)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


__all__ = ["CATEGORIES", "AnonymousIP", "NetworkLists", "categories_of", "parse_cidrs"]
