"""Network lists and the anonymous-IP database (MaxMind's test mmdb and its known answers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskengine import Settings
from riskengine.core.enrich.netlists import AnonymousIP, NetworkLists, categories_of

MAXMIND_TEST = Path(__file__).resolve().parents[3] / "shared" / "data" / "maxmind-test"
ANON_DB = MAXMIND_TEST / "GeoIP2-Anonymous-IP-Test.mmdb"

needs_db = pytest.mark.skipif(not ANON_DB.exists(), reason="../shared/data/maxmind-test not present")


def test_lists_match_v4_v6_and_mapped_addresses_with_deny_winning() -> None:
    lists = NetworkLists(allow=["203.0.113.0/24", "2001:db8::/32"], deny=["203.0.113.66", "198.51.100.0/24"])
    assert lists.match("203.0.113.7") == "allow"
    assert lists.match("203.0.113.66") == "deny"  # on both lists: deny wins
    assert lists.match("198.51.100.200") == "deny"
    assert lists.match("::ffff:198.51.100.1") == "deny"  # IPv4-mapped IPv6 is the IPv4 address
    assert lists.match("2001:db8:1::5") == "allow"
    assert lists.match("192.0.2.1") is None
    assert lists.match("not an address") is None
    assert not NetworkLists() and lists


def test_bad_cidrs_are_rejected_naming_the_setting() -> None:
    with pytest.raises(ValueError, match=r"network\.deny_cidrs: '300\.1\.2\.0/24'"):
        Settings().with_overrides(network={"deny_cidrs": ["300.1.2.0/24"]})
    with pytest.raises(ValueError, match=r"network\.allow_cidrs"):
        Settings.load(env={"RISKENGINE_NETWORK_ALLOW_CIDRS": "10.0.0.0/8, banana"})
    s = Settings.load(env={"RISKENGINE_NETWORK_DENY_CIDRS": '["10.0.0.0/8", "192.0.2.1"]'})
    assert s.network.deny_cidrs == ("10.0.0.0/8", "192.0.2.1")
    assert Settings.load(env={"RISKENGINE_NETWORK_ALLOW_CIDRS": "10.0.0.0/8,192.0.2.0/24"}).network.allow_cidrs \
        == ("10.0.0.0/8", "192.0.2.0/24")


@needs_db
@pytest.mark.parametrize(("ip", "expected"), [
    # from GeoIP2-Anonymous-IP-Test.json
    ("81.2.69.160", {"anonymous", "vpn", "hosting", "public_proxy", "residential_proxy", "tor"}),
    ("1.2.0.1", {"anonymous", "vpn"}),
    ("1.124.213.1", {"anonymous", "vpn", "tor"}),
    ("71.160.223.9", {"anonymous", "hosting"}),
    ("186.30.236.17", {"anonymous", "public_proxy"}),
    ("65.0.3.4", {"anonymous", "tor"}),
    ("6.1.0.4", {"anonymous", "residential_proxy"}),
    ("2001:480:3a::1", {"anonymous", "public_proxy"}),
    ("8.8.8.8", set()),  # not listed: the database answers {}
    ("garbage", set()),
])
def test_maxmind_anonymous_ip_known_answers(ip: str, expected: set[str]) -> None:
    db = AnonymousIP(str(ANON_DB))
    try:
        assert db.problem is None
        assert db.lookup(ip) == frozenset(expected)
    finally:
        db.close()


def test_missing_database_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    db = AnonymousIP(str(tmp_path / "nope.mmdb"))
    assert db.problem is not None and "nope.mmdb" in db.problem
    assert db.lookup("65.0.0.1") == frozenset()


def test_other_vendors_records() -> None:
    # IPinfo privacy detection: relay (iCloud Private Relay) is its own category
    assert categories_of({"vpn": "true", "proxy": "false", "tor": False, "relay": "false"}) == {"vpn"}
    assert categories_of({"relay": True, "service": "Apple iCloud Private Relay"}) == {"relay"}
    # IP2Proxy: proxy_type codes
    assert categories_of({"proxy_type": "DCH"}) == {"hosting"}
    assert categories_of({"proxy_type": "res"}) == {"residential_proxy"}
    assert categories_of({"proxy_type": "-"}) == frozenset()
