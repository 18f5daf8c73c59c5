"""A small but real Flask login service using riskengine: the integration guide, in code.

    GET /csrf (or GET /login) ─► CSRF token bound to a pre-session cookie
    POST /signup ─ no/bad CSRF token ────────────────────────────► 403
          │ username or password against the rules ──────────────► 400 + which rule
          │ address in signup back-off ──────────────────────────► 429 + Retry-After
          │ scrypt record (always) ─ name taken ─────────────────► 409
          ▼ INSERT users row (the state db's primary key decides a race)
    engine.record_signup(LoginAttempt, did cookie) ─► the profile's first history → 201
    POST /login ─ no/bad CSRF token ─────────────────────────────► 403
          │ user or address in back-off ─────────────────────────► 429 + Retry-After
          │ password check ─ fail ─► engine.record_failure         → 401 (+ back-off 2^k s)
          │ ok
          ▼
    engine.score(LoginAttempt, device_token=cookie rdt) ─ allow ─► server-side session → 200
          │ challenge                                      └ deny                      → 403
          ▼
    one-time code, delivered on whatsapp → sms → voice (fallback when a channel fails)
    POST /otp ─ right code ─► token = engine.record_outcome("verified", ..., trust_device)
              │               → session; cookie rdt = token when "trust this device"
              ─ 5th wrong ──► engine.record_outcome("failed")       → 403, challenge closed
    POST /logout ─► the server-side session row is deleted: a copied cookie stops working

What a client learns is only allow / challenge / deny (+ challenge id and channel): the risk
score and reason codes are logged server-side (and audited by the engine), never returned, so
an attacker cannot tune a login until the score drops.

Trusted devices use the engine's device tokens: ``record_outcome(..., trust_device=True)``
returns an HMAC-signed, user-bound token that goes into the ``rdt`` cookie (HttpOnly, Secure,
SameSite=Lax, Max-Age = ``trust.days``); each login hands it back as
``LoginAttempt.device_token``. A forged, expired, revoked or another user's token is never
trusted (``DEVICE_TOKEN_INVALID``). The ``did`` cookie is a random device id used only as a
familiarity signal (known vs new device), never as trust.

Signups: ``POST /signup`` creates an account (a row of the state db's ``users`` table, beside
the seeded users file, which the service never writes) and hands the signup session to
``engine.record_signup``, built exactly as a login's attempt (same client address, User-Agent,
``did`` cookie, which it sets when the browser has none): the account's first login from that
browser is then familiar instead of a login on an account without history (which an engine
with ``coldstart.dormant_days`` of history treats as dormant: challenged). The user logs in
afterwards as usual. A taken username is refused (409) after the same scrypt work as a free
one; that a name is taken is what any signup form without e-mail verification tells, so every
signup attempt counts toward a per-address back-off (``AUTH_SIGNUP_ADDR_FREE``).

Configuration (environment):

``AUTH_SECRET``            signing key for the session cookie and code MACs (required, ≥ 32 chars)
``RISKENGINE_TRUST_SECRET_KEYS`` device-token signing keys (required; the engine's setting)
``AUTH_USERS``             users JSON written by ``seed.py`` (default ``users.json`` here)
``AUTH_STATE_DB``          sqlite file for sessions, OTP challenges, back-off and signed-up
                           accounts, shared by all workers on a host
``AUTH_SESSION_HOURS``     session lifetime (12)
``AUTH_BACKOFF_USER_FREE`` / ``AUTH_BACKOFF_ADDR_FREE`` wrong passwords before back-off starts,
                           per username (5) and per client address or IPv6 /64 (20)
``AUTH_BACKOFF_BASE_S`` / ``AUTH_BACKOFF_MAX_S`` / ``AUTH_BACKOFF_WINDOW_S`` first block (1 s),
                           cap (900 s), quiet time after which the count restarts (3600 s)
``AUTH_SIGNUP_ADDR_FREE``  signups (created or refused) per client address or IPv6 /64 before
                           the same back-off starts for that address's signups (10)
``RISKENGINE_STORE_URL``   ``sqlite:///profiles.db`` or ``redis://host:6379/0``
``RISKENGINE_AUDIT_ROOT``  audit log folder (any ``RISKENGINE_*`` setting works)
``AUTH_DEV_ECHO_OTP=1``    put the code in the challenge response (load tests only!)
``AUTH_DELIVERY_FAILURES`` simulated channel failure rates, e.g. ``whatsapp=0.2,sms=0.05``
``AUTH_BEHIND_PROXY=1``    take the client IP from one X-Forwarded-For hop (werkzeug ProxyFix)
``AUTH_INSECURE_COOKIES=1`` session and ``did`` cookies over plain HTTP (local testing only;
                           the ``rdt`` trust cookie is always Secure)
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import random
import re
import secrets
import sqlite3
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from flask import Flask, Response, jsonify, request, session
from pydantic import ValidationError

from riskengine import Engine, LoginAttempt, Settings
from riskengine.core.engine import UnknownDecisionError
from riskengine.core.health import readiness

HERE = Path(__file__).resolve().parent
CHANNELS = ("whatsapp", "sms", "voice")  # cheapest and most secure first; voice reaches landlines
OTP_DIGITS = 6
OTP_TTL_S = 300
MAX_OTP_ATTEMPTS = 5
TRUST_COOKIE = "rdt"  # the engine's device token
DEVICE_ID_COOKIE = "did"  # a random id: familiarity only, never trust
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{22}")
MAX_NAME_LENGTH = 256
USERNAME_RULE = re.compile(r"[a-z0-9][a-z0-9._-]{2,31}")  # after normalize_username
MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH = 8, 256
log = logging.getLogger("auth_service")


# ---------------------------------------------------------------------- passwords
DEFAULT_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, *, n: int = 2**14, r: int = 8, p: int = 1) -> dict[str, Any]:
    """A salted scrypt record. Parameters live in the record so they can be raised later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_maxmem(n, r), dklen=32)
    return {"salt": salt.hex(), "hash": digest.hex(), "n": n, "r": r, "p": p}


