"""The FastAPI flagship example (examples/auth_service_fastapi) driven over HTTP by Starlette's
TestClient with a cookie jar, as a browser would: CSRF, back-off, no reasons to clients, the
OTP challenge with the engine's device-token cookie, server-side sessions revoked on logout."""

from __future__ import annotations

import importlib.util
import json
import logging
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs the `fastapi` extra")
pytest.importorskip("flask", reason="the example reuses the Flask example's framework-free parts")
pytest.importorskip("httpx2", reason="Starlette's TestClient needs httpx2")

from fastapi.testclient import TestClient  # noqa: E402

from riskengine.core import reasons  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "auth_service_fastapi"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("auth_service_fastapi_app", EXAMPLE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    users = {name: example.hash_password(pw, n=2**10) for name, pw in PASSWORDS.items()}
    (tmp_path / "users.json").write_text(json.dumps(users))
    env = {"AUTH_SECRET": secrets.token_urlsafe(32), "AUTH_USERS": str(tmp_path / "users.json"),
           "AUTH_STATE_DB": str(tmp_path / "state.db"), "AUTH_DEV_ECHO_OTP": "1",
           "RISKENGINE_STORE_URL": f"sqlite:///{tmp_path / 'profiles.db'}",
           "RISKENGINE_GEO_CITY_DB": "", "RISKENGINE_GEO_ASN_DB": "",
           "RISKENGINE_TRUST_SECRET_KEYS": secrets.token_urlsafe(48)}
    application = example.create_app(env)
    yield application
    application.state.engine.close()


def browser(app: Any) -> TestClient:
    client = TestClient(app, base_url="https://testserver", client=("81.2.69.160", 40000),
                        headers={"User-Agent": UA})
    client.headers["X-CSRF-Token"] = client.get("/csrf").json()["csrf_token"]
    return client


def test_post_without_the_csrf_token_is_refused(app: Any) -> None:
    with TestClient(app, base_url="https://testserver") as client:
        client.get("/csrf")  # has the pre-session cookie, not the token
        response = client.post("/login", json={"username": "alice", "password": PASSWORDS["alice"]})
        assert response.status_code == 403 and response.json()["status"] == "csrf_failed"
        response = client.post("/login", json={"username": "alice", "password": PASSWORDS["alice"]},
                               headers={"X-CSRF-Token": "0" * 64})
        assert response.status_code == 403


def test_unknown_user_and_wrong_password_look_the_same_then_back_off(app: Any) -> None:
    with browser(app) as client:
        unknown = client.post("/login", json={"username": "mallory", "password": "x"})
        wrong = client.post("/login", json={"username": "alice", "password": "x"})
        assert (unknown.status_code, unknown.json()) == (wrong.status_code, wrong.json()) == \
            (401, {"status": "invalid_credentials"})
        statuses = [client.post("/login", json={"username": "ALICE", "password": "x"}).status_code
                    for _ in range(5)]
        assert statuses[-1] == 429
        blocked = client.post("/login", json={"username": "alice", "password": PASSWORDS["alice"]})
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1


def test_logout_kills_every_copy_of_the_session(app: Any) -> None:
    with browser(app) as client:
        login = client.post("/login", json={"username": "bob", "password": PASSWORDS["bob"]})
        assert login.status_code == 200 and login.json() == {"status": "ok", "decision": "allow"}
        sid = client.cookies["sid"]
        assert client.get("/me").json() == {"user": "bob"}
        assert client.post("/logout").status_code == 200
    with TestClient(app, base_url="https://testserver", cookies={"sid": sid}) as thief:
        assert thief.get("/me").status_code == 401


def test_challenge_trusted_device_cookie_and_no_reasons_to_clients(app: Any,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="auth_service_fastapi")
    engine = app.state.engine
    with browser(app) as client:
        assert client.post("/login", json={"username": "alice", "password": PASSWORDS["alice"]}).status_code == 200
        engine.reset_user("alice", actor="test", reason="stepped up until verified")
        challenged = client.post("/login", json={"username": "alice", "password": PASSWORDS["alice"]})
        assert challenged.status_code == 202
        body = challenged.json()
        assert body["status"] == "otp_required" and set(body) == {
            "status", "decision", "challenge_id", "channel", "dev_code"}
        assert reasons.PROFILE_RESET not in challenged.text and "risk" not in challenged.text
        wrong = client.post("/otp", json={"code": "x"})
        assert wrong.status_code == 401 and wrong.json()["attempts_left"] == 4
        verified = client.post("/otp", json={"code": body["dev_code"], "trust_device": True})
        assert verified.status_code == 200
        [rdt] = [c for c in verified.headers.get_list("set-cookie") if c.startswith("rdt=")]
        assert "HttpOnly" in rdt and "Secure" in rdt and "SameSite=lax" in rdt
        assert f"Max-Age={30 * 86400}" in rdt
        assert client.get("/me").json() == {"user": "alice"}
        token = client.cookies["rdt"]
        assert client.post("/otp", json={"code": body["dev_code"]}).status_code in (400, 403)  # closed
    caplog.clear()
    with browser(app) as other:  # the token, presented: the engine reads it
        other.cookies.set("rdt", token, domain="testserver.local")
        assert other.post("/login", json={"username": "alice", "password": PASSWORDS["alice"]}).status_code == 200
        other.cookies.set("rdt", token[:-4] + "AAAA", domain="testserver.local")
        other.post("/login", json={"username": "alice", "password": PASSWORDS["alice"]})
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("login user=alice")]
    assert len(lines) == 2
    assert reasons.DEVICE_TOKEN_INVALID not in lines[0] and reasons.DEVICE_TOKEN_INVALID in lines[1]


