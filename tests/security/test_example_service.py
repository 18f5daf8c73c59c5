"""Attacks on the example auth service (issue #12, point 7), driven over real HTTP.

The service runs in this process under werkzeug's threaded server on 127.0.0.1:0; every test
talks to it with ``http.client`` and its own cookie jar, as a browser or an attacker would.
Each test fails on the service before the hardening (reasons in responses, cheaper dummy hash,
cookie sessions surviving logout, no CSRF token, no back-off, read-then-write OTP counter, its
own device cookie) and passes now.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import logging
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from riskengine.core import reasons

pytest.importorskip("flask", reason="the example service needs the `example` extra")
from werkzeug.serving import make_server  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "auth_service"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
USER_SCRYPT_N = 2**12  # the records' cost; the old service checked unknown users at 2**10


def _load_example() -> ModuleType:
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec = importlib.util.spec_from_file_location("auth_service_app_http", EXAMPLE / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLE))


example = _load_example()
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}


class Service:
    """The app behind a real socket, plus handles on its state for assertions."""

    def __init__(self, app: Any, state_db: Path) -> None:
        self.app = app
        self.engine = app.extensions["riskengine"]
        self.state_db = state_db
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.bodies: list[bytes] = []  # every response body any browser received

    def browser(self, ip: str | None = None) -> Browser:
        return Browser(self, ip)

    def expire_backoff(self) -> None:
        """Stand-in for waiting out the current blocks (the count of failures stays)."""
        with sqlite3.connect(self.state_db) as conn:
            conn.execute("UPDATE backoff SET blocked_until = 0")

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.engine.close()


class Browser:
    """A cookie jar and ``http.client``: sends every cookie it holds (it runs on loopback,
    where browsers send Secure cookies too) and keeps each Set-Cookie header for inspection."""

    def __init__(self, service: Service, ip: str | None) -> None:
        self.service = service
        self.ip = ip
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []
        self.csrf: str | None = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
        conn = http.client.HTTPConnection("127.0.0.1", self.service.port, timeout=30)
        all_headers = {"User-Agent": UA, "Content-Type": "application/json", **(headers or {})}
        if self.ip:
            all_headers["X-Forwarded-For"] = self.ip
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=all_headers)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        self.service.bodies.append(raw)
        for header in resp.headers.get_all("Set-Cookie") or []:
            self.set_cookie_headers.append(header)
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel.value == "" or morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return resp.status, json.loads(raw) if raw.startswith(b"{") else {}, resp

    def fetch_csrf(self) -> str:
        status, body, _ = self.request("GET", "/csrf")
        assert status == 200
        self.csrf = str(body["csrf_token"])
        return self.csrf

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
        if self.csrf is None:
            self.fetch_csrf()
        return self.request("POST", path, {**body, "csrf_token": self.csrf})

    def login(self, user: str, password: str | None = None) -> tuple[int, dict[str, Any]]:
        status, body, _ = self.post("/login", {"username": user, "password": password or PASSWORDS[user]})
        return status, body


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    users = {name: example.hash_password(pw, n=USER_SCRYPT_N) for name, pw in PASSWORDS.items()}
    (tmp_path / "users.json").write_text(json.dumps(users))
    services: list[Service] = []

    def _start(**overrides: str) -> Service:
        env = {"AUTH_SECRET": "s" * 40, "AUTH_USERS": str(tmp_path / "users.json"),
               "AUTH_STATE_DB": str(tmp_path / "state.db"), "AUTH_DEV_ECHO_OTP": "1",
               "AUTH_INSECURE_COOKIES": "1", "AUTH_BEHIND_PROXY": "1",
               "RISKENGINE_STORE_URL": f"sqlite:///{tmp_path / 'profiles.db'}",
               "RISKENGINE_AUDIT_ROOT": str(tmp_path / "audit"), "RISKENGINE_GEO_CITY_DB": "",
               "RISKENGINE_TRUST_SECRET_KEYS": "trust-key-for-tests-" + "k" * 30, **overrides}
        service = Service(example.create_app(env), tmp_path / "state.db")
        services.append(service)
        return service

    yield _start
    for service in services:
        service.close()


def _established(service: Service, user: str) -> Browser:
    """The user's everyday browser, past cold start."""
    home = service.browser()
    for _ in range(4):
        status, body = home.login(user)
        assert status == 200, body
    return home


