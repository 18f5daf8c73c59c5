"""The flagship example: a FastAPI login service with risk-based step-up, on uvicorn.

The same HTTP API and the same hardening as the Flask service in ``examples/auth_service/``
(whose framework-free parts — scrypt records, the sqlite state for sessions, OTP challenges and
back-off, channel delivery — it reuses), with the request glue done by
``riskengine.integrations.fastapi``:

    GET /csrf (or GET /login) ─► CSRF token bound to a pre-session cookie
    POST /signup ─ no/bad CSRF token ──────────────────────────────► 403
          │ username or password against the rules ───────────────► 400 + which rule
          │ address in signup back-off ───────────────────────────► 429 + Retry-After
          │ scrypt record (always) ─ name taken ──────────────────► 409
          ▼ INSERT users row (the state db's primary key decides a race)
    await engine.arecord_signup(ctx.attempt(user_id=…)) ─► first history → 201
    POST /login ─ no/bad CSRF token ───────────────────────────────► 403
          │ user or address in back-off ───────────────────────────► 429 + Retry-After
          │ password check ─ fail ─► engine.record_failure           → 401 (+ back-off)
          ▼ ok
    engine.score(ctx.attempt(user_id=…)) ─ allow ─► server-side session → 200
          │ challenge                        └ deny                      → 403
          ▼
    POST /otp ─ right code ─► set_device_token(resp, engine.record_outcome("verified", trust))
              ─ 5th wrong ──► engine.record_outcome("failed")             → 403
    POST /logout ─► the session row is deleted: a copied cookie stops working

Clients learn only allow / challenge / deny; risk and reasons are logged, never returned.

Cookies (all HttpOnly, SameSite=Lax; Secure unless ``AUTH_INSECURE_COOKIES=1``, except ``rdt``
which is always Secure): ``pre`` a random pre-session id the CSRF token is an HMAC of; ``sid``
the server-side session id; ``chl`` the open challenge's id; ``did`` a random device id
(familiarity only); ``rdt`` the engine's device token (trust).

Configuration: the Flask example's ``AUTH_*`` and ``RISKENGINE_*`` variables, except that
``AUTH_TRUSTED_PROXIES=N`` (the number of proxies in front, default 0) replaces
``AUTH_BEHIND_PROXY=1`` (which still means one), and ``AUTH_GEO_HEADERS=cloudflare`` reads
Cloudflare's country header. Run it with
``uvicorn --factory app:create_app --workers 4 --no-proxy-headers`` (the adapter, not uvicorn,
decides which forwarded address to believe).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import logging
import math
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from riskengine import LoginAttempt, UnknownDecisionError
from riskengine.core.health import readiness
from riskengine.integrations import CLOUDFLARE_GEO, AttemptContext
from riskengine.integrations.fastapi import attempt_context, set_device_token

HERE = Path(__file__).resolve().parent


def _flask_example() -> ModuleType:
    """The Flask example's module, under its own name (both files are ``app.py``)."""
    name = "auth_service_flask_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE.parent / "auth_service" / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_shared = _flask_example()  # its framework-free parts: passwords, state db, delivery
(_DEVICE_ID, _LOGIN_FORM, CHANNELS, MAX_NAME_LENGTH, MAX_OTP_ATTEMPTS, OTP_TTL_S, Backoff, Challenges, Delivery,
 Sessions, StateDB, _env_number, address_key, build_service, check_password, dummy_record, hash_password,
 new_account_record, new_code, normalize_username, signup_problem) = (getattr(_shared, n) for n in (
    "_DEVICE_ID", "_LOGIN_FORM", "CHANNELS", "MAX_NAME_LENGTH", "MAX_OTP_ATTEMPTS", "OTP_TTL_S", "Backoff",
    "Challenges", "Delivery", "Sessions", "StateDB", "_env_number", "address_key", "build_service", "check_password",
    "dummy_record", "hash_password", "new_account_record", "new_code", "normalize_username", "signup_problem"))

__all__ = ["create_app", "hash_password"]
MAX_BODY = 16 * 1024
PRE, SID, CHALLENGE, DEVICE_ID = "pre", "sid", "chl", "did"
log = logging.getLogger("auth_service_fastapi")


def _trusted_proxies(env: Mapping[str, str]) -> int:
    if env.get("AUTH_TRUSTED_PROXIES"):
        return int(_env_number(env, "AUTH_TRUSTED_PROXIES", 0))
    return 1 if env.get("AUTH_BEHIND_PROXY") == "1" else 0