def check_password(record: Mapping[str, Any], password: str) -> bool:
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(record["salt"]), n=record["n"],
                            r=record["r"], p=record["p"], maxmem=_maxmem(record["n"], record["r"]), dklen=32)
    return hmac.compare_digest(digest.hex(), record["hash"])


def _maxmem(n: int, r: int) -> int:
    return 128 * r * (n + 2) + 1024 * 1024  # OpenSSL's default 32 MB refuses n=2**15, r=8


def dummy_record(users: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A record to check unknown users against, with the cost parameters of the real records, so
    "no such user" costs exactly what "wrong password" costs (otherwise timing tells an attacker
    which usernames exist). Several cost classes in one file leak the class: we use the most
    common one and warn."""
    params = Counter((int(u["n"]), int(u["r"]), int(u["p"])) for u in users.values())
    if len(params) > 1:
        log.warning("users file mixes scrypt parameters %s: logins of the rarer ones are "
                    "distinguishable by timing; rehash them at the next login", sorted(params))
    n, r, p = params.most_common(1)[0][0] if params else tuple(DEFAULT_SCRYPT.values())
    return hash_password(secrets.token_urlsafe(24), n=n, r=r, p=p)


def normalize_username(raw: str) -> str:
    """``ALICE``, ``alice `` and full-width ``ａｌｉｃｅ`` are one user (as the engine's
    ``identity.normalize_user_id`` default), so neither back-off nor lookups can be split."""
    return unicodedata.normalize("NFKC", raw).casefold().strip()


def signup_problem(username: str, password: str) -> tuple[str, str] | None:
    """Why a new account's (normalised) username or password is refused — ``(status, detail)``,
    the detail written for the person at the form — or None.

    A username is 3 to 32 characters of ``a-z 0-9 . _ -`` starting with a letter or digit
    (after NFKC + casefold, so ``Alice`` is ``alice``): no look-alike letters from other
    scripts, nothing that needs escaping in a log line or a URL. A password is 8 to 256
    characters, any script, spaces allowed, no control characters, not the username: length
    is what makes it hard to guess (NIST SP 800-63B), composition rules are not asked for.
    Nothing here depends on which accounts exist.

    >>> signup_problem("carol", "a long passphrase")
    >>> signup_problem("c", "a long passphrase")[0], signup_problem("carol", "carol")[0]
    ('invalid_username', 'invalid_password')
    """
    if not USERNAME_RULE.fullmatch(username):
        return "invalid_username", ("a username is 3 to 32 characters: letters a-z, digits, '.', '_' or '-', "
                                    "starting with a letter or a digit")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return "invalid_password", (f"a password is {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters "
                                    "(a few words make a good one)")
    if not password.isprintable():  # spaces and every script are; control characters are not
        return "invalid_password", "a password cannot contain control characters"
    if normalize_username(password) == username:
        return "invalid_password", "a password cannot be the username"
    return None


# ---------------------------------------------------------------------- shared state (sqlite)
class StateDB:
    """One sqlite file (WAL) for the state every worker on a host must share: sessions, open OTP
    challenges, back-off counters and the accounts created by signups. One connection per
    thread."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS sessions (id_hash TEXT PRIMARY KEY, user TEXT NOT NULL,"
        " expires REAL NOT NULL)",
        "CREATE TABLE IF NOT EXISTS otp_challenges (id TEXT PRIMARY KEY, data TEXT NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0, expires REAL NOT NULL)",
        "CREATE TABLE IF NOT EXISTS backoff (key TEXT PRIMARY KEY, failures INTEGER NOT NULL,"
        " last REAL NOT NULL, blocked_until REAL NOT NULL)",
        "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, record TEXT NOT NULL, created REAL NOT NULL)",
    )

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        conn = self.conn()
        for statement in self.SCHEMA:
            conn.execute(statement)
        if path != ":memory:":
            os.chmod(path, 0o600)  # session hashes and challenge MACs: not for other local users

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn


class Accounts:
    """Who can log in: the seeded users file (read once at start-up, never written by the
    service) and the accounts ``POST /signup`` created, rows of the state db's ``users`` table.

    A signup is one ``INSERT … ON CONFLICT DO NOTHING`` keyed by the normalised username: when
    two workers (or threads) sign the same name up at once exactly one row is written and only
    its request is told so, and since nothing is read, changed and written back, no signup can
    overwrite another's (a users file rewritten by each worker would lose them). Every worker
    sees a new account at its next lookup."""

    def __init__(self, seeded: Mapping[str, dict[str, Any]], db: StateDB) -> None:
        self.seeded, self.db = seeded, db

    def get(self, username: str) -> dict[str, Any] | None:
        # the table is read for every name, seeded or not: a lookup costs the same either way
        row = self.db.conn().execute("SELECT record FROM users WHERE name = ?", (username,)).fetchone()
        record = self.seeded.get(username)
        if record is not None:
            return record
        return json.loads(row[0]) if row else None

    def create(self, username: str, record: Mapping[str, Any], now: float) -> bool:
        """Add the account; False (nothing written) when the name is taken, seeded or signed up."""
        if username in self.seeded:
            return False
        row = self.db.conn().execute(
            "INSERT INTO users VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING name",
            (username, json.dumps(dict(record)), now)).fetchone()
        return row is not None

    def signed_up(self) -> dict[str, dict[str, Any]]:
        """Every account created by a signup (at start-up: their scrypt parameters count for the
        dummy record)."""
        return {str(name): json.loads(record)
                for name, record in self.db.conn().execute("SELECT name, record FROM users")}


