"""The Flask adapter in a real Flask app, driven by Flask's test client."""

from __future__ import annotations

import importlib
import sys
from datetime import datetime
from typing import Any

import pytest

pytest.importorskip("flask", reason="needs the `flask` extra")

from flask import Flask, jsonify, request  # noqa: E402

from riskengine import Engine  # noqa: E402
from riskengine.integrations import CLOUDFLARE_GEO  # noqa: E402
from riskengine.integrations.flask import (  # noqa: E402
    attempt_context,
    attempt_from_request,
    clear_device_token,
    set_device_token,
)

PEER = "10.0.0.2"


def make_app(engine: Engine) -> Flask:
    app = Flask(__name__)

    @app.post("/login")
    def login() -> Any:
        q = request.args
        fields: dict[str, Any] = {"timestamp": datetime.fromisoformat(q["ts"])} if q.get("ts") else {}
        attempt = attempt_from_request(request, user_id=q.get("user", "alice"), trusted_proxies=int(q.get("hops", 0)),
                                       proxy_header=q.get("header", "x-forwarded-for"),  # type: ignore[arg-type]
                                       geo_headers=CLOUDFLARE_GEO if q.get("geo") == "cloudflare" else None,
                                       event=q.get("event", "login"), **fields)  # type: ignore[arg-type]
        decision = engine.score(attempt)
        return jsonify(ip=attempt.ip, country=attempt.country, action=decision.action,
                       reasons=list(decision.reason_codes), decision_id=decision.decision_id, event=decision.event)

    @app.post("/verify")
    def verify() -> Any:
        q = request.args
        token = engine.record_outcome(q["decision_id"], "verified", channels=("sms",), trust_device=q["trust"] == "1",
                                      timestamp=datetime.fromisoformat(q["ts"]) if q.get("ts") else None)
        response = jsonify(trusted=token is not None)
        set_device_token(response, token, max_age_days=engine.settings.trust.days)
        return response

    @app.get("/context")
    def context() -> Any:
        ctx = attempt_context(trusted_proxies=1, cookie_name="dev")
        return jsonify(ip=ctx.ip, user_agent=ctx.user_agent, token=ctx.device_token)

    @app.post("/forget")
    def forget() -> Any:
        response = jsonify()
        clear_device_token(response)
        return response

    return app


@pytest.fixture
def app(engine: Engine) -> Flask:
    return make_app(engine)


@pytest.fixture
def post(app: Flask, scenarios: Any) -> Any:
    def post(path: str, *, headers: Any = (), peer: str = PEER, query: dict[str, Any] | None = None) -> Any:
        client = app.test_client(use_cookies=False)  # every cookie is the one the test sends
        response = client.post(path, headers=list(headers), query_string=query or {},
                               environ_base={"REMOTE_ADDR": peer}, base_url="https://localhost")
        return scenarios.Reply(response.status_code, response.get_json(), response.headers.getlist("Set-Cookie"))

    return post


def test_client_address(post: Any, scenarios: Any, header_case: Any) -> None:
    scenarios.header_case(post, header_case)


def test_device_token_round_trip(post: Any, scenarios: Any, engine: Engine) -> None:
    scenarios.token_round_trip(post, engine)


def test_verified_without_trust_sets_no_cookie(post: Any, scenarios: Any, engine: Engine) -> None:
    scenarios.verified_without_trust_sets_no_cookie(post, engine)


def test_cdn_country_only_when_configured(post: Any, scenarios: Any, engine: Engine) -> None:
    scenarios.cdn_country(post, engine)


def test_event_argument(post: Any, scenarios: Any, engine: Engine) -> None:
    scenarios.sensitive_event(post, engine)


def test_current_request_context(app: Flask) -> None:
    response = app.test_client(use_cookies=False).get("/context", environ_base={"REMOTE_ADDR": PEER},
                                     headers={"X-Forwarded-For": "6.6.6.6, 81.2.69.160", "User-Agent": "UA/1",
                                              "Cookie": "dev=tok_1; rdt=other"})
    assert response.get_json() == {"ip": "81.2.69.160", "user_agent": "UA/1", "token": "tok_1"}


def test_clear_device_token_expires_the_cookie(app: Flask, scenarios: Any) -> None:
    response = app.test_client().post("/forget")
    [cookie] = response.headers.getlist("Set-Cookie")
    name, _, attrs = scenarios.parse_set_cookie(cookie)
    assert name == "rdt" and attrs["max-age"] == "0" and "secure" in attrs


def test_import_without_the_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)
    monkeypatch.delitem(sys.modules, "riskengine.integrations.flask")
    with pytest.raises(ImportError, match=r'pip install "riskengine\[flask\]"'):
        importlib.import_module("riskengine.integrations.flask")
