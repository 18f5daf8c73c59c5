"""What every framework adapter shares, without importing any framework.

An adapter turns its framework's request into three things — the socket peer, a header
lookup and a cookie lookup — and hands them to :func:`read_request`; everything that needs
care (which ``X-Forwarded-For`` entry to believe, which CDN geo header to take, what the
device-token cookie looks like) lives here, once, and is tested once.

The client address rule (``trusted_proxies = N``):

* ``N == 0``: the socket peer. Forwarding headers are ignored: anyone can send them.
* ``N >= 1``: the request went through exactly ``N`` proxies you run, each of which appends
  the address it received the request from. The client is the **N-th address from the right**
  of the chain; everything left of it was written by the client and is ignored. A chain with
  fewer than ``N`` addresses, or whose last ``N`` entries are not all addresses, did not come
  through your proxies as configured: the socket peer is used.

>>> client_address("10.0.0.2", "6.6.6.6, 81.2.69.160", trusted_proxies=1)
'81.2.69.160'
>>> client_address("10.0.0.2", "6.6.6.6, 81.2.69.160", trusted_proxies=0)
'10.0.0.2'
>>> client_address("10.0.0.2", 'for=192.0.2.60;proto=https, for="[2001:db8::17]:4711"',
...                trusted_proxies=2, header="forwarded")
'192.0.2.60'
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

from riskengine import LoginAttempt
from riskengine.core.decision import Event

ProxyHeader = Literal["x-forwarded-for", "forwarded"]
"""Which forwarding header your proxies write: ``X-Forwarded-For`` or RFC 7239 ``Forwarded``.
Only that one is read: a header your proxies do not touch is entirely client-controlled."""

DEFAULT_COOKIE_NAME: Final = "rdt"
DEFAULT_TRUST_DAYS: Final = 30.0
MAX_TRUSTED_PROXIES: Final = 16
MAX_USER_AGENT_LENGTH: Final = 2048  # LoginAttempt's limit: longer is cut, not refused
MAX_DEVICE_TOKEN_LENGTH: Final = 4096  # a cookie's size: longer is no token at all
MAX_PLACE_LENGTH: Final = 128
MAX_ASN: Final = 4_294_967_295

CLOUDFLARE_GEO: Final[Mapping[str, str]] = {"country": "CF-IPCountry"}
"""Cloudflare's country header (on by default in every zone). With the "add visitor location
headers" managed transform, add ``"city": "cf-ipcity"``, ``"region": "cf-region"``,
``"latitude": "cf-iplatitude"``, ``"longitude": "cf-iplongitude"``."""
CLOUDFRONT_GEO: Final[Mapping[str, str]] = {
    "country": "CloudFront-Viewer-Country", "region": "CloudFront-Viewer-Country-Region-Name",
    "city": "CloudFront-Viewer-City", "latitude": "CloudFront-Viewer-Latitude",
    "longitude": "CloudFront-Viewer-Longitude", "time_zone": "CloudFront-Viewer-Time-Zone",
    "asn": "CloudFront-Viewer-ASN"}
"""Amazon CloudFront's viewer headers (add them to the origin request policy)."""

