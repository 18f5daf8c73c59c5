"""Pseudonyms in the audit log: keyed user hashes and IP prefixes, checked against ipaddress."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from riskengine.audit.events import Pseudonymizer

P = Pseudonymizer(b"test-key")


@given(st.ip_addresses())
def test_ip_prefix_is_the_covering_network(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """/24 for IPv4 (string fast path), /48 for IPv6 — the network ipaddress computes."""
    bits = 24 if addr.version == 4 else 48
    expected = ipaddress.ip_network(f"{addr}/{bits}", strict=False).compressed
    assert P._ip(addr.compressed) == expected


def test_user_pseudonyms_are_keyed_and_stable() -> None:
    other = Pseudonymizer(b"another-key")
    assert P.user("alice") == P.user("alice") != P.user("bob")
    assert other.user("alice") != P.user("alice")
    assert len(P.user("alice")) == 16 and "alice" not in P.user("alice")
    assert Pseudonymizer(b"k", enabled=False).ip("81.2.69.160") == "81.2.69.160"


def test_session_pseudonyms_match_user_hashing_without_filling_the_user_cache() -> None:
    """A session id hashes like any id (so a session can be joined across tables), but through
    an uncached path: unique-per-login sessions must not evict users from the LRU."""
    p = Pseudonymizer(b"test-key")
    p.user("alice")
    for i in range(1000):
        assert p.session(f"s{i}") == p._user(f"s{i}")
    info = p.user.cache_info()  # type: ignore[attr-defined]
    assert info.currsize == 1
    assert p.session("alice") == p.user("alice")