def _trusted_token(service: Service, user: str) -> tuple[str, Browser]:
    """A new browser passes a challenge with "trust this device"; returns its device token."""
    laptop = service.browser()
    status, body = laptop.login(user)
    assert status == 202 and body["status"] == "otp_required", body
    status, body, _ = laptop.post("/otp", {"code": body["dev_code"], "trust_device": True})
    assert status == 200, body
    assert example.TRUST_COOKIE in laptop.cookies, laptop.set_cookie_headers
    return laptop.cookies[example.TRUST_COOKIE], laptop


# ---------------------------------------------------------------------- username enumeration
def test_unknown_user_is_hashed_with_the_real_scrypt_parameters(start: Callable[..., Service],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    service = start()
    used: list[tuple[int, int, int]] = []
    real_scrypt = hashlib.scrypt

    def recording_scrypt(password: bytes, *, salt: bytes, n: int, r: int, p: int, **kw: Any) -> bytes:
        used.append((n, r, p))
        return real_scrypt(password, salt=salt, n=n, r=r, p=p, **kw)

    monkeypatch.setattr(hashlib, "scrypt", recording_scrypt)
    browser = service.browser()
    assert browser.login("alice", "wrong")[0] == 401
    known = list(used)
    used.clear()
    assert browser.login("no-such-user", "wrong")[0] == 401
    unknown = list(used)
    assert known == unknown == [(USER_SCRYPT_N, 8, 1)]  # one hash each, same cost
    dummy = service.app.extensions["dummy_password_record"]
    assert (dummy["n"], dummy["r"], dummy["p"]) == (USER_SCRYPT_N, 8, 1)


# ---------------------------------------------------------------------- no reasons to clients
def test_no_reasons_or_risk_in_any_response(start: Callable[..., Service]) -> None:
    service = start()
    home = _established(service, "alice")  # allow (cold start), then known device
    assert home.login("alice", "wrong")[0] == 401
    home.request("GET", "/me")
    home.post("/logout", {})
    laptop = service.browser()  # a new device: challenge
    status, body = laptop.login("alice")
    assert status == 202 and set(body) <= {"status", "decision", "challenge_id", "channel", "dev_code"}
    assert body["decision"] == "challenge" and body["channel"] in example.CHANNELS
    laptop.post("/otp", {"code": "nope"})
    laptop.post("/otp", {"code": body["dev_code"]})
    service.browser().login("nobody", "guess")
    assert len(service.bodies) >= 10
    for raw in service.bodies:
        text = raw.decode()
        assert '"reasons"' not in text and '"risk' not in text and '"decision_id"' not in text, text
        assert not any(code in text for code in reasons.ALL_CODES), text


# ---------------------------------------------------------------------- sessions
def test_session_cookie_copied_before_logout_is_dead_after_it(start: Callable[..., Service]) -> None:
    service = start()
    victim = service.browser()
    assert victim.login("alice")[0] == 200
    thief = service.browser()
    thief.cookies = dict(victim.cookies)  # e.g. from a shared computer or a leaked log
    assert thief.request("GET", "/me")[:2] == (200, {"user": "alice"})
    assert victim.post("/logout", {})[0] == 200
    assert victim.request("GET", "/me")[0] == 401
    status, body, _ = thief.request("GET", "/me")
    assert status == 401 and body == {"status": "not_logged_in"}


# ---------------------------------------------------------------------- CSRF
def test_login_without_a_valid_csrf_token_is_forbidden(start: Callable[..., Service]) -> None:
    service = start()
    victim = service.browser()
    no_token = victim.request("POST", "/login", {"username": "alice", "password": "alice-pw"})
    assert no_token[0] == 403 and no_token[1]["status"] == "csrf_failed"
    attacker = service.browser()  # the attacker's own pre-session token, sent with the victim's cookies
    victim.fetch_csrf()
    stolen_form = victim.request("POST", "/login", {"username": "alice", "password": "alice-pw",
                                                    "csrf_token": attacker.fetch_csrf()})
    assert stolen_form[0] == 403
    header = victim.request("POST", "/login", {"username": "alice", "password": "alice-pw"},
                            headers={"X-CSRF-Token": victim.csrf or ""})
    assert header[0] == 200  # the token in a header works for JSON clients
    assert victim.request("GET", "/me")[:2] == (200, {"user": "alice"})
    # nothing was checked or counted for the rejected posts
    assert service.engine.store.snapshot("alice", "127.0.0.1", 0).user_failures == 0


# ---------------------------------------------------------------------- back-off
def test_wrong_passwords_per_user_back_off_exponentially(start: Callable[..., Service]) -> None:
    service = start(AUTH_BACKOFF_USER_FREE="3")
    guesser = service.browser("198.51.100.7")
    assert [guesser.login("alice", f"guess{i}")[0] for i in range(3)] == [401, 401, 401]
    retry_after: list[int] = []
    for i in range(3):
        status, body, resp = guesser.post("/login", {"username": "alice", "password": "alice-pw"})
        assert status == 429 and body == {"status": "too_many_attempts"}  # even the right password waits
        retry_after.append(int(resp.headers["Retry-After"]))
        # from another address, for the same user: the block is per user
        assert service.browser("203.0.113.50").login("alice")[0] == 429
        service.expire_backoff()
        assert guesser.login("alice", f"again{i}")[0] == 401  # checked again, and counted
    assert retry_after == [1, 2, 4]
    assert guesser.login("bob")[0] == 200  # another user from the same address is not blocked
    # every checked wrong password still reached the engine
    assert service.engine.store.snapshot("alice", "198.51.100.7", 0).user_failures == 6


def test_parallel_wrong_passwords_cannot_all_slip_through_one_free_moment(start: Callable[..., Service]) -> None:
    service = start(AUTH_BACKOFF_USER_FREE="3")
    barrier = threading.Barrier(20)
    statuses: list[int] = []

    def guess(i: int) -> None:
        browser = service.browser(f"198.51.100.{i + 1}")
        browser.fetch_csrf()
        barrier.wait()
        statuses.append(browser.login("alice", f"guess{i}")[0])

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # each attempt is counted before its password is checked: 3 free tries, the rest wait
    assert sorted(statuses) == [401] * 3 + [429] * 17
    assert service.engine.store.snapshot("alice", "198.51.100.1", 0).user_failures == 3


def test_wrong_passwords_per_address_back_off_including_ipv6_rotation(start: Callable[..., Service]) -> None:
    service = start(AUTH_BACKOFF_ADDR_FREE="4")
    for i in range(4):  # one guess each for four usernames: under the per-user threshold
        assert service.browser(f"2001:db8:1:2::{i + 1}").login(f"user{i}", "guess")[0] == 401
    rotated = service.browser("2001:db8:1:2:ffff:ffff:ffff:ffff")  # same /64, fresh address
    status, _, resp = rotated.post("/login", {"username": "bob", "password": "bob-pw"})
    assert status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert service.browser("2001:db8:1:3::1").login("bob")[0] == 200  # the next /64 is someone else
    assert service.browser("198.51.100.8").login("alice")[0] == 200


# ---------------------------------------------------------------------- OTP attempt counter
def test_parallel_wrong_codes_on_one_challenge_are_checked_at_most_five_times(
        start: Callable[..., Service]) -> None:
    service = start()
    _established(service, "alice")
    attacker = service.browser()
    status, body = attacker.login("alice")
    assert status == 202
    right_code = body["dev_code"]
    attacker.fetch_csrf()
    barrier = threading.Barrier(40)
    results: list[str] = []

    def guess(i: int) -> None:
        clone = service.browser()
        clone.cookies, clone.csrf = dict(attacker.cookies), attacker.csrf
        wrong = f"{(int(right_code) + 1 + i) % 10**6:06d}"
        barrier.wait()
        results.append(str(clone.post("/otp", {"code": wrong})[1].get("status")))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 40
    checked = results.count("wrong_code") + results.count("too_many_attempts")
    assert checked == example.MAX_OTP_ATTEMPTS, results
    assert results.count("too_many_attempts") == 1
    assert set(results) == {"wrong_code", "too_many_attempts", "challenge_closed"}
    assert attacker.post("/otp", {"code": right_code})[0] in (400, 403)  # closed for good
    assert attacker.request("GET", "/me")[0] == 401


# ---------------------------------------------------------------------- device token cookie
def test_trust_cookie_is_the_engines_token_with_safe_flags(start: Callable[..., Service]) -> None:
    service = start()
    _established(service, "alice")
    _, laptop = _trusted_token(service, "alice")
    header = next(h for h in laptop.set_cookie_headers if h.startswith(f"{example.TRUST_COOKIE}="))
    attributes = [part.strip().lower() for part in header.split(";")[1:]]
    assert "httponly" in attributes and "secure" in attributes and "samesite=lax" in attributes
    assert f"max-age={int(service.engine.settings.trust.days * 86400)}" in attributes
    assert "rdev" not in laptop.cookies  # the app's own itsdangerous device cookie is gone


def test_trusted_device_token_skips_the_challenge_forged_or_borrowed_ones_do_not(
        start: Callable[..., Service], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="auth_service")
    service = start()
    _established(service, "alice")
    _established(service, "bob")
    alice_token, _ = _trusted_token(service, "alice")
    bob_token, _ = _trusted_token(service, "bob")

    def login_with(token: str | None, user: str = "alice") -> int:
        browser = service.browser()  # a browser without the device-id cookie: only the token vouches
        if token is not None:
            browser.cookies[example.TRUST_COOKIE] = token
        return browser.login(user)[0]

    assert login_with(None) == 202  # control: this is a new device without a token
    assert login_with(alice_token) == 200  # her trusted device, whatever else the browser lost
    caplog.clear()
    tampered = alice_token[:-3] + ("AAA" if not alice_token.endswith("AAA") else "BBB")
    for token in (bob_token, tampered, "garbage", "x" * 5000):
        assert login_with(token) == 202, token[:40]
    assert caplog.text.count(reasons.TRUSTED_DEVICE) == 0
    assert caplog.text.count("DEVICE_TOKEN_INVALID") >= 3  # bob's, tampered, garbage


def test_login_form_for_browsers_carries_the_csrf_token(start: Callable[..., Service]) -> None:
    service = start()
    browser = service.browser()
    status, _, resp = browser.request("GET", "/login", headers={
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"})
    assert status == 200 and resp.headers["Content-Type"].startswith("text/html")
    html = service.bodies[-1].decode()
    token = html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert browser.request("POST", "/login", {"username": "alice", "password": "alice-pw"},
                           headers={"X-CSRF-Token": token})[0] == 200


def test_readyz_reports_readiness_and_healthz_liveness(start: Callable[..., Service]) -> None:
    service = start()
    status, body, _ = service.browser().request("GET", "/readyz")
    assert status == 200 and body["ready"] is True and body["store_ok"] is True
    assert set(body) == {"ready", "store_ok", "store_ping_ms", "geoip_problems"}  # no counters, no ids
    status, body, _ = service.browser().request("GET", "/healthz")
    assert status == 200 and body["store_ok"] is True


def test_readyz_is_503_while_geoip_is_missing(start: Callable[..., Service], tmp_path: Path) -> None:
    service = start(RISKENGINE_GEO_CITY_DB=str(tmp_path / "missing-City.mmdb"))
    status, body, _ = service.browser().request("GET", "/readyz")
    assert status == 503 and body["ready"] is False and body["geoip_problems"]