def test_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="AUTH_SECRET"):
        example.create_app({})
    with pytest.raises(RuntimeError, match="AUTH_GEO_HEADERS"):
        (tmp_path / "u.json").write_text("{}")
        example.create_app({"AUTH_SECRET": "s" * 40, "RISKENGINE_TRUST_SECRET_KEYS": "k" * 40,
                            "AUTH_USERS": str(tmp_path / "u.json"), "AUTH_GEO_HEADERS": "akamai"})


def test_module_names_do_not_clash() -> None:
    assert "app" not in sys.modules or sys.modules["app"] is not example


def test_readyz_says_ready_with_a_reachable_store_and_healthz_stays_up(app: Any) -> None:
    client = TestClient(app, base_url="https://testserver")
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["store_ok"] is True and body["geoip_problems"] == []
    assert client.get("/healthz").json()["store_ok"] is True


# ---------------------------------------------------------------------- signups (issue #17)
CAROL_PW = "carol's long passphrase"


def test_signup_seeds_the_profile_through_arecord_signup_and_the_first_login_is_familiar(
        app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="auth_service_fastapi")
    engine = app.state.engine
    with browser(app) as client:
        created = client.post("/signup", json={"username": "Carol", "password": CAROL_PW})
        assert (created.status_code, created.json()) == (201, {"status": "created"})
        assert "did" in client.cookies  # the signup set this browser's device id
        assert engine.health()["signups_learned"] == 1
        summary = engine.user_summary("carol")
        assert summary["signup_at"] is not None and summary["logins"] == 0
        record = app.state.auth_accounts.get("carol")
        assert (record["n"], record["r"], record["p"]) == (2**10, 8, 1)  # the users file's cost
        login = client.post("/login", json={"username": "carol", "password": CAROL_PW})
        assert (login.status_code, login.json()) == (200, {"status": "ok", "decision": "allow"})
        assert client.get("/me").json() == {"user": "carol"}
    with browser(app) as other:  # another browser, same address: a new device for the seeded profile
        assert other.post("/login", json={"username": "carol", "password": CAROL_PW}).status_code in (200, 202)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("login user=carol ")]
    assert len(lines) == 2
    assert reasons.NEW_DEVICE not in lines[0] and reasons.NEW_DEVICE in lines[1]


def test_signup_refuses_csrf_bad_input_and_taken_names_without_touching_them(app: Any) -> None:
    engine = app.state.engine
    with TestClient(app, base_url="https://testserver") as no_token:
        no_token.get("/csrf")
        refused = no_token.post("/signup", json={"username": "carol", "password": CAROL_PW})
        assert refused.status_code == 403 and refused.json()["status"] == "csrf_failed"
    with browser(app) as client:
        bad = client.post("/signup", json={"username": "c", "password": CAROL_PW})
        assert bad.status_code == 400 and bad.json()["status"] == "invalid_username"
        assert "3 to 32 characters" in bad.json()["detail"]
        bad = client.post("/signup", json={"username": "carol", "password": "short"})
        assert bad.status_code == 400 and bad.json()["status"] == "invalid_password"
        assert app.state.auth_accounts.get("carol") is None and engine.store.get("carol") is None
        # alice is in the users file and never logged in: a blank profile the engine would seed
        taken = client.post("/signup", json={"username": "ALICE", "password": "attacker's password"})
        assert (taken.status_code, taken.json()["status"]) == (409, "username_taken")
        assert engine.store.get("alice") is None
        assert client.post("/signup", json={"username": "carol", "password": CAROL_PW}).status_code == 201
        profile = engine.store.get("carol")
        assert client.post("/signup", json={"username": "carol", "password": "other password"}).status_code == 409
        assert engine.store.get("carol").to_bytes() == profile.to_bytes()
        assert engine.health()["signups_refused"] == 0  # a taken name never reaches the engine
    with browser(app) as client:
        assert client.post("/login", json={"username": "alice", "password": PASSWORDS["alice"]}).status_code == 200
        assert client.post("/login", json={"username": "carol", "password": "other password"}).status_code == 401
