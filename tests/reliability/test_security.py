"""Security of the example service (needs the `example` extra, Flask): its device cookie cannot
be forged, replayed for another user or used after it expires; the OTP step is bounded.
The pseudonymisation-key tests, which need no Flask, are in test_pseudonym_key.py."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "auth_service"


# -- the example service -----------------------------------------------------------------------
def _load_example() -> ModuleType:
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec = importlib.util.spec_from_file_location("auth_service_app", EXAMPLE / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLE))


pytest.importorskip("flask", reason="the example service needs the `example` extra")
example = _load_example()
SECRET = "s" * 40


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    users = {"alice": example.hash_password("alice-pw", n=2**10),
             "bob": example.hash_password("bob-pw", n=2**10)}
    (tmp_path / "users.json").write_text(json.dumps(users))
    monkeypatch.setenv("RISKENGINE_STORE_URL", f"sqlite:///{tmp_path / 'profiles.db'}")
    monkeypatch.setenv("RISKENGINE_AUDIT_ROOT", str(tmp_path / "audit"))
    monkeypatch.setenv("RISKENGINE_GEO_CITY_DB", "")
    app = example.create_app({
        "AUTH_SECRET": SECRET, "AUTH_USERS": str(tmp_path / "users.json"),
        "AUTH_STATE_DB": str(tmp_path / "challenges.db"), "AUTH_DEV_ECHO_OTP": "1",
        "AUTH_INSECURE_COOKIES": "1"})
    app.testing = True
    yield app
    app.extensions["riskengine"].close()


def _login(client: Any, user: str, password: str) -> tuple[int, dict[str, Any]]:
    resp = client.post("/login", json={"username": user, "password": password},
                       headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0"})
    return resp.status_code, resp.get_json()


def _device_cookie(client: Any) -> str:
    cookie = client.get_cookie(example.DEVICE_COOKIE)
    assert cookie is not None
    return str(cookie.value)


def _established_client(app: Any, user: str, password: str) -> Any:
    client = app.test_client()
    for _ in range(4):  # past cold start, on one device (the cookie keeps it one device)
        status, body = _login(client, user, password)
        assert status == 200, body
    return client


def test_login_challenge_otp_and_trusted_device(service: Any) -> None:
    _established_client(service, "alice", "alice-pw")
    laptop = service.test_client()  # a second browser: no device cookie → a new device
    status, body = _login(laptop, "alice", "alice-pw")
    assert status == 202 and body["status"] == "otp_required" and "NEW_DEVICE" in body["reasons"]
    wrong = laptop.post("/otp", json={"code": "x"})
    assert wrong.status_code == 401 and wrong.get_json()["attempts_left"] == 4
    ok = laptop.post("/otp", json={"code": body["dev_code"], "trust_device": True})
    assert ok.status_code == 200
    assert laptop.get("/me").get_json() == {"user": "alice"}
    # the same browser next time: its (now trusted) device is recognised
    status, again = _login(laptop, "alice", "alice-pw")
    assert status == 200 and again["decision"] == "allow"
    engine = service.extensions["riskengine"]
    engine.sink.flush()
    rows = duckdb.connect().sql(f"SELECT outcome, attempts, trust_device, channels FROM read_parquet("
                      f"'{engine.settings.audit.root}/challenges/**/*.parquet')").fetchall()
    assert len(rows) == 1 and rows[0][:3] == ("verified", 2, True) and rows[0][3]


def test_wrong_password_counts_a_failure(service: Any) -> None:
    client = service.test_client()
    assert _login(client, "alice", "guess")[0] == 401
    assert _login(client, "nobody", "guess")[0] == 401  # same answer for unknown users
    engine = service.extensions["riskengine"]
    assert engine.store.snapshot("alice", "127.0.0.1", 0).user_failures == 1


def test_otp_attempt_limit_closes_the_challenge(service: Any) -> None:
    _established_client(service, "alice", "alice-pw")
    attacker = service.test_client()
    status, body = _login(attacker, "alice", "alice-pw")
    assert status == 202
    codes = [attacker.post("/otp", json={"code": f"{i:06d}x"}).status_code for i in range(5)]
    assert codes == [401, 401, 401, 401, 403]
    assert attacker.post("/otp", json={"code": body["dev_code"]}).status_code == 400  # closed
    assert attacker.get("/me").status_code == 401


def test_device_cookie_replayed_for_another_user_is_a_new_device(service: Any) -> None:
    alice = _established_client(service, "alice", "alice-pw")
    _established_client(service, "bob", "bob-pw")
    stolen = _device_cookie(alice)
    mallory = service.test_client()
    mallory.set_cookie(example.DEVICE_COOKIE, stolen)
    status, body = _login(mallory, "bob", "bob-pw")  # alice's cookie, bob's login
    assert status == 202 and "NEW_DEVICE" in body["reasons"]
    assert _device_cookie(mallory) != stolen  # a fresh device cookie for bob was issued


def test_forged_and_tampered_device_cookies_are_rejected(service: Any) -> None:
    alice = _established_client(service, "alice", "alice-pw")
    genuine = _device_cookie(alice)
    cookies = service.extensions["device_cookies"]
    assert cookies.device_for(genuine, "alice") is not None
    forger = example.DeviceCookies("not-the-secret-" * 3, 365)
    forged = forger.issue("alice", cookies.device_for(genuine, "alice"))
    tampered = genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB")
    for token in (forged, tampered, "", "garbage", genuine + "x"):
        assert cookies.device_for(token, "alice") is None
    client = service.test_client()
    client.set_cookie(example.DEVICE_COOKIE, forged)
    status, body = _login(client, "alice", "alice-pw")
    assert status == 202 and "NEW_DEVICE" in body["reasons"]


def test_expired_device_cookie_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    cookies = example.DeviceCookies(SECRET, max_age_days=1)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 2 * 86400)  # issued two days ago
    old = cookies.issue("alice", "device-1")
    monkeypatch.setattr(time, "time", real_time)
    assert cookies.device_for(old, "alice") is None
    assert cookies.device_for(cookies.issue("alice", "device-1"), "alice") == "device-1"
