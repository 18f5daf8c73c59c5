"""The Django adapter in a real (one-file) Django project, driven by Django's test Client."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

pytest.importorskip("django", reason="needs the `django` extra")

import django  # noqa: E402
from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        DEBUG=False, SECRET_KEY="test-only-not-secret-0123456789abcdef", ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["testserver"], USE_TZ=True, INSTALLED_APPS=[], MIDDLEWARE=[], DATABASES={})
    django.setup()

from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import path  # noqa: E402

from riskengine import Engine  # noqa: E402
from riskengine.integrations import CLOUDFLARE_GEO, AdapterOptions  # noqa: E402
from riskengine.integrations.django import (  # noqa: E402
    attempt_from_request,
    clear_device_token,
    read_context,
    set_device_token,
)

PEER = "10.0.0.2"
ENGINE: dict[str, Engine] = {}  # the engine under test, as an app's AppConfig.ready() would hold it


def login(request: HttpRequest) -> HttpResponse:
    q, engine = request.GET, ENGINE["engine"]
    fields: dict[str, Any] = {"timestamp": datetime.fromisoformat(q["ts"])} if q.get("ts") else {}
    attempt = attempt_from_request(request, user_id=q.get("user", "alice"), trusted_proxies=int(q.get("hops", 0)),
                                   proxy_header=q.get("header", "x-forwarded-for"),  # type: ignore[arg-type]
                                   geo_headers=CLOUDFLARE_GEO if q.get("geo") == "cloudflare" else None,
                                   event=q.get("event", "login"), **fields)  # type: ignore[arg-type]
    decision = engine.score(attempt)
    return JsonResponse({"ip": attempt.ip, "country": attempt.country, "action": decision.action,
                         "reasons": list(decision.reason_codes), "decision_id": decision.decision_id,
                         "event": decision.event})


def verify(request: HttpRequest) -> HttpResponse:
    q, engine = request.GET, ENGINE["engine"]
    token = engine.record_outcome(q["decision_id"], "verified", channels=("sms",), trust_device=q["trust"] == "1",
                                  timestamp=datetime.fromisoformat(q["ts"]) if q.get("ts") else None)
    response = JsonResponse({"trusted": token is not None})
    set_device_token(response, token, max_age_days=engine.settings.trust.days)
    return response


def context(request: HttpRequest) -> HttpResponse:
    ctx = read_context(request, AdapterOptions(trusted_proxies=1, cookie_name="dev"))
    return JsonResponse({"ip": ctx.ip, "user_agent": ctx.user_agent, "token": ctx.device_token})


def forget(request: HttpRequest) -> HttpResponse:
    response = JsonResponse({})
    clear_device_token(response)
    return response


urlpatterns = [path("login", login), path("verify", verify), path("context", context), path("forget", forget)]


@pytest.fixture
def post(engine: Engine, scenarios: Any) -> Iterator[Any]:
    ENGINE["engine"] = engine

    def post(path: str, *, headers: Any = (), peer: str = PEER, query: dict[str, Any] | None = None) -> Any:
        joined: dict[str, str] = {}
        for name, value in headers:  # as a WSGI server does with repeated header lines
            joined[name] = f"{joined[name]},{value}" if name in joined else value
        client = Client(REMOTE_ADDR=peer)  # a fresh client: every cookie is the one the test sends
        response = client.post(path, query_params=query or {}, headers=joined, secure=True)
        set_cookies = [m.output(header="").strip() for m in response.cookies.values()]
        return scenarios.Reply(response.status_code, response.json(), set_cookies)

    yield post
    ENGINE.clear()


def test_client_address(post: Any, scenarios: Any, header_case: Any) -> None:
    scenarios.header_case(post, header_case)


def test_device_token_round_trip(post: Any, scenarios: Any, engine: Engine) -> None:
    scenarios.token_round_trip(post, engine)


def test_event_argument(post: Any, scenarios: Any, engine: Engine) -> None:
    scenarios.sensitive_event(post, engine)


def test_verified_without_trust_sets_no_cookie(post: Any, scenarios: Any, engine: Engine) -> None:
    scenarios.verified_without_trust_sets_no_cookie(post, engine)


def test_cdn_country_only_when_configured(post: Any, scenarios: Any, engine: Engine) -> None:
    scenarios.cdn_country(post, engine)


def test_request_context() -> None:
    response = Client(REMOTE_ADDR=PEER).get("/context", headers={
        "X-Forwarded-For": "6.6.6.6, 81.2.69.160", "User-Agent": "UA/1", "Cookie": "dev=tok_1; rdt=other"})
    assert response.json() == {"ip": "81.2.69.160", "user_agent": "UA/1", "token": "tok_1"}


def test_clear_device_token_expires_the_cookie(scenarios: Any) -> None:
    response = Client().post("/forget")
    name, _, attrs = scenarios.parse_set_cookie(response.cookies["rdt"].output(header="").strip())
    assert name == "rdt" and attrs["max-age"] == "0"


def test_import_without_the_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "django", None)
    monkeypatch.delitem(sys.modules, "riskengine.integrations.django")
    with pytest.raises(ImportError, match=r'pip install "riskengine\[django\]"'):
        importlib.import_module("riskengine.integrations.django")