GEO_FIELDS: Final = frozenset({"country", "region", "city", "latitude", "longitude", "time_zone", "asn"})
PSEUDO_COUNTRIES: Final = frozenset({"XX", "T1"})  # Cloudflare: unknown, Tor — not places
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 6265 token
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_\-.~=]+")  # URL-safe: what the engine issues
_PAIR = re.compile(r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^";,\s]*)\s*')

HeaderGetter = Callable[[str], str | None]
"""``get("X-Forwarded-For")``: the header's value (several lines joined with ``,``) or None."""


# ---------------------------------------------------------------------- client address
def parse_address(node: str) -> str | None:
    """One forwarded address, or None when it is not one: ``1.2.3.4``, ``1.2.3.4:80``,
    ``2001:db8::1``, ``[2001:db8::1]:443``; IPv4-mapped IPv6 (a dual-stack socket) gives the
    IPv4 address.

    >>> parse_address("[2001:DB8::1]:443"), parse_address("81.2.69.160:5555"), parse_address("unknown")
    ('2001:db8::1', '81.2.69.160', None)
    >>> parse_address("::ffff:81.2.69.160")
    '81.2.69.160'
    """
    node = node.strip()
    if node.startswith("["):
        host, bracket, rest = node[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        node = host
    elif node.count(":") == 1:  # IPv4 with a port; an IPv6 address has at least two colons
        node, _, port = node.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(node)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return address.compressed


def _forwarded_for(element: str) -> str | None:
    """The ``for=`` node of one RFC 7239 element (``for=1.2.3.4;proto=https``), unquoted; None
    when the element is malformed or has no (or two) ``for``."""
    found: str | None = None
    for pair in element.split(";"):
        if not pair.strip():
            continue
        match = _PAIR.fullmatch(pair)
        if match is None:
            return None
        name, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if name == "for":
            if found is not None:
                return None
            found = value
    return found


def client_address(peer: str | None, header_value: str | None, *, trusted_proxies: int = 0,
                   header: ProxyHeader = "x-forwarded-for") -> str:
    """The client's address by the rule in this module's docstring.

    ``peer`` is the socket's remote address; ``header_value`` the forwarding header (all its
    lines joined with ``,``). Raises ``ValueError`` naming the problem when no address can be
    told: the peer is missing or not an address and the header does not give one.
    """
    return _client_address(peer, header_value, trusted_proxies, header)[0]


def _client_address(peer: str | None, header_value: str | None, trusted_proxies: int,
                    header: ProxyHeader) -> tuple[str, bool]:
    """The client's address, and whether our proxies' forwarding chain named it."""
    _check_trusted_proxies(trusted_proxies)
    if trusted_proxies and header_value:
        # Only the last N entries matter and they were appended by our proxies, which never put
        # a comma inside an element (RFC 7239 nodes, protos and hosts have none): split from the
        # right, so nothing a client wrote further left (an unclosed quote, 10 kB of junk) is
        # ever parsed.
        parts = header_value.rsplit(",", trusted_proxies)
        if len(parts) >= trusted_proxies:
            trusted = parts[len(parts) - trusted_proxies:]
            nodes = trusted if header == "x-forwarded-for" else [_forwarded_for(p) for p in trusted]
            addresses = [parse_address(n) if n is not None else None for n in nodes]
            if all(a is not None for a in addresses):
                client = addresses[0]
                assert client is not None
                return client, True
    address = parse_address(peer) if peer else None
    if address is None:
        raise ValueError(f"the request's socket peer is not an IP address ({(peer or '')[:64]!r}) and no "
                         f"trusted {header} header names the client (trusted_proxies={trusted_proxies})")
    return address, False


def _check_trusted_proxies(trusted_proxies: int) -> None:
    if isinstance(trusted_proxies, bool) or not isinstance(trusted_proxies, int) \
            or not 0 <= trusted_proxies <= MAX_TRUSTED_PROXIES:
        raise ValueError(f"trusted_proxies must be an int from 0 to {MAX_TRUSTED_PROXIES} (the number of "
                         f"proxies you run in front of the service), got {trusted_proxies!r}")


# ---------------------------------------------------------------------- geo headers
def _header_text(value: str) -> str:
    """ASGI and WSGI decode header bytes as latin-1; a CDN sends UTF-8 (``Zürich``)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _geo_value(name: str, raw: str) -> Any:
    """A CDN header's value as a LoginAttempt field, or None when it is unusable: a hint from
    the edge is dropped, never turned into an error in the login flow."""
    value = _header_text(raw).strip()
    if not value:
        return None
    if name == "country":
        code = value.upper()
        ok = len(code) == 2 and code.isascii() and code.isalpha() and code not in PSEUDO_COUNTRIES
        return code if ok else None
    if name in ("latitude", "longitude"):
        try:
            number = float(value)
        except ValueError:
            return None
        limit = 90.0 if name == "latitude" else 180.0
        return number if math.isfinite(number) and -limit <= number <= limit else None
    if name == "asn":
        digits = value[2:] if value.upper().startswith("AS") else value
        return int(digits) if digits.isdigit() and int(digits) <= MAX_ASN else None
    limit = 64 if name == "time_zone" else MAX_PLACE_LENGTH
    return value if len(value) <= limit and value.isprintable() else None


def read_geo(get_header: HeaderGetter, geo_headers: Mapping[str, str]) -> dict[str, Any]:
    """The configured CDN geo headers as LoginAttempt fields. Without a usable country the
    rest is dropped too: the engine then locates the address with its own GeoIP."""
    geo = {name: _geo_value(name, raw) for name, header in geo_headers.items()
           if (raw := get_header(header)) is not None}
    if geo.get("country") is None:
        return {}
    return {name: value for name, value in geo.items() if value is not None}


# ---------------------------------------------------------------------- options + context
@dataclass(frozen=True, slots=True)
class AdapterOptions:
    """How to read a request; validated once, so a typo fails at start-up, not per login."""

    trusted_proxies: int = 0
    proxy_header: ProxyHeader = "x-forwarded-for"
    cookie_name: str = DEFAULT_COOKIE_NAME
    geo_headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_trusted_proxies(self.trusted_proxies)
        if self.proxy_header not in ("x-forwarded-for", "forwarded"):
            raise ValueError(f"proxy_header must be 'x-forwarded-for' or 'forwarded', got {self.proxy_header!r}")
        check_cookie_name(self.cookie_name)
        unknown = set(self.geo_headers) - GEO_FIELDS
        if unknown:
            raise ValueError(f"geo_headers: unknown field(s) {sorted(unknown)}; use {sorted(GEO_FIELDS)}")
        if self.geo_headers and "country" not in self.geo_headers:
            raise ValueError("geo_headers must map 'country' (the other fields only refine a country)")


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """What a request tells about the login: the client address, User-Agent, device-token
    cookie and CDN geo. :meth:`attempt` adds the user and anything else the service knows."""

    ip: str
    user_agent: str = ""
    device_token: str | None = None
    geo: Mapping[str, Any] = field(default_factory=dict)

    def attempt(self, *, user_id: str, event: Event = "login", **fields: Any) -> LoginAttempt:
        """A :class:`~riskengine.LoginAttempt` for ``user_id``; ``timestamp`` defaults to now
        (UTC) and any field given here (``session_id``, ``device_id``, ``enrolled_factors``, or
        ``ip`` to override) wins over what the request said. ``event``: ``"login"``, or the
        sensitive event this request is (``"recovery"``, ``"factor_change"``,
        ``"password_reset"``), scored under ``policy.events.<event>``."""
        values: dict[str, Any] = {"timestamp": datetime.now(UTC), "ip": self.ip, "user_agent": self.user_agent,
                                  "device_token": self.device_token, **self.geo}
        values.update(fields)
        values["user_id"] = user_id
        values["event"] = event
        return LoginAttempt(**values)


class MultiHeaders(Protocol):
    """A framework's multi-valued header mapping (Starlette's and Werkzeug's ``getlist``)."""

    def getlist(self, key: str) -> list[str]: ...


def joined_headers(headers: MultiHeaders) -> HeaderGetter:
    """A header lookup over a multi-valued mapping: repeated header lines joined by ``","``,
    as HTTP defines them (so a proxy chain split over several lines reads as one list)."""

    def header(name: str) -> str | None:
        values = headers.getlist(name)
        return ",".join(values) if values else None

    return header


def read_request(peer: str | None, get_header: HeaderGetter, get_cookie: Callable[[str], str | None],
                 options: AdapterOptions) -> AttemptContext:
    """Everything an adapter needs from a request, by the rules above."""
    header_value = get_header("Forwarded" if options.proxy_header == "forwarded" else "X-Forwarded-For")
    ip, forwarded = _client_address(peer, header_value, options.trusted_proxies, options.proxy_header)
    user_agent = (get_header("User-Agent") or "")[:MAX_USER_AGENT_LENGTH]
    token = get_cookie(options.cookie_name) or None
    if token is not None and len(token) > MAX_DEVICE_TOKEN_LENGTH:
        token = None  # not something the engine could have issued; scoring goes on without it
    # CDN headers are only as trustworthy as the path: unless the request came through our
    # proxies (a forwarding chain of the configured length), the client wrote them
    geo = read_geo(get_header, options.geo_headers) if forwarded else {}
    return AttemptContext(ip=ip, user_agent=user_agent, device_token=token, geo=geo)


# ---------------------------------------------------------------------- the cookie
@dataclass(frozen=True, slots=True)
class DeviceCookie:
    """The device-token cookie's parameters, the same in every framework."""

    name: str
    value: str
    max_age: int
    path: str = "/"
    secure: bool = True
    httponly: bool = True
    samesite: Literal["Lax"] = "Lax"


def check_cookie_name(name: str) -> str:
    if not isinstance(name, str) or not _COOKIE_NAME.fullmatch(name):
        raise ValueError(f"cookie_name must be a cookie token (letters, digits, !#$%&'*+-.^_`|~), got {name!r}")
    return name


def device_cookie(token: str, *, cookie_name: str = DEFAULT_COOKIE_NAME,
                  max_age_days: float = DEFAULT_TRUST_DAYS) -> DeviceCookie:
    """The cookie that carries ``token``: HttpOnly, Secure, SameSite=Lax, path ``/``,
    Max-Age = ``max_age_days`` (use the engine's ``trust.days``: the token dies then anyway).

    >>> c = device_cookie("abc_-1", max_age_days=30)
    >>> c.max_age, c.httponly, c.secure, c.samesite
    (2592000, True, True, 'Lax')
    """
    check_cookie_name(cookie_name)
    if not isinstance(token, str) or not token or len(token) > MAX_DEVICE_TOKEN_LENGTH \
            or not _COOKIE_VALUE.fullmatch(token):
        raise ValueError("token must be the URL-safe string Engine.record_outcome(..., trust_device=True) "
                         f"returned, got {str(token)[:32]!r}")
    if isinstance(max_age_days, bool) or not isinstance(max_age_days, int | float) \
            or not math.isfinite(max_age_days) or max_age_days <= 0:
        raise ValueError(f"max_age_days must be a positive number of days, got {max_age_days!r}")
    return DeviceCookie(name=cookie_name, value=token, max_age=max(1, round(max_age_days * 86400)))


def set_cookie_on(response: Any, token: str | None, *, cookie_name: str = DEFAULT_COOKIE_NAME,
                  max_age_days: float = DEFAULT_TRUST_DAYS) -> bool:
    """What every adapter's ``set_device_token`` does: Starlette, Flask/Werkzeug and Django
    responses share ``set_cookie(key, value, max_age=, path=, secure=, httponly=, samesite=)``."""
    if token is None:
        return False
    c = device_cookie(token, cookie_name=cookie_name, max_age_days=max_age_days)
    response.set_cookie(c.name, c.value, max_age=c.max_age, path=c.path, secure=c.secure, httponly=c.httponly,
                        samesite=c.samesite.lower())
    return True
