"""ANONYMOUS_PROXY: Tor exits and public/residential proxies always fire; an anonymous VPN only
when its AS is not one the user logs in from; hosting and privacy relays never fire alone."""

from __future__ import annotations

import pytest

from riskengine.core.signals.anonymous import anonymous_proxy
from riskengine.core.signals.base import SignalResult

KNOWN = {9009: 4}
"""The user's networks (ASN → last seen): 9009 is their own VPN exit."""


@pytest.mark.parametrize(("category", "label"), [
    ("tor", "Tor exit node"), ("public_proxy", "public proxy"), ("residential_proxy", "residential proxy"),
])
def test_always_anonymous_categories_fire_even_from_a_known_network(category: str, label: str) -> None:
    for asn in (None, 9009, 64500):
        r = anonymous_proxy(frozenset({category}), asn, KNOWN)
        assert r == SignalResult("ANONYMOUS_PROXY", 1.0, f"login through: {label}")


def test_a_vpn_fires_unless_it_is_a_network_the_user_logs_in_from() -> None:
    vpn = frozenset({"vpn", "anonymous"})
    assert anonymous_proxy(vpn, 64500, KNOWN) == SignalResult(
        "ANONYMOUS_PROXY", 1.0, "login through: anonymous VPN")
    assert anonymous_proxy(vpn, None, KNOWN).value == 1.0  # no AS: not the user's own exit
    own = anonymous_proxy(vpn, 9009, KNOWN)
    assert own == SignalResult("ANONYMOUS_PROXY", 0.0, "anonymous VPN this user logs in from")
    # a Tor exit inside the user's own VPN's AS still fires: Tor is never the user's network
    assert anonymous_proxy(frozenset({"vpn", "tor"}), 9009, KNOWN).value == 1.0


def test_several_categories_are_all_named_in_a_fixed_order() -> None:
    r = anonymous_proxy(frozenset({"vpn", "residential_proxy", "tor", "public_proxy"}), 1, {})
    assert r.detail == "login through: Tor exit node, public proxy, residential proxy, anonymous VPN"


def test_the_bare_anonymous_flag_fires_unless_hosting_or_a_relay_explains_it() -> None:
    bare = anonymous_proxy(frozenset({"anonymous"}), 64500, KNOWN)
    assert bare == SignalResult("ANONYMOUS_PROXY", 1.0, "login through: anonymising network")
    # a bare flag from the user's own network is treated like a VPN: learned, quiet
    assert anonymous_proxy(frozenset({"anonymous"}), 9009, KNOWN).value == 0.0
    for explained in ({"anonymous", "hosting"}, {"anonymous", "relay"}):
        r = anonymous_proxy(frozenset(explained), 64500, KNOWN)
        assert r == SignalResult("ANONYMOUS_PROXY", 0.0, "not an anonymising network")


@pytest.mark.parametrize("categories", [set(), {"hosting"}, {"relay"}, {"hosting", "relay"}])
def test_hosting_and_relays_alone_never_fire(categories: set[str]) -> None:
    r = anonymous_proxy(frozenset(categories), 64500, KNOWN)
    assert r == SignalResult("ANONYMOUS_PROXY", 0.0, "not an anonymising network")
    assert not r.fired


def test_fired_is_strictly_above_zero() -> None:
    assert SignalResult("X", 1e-9, "").fired
    assert not SignalResult("X", 0.0, "").fired
    assert not SignalResult("X", -0.0, "").fired
