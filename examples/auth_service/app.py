"""A small but real Flask login service using riskengine: the integration guide, in code.

    password check ─ fail ─► engine.record_failure          → 401
          │ ok
          ▼
    engine.score(LoginAttempt) ─ allow ─► session            → 200
          │ challenge                 └ deny                  → 403
          ▼
    one-time code, delivered on whatsapp → sms → voice (fallback when a channel fails)
    POST /otp ─ right code ─► engine.record_outcome("verified", channels, attempts, trust)
              ─ 5 wrong ───► engine.record_outcome("failed")  → 403, challenge closed

Device identity is a cookie, ``rdev``: HMAC-signed (itsdangerous) ``{user, device id}`` with a
timestamp, rejected after ``AUTH_DEVICE_COOKIE_DAYS``. It is verified on every login and is
only honoured for the user it was issued to, so a forged cookie, or one copied from another
user's browser, is just a new device (and a new device steps up). The engine keeps *whether*
that device is trusted (after a verified challenge with "trust this device"), so support can
withdraw trust centrally (``riskengine user untrust``).

Configuration (environment):

``AUTH_SECRET``            signing key for cookies and code MACs (required, ≥ 32 chars)
``AUTH_USERS``             users JSON written by ``seed.py`` (default ``users.json`` here)
``AUTH_STATE_DB``          sqlite file for open OTP challenges, shared by all workers on a host
``RISKENGINE_STORE_URL``   ``sqlite:///profiles.db`` or ``redis://host:6379/0``
``RISKENGINE_AUDIT_ROOT``  audit log folder (any ``RISKENGINE_*`` setting works)
``AUTH_DEV_ECHO_OTP=1``    put the code in the challenge response (load tests only!)
``AUTH_DELIVERY_FAILURES`` simulated channel failure rates, e.g. ``whatsapp=0.2,sms=0.05``
``AUTH_BEHIND_PROXY=1``    take the client IP from one X-Forwarded-For hop (werkzeug ProxyFix)
``AUTH_INSECURE_COOKIES=1`` allow cookies over plain HTTP (local testing only)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request, session
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import ValidationError

from riskengine import Engine
from riskengine.engine import UnknownDecisionError

HERE = Path(__file__).resolve().parent
CHANNELS = ("whatsapp", "sms", "voice")  # cheapest and most secure first; voice reaches landlines
OTP_DIGITS = 6
OTP_TTL_S = 300
MAX_OTP_ATTEMPTS = 5
DEVICE_COOKIE = "rdev"


# ---------------------------------------------------------------------- passwords
def hash_password(password: str, *, n: int = 2**14, r: int = 8, p: int = 1) -> dict[str, Any]:
    """A salted scrypt record. Parameters live in the record so they can be raised later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return {"salt": salt.hex(), "hash": digest.hex(), "n": n, "r": r, "p": p}


def check_password(record: Mapping[str, Any], password: str) -> bool:
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(record["salt"]), n=record["n"],
                            r=record["r"], p=record["p"], dklen=32)
    return hmac.compare_digest(digest.hex(), record["hash"])


# a record to check unknown users against, so "no such user" takes as long as "wrong password"
_DUMMY = hash_password("not-a-real-password", n=2**10)


# ---------------------------------------------------------------------- device cookie
class DeviceCookies:
    """Signed, expiring ``{user, device}`` tokens: forgery needs AUTH_SECRET; replay for another
    user fails the user check; an old one fails ``max_age``."""

    def __init__(self, secret: str, max_age_days: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="riskengine-example-device")
        self.max_age_s = int(max_age_days * 86400)

    def issue(self, user_id: str, device_id: str) -> str:
        return self._serializer.dumps({"u": user_id, "d": device_id})

    def device_for(self, token: str | None, user_id: str) -> str | None:
        """The device id in ``token`` if it is genuine, unexpired and issued to ``user_id``."""
        if not token:
            return None
        try:
            data = self._serializer.loads(token, max_age=self.max_age_s)
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict) or data.get("u") != user_id or not isinstance(data.get("d"), str):
            return None
        return data["d"]


