"""The FastAPI/Starlette adapter in a real FastAPI app, driven by Starlette's TestClient."""

from __future__ import annotations

import importlib
import sys
from datetime import datetime
from typing import Annotated, Any

import pytest

pytest.importorskip("fastapi", reason="needs the `fastapi` extra")
pytest.importorskip("httpx2", reason="Starlette's TestClient needs httpx2")

from fastapi import Depends, FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from riskengine import Engine  # noqa: E402
from riskengine.integrations import CLOUDFLARE_GEO, AttemptContext  # noqa: E402
from riskengine.integrations.fastapi import (  # noqa: E402
    attempt_context,
    attempt_from_request,
    clear_device_token,
    set_device_token,
)

PEER = "10.0.0.2"
# module level, as in an app: FastAPI resolves the annotation against the module's names
behind_one_proxy = attempt_context(trusted_proxies=1, cookie_name="dev")


def make_app(engine: Engine) -> FastAPI:
    app = FastAPI()

    @app.post("/login")
    def login(request: Request, hops: int = 0, header: str = "x-forwarded-for", geo: str = "",
              ts: str = "", user: str = "alice", event: str = "login") -> dict[str, Any]:
        fields: dict[str, Any] = {"timestamp": datetime.fromisoformat(ts)} if ts else {}
        attempt = attempt_from_request(request, user_id=user, trusted_proxies=hops,
                                       proxy_header=header,  # type: ignore[arg-type]
                                       geo_headers=CLOUDFLARE_GEO if geo == "cloudflare" else None,
                                       event=event, **fields)  # type: ignore[arg-type]
        decision = engine.score(attempt)
        return {"ip": attempt.ip, "country": attempt.country, "action": decision.action,
                "reasons": list(decision.reason_codes), "decision_id": decision.decision_id,
                "event": decision.event}

    @app.post("/verify")
    def verify(decision_id: str, trust: str = "0", ts: str = "") -> JSONResponse:
        token = engine.record_outcome(decision_id, "verified", channels=("sms",), trust_device=trust == "1",
                                      timestamp=datetime.fromisoformat(ts) if ts else None)
        response = JSONResponse({"trusted": token is not None})
        set_device_token(response, token, max_age_days=engine.settings.trust.days)
        return response

    @app.get("/context")
    def context(ctx: Annotated[AttemptContext, Depends(behind_one_proxy)]) -> dict[str, Any]:
        return {"ip": ctx.ip, "user_agent": ctx.user_agent, "token": ctx.device_token}

    @app.post("/forget")
    def forget() -> JSONResponse:
        response = JSONResponse({})
        clear_device_token(response)
        return response

    return app


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    return make_app(engine)


@pytest.fixture
def post(app: FastAPI, scenarios: Any) -> Any:
    def post(path: str, *, headers: Any = (), peer: str = PEER, query: dict[str, Any] | None = None) -> Any:
        # a fresh client per request: no cookie jar, every cookie is the one the test sends
        with TestClient(app, base_url="https://testserver", client=(peer, 50000)) as client:
            response = client.post(path, headers=list(headers), params=query or {})
        return scenarios.Reply(response.status_code, response.json(),
                               response.headers.get_list("set-cookie"))

    return post


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


def test_dependency_yields_the_context(app: FastAPI) -> None:
    with TestClient(app, base_url="https://testserver", client=(PEER, 50000)) as client:
        response = client.get("/context", headers={"X-Forwarded-For": "6.6.6.6, 81.2.69.160",
                                                   "User-Agent": "UA/1", "Cookie": "dev=tok_1; rdt=other"})
    assert response.json() == {"ip": "81.2.69.160", "user_agent": "UA/1", "token": "tok_1"}


def test_clear_device_token_expires_the_cookie(app: FastAPI, scenarios: Any) -> None:
    with TestClient(app, base_url="https://testserver") as client:
        response = client.post("/forget")
    [cookie] = response.headers.get_list("set-cookie")
    name, value, attrs = scenarios.parse_set_cookie(cookie)
    assert name == "rdt" and attrs["max-age"] == "0" and "secure" in attrs


def test_bad_options_fail_when_the_dependency_is_made() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        attempt_context(trusted_proxies=-1)
    with pytest.raises(ValueError, match="cookie_name"):
        attempt_context(cookie_name="a b")
    with pytest.raises(ValueError, match="geo_headers"):
        attempt_context(geo_headers={"continent": "CF-IPContinent"})


def test_import_without_the_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "starlette.requests", None)
    monkeypatch.delitem(sys.modules, "riskengine.integrations.fastapi")
    with pytest.raises(ImportError, match=r'pip install "riskengine\[fastapi\]"'):
        importlib.import_module("riskengine.integrations.fastapi")
