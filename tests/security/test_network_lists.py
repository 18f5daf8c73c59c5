"""Operator network lists and anonymising networks in scoring: a denylisted network is denied
whatever the device, an allowlisted one skips only the network signals, Tor/proxies step up."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.testing import FIREFOX_MAC, LONDON, establish, make_attempt, offline_settings

# ../shared beside the clone, looked up from here upwards (mutmut runs a copy under mutants/)
ANON_DB = next((d / "shared" / "data" / "maxmind-test" / "GeoIP2-Anonymous-IP-Test.mmdb"
                for d in Path(__file__).resolve().parents
                if (d / "shared" / "data" / "maxmind-test").is_dir()), Path("GeoIP2-Anonymous-IP-Test.mmdb"))
HOME_IP = "2.125.160.216"  # not in the anonymous-IP test database
HOSTING_ASN = 14061  # DigitalOcean: in the default hosting list


def engine(**sections: dict[str, object]) -> Engine:
    return Engine(offline_settings(**sections), sink=MemorySink())


def test_denylisted_network_is_denied_even_on_a_familiar_device() -> None:
    with engine(network={"deny_cidrs": ["198.51.100.0/24"]}) as e:
        last = establish(e, ip=HOME_IP)
        d = e.score(make_attempt(ts=last + timedelta(hours=1), ip="198.51.100.23"))
        again = e.score(make_attempt(ts=last + timedelta(hours=2), ip=HOME_IP))
    assert d.action == "deny" and "NETWORK_DENYLIST" in d.reason_codes and d.risk >= 0.95
    assert again.action == "allow"


def test_deny_wins_over_allow_and_over_a_trusted_device_token() -> None:
    with engine(network={"deny_cidrs": ["198.51.100.7"], "allow_cidrs": ["198.51.100.0/24"]}) as e:
        last = establish(e, ip=HOME_IP)
        ts = last + timedelta(days=1)
        c = e.score(make_attempt(ts=ts, ip=HOME_IP, ua=FIREFOX_MAC))
        token = e.record_outcome(c.decision_id, "verified", trust_device=True, timestamp=ts)
        assert token is not None
        d = e.score(make_attempt(ts=ts + timedelta(hours=1), ip="198.51.100.7", ua=FIREFOX_MAC,
                                 device_token=token))
    assert d.action == "deny" and "NETWORK_DENYLIST" in d.reason_codes


def test_allowlist_skips_network_signals_but_never_device_or_failure_signals() -> None:
    hosted = {"place": dict(LONDON, asn=HOSTING_ASN)}
    with engine(network={"allow_cidrs": ["203.0.113.0/24"]}) as e:
        last = establish(e, ip=HOME_IP)
        ts = last + timedelta(days=1)
        listed = e.score(make_attempt(ts=ts, ip="203.0.113.9", **hosted))
        unlisted = e.score(make_attempt(user_id="bob", ts=ts, ip="192.0.2.9", **hosted))
        new_device = e.score(make_attempt(ts=ts + timedelta(hours=1), ip="203.0.113.9", ua=FIREFOX_MAC, **hosted))
        for i in range(3):
            e.record_failure("alice", "203.0.113.9", ts + timedelta(hours=2, seconds=i))
        failures = e.score(make_attempt(ts=ts + timedelta(hours=2, minutes=1), ip="203.0.113.9", **hosted))
    # alice's history is AS2856 (BT); a hosting AS is a new hosting network unless allow-listed
    assert not {"NEW_ASN", "HOSTING_NETWORK"} & set(listed.reason_codes) and listed.action == "allow"
    assert "HOSTING_NETWORK" in unlisted.reason_codes
    assert "NEW_DEVICE" in new_device.reason_codes and new_device.action == "challenge"
    assert "FAILED_ATTEMPTS_USER" in failures.reason_codes and failures.action == "challenge"


@pytest.mark.skipif(not ANON_DB.exists(), reason="../shared/data/maxmind-test not present")
@pytest.mark.parametrize(("ip", "fires", "hosting"), [
    ("65.0.0.1", True, False),         # Tor exit node
    ("186.30.236.4", True, False),     # public proxy
    ("6.1.0.4", True, False),          # residential proxy
    ("1.2.0.1", True, False),          # anonymous VPN
    ("71.160.223.1", False, True),     # hosting provider only: HOSTING_NETWORK, not ANONYMOUS_PROXY
    ("89.160.20.112", False, False),   # not listed
])
def test_anonymous_ip_database_feeds_anonymous_proxy(ip: str, fires: bool, hosting: bool) -> None:
    with engine(geo={"city_db": None, "asn_db": None, "anonymous_db": str(ANON_DB)}) as e:
        last = establish(e, ip=HOME_IP)
        # no AS from the caller: the anonymous-IP database is the only network evidence
        d = e.score(make_attempt(ts=last + timedelta(hours=1), ip=ip, place=dict(LONDON, asn=None)))
        assert e.health()["geoip_problems"] == []
    assert ("ANONYMOUS_PROXY" in d.reason_codes) is fires
    assert ("HOSTING_NETWORK" in d.reason_codes) is hosting
    if fires:
        # a familiar device at home hours through Tor/a proxy steps up on that alone (0.4 weight)
        assert d.action == "challenge"


@pytest.mark.skipif(not ANON_DB.exists(), reason="../shared/data/maxmind-test not present")
def test_allowlisted_proxy_is_not_flagged() -> None:
    with engine(geo={"anonymous_db": str(ANON_DB)}, network={"allow_cidrs": ["65.0.0.0/16"]}) as e:
        last = establish(e, ip=HOME_IP)
        d = e.score(make_attempt(ts=last + timedelta(hours=1), ip="65.0.0.1"))
    assert "ANONYMOUS_PROXY" not in d.reason_codes and d.action == "allow"


def test_unreadable_anonymous_db_is_reported_in_health(tmp_path: Path) -> None:
    with engine(geo={"anonymous_db": str(tmp_path / "missing.mmdb")}) as e:
        problems = e.health()["geoip_problems"]
        assert e.score(make_attempt()).action in ("allow", "challenge")
    assert any("Anonymous IP database" in p for p in problems)