# ---------------------------------------------------------------------- OTP challenges
class Challenges:
    """Open OTP challenges in a sqlite file, so any worker process can take the second step.

    Only a MAC of the code is stored; the attempt counter is server-side (a client cannot
    reset it by replaying an old cookie)."""

    def __init__(self, path: str, secret: bytes) -> None:
        self.path = path
        self._secret = secret
        self._local = threading.local()
        with self._conn() as c:
            c.execute("CREATE TABLE IF NOT EXISTS challenges (id TEXT PRIMARY KEY, data TEXT NOT NULL,"
                      " expires REAL NOT NULL)")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def mac(self, challenge_id: str, code: str) -> str:
        return hmac.new(self._secret, f"{challenge_id}:{code}".encode(), "sha256").hexdigest()

    def put(self, challenge_id: str, data: dict[str, Any]) -> None:
        self._conn().execute("INSERT OR REPLACE INTO challenges VALUES (?, ?, ?)",
                             (challenge_id, json.dumps(data), data["expires"]))

    def get(self, challenge_id: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT data FROM challenges WHERE id = ? AND expires >= ?",
                                   (challenge_id, time.time())).fetchone()
        return json.loads(row[0]) if row else None

    def take(self, challenge_id: str) -> None:
        conn = self._conn()
        conn.execute("DELETE FROM challenges WHERE id = ?", (challenge_id,))
        if secrets.randbelow(200) == 0:
            conn.execute("DELETE FROM challenges WHERE expires < ?", (time.time() - 3600,))


def new_code() -> str:
    return f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"


class Delivery:
    """Simulated delivery per channel: each fails with its configured rate; we fall back to the
    next channel, as a real SMS/WhatsApp/voice gateway integration would."""

    def __init__(self, failure_rates: Mapping[str, float]) -> None:
        self.failure_rates = dict(failure_rates)
        self._rng = random.Random()

    @classmethod
    def from_env(cls, spec: str) -> Delivery:
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, value = part.partition("=")
            if name not in CHANNELS:
                raise ValueError(f"AUTH_DELIVERY_FAILURES: unknown channel {name!r}; use {CHANNELS}")
            rates[name] = float(value)
        return cls(rates)

    def send(self, start: int, user: str, code: str) -> tuple[list[str], int]:
        """Try channels from index ``start``; return the channels tried and the one that worked."""
        tried: list[str] = []
        for i in range(start, len(CHANNELS)):
            tried.append(CHANNELS[i])
            if self._rng.random() >= self.failure_rates.get(CHANNELS[i], 0.0):
                return tried, i  # delivered (a real gateway call goes here)
        return tried, -1


