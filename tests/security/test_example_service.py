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
from datetime import UTC, datetime, timedelta
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
def record_scrypt(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """From now on, every ``hashlib.scrypt`` call's (n, r, p), in order (the call still runs)."""
    used: list[tuple[int, int, int]] = []
    real_scrypt = hashlib.scrypt

    def recording_scrypt(password: bytes, *, salt: bytes, n: int, r: int, p: int, **kw: Any) -> bytes:
        used.append((n, r, p))
        return real_scrypt(password, salt=salt, n=n, r=r, p=p, **kw)

    monkeypatch.setattr(hashlib, "scrypt", recording_scrypt)
    return used


def test_unknown_user_is_hashed_with_the_real_scrypt_parameters(start: Callable[..., Service],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    service = start()
    used = record_scrypt(monkeypatch)
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


# ---------------------------------------------------------------------- signups (issue #17)
CAROL_PW = "carol's long passphrase"


def _signup(browser: Browser, user: str, password: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = browser.post("/signup", {"username": user, "password": password})
    return status, body


def _login_reasons(caplog: pytest.LogCaptureFixture, user: str) -> list[set[str]]:
    """The reason codes of ``user``'s scored logins, from the service's log (never from a response)."""
    out = []
    for record in caplog.records:
        message = record.getMessage()
        if record.name == "auth_service" and message.startswith(f"login user={user} "):
            out.append(set(filter(None, message.split(" reasons=", 1)[1].split(" ", 1)[0].split(","))))
    return out


def test_signup_seeds_the_profile_and_the_first_login_from_that_browser_is_familiar(
        start: Callable[..., Service], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="auth_service")
    service = start()
    home = service.browser("81.2.69.160")
    status, body = _signup(home, "Carol", CAROL_PW)
    assert (status, body) == (201, {"status": "created"})
    assert example.DEVICE_ID_COOKIE in home.cookies  # the browser's device id, set by the signup
    assert service.engine.health()["signups_learned"] == 1
    summary = service.engine.user_summary("carol")  # what `riskengine user show carol` prints
    assert summary["signup_at"] is not None and summary["logins"] == 0
    record = service.app.extensions["auth_accounts"].get("carol")
    assert record is not None and (record["n"], record["r"], record["p"]) == (USER_SCRYPT_N, 8, 1)
    assert CAROL_PW not in json.dumps(record)

    assert home.login("CAROL", CAROL_PW) == (200, {"status": "ok", "decision": "allow"})
    assert home.request("GET", "/me")[:2] == (200, {"user": "carol"})
    # same did cookie, same address: the signup's device, not a new one
    [first_login] = _login_reasons(caplog, "carol")
    assert reasons.NEW_DEVICE not in first_login, first_login
    assert service.engine.user_summary("carol")["logins"] == 1
    # control: the same first login from another browser is a new device for the seeded profile
    assert service.browser("81.2.69.160").login("carol", CAROL_PW)[0] in (200, 202)
    assert reasons.NEW_DEVICE in _login_reasons(caplog, "carol")[1]


def test_without_a_signup_the_first_login_has_no_history(start: Callable[..., Service],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """What the route spares a new account: a seeded user's first login has no profile to be
    familiar with (an engine with ``coldstart.dormant_days`` of history challenges it)."""
    caplog.set_level(logging.INFO, logger="auth_service")
    service = start()
    assert service.engine.store.get("bob") is None
    assert service.browser("81.2.69.160").login("bob")[0] == 200
    [first_login] = _login_reasons(caplog, "bob")
    assert {reasons.NEW_DEVICE, reasons.COLD_START} <= first_login
    assert service.engine.user_summary("bob")["signup_at"] is None


def test_once_the_store_is_old_a_signup_is_what_keeps_a_new_account_from_looking_dormant(
        start: Callable[..., Service], caplog: pytest.LogCaptureFixture) -> None:
    """Threat model row 19 through the service: with 60 days of history in the store, bob (an
    account that exists but has never logged in, and no signup recorded) is a dormant account:
    his first login is challenged with ``DORMANT_ACCOUNT``. carol, signed up through the route,
    logs in from the signup browser without a step-up."""
    caplog.set_level(logging.INFO, logger="auth_service")
    service = start()
    began = (datetime.now(UTC) - timedelta(days=60)).timestamp()
    assert service.engine.store.history_start(began) == began  # the store has learned for 60 days
    status, body = service.browser("81.2.69.160").login("bob")
    assert status == 202 and body["decision"] == "challenge"
    assert reasons.DORMANT_ACCOUNT in _login_reasons(caplog, "bob")[0]
    home = service.browser("81.2.69.160")
    assert _signup(home, "carol", CAROL_PW)[0] == 201
    assert home.login("carol", CAROL_PW) == (200, {"status": "ok", "decision": "allow"})
    assert reasons.DORMANT_ACCOUNT not in _login_reasons(caplog, "carol")[0]


def test_signup_needs_the_csrf_token(start: Callable[..., Service]) -> None:
    service = start()
    browser = service.browser()
    status, body, _ = browser.request("POST", "/signup", {"username": "carol", "password": CAROL_PW})
    assert status == 403 and body["status"] == "csrf_failed"
    browser.fetch_csrf()
    forged = browser.request("POST", "/signup", {"username": "carol", "password": CAROL_PW,
                                                 "csrf_token": service.browser().fetch_csrf()})
    assert forged[0] == 403
    assert service.app.extensions["auth_accounts"].get("carol") is None
    assert service.engine.store.get("carol") is None


@pytest.mark.parametrize(("username", "password", "status", "says"), [
    ("", CAROL_PW, "invalid_username", "3 to 32 characters"),
    ("ca", CAROL_PW, "invalid_username", "3 to 32 characters"),
    ("c" * 33, CAROL_PW, "invalid_username", "3 to 32 characters"),
    ("carol smith", CAROL_PW, "invalid_username", "letters a-z"),
    ("сarol", CAROL_PW, "invalid_username", "letters a-z"),  # a Cyrillic "с": a look-alike
    ("_carol", CAROL_PW, "invalid_username", "starting with a letter or a digit"),
    ("carol", "short", "invalid_password", "8 to 256 characters"),
    ("carol", "x" * 257, "invalid_password", "8 to 256 characters"),
    ("carol", "tab\there-and-more", "invalid_password", "control characters"),
    ("carol.brown", "Carol.Brown", "invalid_password", "cannot be the username"),
])
def test_signup_rules_answer_400_with_the_rule(start: Callable[..., Service], username: str, password: str,
                                               status: str, says: str) -> None:
    service = start(AUTH_SIGNUP_ADDR_FREE="1")
    browser = service.browser("81.2.69.160")
    code, body = _signup(browser, username, password)
    assert code == 400 and body["status"] == status and says in body["detail"], body
    assert service.engine.health()["signups_learned"] == 0
    # a refused form is not counted: the address's one free signup is still there
    assert _signup(browser, "carol", CAROL_PW)[0] == 201


def test_a_signup_for_an_existing_account_is_refused_and_plants_nothing(
        start: Callable[..., Service], monkeypatch: pytest.MonkeyPatch) -> None:
    """Threat model row 20: a signup for a name that exists — a seeded account whose owner never
    logged in (its profile is still blank: the engine alone would accept a seed), or one signed
    up before — must not record the attacker's session as the victim's first history, nor touch
    the victim's password, and answers at the cost of a free name's signup."""
    service = start()
    accounts = service.app.extensions["auth_accounts"]
    used = record_scrypt(monkeypatch)
    attacker = service.browser("198.51.100.7")
    assert service.engine.store.get("alice") is None  # seeded, never logged in: blank
    alice_record = dict(accounts.get("alice"))
    for name in ("alice", "ALICE", "ａｌｉｃｅ"):
        used.clear()
        status, body = _signup(attacker, name, "attacker's password")
        assert (status, body["status"]) == (409, "username_taken")
        assert used == [(USER_SCRYPT_N, 8, 1)]  # the same scrypt work as a free name's signup
    assert service.engine.store.get("alice") is None
    assert accounts.get("alice") == alice_record
    used.clear()
    assert _signup(service.browser("81.2.69.160"), "carol", CAROL_PW)[0] == 201
    assert used == [(USER_SCRYPT_N, 8, 1)]
    carol_record = dict(accounts.get("carol"))
    carol_profile = service.engine.store.get("carol")
    assert carol_profile is not None
    assert _signup(attacker, "Carol", "attacker's password")[0] == 409
    assert accounts.get("carol") == carol_record
    after = service.engine.store.get("carol")
    assert after is not None and after.to_bytes() == carol_profile.to_bytes()
    health = service.engine.health()
    assert (health["signups_learned"], health["signups_refused"]) == (1, 0)  # never even asked
    # the owners' passwords are theirs; the attacker's opens nothing
    assert service.browser().login("alice")[0] == 200
    assert service.browser().login("carol", CAROL_PW)[0] in (200, 202)
    assert service.browser().login("carol", "attacker's password")[0] == 401


def test_parallel_signups_for_one_name_create_one_account(start: Callable[..., Service]) -> None:
    """Two workers signing one name up at once: exactly one account, one seed, the winner's."""
    service = start()
    n = 12
    barrier = threading.Barrier(n)
    results: dict[int, int] = {}

    def sign_up(i: int) -> None:
        browser = service.browser(f"198.51.100.{i + 1}")
        browser.fetch_csrf()
        barrier.wait()
        results[i] = _signup(browser, "carol", f"password number {i}")[0]

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results.values()) == [201] + [409] * (n - 1)
    [winner] = [i for i, status in results.items() if status == 201]
    assert example.check_password(service.app.extensions["auth_accounts"].get("carol"),
                                  f"password number {winner}")
    assert service.engine.health()["signups_learned"] == 1
    with sqlite3.connect(service.state_db) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (1,)


def test_signup_flood_from_one_address_backs_off(start: Callable[..., Service]) -> None:
    """Threat model row 21: mass account creation (and walking through taken names) from one
    address or one IPv6 /64 is slowed down; other addresses and logins are not."""
    service = start(AUTH_SIGNUP_ADDR_FREE="3")
    flood = [service.browser(f"2001:db8:1:2::{i + 1}") for i in range(4)]  # one /64, rotating
    assert [_signup(flood[i], f"bot{i}", "bot password")[0] for i in range(2)] == [201, 201]
    assert _signup(flood[2], "alice", "bot password")[0] == 409  # a probe for a taken name counts too
    status, body, resp = flood[3].post("/signup", {"username": "bot3", "password": "bot password"})
    assert (status, body) == (429, {"status": "too_many_attempts"}) and int(resp.headers["Retry-After"]) >= 1
    assert service.app.extensions["auth_accounts"].get("bot3") is None
    assert service.engine.store.get("bot3") is None
    assert _signup(service.browser("2001:db8:1:3::1"), "carol", CAROL_PW)[0] == 201  # the next /64
    assert flood[0].login("bot0", "bot password")[0] == 200  # logins from there have their own count
    service.expire_backoff()
    assert _signup(flood[3], "bot3", "bot password")[0] == 201
    assert _signup(flood[3], "bot4", "bot password")[0] == 429  # each further one blocks again


def test_signed_up_accounts_are_shared_by_every_worker(start: Callable[..., Service]) -> None:
    """Two apps on one state db (two gunicorn workers): an account created by one logs in on
    the other, and a restart keeps it, hashed at the users file's cost."""
    first = start()
    assert _signup(first.browser("81.2.69.160"), "carol", CAROL_PW)[0] == 201
    second = start()
    assert second.browser("81.2.69.160").login("carol", CAROL_PW)[0] in (200, 202)
    assert _signup(second.browser(), "carol", "another password")[0] == 409
    dummy = second.app.extensions["dummy_password_record"]
    assert (dummy["n"], dummy["r"], dummy["p"]) == (USER_SCRYPT_N, 8, 1)


def test_a_users_file_name_that_was_also_signed_up_stops_the_service(start: Callable[..., Service],
                                                                       tmp_path: Path) -> None:
    """One name with two passwords (the users file edited after someone signed that name up):
    refuse to start rather than let one of them win silently."""
    assert _signup(start().browser(), "carol", CAROL_PW)[0] == 201
    users = json.loads((tmp_path / "users.json").read_text())
    users["Carol"] = example.hash_password("file password", n=USER_SCRYPT_N)
    (tmp_path / "users.json").write_text(json.dumps(users))
    with pytest.raises(RuntimeError, match=r"\['carol'\] also signed up"):
        start()


def test_failed_logins_for_a_name_before_it_exists_do_not_block_its_signup(start: Callable[..., Service]) -> None:
    """Pre-registration: guesses for a name nobody has yet are counted as failures, but they
    are no history, so the real owner's signup still seeds the profile."""
    service = start()
    squatter = service.browser("198.51.100.7")
    assert [squatter.login("carol", f"guess{i}")[0] for i in range(2)] == [401, 401]
    assert _signup(service.browser("81.2.69.160"), "carol", CAROL_PW)[0] == 201
    assert service.engine.user_summary("carol")["signup_at"] is not None


def test_signup_rules_doctest() -> None:
    import doctest

    finder = doctest.DocTestFinder()
    [test] = finder.find(example.signup_problem, "signup_problem", globs={"signup_problem": example.signup_problem})
    result = doctest.DocTestRunner().run(test)
    assert result.failed == 0 and result.attempted == 2
