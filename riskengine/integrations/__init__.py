"""Framework adapters: the glue every auth service otherwise writes itself.

One module per framework, each importable only with its extra installed:

* ``riskengine.integrations.fastapi`` — FastAPI / Starlette (``pip install "riskengine[fastapi]"``)
* ``riskengine.integrations.flask`` — Flask (``pip install "riskengine[flask]"``)
* ``riskengine.integrations.django`` — Django (``pip install "riskengine[django]"``)

Each exposes ``attempt_from_request(request, *, user_id, trusted_proxies=0, **fields)``, which
builds a :class:`~riskengine.LoginAttempt` from the request (client address through a fixed
number of trusted proxy hops, User-Agent, device-token cookie, optional CDN geo headers), and
``set_device_token(response, token, ...)``, which sets the device-token cookie after a verified,
trusted challenge. The framework-free rules live in :mod:`riskengine.integrations._common`
and are re-exported here.
"""

from riskengine.integrations._common import (
    CLOUDFLARE_GEO,
    CLOUDFRONT_GEO,
    DEFAULT_COOKIE_NAME,
    AdapterOptions,
    AttemptContext,
    DeviceCookie,
    ProxyHeader,
    client_address,
    device_cookie,
    parse_address,
)

__all__ = [
    "CLOUDFLARE_GEO",
    "CLOUDFRONT_GEO",
    "DEFAULT_COOKIE_NAME",
    "AdapterOptions",
    "AttemptContext",
    "DeviceCookie",
    "ProxyHeader",
    "client_address",
    "device_cookie",
    "parse_address",
]