# ---------------------------------------------------------------------- the app
def create_app(env: Mapping[str, str] | None = None) -> Flask:
    env = os.environ if env is None else env
    secret = env.get("AUTH_SECRET", "")
    if len(secret) < 32:
        raise RuntimeError("AUTH_SECRET must be set to a random string of at least 32 characters")
    users_path = Path(env.get("AUTH_USERS", str(HERE / "users.json")))
    users: dict[str, dict[str, Any]] = json.loads(users_path.read_text())
    engine = Engine.from_config(env.get("RISKENGINE_CONFIG"))  # + RISKENGINE_* env overrides
    challenges = Challenges(env.get("AUTH_STATE_DB", str(HERE / "challenges.db")), secret.encode())
    cookies = DeviceCookies(secret, float(env.get("AUTH_DEVICE_COOKIE_DAYS", "365")))
    delivery = Delivery.from_env(env.get("AUTH_DELIVERY_FAILURES", ""))
    echo_codes = env.get("AUTH_DEV_ECHO_OTP") == "1"

    app = Flask(__name__)
    if env.get("AUTH_BEHIND_PROXY") == "1":
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    app.secret_key = secret
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=env.get("AUTH_INSECURE_COOKIES") != "1")
    app.extensions["riskengine"] = engine
    app.extensions["device_cookies"] = cookies

    def client_ip() -> str:
        # behind a proxy, only the address your proxy vouches for (AUTH_BEHIND_PROXY=1)
        return request.remote_addr or "0.0.0.0"

    @app.after_request
    def set_device_cookie(resp: Response) -> Response:
        token = g.get("device_cookie")
        if token:
            resp.set_cookie(DEVICE_COOKIE, token, max_age=cookies.max_age_s, httponly=True,
                            samesite="Lax", secure=app.config["SESSION_COOKIE_SECURE"])
        return resp

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(engine.health())

    @app.post("/login")
    def login() -> tuple[Response, int]:
        form = request.get_json(silent=True) or request.form
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        now = datetime.now(UTC)
        record = users.get(username)
        if not check_password(record or _DUMMY, password) or record is None:
            if username:
                try:
                    engine.record_failure(username, client_ip(), now)
                except ValidationError:
                    pass  # an unusable IP or name: nothing to count against
            return jsonify(status="invalid_credentials"), 401
        session.clear()
        device_id = cookies.device_for(request.cookies.get(DEVICE_COOKIE), username)
        if device_id is None:  # unknown, forged, expired or another user's: a new device
            device_id = secrets.token_urlsafe(16)
            g.device_cookie = cookies.issue(username, device_id)
        session_id = secrets.token_urlsafe(12)
        decision = engine.score({
            "user_id": username, "timestamp": now, "ip": client_ip(),
            # non-UTF-8 header bytes arrive as latin-1 in WSGI; keep the string printable
            "user_agent": request.headers.get("User-Agent", "")[:2048],
            "device_id": device_id, "session_id": session_id, "enrolled_factors": ["whatsapp", "sms", "voice"],
        })
        body: dict[str, Any] = {"decision_id": decision.decision_id, "decision": decision.action,
                                "reasons": list(decision.reason_codes)}
        if decision.action == "allow":
            session["user"] = username
            return jsonify(status="ok", **body), 200
        if decision.action == "deny":
            return jsonify(status="denied", **body), 403
        challenge_id = secrets.token_urlsafe(16)
        code = new_code()
        tried, at = delivery.send(0, username, code)
        if at < 0:
            engine.record_outcome(decision.decision_id, "abandoned", channels=tried, attempts=0)
            return jsonify(status="delivery_failed", **body), 503
        challenges.put(challenge_id, {
            "user": username, "decision_id": decision.decision_id, "mac": challenges.mac(challenge_id, code),
            "channels": tried, "channel_index": at, "attempts": 0, "started": time.time(),
            "expires": time.time() + OTP_TTL_S})
        session["challenge"] = challenge_id
        if echo_codes:
            body["dev_code"] = code
        return jsonify(status="otp_required", channel=tried[-1], **body), 202

    @app.post("/otp")
    def otp() -> tuple[Response, int]:
        form = request.get_json(silent=True) or request.form
        challenge_id = session.get("challenge")
        state = challenges.get(challenge_id) if challenge_id else None
        if state is None or challenge_id is None:
            return jsonify(status="no_open_challenge"), 400
        if form.get("resend"):  # "didn't get it": next channel, new code
            code = new_code()
            tried, at = delivery.send(state["channel_index"] + 1, state["user"], code)
            state["channels"] += tried
            if at < 0:
                return _close(engine, challenges, challenge_id, state, "abandoned", 503, "delivery_failed")
            state.update(mac=challenges.mac(challenge_id, code), channel_index=at)
            challenges.put(challenge_id, state)
            body: dict[str, Any] = {"status": "otp_resent", "channel": state["channels"][-1]}
            if echo_codes:
                body["dev_code"] = code
            return jsonify(body), 202
        state["attempts"] += 1
        code = str(form.get("code", ""))
        if hmac.compare_digest(challenges.mac(challenge_id, code), state["mac"]):
            trust = str(form.get("trust_device", "")).lower() in ("1", "true", "yes", "on")
            resp = _close(engine, challenges, challenge_id, state, "verified", 200, "ok", trust=trust)
            session["user"] = state["user"]
            return resp
        if state["attempts"] >= MAX_OTP_ATTEMPTS:
            return _close(engine, challenges, challenge_id, state, "failed", 403, "too_many_attempts")
        challenges.put(challenge_id, state)
        return jsonify(status="wrong_code", attempts_left=MAX_OTP_ATTEMPTS - state["attempts"]), 401

    @app.get("/me")
    def me() -> tuple[Response, int]:
        user = session.get("user")
        return (jsonify(user=user), 200) if user else (jsonify(status="not_logged_in"), 401)

    @app.post("/logout")
    def logout() -> tuple[Response, int]:
        session.clear()
        return jsonify(status="ok"), 200

    return app


def _close(engine: Engine, challenges: Challenges, challenge_id: str, state: dict[str, Any],
           outcome: str, http_status: int, status: str, *, trust: bool = False) -> tuple[Response, int]:
    challenges.take(challenge_id)
    session.pop("challenge", None)
    try:
        engine.record_outcome(state["decision_id"], outcome, channels=state["channels"],  # type: ignore[arg-type]
                              attempts=state["attempts"], trust_device=trust,
                              seconds_to_verify=max(0.0, time.time() - state["started"]))
    except UnknownDecisionError:
        pass  # the engine's own pending context expired (or its store was down at scoring time)
    return jsonify(status=status), http_status
