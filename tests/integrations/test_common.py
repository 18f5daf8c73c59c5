"""The framework-free rules, directly: the same header cases the framework suites drive over
HTTP, plus geo headers, cookie parameters and option checks."""

from __future__ import annotations

from typing import Any

import pytest

from riskengine.integrations import CLOUDFRONT_GEO, AdapterOptions, client_address, device_cookie, parse_address
from riskengine.integrations._common import read_geo, read_request


def _headers(pairs: Any) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name.lower()] = f"{joined[name.lower()]},{value}" if name.lower() in joined else value
    return joined


def test_header_case(header_case: Any) -> None:
    headers = _headers(header_case.headers)
    name = "forwarded" if header_case.proxy_header == "forwarded" else "x-forwarded-for"
    got = client_address(header_case.peer, headers.get(name), trusted_proxies=header_case.trusted_proxies,
                         header=header_case.proxy_header)
    assert got == header_case.expected


@pytest.mark.parametrize("node", ["", "[::1", "[::1]x", "[::1]:", "1.2.3.4:x", "1.2.3.4:80:90", "999.1.1.1",
                                  "unknown", "_hidden", "example.com", "1.2.3.4 5"])
def test_not_an_address(node: str) -> None:
    assert parse_address(node) is None


def test_zone_and_case_are_normalised() -> None:
    assert parse_address("[FE80::1]:80") == "fe80::1"
    assert parse_address(" 81.2.69.160 ") == "81.2.69.160"


@pytest.mark.parametrize("bad", [-1, 17, True, 1.0, "1", None])
def test_trusted_proxies_must_be_a_small_int(bad: Any) -> None:
    with pytest.raises(ValueError, match="trusted_proxies must be an int from 0 to 16"):
        client_address("10.0.0.1", None, trusted_proxies=bad)


def test_no_usable_address_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="socket peer is not an IP address.*'testclient'"):
        client_address("testclient", None)
    with pytest.raises(ValueError, match="socket peer is not an IP address"):
        client_address(None, "garbage", trusted_proxies=1)
    # a Unix-socket peer is fine when the proxy names the client
    assert client_address(None, "81.2.69.160", trusted_proxies=1) == "81.2.69.160"


def test_huge_client_prefix_is_not_parsed() -> None:
    # 1 MB of junk left of the proxy's entry: only the trusted entry is looked at
    assert client_address("10.0.0.1", "1.1.1.1," * 131072 + "81.2.69.160", trusted_proxies=1) == "81.2.69.160"


def test_cloudfront_geo_headers() -> None:
    sent = {"CloudFront-Viewer-Country": "ch", "CloudFront-Viewer-City": "Zürich".encode().decode("latin-1"),
            "CloudFront-Viewer-Latitude": "47.37", "CloudFront-Viewer-Longitude": "8.54",
            "CloudFront-Viewer-ASN": "3303", "CloudFront-Viewer-Time-Zone": "Europe/Zurich",
            "CloudFront-Viewer-Country-Region-Name": "Zurich"}
    assert read_geo(sent.get, CLOUDFRONT_GEO) == {
        "country": "CH", "city": "Zürich", "latitude": 47.37, "longitude": 8.54, "asn": 3303,
        "time_zone": "Europe/Zurich", "region": "Zurich"}


@pytest.mark.parametrize("country", ["XX", "T1", "t1", "", "GBR", "1A", "É"])
def test_pseudo_or_malformed_country_drops_all_geo(country: str) -> None:
    sent = {"CF-IPCountry": country, "cf-ipcity": "London"}
    assert read_geo(sent.get, {"country": "CF-IPCountry", "city": "cf-ipcity"}) == {}


@pytest.mark.parametrize(("field", "value"), [("latitude", "91"), ("latitude", "nan"), ("longitude", "x"),
                                              ("asn", "-1"), ("asn", "4294967296"), ("city", "a" * 129),
                                              ("city", "new\nline")])
def test_unusable_geo_values_are_dropped(field: str, value: str) -> None:
    sent = {"c": "GB", "v": value}
    assert read_geo(sent.get, {"country": "c", field: "v"}) == {"country": "GB"}


def test_read_request_caps_the_user_agent_and_drops_an_oversized_token() -> None:
    headers = {"User-Agent": "A" * 5000}
    cookies = {"rdt": "t" * 5000}
    ctx = read_request("10.0.0.1", headers.get, cookies.get, AdapterOptions())
    assert len(ctx.user_agent) == 2048 and ctx.device_token is None
    attempt = ctx.attempt(user_id="alice", session_id="s1")
    assert attempt.ip == "10.0.0.1" and attempt.session_id == "s1" and attempt.timestamp.tzinfo is not None


def test_fields_win_over_the_request() -> None:
    ctx = read_request("10.0.0.1", {}.get, {"rdt": "abc"}.get, AdapterOptions())
    attempt = ctx.attempt(user_id="alice", ip="81.2.69.160", device_token=None)
    assert attempt.ip == "81.2.69.160" and attempt.device_token is None


def test_device_cookie_parameters() -> None:
    cookie = device_cookie("tok-_.~=", cookie_name="__Host-rdt", max_age_days=0.5)
    assert (cookie.name, cookie.max_age, cookie.secure, cookie.httponly, cookie.samesite, cookie.path) == \
        ("__Host-rdt", 43200, True, True, "Lax", "/")


@pytest.mark.parametrize("token", ["", "a;b", "a b", "a\r\nSet-Cookie: x=1", "x" * 4097])
def test_device_cookie_refuses_what_the_engine_never_issues(token: str) -> None:
    with pytest.raises(ValueError, match="token must be the URL-safe string"):
        device_cookie(token)


@pytest.mark.parametrize("days", [0, -1, float("inf"), float("nan"), True])
def test_device_cookie_needs_positive_days(days: Any) -> None:
    with pytest.raises(ValueError, match="max_age_days"):
        device_cookie("tok", max_age_days=days)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"proxy_header": "x-real-ip"}, "proxy_header"),
    ({"cookie_name": "r;dt"}, "cookie_name"),
    ({"geo_headers": {"city": "cf-ipcity"}}, "must map 'country'"),
    ({"geo_headers": {"continent": "x"}}, "unknown field"),
])
def test_bad_options_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdapterOptions(**kwargs)


def test_cdn_geo_is_read_only_from_a_request_our_proxies_forwarded() -> None:
    options = AdapterOptions(1, "x-forwarded-for", "rdt", {"country": "CF-IPCountry"})
    forwarded = {"X-Forwarded-For": "81.2.69.160", "CF-IPCountry": "GB"}
    assert read_request("10.0.0.1", forwarded.get, lambda _: None, options).geo == {"country": "GB"}
    # a client that reached the origin directly (no forwarding chain) wrote the country itself
    direct = {"CF-IPCountry": "GB"}
    ctx = read_request("203.0.113.9", direct.get, lambda _: None, options)
    assert ctx.ip == "203.0.113.9" and ctx.geo == {}
