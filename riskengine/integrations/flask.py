"""Flask adapter (``pip install "riskengine[flask]"``).

Do not combine ``trusted_proxies`` with werkzeug's ``ProxyFix(x_for=...)``: ProxyFix already
rewrites ``remote_addr`` from the header, and the hops would be counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from flask import Request, Response
    from flask import request as current_request
except ImportError as exc:  # pragma: no cover - exercised by a test that hides flask
    raise ImportError('riskengine.integrations.flask needs Flask: pip install "riskengine[flask]"') from exc

from riskengine import LoginAttempt
from riskengine.core.decision import Event
from riskengine.integrations._common import (
    DEFAULT_COOKIE_NAME,
    DEFAULT_TRUST_DAYS,
    AdapterOptions,
    AttemptContext,
    ProxyHeader,
    joined_headers,
    read_request,
    set_cookie_on,
)

__all__ = ["AttemptContext", "attempt_context", "attempt_from_request", "clear_device_token", "read_context",
           "set_device_token"]


def read_context(request: Request, options: AdapterOptions) -> AttemptContext:
    """The request's :class:`AttemptContext` (client address, User-Agent, token, geo)."""
    return read_request(request.remote_addr, joined_headers(request.headers), request.cookies.get, options)


def attempt_from_request(request: Request, *, user_id: str, trusted_proxies: int = 0,
                         proxy_header: ProxyHeader = "x-forwarded-for", cookie_name: str = DEFAULT_COOKIE_NAME,
                         geo_headers: Mapping[str, str] | None = None, event: Event = "login",
                         **fields: Any) -> LoginAttempt:
    """A :class:`~riskengine.LoginAttempt` for ``user_id`` from a Flask request.

    ``event``: ``"login"`` (default), ``"recovery"``, ``"factor_change"`` or ``"password_reset"``:
    the sensitive event this request is (scored under ``policy.events.<event>``).

    ``trusted_proxies``: how many proxies you run in front of the service (0: the socket peer
    is the client). ``fields``: any other LoginAttempt field; they win over the request.
    """
    options = AdapterOptions(trusted_proxies, proxy_header, cookie_name, dict(geo_headers or {}))
    return read_context(request, options).attempt(user_id=user_id, event=event, **fields)


def attempt_context(*, trusted_proxies: int = 0, proxy_header: ProxyHeader = "x-forwarded-for",
                    cookie_name: str = DEFAULT_COOKIE_NAME,
                    geo_headers: Mapping[str, str] | None = None) -> AttemptContext:
    """The current request's (``flask.request``) :class:`AttemptContext`."""
    options = AdapterOptions(trusted_proxies, proxy_header, cookie_name, dict(geo_headers or {}))
    return read_context(current_request, options)


def set_device_token(response: Response, token: str | None, *, cookie_name: str = DEFAULT_COOKIE_NAME,
                     max_age_days: float = DEFAULT_TRUST_DAYS) -> bool:
    """Set the device-token cookie (HttpOnly, Secure, SameSite=Lax) when ``token`` is one —
    pass ``record_outcome(...)``'s result straight in; None sets nothing. True if set."""
    return set_cookie_on(response, token, cookie_name=cookie_name, max_age_days=max_age_days)


def clear_device_token(response: Response, *, cookie_name: str = DEFAULT_COOKIE_NAME) -> None:
    """Expire the device-token cookie (after ``untrust``/``reset_user``, or "forget this device")."""
    response.delete_cookie(cookie_name, path="/", secure=True, httponly=True, samesite="Lax")
