"""Django adapter (``pip install "riskengine[django]"``).

Reads ``REMOTE_ADDR`` as the socket peer: leave it alone (no middleware rewriting it from
``X-Forwarded-For``) and say how many proxies you run with ``trusted_proxies``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

try:
    import django  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by a test that hides django
    raise ImportError('riskengine.integrations.django needs Django: pip install "riskengine[django]"') from exc

from riskengine import LoginAttempt
from riskengine.core.decision import Event
from riskengine.integrations._common import (
    DEFAULT_COOKIE_NAME,
    DEFAULT_TRUST_DAYS,
    AdapterOptions,
    AttemptContext,
    ProxyHeader,
    read_request,
    set_cookie_on,
)

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

__all__ = ["AttemptContext", "attempt_from_request", "clear_device_token", "read_context", "set_device_token"]


def read_context(request: HttpRequest, options: AdapterOptions) -> AttemptContext:
    """The request's :class:`AttemptContext` (client address, User-Agent, token, geo)."""
    headers = request.headers  # case-insensitive; repeated header lines arrive joined by ","

    def header(name: str) -> str | None:
        value = headers.get(name)
        return value if isinstance(value, str) else None

    peer = request.META.get("REMOTE_ADDR") or None
    return read_request(peer if isinstance(peer, str) else None, header, request.COOKIES.get, options)


def attempt_from_request(request: HttpRequest, *, user_id: str, trusted_proxies: int = 0,
                         proxy_header: ProxyHeader = "x-forwarded-for", cookie_name: str = DEFAULT_COOKIE_NAME,
                         geo_headers: Mapping[str, str] | None = None, event: Event = "login",
                         **fields: Any) -> LoginAttempt:
    """A :class:`~riskengine.LoginAttempt` for ``user_id`` from a Django request.

    ``event``: ``"login"`` (default), ``"recovery"``, ``"factor_change"`` or ``"password_reset"``:
    the sensitive event this request is (scored under ``policy.events.<event>``).

    ``trusted_proxies``: how many proxies you run in front of the service (0: ``REMOTE_ADDR``
    is the client). ``fields``: any other LoginAttempt field (``timestamp`` from
    ``django.utils.timezone.now()`` with ``USE_TZ = True``…); they win over the request.
    """
    options = AdapterOptions(trusted_proxies, proxy_header, cookie_name, dict(geo_headers or {}))
    return read_context(request, options).attempt(user_id=user_id, event=event, **fields)


def set_device_token(response: HttpResponseBase, token: str | None, *, cookie_name: str = DEFAULT_COOKIE_NAME,
                     max_age_days: float = DEFAULT_TRUST_DAYS) -> bool:
    """Set the device-token cookie (HttpOnly, Secure, SameSite=Lax) when ``token`` is one —
    pass ``record_outcome(...)``'s result straight in; None sets nothing. True if set."""
    return set_cookie_on(response, token, cookie_name=cookie_name, max_age_days=max_age_days)


def clear_device_token(response: HttpResponseBase, *, cookie_name: str = DEFAULT_COOKIE_NAME) -> None:
    """Expire the device-token cookie (after ``untrust``/``reset_user``, or "forget this device")."""
    response.delete_cookie(cookie_name, path="/", samesite="Lax")
