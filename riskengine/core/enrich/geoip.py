"""GeoIP enrichment through ``maxminddb``: City (country/region/city/location/time zone) and ASN.

Readers are opened once; lookups go through a bounded LRU keyed by IP string. A missing or
corrupt database never raises into ``score()``: the reader is marked unavailable and the
engine adds ``GEOIP_UNAVAILABLE`` to its reasons.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, NamedTuple

import maxminddb

log = logging.getLogger(__name__)

GEOLITE2_BUILTIN: Final = "geolite2"


class GeoInfo(NamedTuple):
    country: str | None = None
    region: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    time_zone: str | None = None
    asn: int | None = None
    asn_org: str | None = None


EMPTY_GEO: Final = GeoInfo()


def builtin_city_db() -> str | None:
    """Path of the 2018 GeoLite2-City database that ``maxminddb-geolite2`` installs."""
    try:
        import _maxminddb_geolite2  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = Path(_maxminddb_geolite2.__file__).parent / "GeoLite2-City.mmdb"
    return str(path) if path.exists() else None


def _open(path: str | None, label: str) -> tuple[Any | None, str | None]:
    if not path:
        return None, None
    if path == GEOLITE2_BUILTIN:
        resolved = builtin_city_db()
        if resolved is None:
            return None, f"{label}: the maxminddb-geolite2 package is not installed"
        path = resolved
    if not os.path.exists(path):
        return None, f"{label}: no such file {path}"
    try:
        return maxminddb.open_database(path, maxminddb.MODE_AUTO), None
    except (maxminddb.InvalidDatabaseError, OSError, ValueError) as exc:
        return None, f"{label}: cannot open {path}: {exc}"


def _city_fields(rec: dict[str, Any]) -> tuple[Any, ...]:
    country = (rec.get("country") or rec.get("registered_country") or {}).get("iso_code")
    subdivisions = rec.get("subdivisions") or ()
    region = None
    if subdivisions:
        sub = subdivisions[0]
        region = (sub.get("names") or {}).get("en") or sub.get("iso_code")
    city = ((rec.get("city") or {}).get("names") or {}).get("en")
    loc = rec.get("location") or {}
    return country, region, city, loc.get("latitude"), loc.get("longitude"), loc.get("time_zone")


class GeoIP:
    """City + ASN lookups with an LRU; ``lookup`` returns ``(GeoInfo, problem)``."""

    def __init__(
        self, city_db: str | None = GEOLITE2_BUILTIN, asn_db: str | None = None,
        cache_size: int = 65536,
    ) -> None:
        self._city, city_problem = _open(city_db, "City database")
        self._asn, asn_problem = _open(asn_db, "ASN database")
        self.problems: list[str] = [p for p in (city_problem, asn_problem) if p]
        for p in self.problems:
            log.warning("GeoIP degraded: %s", p)
        self.configured = bool(city_db or asn_db)
        self._by24: dict[str, tuple[GeoInfo | None, str | None] | dict[int, dict[int, tuple[
            GeoInfo | None, str | None]]]] = {}
        self._by24_limit = max(cache_size, 0)
        # IPv4 answers are cached per /24 (below); an LRU keyed by the address in front of that
        # only cost time: real traffic has many more addresses than /24s (230k against 44k in
        # the simulated 90 days), so it mostly missed, and every hit reordered its list.
        # IPv6 addresses have no /24 cache and keep the LRU.
        self._lookup6 = lru_cache(maxsize=cache_size)(self._lookup) if cache_size else self._lookup

    @property
    def available(self) -> bool:
        return not self.problems

    def lookup(self, ip: str) -> tuple[GeoInfo | None, str | None]:
        """``(GeoInfo or None, problem or None)`` for a canonical address string."""
        return self._lookup(ip) if ":" not in ip else self._lookup6(ip)

    def _lookup(self, ip: str) -> tuple[GeoInfo | None, str | None]:
        # Most IPv4 networks in City/ASN databases are /24 or wider, and a /24 usually holds
        # many users' addresses (DHCP churn, carrier NAT pools). When every database answered
        # with a network of /24 or wider, the answer is kept per /24: the next address in it
        # costs a dict hit instead of a full record decode (~10–20 µs).
        # A /24 split into narrower networks (a quarter of the simulated lookups) keeps its
        # answers per network: {prefix length: {last octet >> (32 − length): answer}}.
        key24 = ip.rpartition(".")[0] if ":" not in ip else None
        last_octet = 0
        if key24 is not None:
            hit = self._by24.get(key24)
            if hit is not None:
                if not isinstance(hit, dict):
                    return hit
                last_octet = int(ip[len(key24) + 1:])
                for plen, answers in hit.items():
                    found_here = answers.get(last_octet >> (32 - plen))
                    if found_here is not None:
                        return found_here
        problem = self.problems[0] if self.problems else None
        country = region = city = lat = lon = tz = None
        asn = org = None
        found = False
        narrowest = 0  # the longest prefix any database answered with
        try:
            if self._city is not None:
                rec, plen = self._city.get_with_prefix_len(ip)
                narrowest = max(narrowest, plen)
                if isinstance(rec, dict):
                    country, region, city, lat, lon, tz = _city_fields(rec)
                    found = True
            if self._asn is not None:
                rec, plen = self._asn.get_with_prefix_len(ip)
                narrowest = max(narrowest, plen)
                if isinstance(rec, dict) and rec.get("autonomous_system_number") is not None:
                    asn = int(rec["autonomous_system_number"])
                    org = rec.get("autonomous_system_organization")
                    found = True
        except (maxminddb.InvalidDatabaseError, ValueError, OSError, RuntimeError) as exc:
            # A corrupt tree or data section: this lookup is unusable, the login is not.
            return None, f"GeoIP lookup failed: {exc}"
        result: tuple[GeoInfo | None, str | None] = (
            (GeoInfo(country, region, city, lat, lon, tz, asn, org), problem) if found else (None, problem))
        if key24 is not None and self._by24_limit:
            if len(self._by24) >= self._by24_limit:
                self._by24.clear()  # bounded: start over rather than stop caching
            if narrowest <= 24:
                self._by24[key24] = result
            else:
                split = self._by24.get(key24)
                if not isinstance(split, dict):
                    split = self._by24[key24] = {}
                last_octet = int(ip[len(key24) + 1:])
                split.setdefault(narrowest, {})[last_octet >> (32 - narrowest)] = result
        return result

    def close(self) -> None:
        for reader in (self._city, self._asn):
            if reader is not None:
                reader.close()
