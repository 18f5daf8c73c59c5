"""The per-/24 cache gives exactly the answers of a cold lookup."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from riskengine.core.enrich.geoip import GeoIP


def test_prefix_cache_agrees_with_uncached_lookups(maxmind: Callable[[str], Path]) -> None:
    city, asn = str(maxmind("GeoIP2-City-Test.mmdb")), str(maxmind("GeoLite2-ASN-Test.mmdb"))
    warm = GeoIP(city, asn)
    addresses = [f"81.2.69.{i}" for i in range(0, 256, 7)] + [f"89.160.20.{i}" for i in range(100, 140)] \
        + [f"216.160.83.{i}" for i in range(50, 60)] + ["175.16.199.0", "8.8.8.8", "2001:218::1"]
    for ip in addresses:
        warm.lookup(ip)
    for ip in addresses:
        cold = GeoIP(city, asn, cache_size=0)
        assert warm.lookup(ip) == cold.lookup(ip), ip


def test_narrow_networks_are_not_shared(maxmind: Callable[[str], Path]) -> None:
    # 81.2.69.142/31 and 81.2.69.160/27 are different networks in the test database: a /24
    # key must not be used when the database answered with a network narrower than /24
    geo = GeoIP(str(maxmind("GeoIP2-City-Test.mmdb")), None)
    a, _ = geo.lookup("81.2.69.142")
    b, _ = geo.lookup("81.2.69.160")
    fresh, _ = GeoIP(str(maxmind("GeoIP2-City-Test.mmdb")), None, cache_size=0).lookup("81.2.69.160")
    assert b == fresh
    assert a is not None and b is not None
