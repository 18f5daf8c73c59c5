from __future__ import annotations

from datetime import timedelta

from riskengine import Engine
from riskengine.core.enrich.network import HostingClassifier
from riskengine.core.signals.network import hosting_network
from riskengine.testing import LONDON, establish, make_attempt


def test_classifier_by_number_and_by_org_keyword() -> None:
    c = HostingClassifier(asns=[64500], keywords=["vps"])
    assert c.is_hosting(64500, None)
    assert c.is_hosting(64501, "Tiny VPS Co")
    assert not c.is_hosting(2856, "British Telecommunications PLC")
    assert not c.is_hosting(None, None)


def test_known_hosting_network_is_quiet() -> None:
    assert hosting_network(9009, "M247 Europe SRL", True, {9009: 1}).value == 0.0
    assert hosting_network(9009, "M247 Europe SRL", True, {2856: 1}).value == 1.0
    assert hosting_network(2856, "BT", False, {}).value == 0.0


def test_engine_steps_up_a_new_datacentre_login_even_on_a_known_device(engine: Engine) -> None:
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), place={**LONDON, "asn": 14061}))
    assert d.action == "challenge"
    assert d.reason_codes == ("HOSTING_NETWORK", "NEW_ASN")


def test_first_ever_login_from_a_datacentre_is_challenged(engine: Engine) -> None:
    d = engine.score(make_attempt(user_id="fresh", place={**LONDON, "asn": 16509}))
    assert d.action == "challenge"
    assert "HOSTING_NETWORK" in d.reason_codes and "COLD_START" in d.reason_codes


def test_hosting_detail_names_the_network_and_its_owner() -> None:
    assert hosting_network(14061, "DigitalOcean, LLC", True, {}).detail == \
        "login from a hosting/VPN network (AS14061, DigitalOcean, LLC)"
    assert hosting_network(14061, None, True, {}).detail == "login from a hosting/VPN network (AS14061)"
    unknown = hosting_network(None, None, True, {})
    assert (unknown.value, unknown.detail) == (1.0, "login from a hosting/VPN network (an unknown AS)")
