"""Shared by the three framework suites: the header-parsing cases and the login scenarios.

Every framework's test app (``/login`` and ``/verify``, the same in each) is driven over HTTP
by that framework's own test client; the app reads its adapter options from the query string
so one app serves every case. ``post(path, *, headers, peer, query)`` is the per-framework
driver each suite provides as its ``post`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

import pytest

from riskengine import Engine
from riskengine.core import reasons
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE, LONDON, establish

PEER = "10.0.0.2"
CLIENT = "81.2.69.160"
Headers = Sequence[tuple[str, str]]


class HeaderCase(NamedTuple):
    name: str
    headers: Headers
    trusted_proxies: int
    expected: str
    proxy_header: str = "x-forwarded-for"
    peer: str = PEER


XFF, FWD = "X-Forwarded-For", "Forwarded"
HEADER_CASES: tuple[HeaderCase, ...] = (
    HeaderCase("no proxy, no header: the peer", (), 0, PEER),
    HeaderCase("no proxy: a spoofed XFF from the peer is ignored", ((XFF, "6.6.6.6"),), 0, PEER),
    HeaderCase("no proxy: a spoofed Forwarded is ignored", ((FWD, "for=6.6.6.6"),), 0, PEER, "forwarded"),
    HeaderCase("one proxy", ((XFF, CLIENT),), 1, CLIENT),
    HeaderCase("one proxy: what the client put left of it is ignored", ((XFF, f"6.6.6.6, {CLIENT}"),), 1, CLIENT),
    HeaderCase("two proxies: second from the right", ((XFF, f"6.6.6.6, {CLIENT}, 10.0.0.5"),), 2, CLIENT),
    HeaderCase("two proxies, one entry: short chain, the peer", ((XFF, CLIENT),), 2, PEER),
    HeaderCase("one proxy, no header: the peer", (), 1, PEER),
    HeaderCase("one proxy, garbage: the peer", ((XFF, "not-an-ip"),), 1, PEER),
    HeaderCase("two proxies, malformed trusted entry: the peer", ((XFF, f"{CLIENT}, unknown"),), 2, PEER),
    HeaderCase("garbage the client wrote is never parsed", ((XFF, f"}}{{[::, {'x' * 5000}, {CLIENT}"),), 1, CLIENT),
    HeaderCase("IPv6 in brackets with a port", ((XFF, "[2001:db8::1]:443"),), 1, "2001:db8::1"),
    HeaderCase("IPv4 with a port", ((XFF, f"{CLIENT}:5555"),), 1, CLIENT),
    HeaderCase("bare IPv6, normalised", ((XFF, "2001:DB8:0:0::7"),), 1, "2001:db8::7"),
    HeaderCase("IPv4-mapped IPv6 peer", (), 0, PEER, peer=f"::ffff:{PEER}"),
    HeaderCase("two XFF lines are one list", ((XFF, "6.6.6.6"), (XFF, CLIENT)), 1, CLIENT),
    HeaderCase("Forwarded, one proxy", ((FWD, "for=192.0.2.60;proto=https;by=203.0.113.43"),), 1, "192.0.2.60",
               "forwarded"),
    HeaderCase("Forwarded, two proxies, quoted IPv6 with port",
               ((FWD, 'for=6.6.6.6, For=192.0.2.60, for="[2001:db8:cafe::17]:4711"'),), 2, "192.0.2.60",
               "forwarded"),
    HeaderCase("Forwarded, quoted IPv6 client", ((FWD, 'for="[2001:db8:cafe::17]:4711"'),), 1, "2001:db8:cafe::17",
               "forwarded"),
    HeaderCase("Forwarded: an unclosed quote left of the proxy's entry is ignored",
               ((FWD, 'for="6.6.6.6, for=192.0.2.60'),), 1, "192.0.2.60", "forwarded"),
    HeaderCase("Forwarded: an obfuscated node is no address", ((FWD, "for=_hidden"),), 1, PEER, "forwarded"),
    HeaderCase("Forwarded: two for= in one element is malformed", ((FWD, "for=1.2.3.4;for=5.6.7.8"),), 1, PEER,
               "forwarded"),
    HeaderCase("Forwarded configured: XFF is client-controlled, ignored", ((XFF, "6.6.6.6"),), 1, PEER, "forwarded"),
    HeaderCase("XFF configured: Forwarded is client-controlled, ignored", ((FWD, "for=6.6.6.6"),), 1, PEER),
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "header_case" in metafunc.fixturenames:
        metafunc.parametrize("header_case", HEADER_CASES, ids=[c.name for c in HEADER_CASES])


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    set_cookies: list[str] = field(default_factory=list)


Post = Callable[..., Reply]
"""``post(path, *, headers=(), peer=PEER, query={})`` → Reply, over the framework's test client."""


def parse_set_cookie(header: str) -> tuple[str, str, dict[str, str]]:
    """``name=value; HttpOnly; Max-Age=60`` → (name, value, {lower-case attribute: value})."""
    first, *attrs = [part.strip() for part in header.split(";")]
    name, _, value = first.partition("=")
    parsed = {}
    for attr in attrs:
        key, _, val = attr.partition("=")
        parsed[key.lower()] = val
    return name, value, parsed