def create_app(env: Mapping[str, str] | None = None) -> FastAPI:
    """The service; ``env`` (default ``os.environ``) holds both ``AUTH_*`` and ``RISKENGINE_*``."""
    env = os.environ if env is None else env
    geo = env.get("AUTH_GEO_HEADERS", "")
    if geo not in ("", "cloudflare"):
        raise RuntimeError(f"AUTH_GEO_HEADERS must be empty or 'cloudflare', got {geo!r}")
    svc = build_service(env)  # settings, users, the engine, the state db: shared with the Flask app
    secret, settings, dummy, engine, db = svc.secret, svc.settings, svc.dummy, svc.engine, svc.db
    accounts = svc.accounts  # the seeded users file and the signed-up accounts
    sessions, challenges, backoff, delivery = svc.sessions, svc.challenges, svc.backoff, svc.delivery
    user_free, addr_free, echo_codes, signup_free = svc.user_free, svc.addr_free, svc.echo_codes, svc.signup_free
    client = attempt_context(trusted_proxies=_trusted_proxies(env), geo_headers=CLOUDFLARE_GEO if geo else None)
    secure = env.get("AUTH_INSECURE_COOKIES") != "1"
    csrf_key = hashlib.sha256(b"csrf:" + secret.encode()).digest()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.close()  # flushes the audit log: a graceful stop loses no decision

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.auth_state, app.state.dummy_password_record = engine, db, dummy
    app.state.auth_accounts = accounts

    def cookie(resp: Response, name: str, value: str, max_age: int | None = None) -> None:
        resp.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure)

    def csrf_for(pre: str) -> str:
        return hmac.new(csrf_key, pre.encode(), "sha256").hexdigest()

    async def body(request: Request) -> dict[str, Any]:
        chunks, size = [], 0
        async for chunk in request.stream():  # capped while reading, whatever Content-Length says
            size += len(chunk)
            if size > MAX_BODY:
                return {}
            chunks.append(chunk)
        raw = b"".join(chunks)
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}
        return dict(parse_qsl(raw.decode("utf-8", "replace")))

    def csrf_ok(request: Request, fields: Mapping[str, Any]) -> bool:
        """The token must equal the HMAC of this browser's pre-session cookie: another site
        can make the browser send the cookie, not read the token."""
        pre = request.cookies.get(PRE, "")
        sent = request.headers.get("X-CSRF-Token") or fields.get("csrf_token")
        return bool(pre) and isinstance(sent, str) and hmac.compare_digest(csrf_for(pre), sent)

    def csrf_failed() -> JSONResponse:
        return JSONResponse({"status": "csrf_failed", "detail": "GET /csrf first; send the token as csrf_token "
                             "or X-CSRF-Token with the same cookies"}, 403)

    def request_attempt(request: Request, ctx: AttemptContext, username: str,
                        now: datetime) -> tuple[LoginAttempt, str | None]:
        """This request's attempt for ``username`` — the login's and the signup's alike, so the
        account's first login from the signup browser is the signup's device and place. The
        second value is a new device id to set as the ``did`` cookie (None: the browser has one)."""
        did = request.cookies.get(DEVICE_ID, "")
        new_did = not _DEVICE_ID.fullmatch(did)
        if new_did:
            did = secrets.token_urlsafe(16)
        extra = {"timestamp": now, "device_id": did, "session_id": secrets.token_urlsafe(12),
                 "enrolled_factors": list(CHANNELS)}
        try:
            attempt = ctx.attempt(user_id=username, **extra)
        except ValidationError:
            if ctx.device_token is None:
                raise
            attempt = ctx.attempt(user_id=username, device_token=None, **extra)  # a malformed cookie is no token
        return attempt, did if new_did else None

    def remember_device(resp: Response, new_did: str | None) -> None:
        if new_did is not None:
            cookie(resp, DEVICE_ID, new_did, max_age=2 * 365 * 86400)

    def start_session(resp: Response, request: Request, user: str) -> None:
        sessions.revoke(request.cookies.get(SID))  # this browser's previous session, if any
        cookie(resp, SID, sessions.create(user), max_age=int(sessions.ttl_s))  # a new id: no fixation

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:  # liveness: the process answers (counters for monitoring)
        return engine.health()

    @app.get("/readyz")
    def readyz() -> JSONResponse:  # readiness: the store answers, GeoIP loaded
        ready, body = readiness(engine)
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/csrf")
    @app.get("/login")
    def login_form(request: Request) -> Response:
        pre = request.cookies.get(PRE, "")
        new = len(pre) != 43
        if new:
            pre = secrets.token_urlsafe(32)
        token = csrf_for(pre)
        accept = request.headers.get("accept", "")
        resp: Response = HTMLResponse(_LOGIN_FORM.format(csrf=token)) \
            if "text/html" in accept and "application/json" not in accept else JSONResponse({"csrf_token": token})
        if new:
            cookie(resp, PRE, pre)
        return resp

    @app.post("/login")
    async def login(request: Request) -> Response:
        fields = await body(request)
        if not csrf_ok(request, fields):
            return csrf_failed()
        # the adapter's dependency is a plain callable too (Depends(client) in a module-level app)
        return await run_in_threadpool(do_login, request, client(request), fields)

    def do_login(request: Request, ctx: AttemptContext, fields: Mapping[str, Any]) -> Response:
        username = normalize_username(str(fields.get("username", ""))[:MAX_NAME_LENGTH])
        password = str(fields.get("password", ""))
        now = datetime.now(UTC)
        user_key, addr_key = f"u:{username}", address_key(ctx.ip)
        keys = {user_key: user_free, addr_key: addr_free}
        wait = backoff.admit(keys, now.timestamp())  # counts this attempt as a failure up front
        if wait > 0:  # not even checked: a blocked guesser learns nothing, and costs no scrypt
            return JSONResponse({"status": "too_many_attempts"}, 429, headers={"Retry-After": str(math.ceil(wait))})
        record = accounts.get(username)
        if not check_password(record or dummy, password) or record is None:
            if username:  # known or not: same answers (the back-off counted it in admit)
                try:
                    engine.record_failure(username, ctx.ip, now)
                except ValidationError:
                    pass
            return JSONResponse({"status": "invalid_credentials"}, 401)
        backoff.passed(keys, now.timestamp(), forget=(user_key,))  # the address keeps its other failures
        attempt, new_did = request_attempt(request, ctx, username, now)
        decision = engine.score(attempt)
        log.info("login user=%s action=%s risk=%.3f reasons=%s decision=%s", username, decision.action,
                 decision.risk, ",".join(decision.reason_codes), decision.decision_id)
        resp = decide(request, decision.action, decision.decision_id, username)
        remember_device(resp, new_did)
        return resp

    @app.post("/signup")
    async def signup(request: Request) -> Response:
        fields = await body(request)
        if not csrf_ok(request, fields):
            return csrf_failed()
        username = normalize_username(str(fields.get("username", ""))[:MAX_NAME_LENGTH])
        password = str(fields.get("password", ""))
        problem = signup_problem(username, password)
        if problem is not None:  # the rules only: says nothing about which accounts exist
            return JSONResponse({"status": problem[0], "detail": problem[1]}, 400)
        ctx = client(request)
        now = datetime.now(UTC)
        attempt, new_did = request_attempt(request, ctx, username, now)  # a request that cannot be one creates nothing
        # blocking work (the back-off's write transaction, scrypt, the INSERT) off the event loop
        refused = await run_in_threadpool(create_account, ctx, username, password, now)
        if refused is not None:
            return refused
        # only for the account this request created, once, from the browser the user logs in from
        if not await engine.arecord_signup(attempt):
            log.warning("signup user=%s: the engine did not learn the signup session (store down or the "
                        "profile not blank): the first login is judged without it", username)
        log.info("signup user=%s", username)
        resp = JSONResponse({"status": "created"}, 201)
        remember_device(resp, new_did)
        return resp

    def create_account(ctx: AttemptContext, username: str, password: str, now: datetime) -> Response | None:
        """The account's row, or the refusal (429 in back-off, 409 a taken name). Every signup
        that passed the rules counts toward the address's back-off, created or refused."""
        wait = backoff.admit({f"signup/{address_key(ctx.ip)}": signup_free}, now.timestamp())
        if wait > 0:
            return JSONResponse({"status": "too_many_attempts"}, 429, headers={"Retry-After": str(math.ceil(wait))})
        record = new_account_record(dummy, password)  # scrypt before the name is looked at: same cost
        if not accounts.create(username, record, now.timestamp()):
            return JSONResponse({"status": "username_taken", "detail": "this username is taken; choose another"}, 409)
        return None

    def decide(request: Request, action: str, decision_id: str, username: str) -> Response:
        if action == "allow":
            resp = JSONResponse({"status": "ok", "decision": "allow"}, 200)
            start_session(resp, request, username)
            return resp
        if action == "deny":
            return JSONResponse({"status": "denied", "decision": "deny"}, 403)
        challenge_id = secrets.token_urlsafe(16)
        code = new_code()
        tried, at = delivery.send(0, username, code)
        if at < 0:
            engine.record_outcome(decision_id, "abandoned", channels=tried, attempts=0)  # type: ignore[arg-type]
            return JSONResponse({"status": "delivery_failed", "decision": "challenge"}, 503)
        challenges.open(challenge_id, {
            "user": username, "decision_id": decision_id, "mac": challenges.mac(challenge_id, code),
            "channels": tried, "channel_index": at, "started": time.time(), "expires": time.time() + OTP_TTL_S})
        out: dict[str, Any] = {"status": "otp_required", "decision": "challenge", "challenge_id": challenge_id,
                               "channel": tried[-1]}
        if echo_codes:
            out["dev_code"] = code
        resp = JSONResponse(out, 202)
        cookie(resp, CHALLENGE, challenge_id, max_age=OTP_TTL_S)
        return resp

    @app.post("/otp")
    async def otp(request: Request) -> Response:
        fields = await body(request)
        if not csrf_ok(request, fields):
            return csrf_failed()
        return await run_in_threadpool(do_otp, request, fields)

    def do_otp(request: Request, fields: Mapping[str, Any]) -> Response:
        challenge_id = request.cookies.get(CHALLENGE)
        if not challenge_id:
            return JSONResponse({"status": "no_open_challenge"}, 400)
        if fields.get("resend"):  # "didn't get it": next channel, new code
            current = challenges.get(challenge_id)
            if current is None:
                return JSONResponse({"status": "no_open_challenge"}, 400)
            attempts, state = current
            code = new_code()
            tried, at = delivery.send(state["channel_index"] + 1, state["user"], code)
            state["channels"] += tried
            if at < 0:
                return close(challenge_id, state, attempts, "abandoned", 503, "delivery_failed")
            state.update(mac=challenges.mac(challenge_id, code), channel_index=at)
            challenges.update(challenge_id, state)
            out: dict[str, Any] = {"status": "otp_resent", "channel": state["channels"][-1]}
            if echo_codes:
                out["dev_code"] = code
            return JSONResponse(out, 202)
        counted = challenges.attempt(challenge_id)  # one atomic statement: parallel guesses cannot share a count
        if counted is None:
            return JSONResponse({"status": "challenge_closed"}, 403)
        attempts, state = counted
        code = str(fields.get("code", ""))
        if hmac.compare_digest(challenges.mac(challenge_id, code), state["mac"]):
            trust = str(fields.get("trust_device", "")).lower() in ("1", "true", "yes", "on")
            return close(challenge_id, state, attempts, "verified", 200, "ok", trust=trust, request=request)
        if attempts >= MAX_OTP_ATTEMPTS:
            return close(challenge_id, state, attempts, "failed", 403, "too_many_attempts")
        return JSONResponse({"status": "wrong_code", "attempts_left": MAX_OTP_ATTEMPTS - attempts}, 401)

    def close(challenge_id: str, state: dict[str, Any], attempts: int, outcome: str, http_status: int,
              status: str, *, trust: bool = False, request: Request | None = None) -> Response:
        if not challenges.take(challenge_id):  # a parallel request closed it first
            return JSONResponse({"status": "challenge_closed"}, 403)
        token: str | None = None
        try:
            token = engine.record_outcome(
                state["decision_id"], outcome, channels=state["channels"], attempts=attempts,  # type: ignore[arg-type]
                trust_device=trust, seconds_to_verify=max(0.0, time.time() - state["started"]))
        except UnknownDecisionError:
            pass  # the engine's own pending context expired (or its store was down at scoring time)
        resp = JSONResponse({"status": status}, http_status)
        resp.delete_cookie(CHALLENGE, httponly=True, samesite="lax", secure=secure)
        if outcome == "verified" and request is not None:
            start_session(resp, request, state["user"])
        set_device_token(resp, token, max_age_days=settings.trust.days)
        return resp

    @app.get("/me")
    def me(request: Request) -> JSONResponse:
        user = sessions.user(request.cookies.get(SID))
        return JSONResponse({"user": user}, 200) if user else JSONResponse({"status": "not_logged_in"}, 401)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        fields = await body(request)
        if not csrf_ok(request, fields):
            return csrf_failed()
        sessions.revoke(request.cookies.get(SID))
        resp = JSONResponse({"status": "ok"}, 200)
        resp.delete_cookie(SID, httponly=True, samesite="lax", secure=secure)
        return resp

    return app