class Sessions:
    """Server-side sessions: the cookie carries a random id, the db a hash of it. Every
    authenticated request looks the row up, so logout (row deleted) ends the session for every
    copy of the cookie."""

    def __init__(self, db: StateDB, ttl_s: float) -> None:
        self.db, self.ttl_s = db, ttl_s

    @staticmethod
    def _hash(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    def create(self, user: str) -> str:
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        conn = self.db.conn()
        conn.execute("INSERT INTO sessions VALUES (?, ?, ?)", (self._hash(session_id), user, now + self.ttl_s))
        if secrets.randbelow(200) == 0:
            conn.execute("DELETE FROM sessions WHERE expires < ?", (now,))
        return session_id

    def user(self, session_id: str | None) -> str | None:
        if not session_id:
            return None
        row = self.db.conn().execute("SELECT user FROM sessions WHERE id_hash = ? AND expires >= ?",
                                     (self._hash(session_id), time.time())).fetchone()
        return str(row[0]) if row else None

    def revoke(self, session_id: str | None) -> None:
        if session_id:
            self.db.conn().execute("DELETE FROM sessions WHERE id_hash = ?", (self._hash(session_id),))


class Challenges:
    """Open OTP challenges, so any worker process can take the second step.

    Only a MAC of the code is stored. The attempt counter is a column bumped in one statement
    (``UPDATE … WHERE attempts < limit RETURNING``): parallel guesses on one challenge cannot
    read the same count, so at most ``MAX_OTP_ATTEMPTS`` codes are ever checked."""

    def __init__(self, db: StateDB, secret: bytes) -> None:
        self.db = db
        self._secret = secret

    def mac(self, challenge_id: str, code: str) -> str:
        return hmac.new(self._secret, f"{challenge_id}:{code}".encode(), "sha256").hexdigest()

    def open(self, challenge_id: str, data: dict[str, Any]) -> None:
        self.db.conn().execute("INSERT INTO otp_challenges (id, data, expires) VALUES (?, ?, ?)",
                               (challenge_id, json.dumps(data), data["expires"]))

    def get(self, challenge_id: str) -> tuple[int, dict[str, Any]] | None:
        row = self.db.conn().execute("SELECT attempts, data FROM otp_challenges WHERE id = ? AND expires >= ?",
                                     (challenge_id, time.time())).fetchone()
        return (int(row[0]), json.loads(row[1])) if row else None

    def update(self, challenge_id: str, data: dict[str, Any]) -> None:
        """New code / channel after a resend; the attempt counter is left alone."""
        self.db.conn().execute("UPDATE otp_challenges SET data = ? WHERE id = ?", (json.dumps(data), challenge_id))

    def attempt(self, challenge_id: str) -> tuple[int, dict[str, Any]] | None:
        """Count one attempt atomically; ``None`` when the challenge is gone, expired or spent."""
        row = self.db.conn().execute(
            "UPDATE otp_challenges SET attempts = attempts + 1 WHERE id = ? AND attempts < ? AND expires >= ?"
            " RETURNING attempts, data", (challenge_id, MAX_OTP_ATTEMPTS, time.time())).fetchone()
        return (int(row[0]), json.loads(row[1])) if row else None

    def take(self, challenge_id: str) -> bool:
        """Close the challenge; True for the one caller that closed it."""
        conn = self.db.conn()
        took = conn.execute("DELETE FROM otp_challenges WHERE id = ? RETURNING id", (challenge_id,)).fetchone()
        if secrets.randbelow(200) == 0:
            conn.execute("DELETE FROM otp_challenges WHERE expires < ?", (time.time() - 3600,))
        return took is not None


class Backoff:
    """Exponential back-off on wrong passwords per key (a username, a client address): after
    ``free`` failures within ``window_s`` each further one blocks the key for
    ``base_s * 2**(failures - free)`` seconds, capped at ``max_s``. A blocked key is answered
    429 without checking the password. Shared by all workers through the state db."""

    def __init__(self, db: StateDB, *, base_s: float, max_s: float, window_s: float) -> None:
        self.db, self.base_s, self.max_s, self.window_s = db, base_s, max_s, window_s

    def admit(self, keys: Mapping[str, int], now: float) -> float:
        """Before a password is checked: 0 when none of ``keys`` (key → its free failures) is
        blocked, and then this attempt is already counted as a failure of each — in the same
        write transaction, so parallel guesses cannot all slip through one free moment; else the
        seconds to wait (nothing counted). A right password gives the count back (:meth:`passed`)."""
        conn = self.db.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            marks = ",".join("?" * len(keys))
            row = conn.execute(f"SELECT max(blocked_until) FROM backoff WHERE key IN ({marks})",
                               list(keys)).fetchone()
            wait = max(0.0, float(row[0] or 0.0) - now)
            if not wait:
                for key, free in keys.items():
                    self._count(conn, key, free, now, +1)
                if secrets.randbelow(500) == 0:
                    conn.execute("DELETE FROM backoff WHERE last < ? AND blocked_until < ?",
                                  (now - self.window_s, now))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return wait

    def passed(self, keys: Mapping[str, int], now: float, *, forget: Iterable[str] = ()) -> None:
        """The password was right: give back the failure :meth:`admit` counted (``forget``: keys
        whose whole count goes, e.g. the user's own)."""
        conn = self.db.conn()
        gone = set(forget)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for key, free in keys.items():
                if key in gone:
                    conn.execute("DELETE FROM backoff WHERE key = ?", (key,))
                else:
                    self._count(conn, key, free, now, -1)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _count(self, conn: sqlite3.Connection, key: str, free: int, now: float, step: int) -> None:
        row = conn.execute("SELECT failures, last FROM backoff WHERE key = ?", (key,)).fetchone()
        current = 0 if row is None or now - row[1] > self.window_s else int(row[0])
        failures = max(0, current + step)
        blocked = now + min(self.max_s, self.base_s * 2 ** min(failures - free, 40)) if failures >= free else 0.0
        conn.execute("INSERT OR REPLACE INTO backoff VALUES (?, ?, ?, ?)", (key, failures, now, blocked))


def address_key(ip: str) -> str:
    """IPv6 clients get a /64 each (rotating inside it is free): count the /64."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return f"a:{ip}"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return f"a:{addr.ipv4_mapped}"
        return f"a:{ipaddress.ip_network(f'{addr}/64', strict=False)}"
    return f"a:{addr}"


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


def _env_number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise RuntimeError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise RuntimeError(f"{name} must be a finite number >= 0, got {raw!r}")
    return value


# ---------------------------------------------------------------------- the service's parts
class Service(NamedTuple):
    """Everything the login flow needs, framework-free (the Flask and FastAPI apps share it)."""

    secret: str
    settings: Settings
    users: dict[str, dict[str, Any]]
    dummy: dict[str, Any]
    engine: Engine
    db: StateDB
    sessions: Sessions
    challenges: Challenges
    backoff: Backoff
    delivery: Delivery
    user_free: int
    addr_free: int
    echo_codes: bool
    accounts: Accounts  # ``users`` (the seeded file) plus the signed-up accounts: look users up here
    signup_free: int


def build_service(env: Mapping[str, str]) -> Service:
    """Read ``AUTH_*`` and ``RISKENGINE_*`` from ``env`` and open the engine and the state db."""
    secret = env.get("AUTH_SECRET", "")
    if len(secret) < 32:
        raise RuntimeError("AUTH_SECRET must be set to a random string of at least 32 characters")
    settings = Settings.load(env.get("RISKENGINE_CONFIG") or None, env=env)
    if "RISKENGINE_AUDIT_FLUSH_ON_SIGTERM" not in env:
        # a process manager stops the service with SIGTERM: flush the audit buffer first
        settings = settings.with_overrides(audit={"flush_on_sigterm": True})
    if not settings.trust.secret_keys:
        # a per-process key would make every worker (and every restart) reject the others' tokens
        raise RuntimeError("RISKENGINE_TRUST_SECRET_KEYS must be set (device-token signing keys, "
                           "each >= 32 random characters; or [trust] secret_keys in RISKENGINE_CONFIG)")
    users_path = Path(env.get("AUTH_USERS", str(HERE / "users.json")))
    users: dict[str, dict[str, Any]] = {}
    for name, record in json.loads(users_path.read_text()).items():
        key = normalize_username(name)
        if key in users:
            raise RuntimeError(f"{users_path}: users {name!r} and another one are the same after normalisation")
        users[key] = record
    db = StateDB(env.get("AUTH_STATE_DB", str(HERE / "auth_state.db")))
    accounts = Accounts(users, db)
    signed_up = accounts.signed_up()
    if clash := sorted(set(signed_up) & set(users)):
        raise RuntimeError(f"{users_path}: {clash[:5]} also signed up through the service (state db "
                           f"{db.path}): one name, two passwords; rename or remove one")
    dummy = dummy_record({**users, **signed_up})  # signups are hashed at its cost: one cost class
    engine = Engine(settings)
    sessions = Sessions(db, _env_number(env, "AUTH_SESSION_HOURS", 12) * 3600)
    challenges = Challenges(db, secret.encode())
    backoff = Backoff(db, base_s=_env_number(env, "AUTH_BACKOFF_BASE_S", 1),
                      max_s=_env_number(env, "AUTH_BACKOFF_MAX_S", 900),
                      window_s=_env_number(env, "AUTH_BACKOFF_WINDOW_S", 3600))
    user_free = max(1, int(_env_number(env, "AUTH_BACKOFF_USER_FREE", 5)))
    addr_free = max(1, int(_env_number(env, "AUTH_BACKOFF_ADDR_FREE", 20)))
    signup_free = max(1, int(_env_number(env, "AUTH_SIGNUP_ADDR_FREE", 10)))
    delivery = Delivery.from_env(env.get("AUTH_DELIVERY_FAILURES", ""))
    echo_codes = env.get("AUTH_DEV_ECHO_OTP") == "1"
    return Service(secret, settings, users, dummy, engine, db, sessions, challenges,
                   backoff, delivery, user_free, addr_free, echo_codes, accounts, signup_free)


def new_account_record(dummy: Mapping[str, Any], password: str) -> dict[str, Any]:
    """A signed-up account's scrypt record, at the dummy record's cost (the users file's, as
    ``seed.py`` writes them): one cost class, so timing never tells old accounts from new."""
    return hash_password(password, n=int(dummy["n"]), r=int(dummy["r"]), p=int(dummy["p"]))


# ---------------------------------------------------------------------- the app
def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """The service; ``env`` (default ``os.environ``) holds both ``AUTH_*`` and ``RISKENGINE_*``."""
    env = os.environ if env is None else env
    svc = build_service(env)
    secret, settings, dummy, engine, db = svc.secret, svc.settings, svc.dummy, svc.engine, svc.db
    accounts = svc.accounts  # the seeded users file and the signed-up accounts
    sessions, challenges, backoff, delivery = svc.sessions, svc.challenges, svc.backoff, svc.delivery
    user_free, addr_free, echo_codes, signup_free = svc.user_free, svc.addr_free, svc.echo_codes, svc.signup_free
    trust_max_age = int(settings.trust.days * 86400)
    insecure = env.get("AUTH_INSECURE_COOKIES") == "1"

    app = Flask(__name__)
    if env.get("AUTH_BEHIND_PROXY") == "1":
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    app.secret_key = secret
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=not insecure, MAX_CONTENT_LENGTH=16 * 1024)
    app.extensions.update(riskengine=engine, auth_state=db, auth_accounts=accounts, dummy_password_record=dummy)

    def client_ip() -> str:
        # behind a proxy, only the address your proxy vouches for (AUTH_BEHIND_PROXY=1)
        return request.remote_addr or "0.0.0.0"

    def form() -> Mapping[str, Any]:
        body = request.get_json(silent=True)
        return body if isinstance(body, dict) else request.form

    def csrf_token() -> str:
        token = session.get("csrf")
        if not isinstance(token, str):
            token = session["csrf"] = secrets.token_urlsafe(32)
        return token

    def csrf_ok() -> bool:
        """The token must come back in the body or X-CSRF-Token and equal the one in this
        browser's (signed) session cookie: another site can make the browser send the cookie,
        not read the token."""
        expected = session.get("csrf")
        sent = request.headers.get("X-CSRF-Token") or form().get("csrf_token")
        return isinstance(expected, str) and isinstance(sent, str) and hmac.compare_digest(expected, sent)

    def start_session(user: str) -> None:
        csrf = session.get("csrf")
        sessions.revoke(session.get("sid"))  # this browser's previous session, if any
        session.clear()  # no fixation: a pre-login cookie never becomes a logged-in one
        session["sid"] = sessions.create(user)
        if isinstance(csrf, str):
            session["csrf"] = csrf

    def device_id() -> tuple[str, bool]:
        current = request.cookies.get(DEVICE_ID_COOKIE, "")
        if _DEVICE_ID.fullmatch(current):
            return current, False
        return secrets.token_urlsafe(16), True

    def request_attempt(username: str, now: datetime) -> tuple[LoginAttempt, str | None]:
        """This request's attempt for ``username`` — the login's and the signup's alike, so the
        account's first login from the signup browser is the signup's device and place: client
        address, User-Agent, the ``did`` device id, the ``rdt`` device token. The second value
        is a new device id to set as the ``did`` cookie (None: the browser has one)."""
        did, new_did = device_id()
        token = request.cookies.get(TRUST_COOKIE) or None
        fields_in = {
            "user_id": username, "timestamp": now, "ip": client_ip(),
            # non-UTF-8 header bytes arrive as latin-1 in WSGI; keep the string printable
            "user_agent": request.headers.get("User-Agent", "")[:2048], "device_id": did,
            "session_id": secrets.token_urlsafe(12), "enrolled_factors": list(CHANNELS)}
        try:
            attempt = LoginAttempt(**fields_in, device_token=token)
        except ValidationError:
            if token is None:
                raise
            attempt = LoginAttempt(**fields_in)  # a malformed cookie is no token at all
        return attempt, did if new_did else None

    def remember_device(resp: Response, new_did: str | None) -> None:
        if new_did is not None:
            resp.set_cookie(DEVICE_ID_COOKIE, new_did, max_age=2 * 365 * 86400, httponly=True, samesite="Lax",
                            secure=not insecure)

    @app.before_request
    def check_csrf() -> tuple[Response, int] | None:
        if request.method == "POST" and not csrf_ok():
            return jsonify(status="csrf_failed", detail="GET /csrf first; send the token as csrf_token "
                           "or X-CSRF-Token with the same cookies"), 403
        return None

    @app.get("/healthz")
    def healthz() -> Response:  # liveness: the process answers (counters for monitoring)
        return jsonify(engine.health())

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:  # readiness: the store answers, GeoIP loaded
        ready, body = readiness(engine)
        return jsonify(body), 200 if ready else 503

    @app.get("/csrf")
    @app.get("/login")
    def login_form() -> Response:
        token = csrf_token()
        if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":  # a browser
            return Response(_LOGIN_FORM.format(csrf=token), mimetype="text/html")
        return jsonify(csrf_token=token)

    @app.post("/login")
    def login() -> tuple[Response, int]:
        fields = form()
        username = normalize_username(str(fields.get("username", ""))[:MAX_NAME_LENGTH])
        password = str(fields.get("password", ""))
        now = datetime.now(UTC)
        ip = client_ip()
        user_key, addr_key = f"u:{username}", address_key(ip)
        keys = {user_key: user_free, addr_key: addr_free}
        wait = backoff.admit(keys, now.timestamp())  # counts this attempt as a failure up front
        if wait > 0:  # not even checked: a blocked guesser learns nothing, and costs no scrypt
            resp = jsonify(status="too_many_attempts")
            resp.headers["Retry-After"] = str(math.ceil(wait))
            return resp, 429
        record = accounts.get(username)
        if not check_password(record or dummy, password) or record is None:
            if username:  # known or not: same answers (the back-off counted it in admit)
                try:
                    engine.record_failure(username, ip, now)
                except ValidationError:
                    pass  # an unusable IP or name: nothing to count against
            return jsonify(status="invalid_credentials"), 401
        # the user's count goes; the address's only loses this attempt (one own account must not
        # reset a count other guesses from that address built)
        backoff.passed(keys, now.timestamp(), forget=(user_key,))
        attempt, new_did = request_attempt(username, now)
        decision = engine.score(attempt)
        log.info("login user=%s action=%s risk=%.3f reasons=%s decision=%s", username, decision.action,
                 decision.risk, ",".join(decision.reason_codes), decision.decision_id)
        resp, status = _decide(decision.action, decision.decision_id, username)
        remember_device(resp, new_did)
        return resp, status

    @app.post("/signup")
    def signup() -> tuple[Response, int]:
        fields = form()
        username = normalize_username(str(fields.get("username", ""))[:MAX_NAME_LENGTH])
        password = str(fields.get("password", ""))
        problem = signup_problem(username, password)
        if problem is not None:  # the rules only: says nothing about which accounts exist
            return jsonify(status=problem[0], detail=problem[1]), 400
        now = datetime.now(UTC)
        # every signup that passed the rules counts, created or refused, and none is given back:
        # a flood of new accounts and a walk through taken names both cost the same back-off
        wait = backoff.admit({f"signup/{address_key(client_ip())}": signup_free}, now.timestamp())
        if wait > 0:
            resp = jsonify(status="too_many_attempts")
            resp.headers["Retry-After"] = str(math.ceil(wait))
            return resp, 429
        attempt, new_did = request_attempt(username, now)  # a request that cannot be one creates nothing
        record = new_account_record(dummy, password)  # scrypt before the name is looked at: same cost
        if not accounts.create(username, record, now.timestamp()):
            return jsonify(status="username_taken", detail="this username is taken; choose another"), 409
        # only for the account this request created (a taken name never gets here: its profile
        # is someone else's), once, from the browser the user will log in from
        if not engine.record_signup(attempt):
            log.warning("signup user=%s: the engine did not learn the signup session (store down or the "
                        "profile not blank): the first login is judged without it", username)
        log.info("signup user=%s", username)
        resp = jsonify(status="created")
        remember_device(resp, new_did)
        return resp, 201

    def _decide(action: str, decision_id: str, username: str) -> tuple[Response, int]:
        if action == "allow":
            start_session(username)
            return jsonify(status="ok", decision="allow"), 200
        if action == "deny":
            return jsonify(status="denied", decision="deny"), 403
        challenge_id = secrets.token_urlsafe(16)
        code = new_code()
        tried, at = delivery.send(0, username, code)
        if at < 0:
            engine.record_outcome(decision_id, "abandoned", channels=tried, attempts=0)  # type: ignore[arg-type]
            return jsonify(status="delivery_failed", decision="challenge"), 503
        challenges.open(challenge_id, {
            "user": username, "decision_id": decision_id, "mac": challenges.mac(challenge_id, code),
            "channels": tried, "channel_index": at, "started": time.time(), "expires": time.time() + OTP_TTL_S})
        session["challenge"] = challenge_id
        body: dict[str, Any] = {"status": "otp_required", "decision": "challenge",
                                "challenge_id": challenge_id, "channel": tried[-1]}
        if echo_codes:
            body["dev_code"] = code
        return jsonify(body), 202

    @app.post("/otp")
    def otp() -> tuple[Response, int]:
        fields = form()
        challenge_id = session.get("challenge")
        if not isinstance(challenge_id, str):
            return jsonify(status="no_open_challenge"), 400
        if fields.get("resend"):  # "didn't get it": next channel, new code
            current = challenges.get(challenge_id)
            if current is None:
                return jsonify(status="no_open_challenge"), 400
            attempts, state = current
            code = new_code()
            tried, at = delivery.send(state["channel_index"] + 1, state["user"], code)
            state["channels"] += tried
            if at < 0:
                return close(challenge_id, state, attempts, "abandoned", 503, "delivery_failed")
            state.update(mac=challenges.mac(challenge_id, code), channel_index=at)
            challenges.update(challenge_id, state)
            body: dict[str, Any] = {"status": "otp_resent", "channel": state["channels"][-1]}
            if echo_codes:
                body["dev_code"] = code
            return jsonify(body), 202
        counted = challenges.attempt(challenge_id)
        if counted is None:  # closed, expired, or its attempts are spent (a parallel guess took the last)
            return jsonify(status="challenge_closed"), 403
        attempts, state = counted
        code = str(fields.get("code", ""))
        if hmac.compare_digest(challenges.mac(challenge_id, code), state["mac"]):
            trust = str(fields.get("trust_device", "")).lower() in ("1", "true", "yes", "on")
            return close(challenge_id, state, attempts, "verified", 200, "ok", trust=trust)
        if attempts >= MAX_OTP_ATTEMPTS:
            return close(challenge_id, state, attempts, "failed", 403, "too_many_attempts")
        return jsonify(status="wrong_code", attempts_left=MAX_OTP_ATTEMPTS - attempts), 401

    def close(challenge_id: str, state: dict[str, Any], attempts: int, outcome: str, http_status: int,
              status: str, *, trust: bool = False) -> tuple[Response, int]:
        session.pop("challenge", None)
        if not challenges.take(challenge_id):  # a parallel request closed it first
            return jsonify(status="challenge_closed"), 403
        token: str | None = None
        try:
            token = engine.record_outcome(
                state["decision_id"], outcome, channels=state["channels"], attempts=attempts,  # type: ignore[arg-type]
                trust_device=trust, seconds_to_verify=max(0.0, time.time() - state["started"]))
        except UnknownDecisionError:
            pass  # the engine's own pending context expired (or its store was down at scoring time)
        if outcome == "verified":
            start_session(state["user"])
        resp = jsonify(status=status)
        if token:
            resp.set_cookie(TRUST_COOKIE, token, max_age=trust_max_age, httponly=True, secure=True, samesite="Lax")
        return resp, http_status

    @app.get("/me")
    def me() -> tuple[Response, int]:
        user = sessions.user(session.get("sid"))
        return (jsonify(user=user), 200) if user else (jsonify(status="not_logged_in"), 401)

    @app.post("/logout")
    def logout() -> tuple[Response, int]:
        sessions.revoke(session.get("sid"))
        session.clear()
        return jsonify(status="ok"), 200

    return app


_LOGIN_FORM = """<!doctype html>
<title>Sign in</title>
<form method="post" action="/login">
  <input type="hidden" name="csrf_token" value="{csrf}">
  <label>Username <input name="username" autocomplete="username"></label>
  <label>Password <input name="password" type="password" autocomplete="current-password"></label>
  <button>Sign in</button>
</form>
"""