class Scenarios:
    """The behaviour every adapter must show, written once against a ``post`` driver."""

    Reply = Reply
    PEER = PEER
    parse_set_cookie = staticmethod(parse_set_cookie)

    @staticmethod
    def header_case(post: Post, case: HeaderCase) -> None:
        reply = post("/login", headers=case.headers, peer=case.peer,
                     query={"hops": case.trusted_proxies, "header": case.proxy_header})
        assert reply.status == 200, reply
        assert reply.body["ip"] == case.expected

    @staticmethod
    def token_round_trip(post: Post, engine: Engine) -> None:
        last = establish(engine, "alice", place=LONDON, ip=CLIENT)
        when = (last + timedelta(days=1)).isoformat()
        ua = (("User-Agent", FIREFOX_MAC),)
        # a device alice never used: challenged
        first = post("/login", headers=ua, peer=CLIENT, query={"ts": when})
        assert first.body["action"] == "challenge", first.body
        assert reasons.NEW_DEVICE in first.body["reasons"]
        verified = post("/verify", peer=CLIENT, query={"decision_id": first.body["decision_id"], "trust": "1",
                                                       "ts": when})
        assert verified.status == 200
        cookies = [parse_set_cookie(c) for c in verified.set_cookies]
        [(name, token, attrs)] = [c for c in cookies if c[0] == "rdt"]
        assert token and len(token) <= 256
        assert "httponly" in attrs and "secure" in attrs
        assert attrs["samesite"].lower() == "lax"
        assert attrs["max-age"] == str(30 * 86400)
        assert attrs["path"] == "/"
        # the browser updates (its User-Agent changes, its cookie does not): without the cookie
        # that is a new device and a challenge; with it, the trusted device, allowed
        updated = (("User-Agent", IPHONE),)
        later = (last + timedelta(days=1, minutes=5)).isoformat()
        bare = post("/login", headers=updated, peer=CLIENT, query={"ts": later, "user": "alice"})
        assert bare.body["action"] == "challenge", bare.body
        again = post("/login", headers=(*updated, ("Cookie", f"rdt={token}")), peer=CLIENT, query={"ts": later})
        assert again.body["action"] == "allow", again.body
        assert not {reasons.NEW_DEVICE, reasons.DEVICE_TOKEN_INVALID} & set(again.body["reasons"])
        # bob's login cannot use alice's token
        establish(engine, "bob", place=LONDON, ip=CLIENT)
        stolen = post("/login", headers=(*ua, ("Cookie", f"rdt={token}")), peer=CLIENT,
                      query={"ts": later, "user": "bob"})
        assert stolen.body["action"] != "allow"
        assert reasons.DEVICE_TOKEN_INVALID in stolen.body["reasons"]
        # another device copying a forged cookie: never trusted
        forged = post("/login", headers=(("User-Agent", CHROME_WIN), ("Cookie", f"rdt={token[:-4]}AAAA")),
                      peer=CLIENT, query={"ts": (last + timedelta(days=1, minutes=6)).isoformat()})
        assert reasons.TRUSTED_DEVICE not in forged.body["reasons"]
        assert reasons.DEVICE_TOKEN_INVALID in forged.body["reasons"]

    @staticmethod
    def verified_without_trust_sets_no_cookie(post: Post, engine: Engine) -> None:
        last = establish(engine, "alice", place=LONDON, ip=CLIENT)
        when = (last + timedelta(days=1)).isoformat()
        first = post("/login", headers=(("User-Agent", FIREFOX_MAC),), peer=CLIENT, query={"ts": when})
        assert first.body["action"] == "challenge"
        verified = post("/verify", peer=CLIENT, query={"decision_id": first.body["decision_id"], "trust": "0",
                                                       "ts": when})
        assert verified.status == 200
        assert not [c for c in verified.set_cookies if c.startswith("rdt=")]

    @staticmethod
    def cdn_country(post: Post, engine: Engine) -> None:
        last = establish(engine, "alice", place=LONDON, ip=CLIENT)
        headers = (("User-Agent", CHROME_WIN), (XFF, CLIENT), ("CF-IPCountry", "FR"))

        def login(minutes: int, **query: Any) -> Reply:
            return post("/login", headers=headers, peer=PEER,
                        query={"hops": 1, "ts": (last + timedelta(days=1, minutes=minutes)).isoformat(), **query})

        configured = login(0, geo="cloudflare")
        assert configured.body["country"] == "FR"
        assert reasons.NEW_COUNTRY in configured.body["reasons"]
        not_configured = login(1)
        assert not_configured.body["country"] is None
        assert reasons.NEW_COUNTRY not in not_configured.body["reasons"]
        # without a proxy in front, the "CDN" header was written by the client
        direct = post("/login", headers=headers, peer=CLIENT,
                      query={"hops": 0, "geo": "cloudflare", "ts": (last + timedelta(days=1, minutes=2)).isoformat()})
        assert direct.body["country"] is None
        tor = post("/login", headers=(("User-Agent", CHROME_WIN), (XFF, CLIENT), ("CF-IPCountry", "T1")), peer=PEER,
                   query={"hops": 1, "geo": "cloudflare", "ts": (last + timedelta(days=1, minutes=3)).isoformat()})
        assert tor.body["country"] is None

    @staticmethod
    def sensitive_event(post: Post, engine: Engine) -> None:
        """``attempt_from_request(..., event=...)``: the event reaches the decision; a factor
        change from the known browser without a device token is stepped up where a login is not."""
        last = establish(engine, "alice", place=LONDON, ip=CLIENT)
        when = (last + timedelta(days=1)).isoformat()
        login = post("/login", headers=(("User-Agent", CHROME_WIN),), peer=CLIENT, query={"ts": when})
        change = post("/login", headers=(("User-Agent", CHROME_WIN),), peer=CLIENT,
                      query={"ts": when, "event": "factor_change"})
        assert (login.body["event"], login.body["action"]) == ("login", "allow")
        assert (change.body["event"], change.body["action"]) == ("factor_change", "challenge")
        assert change.body["reasons"] == [reasons.UNTRUSTED_DEVICE]


@pytest.fixture
def scenarios() -> type[Scenarios]:
    return Scenarios
