"""Security: the example service's login journey (CSRF token, OTP limit, the engine's device
token) works end to end; its attack tests run over HTTP in tests/security/test_example_service.py.
(The pseudonymisation key's tests live in tests/security/test_audit_key.py: they need no Flask.)"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "auth_service"


# -- the example service (its attack tests over HTTP: tests/security/test_example_service.py) ---
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
def service(tmp_path: Path) -> Iterator[Any]:
    users = {"alice": example.hash_password("alice-pw", n=2**10),
             "bob": example.hash_password("bob-pw", n=2**10)}
    (tmp_path / "users.json").write_text(json.dumps(users))
    app = example.create_app({
        "AUTH_SECRET": SECRET, "AUTH_USERS": str(tmp_path / "users.json"),
        "AUTH_STATE_DB": str(tmp_path / "state.db"), "AUTH_DEV_ECHO_OTP": "1",
        "AUTH_INSECURE_COOKIES": "1", "RISKENGINE_STORE_URL": f"sqlite:///{tmp_path / 'profiles.db'}",
        "RISKENGINE_AUDIT_ROOT": str(tmp_path / "audit"), "RISKENGINE_GEO_CITY_DB": "",
        "RISKENGINE_TRUST_SECRET_KEYS": "t" * 40})
    app.testing = True
    yield app
    app.extensions["riskengine"].close()


def _client(app: Any) -> Any:
    """A test client holding a CSRF token for its pre-session, sent with every POST."""
    client = app.test_client()
    token = client.get("/csrf").get_json()["csrf_token"]
    client.environ_base["HTTP_X_CSRF_TOKEN"] = token
    return client


def _login(client: Any, user: str, password: str) -> tuple[int, dict[str, Any]]:
    resp = client.post("/login", json={"username": user, "password": password},
                       headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0"})
    return resp.status_code, resp.get_json()


def _established_client(app: Any, user: str, password: str) -> Any:
    client = _client(app)
    for _ in range(4):  # past cold start, on one device (the did cookie keeps it one device)
        status, body = _login(client, user, password)
        assert status == 200, body
    return client


def test_login_challenge_otp_and_trusted_device(service: Any) -> None:
    _established_client(service, "alice", "alice-pw")
    laptop = _client(service)  # a second browser: no device cookies → a new device
    status, body = _login(laptop, "alice", "alice-pw")
    assert status == 202 and body["status"] == "otp_required" and body["decision"] == "challenge"
    wrong = laptop.post("/otp", json={"code": "x"})
    assert wrong.status_code == 401 and wrong.get_json()["attempts_left"] == 4
    ok = laptop.post("/otp", json={"code": body["dev_code"], "trust_device": True})
    assert ok.status_code == 200
    assert laptop.get_cookie(example.TRUST_COOKIE) is not None
    assert laptop.get("/me").get_json() == {"user": "alice"}
    # the same browser next time: its trusted device token is recognised
    status, again = _login(laptop, "alice", "alice-pw")
    assert status == 200 and again["decision"] == "allow"
    engine = service.extensions["riskengine"]
    engine.sink.flush()
    rows = duckdb.connect().sql(f"SELECT outcome, attempts, trust_device, channels FROM read_parquet("
                      f"'{engine.settings.audit.root}/challenges/**/*.parquet')").fetchall()
    assert len(rows) == 1 and rows[0][:3] == ("verified", 2, True) and rows[0][3]


def test_wrong_password_counts_a_failure(service: Any) -> None:
    client = _client(service)
    assert _login(client, "alice", "guess")[0] == 401
    assert _login(client, "nobody", "guess")[0] == 401  # same answer for unknown users
    engine = service.extensions["riskengine"]
    assert engine.store.snapshot("alice", "127.0.0.1", 0).user_failures == 1


def test_otp_attempt_limit_closes_the_challenge(service: Any) -> None:
    _established_client(service, "alice", "alice-pw")
    attacker = _client(service)
    status, body = _login(attacker, "alice", "alice-pw")
    assert status == 202
    codes = [attacker.post("/otp", json={"code": f"{i:06d}x"}).status_code for i in range(5)]
    assert codes == [401, 401, 401, 401, 403]
    assert attacker.post("/otp", json={"code": body["dev_code"]}).status_code == 400  # closed
    assert attacker.get("/me").status_code == 401


def test_example_refuses_to_start_without_its_secrets(tmp_path: Path) -> None:
    (tmp_path / "users.json").write_text("{}")
    env = {"AUTH_USERS": str(tmp_path / "users.json"), "AUTH_STATE_DB": str(tmp_path / "state.db"),
           "RISKENGINE_GEO_CITY_DB": ""}
    with pytest.raises(RuntimeError, match="AUTH_SECRET"):
        example.create_app(env)
    with pytest.raises(RuntimeError, match="RISKENGINE_TRUST_SECRET_KEYS"):
        example.create_app({**env, "AUTH_SECRET": SECRET})
