"""Load test: the example service under gunicorn (4 workers) on loopback, one shared profile
store (sqlite or a throwaway redis-server) and one audit root, driven over HTTP.

    python examples/auth_service/loadtest.py --store redis --requests 3000
    python examples/auth_service/loadtest.py --service fastapi --store redis   # the FastAPI example on uvicorn

Prints requests/s, the latency the engine added (``latency_us`` of every audited decision),
client-side latency, and whether the audit log holds exactly one decision row per scored
login once the service has shut down. Loopback only; bounded by ``--requests``.

Two load generators:

* ``--generator python`` (default): a small asyncio HTTP/1.1 client whose virtual users keep
  their cookies, log in with the right password most of the time, and answer OTP challenges
  with the code (the service runs with ``AUTH_DEV_ECHO_OTP=1``) — the whole login journey.
* ``--generator wrk``: Debian's ``wrk`` (``apt-get install wrk``; ``scripts/system-deps.sh``
  installs it) hammering ``POST /login`` for ``--seconds`` with a Lua script that cycles through
  the users with their right passwords and counts every scored response (200 allow,
  202 challenge, 403 deny, 503 delivery failed) — raw throughput of password check + score().

Either way the audit must hold exactly one decision row per scored login.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from seed import load_user  # noqa: E402

SCORED_STATUSES = ("ok", "otp_required", "denied", "delivery_failed")  # /login answers after score()


@dataclass
class Stats:
    requests: int = 0
    scored: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    login_ms: list[float] = field(default_factory=list)
    challenges_closed: int = 0
    errors: int = 0


async def http(port: int, method: str, path: str, body: dict[str, Any] | None,
               cookies: dict[str, str], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = json.dumps(body or {}).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             "Content-Type: application/json", f"Content-Length: {len(payload)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    if cookies:
        lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()))
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, content = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.lower() == "set-cookie":
            jar: SimpleCookie = SimpleCookie()
            jar.load(value.strip())
            for key, morsel in jar.items():
                cookies[key] = morsel.value
    return int(status_line.split()[1]), json.loads(content or b"{}")


async def virtual_user(port: int, users: list[int], deadline_requests: int, stats: Stats,
                       rng: random.Random) -> None:
    jars: dict[int, dict[str, str]] = {}
    csrf: dict[int, str] = {}
    while stats.requests < deadline_requests:
        i = rng.choice(users)
        name, password = load_user(i)
        jar = jars.setdefault(i, {})
        headers = {"User-Agent": f"Mozilla/5.0 (loadtest user {i % 7})",
                   "X-Forwarded-For": f"81.2.69.{i % 200 + 1}"}
        if i not in csrf:  # the browser loads the login form first: a CSRF token for its pre-session
            try:
                csrf[i] = str((await http(port, "GET", "/csrf", None, jar, headers))[1]["csrf_token"])
            except (OSError, ValueError, KeyError):
                stats.errors += 1
                continue
            stats.requests += 1
        headers["X-CSRF-Token"] = csrf[i]
        wrong = rng.random() < 0.05
        t = time.perf_counter()
        try:
            status, body = await http(port, "POST", "/login",
                                      {"username": name, "password": "nope" if wrong else password},
                                      jar, headers)
        except (OSError, ValueError):
            stats.errors += 1
            continue
        stats.login_ms.append((time.perf_counter() - t) * 1000)
        stats.requests += 1
        key = str(body.get("status", status))
        stats.by_status[key] = stats.by_status.get(key, 0) + 1
        if body.get("status") in SCORED_STATUSES:
            stats.scored += 1
        if body.get("status") != "otp_required":
            continue
        code = body["dev_code"]
        if rng.random() < 0.1:  # a typo first
            await http(port, "POST", "/otp", {"code": "000000" if code != "000000" else "111111"},
                       jar, headers)
            stats.requests += 1
        status, body = await http(port, "POST", "/otp",
                                  {"code": code, "trust_device": rng.random() < 0.3}, jar, headers)
        stats.requests += 1
        if body.get("status") == "ok":
            stats.challenges_closed += 1


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("service did not become healthy")


def audit_figures(root: Path) -> dict[str, Any]:
    import duckdb

    files = [str(p) for p in root.glob("decisions/**/*.parquet")]
    if not files:
        return {"decisions": 0}
    con = duckdb.connect()
    n, distinct, p50, p99 = con.execute(
        "SELECT count(*), count(DISTINCT decision_id), quantile_cont(latency_us, 0.5), "
        "quantile_cont(latency_us, 0.99) FROM read_parquet(?)", [files]).fetchone()  # type: ignore[misc]
    actions = dict(con.execute("SELECT action, count(*) FROM read_parquet(?) GROUP BY 1", [files]).fetchall())
    ch_files = [str(p) for p in root.glob("challenges/**/*.parquet")]
    outcomes = dict(con.execute("SELECT outcome, count(*) FROM read_parquet(?) GROUP BY 1",
                                [ch_files]).fetchall()) if ch_files else {}
    return {"decisions": n, "distinct_ids": distinct, "engine_p50_us": p50, "engine_p99_us": p99,
            "actions": actions, "challenge_outcomes": outcomes}


_WRK_SCRIPT = """
local users = {%(users)s}
local counter = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) scored = 0; denied_pw = 0; other = 0 end
function request()
  counter = counter + 1
  local u = users[(counter %% #users) + 1]
  return wrk.format("POST", "/login", {["Content-Type"] = "application/json",
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    ["Cookie"] = "%(cookie)s", ["X-CSRF-Token"] = "%(csrf)s"},
    '{"username":"' .. u[1] .. '","password":"' .. u[2] .. '"}')
end
function response(status, headers, body)
  if status == 200 or status == 202 or status == 403 or status == 503 then scored = scored + 1
  elseif status == 401 then denied_pw = denied_pw + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local s, d, o = 0, 0, 0
  for _, t in ipairs(threads) do s = s + t:get("scored"); d = d + t:get("denied_pw"); o = o + t:get("other") end
  io.write(string.format('WRK_RESULT {"requests": %%d, "seconds": %%f, "scored": %%d, "bad_password": %%d, ' ..
    '"other": %%d, "p50_ms": %%f, "p99_ms": %%f, "socket_errors": %%d}\\n', summary.requests,
    summary.duration / 1e6, s, d, o, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def csrf_pair(port: int) -> tuple[str, str]:
    """A pre-session cookie and its CSRF token, from GET /csrf."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/csrf", timeout=10) as resp:
        cookie = "; ".join(h.split(";", 1)[0] for h in resp.headers.get_all("Set-Cookie") or [])
        token = json.loads(resp.read())["csrf_token"]
    return cookie, str(token)


def drive_wrk(port: int, n_users: int, seconds: int, concurrency: int, tmp: Path) -> dict[str, Any]:
    """Run wrk against POST /login; returns its parsed WRK_RESULT line."""
    import shutil

    if shutil.which("wrk") is None:
        raise SystemExit("wrk not installed: apt-get install wrk (scripts/system-deps.sh does)")
    users = ", ".join(f'{{"{name}", "{password}"}}' for name, password in map(load_user, range(n_users)))
    cookie, token = csrf_pair(port)  # one pre-session for the whole run: wrk keeps no cookies
    script = tmp / "login.lua"
    script.write_text(_WRK_SCRIPT % {"users": users, "cookie": cookie, "csrf": token})
    done = subprocess.run(["wrk", "-t", "2", "-c", str(concurrency), "-d", f"{seconds}s", "-s", str(script),
                           f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(line[len("WRK_RESULT "):])
    return result


def server_command(service: str, workers: int, port: int, access_log: Path) -> list[str]:
    """Flask under gunicorn, or the FastAPI example (same HTTP API) under uvicorn."""
    if service == "fastapi":
        return [sys.executable, "-m", "uvicorn", "--factory", "app:create_app", "--app-dir",
                str(HERE.parent / "auth_service_fastapi"), "--workers", str(workers), "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "info", "--no-server-header",
                "--no-proxy-headers"]  # the adapter counts the trusted hops (AUTH_BEHIND_PROXY=1), not uvicorn
    return [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
            "--chdir", str(HERE), "--log-level", "warning", "--access-logfile", str(access_log),
            "app:create_app()"]


def run(store: str, workers: int, requests: int, concurrency: int, n_users: int,
        generator: str = "python", seconds: int = 10, service: str = "flask") -> dict[str, Any]:
    from riskengine.stores.redis_server import LocalRedisServer, free_port

    tmp = Path(tempfile.mkdtemp(prefix="riskengine-loadtest-"))
    from app import hash_password

    users = {load_user(i)[0]: hash_password(load_user(i)[1], n=2**10) for i in range(n_users)}
    (tmp / "users.json").write_text(json.dumps(users))
    redis_server = None
    if store == "redis":
        redis_server = LocalRedisServer().start()
        store_url = redis_server.url
    else:
        store_url = f"sqlite:///{tmp / 'profiles.db'}"
    root = tmp / "audit"
    port = free_port()
    env = {**os.environ, "AUTH_SECRET": secrets.token_urlsafe(32), "AUTH_USERS": str(tmp / "users.json"),
           "AUTH_STATE_DB": str(tmp / "challenges.db"), "AUTH_DEV_ECHO_OTP": "1",
           "AUTH_INSECURE_COOKIES": "1", "AUTH_BEHIND_PROXY": "1",
           "AUTH_DELIVERY_FAILURES": "whatsapp=0.15,sms=0.05",
           "RISKENGINE_STORE_URL": store_url, "RISKENGINE_AUDIT_ROOT": str(root),
           "RISKENGINE_TRUST_SECRET_KEYS": secrets.token_urlsafe(48)}
    # uvicorn writes its access log (INFO, '"POST /login HTTP/1.1" 200 OK') to stdout
    log_out = (tmp / "access.log").open("w") if service == "fastapi" else None
    proc = subprocess.Popen(server_command(service, workers, port, tmp / "access.log"), env=env, stdout=log_out)
    try:
        wait_healthy(port, proc)
        stats = Stats()
        rng = random.Random(7)
        started = time.perf_counter()
        if generator == "wrk":
            wrk = drive_wrk(port, n_users, seconds, concurrency, tmp)
        else:
            async def drive() -> None:
                await asyncio.gather(*(virtual_user(port, list(range(n_users)), requests, stats,
                                                    random.Random(rng.random())) for _ in range(concurrency)))

            asyncio.run(drive())
        elapsed = time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGTERM)  # graceful: workers finish, engines close, audit flushes
        proc.wait(60)
        if log_out is not None:
            log_out.close()
        if redis_server is not None:
            redis_server.stop()
    audit = audit_figures(root)
    # what the server answered, from gunicorn's access log: a duration-bounded client (wrk) does
    # not see the responses still in flight when it stops, the server scored them all the same
    scored_statuses = (" 200 ", " 202 ", " 403 ", " 503 ")
    served = [ln for ln in (tmp / "access.log").read_text().splitlines() if '"POST /login' in ln]
    server_scored = sum(1 for ln in served if any(st in ln for st in scored_statuses))
    if generator == "wrk":
        return {
            "store": store, "workers": workers, "generator": "wrk", "elapsed_s": round(wrk["seconds"], 2),
            "http_requests": wrk["requests"], "requests_per_s": round(wrk["requests"] / wrk["seconds"], 1),
            "scored_logins": wrk["scored"], "login_p50_ms": round(wrk["p50_ms"], 2),
            "login_p99_ms": round(wrk["p99_ms"], 2), "client_errors": wrk["socket_errors"] + wrk["other"],
            "statuses": {"scored": wrk["scored"], "401": wrk["bad_password"], "other": wrk["other"]},
            "challenges_verified": 0, "audit": audit, "server_scored": server_scored,
            "audit_complete": audit["decisions"] == server_scored == audit.get("distinct_ids")
            and wrk["scored"] <= server_scored,
            "gunicorn_exit": proc.returncode,
        }
    return {
        "store": store, "workers": workers, "elapsed_s": round(elapsed, 2),
        "http_requests": stats.requests, "requests_per_s": round(stats.requests / elapsed, 1),
        "scored_logins": stats.scored, "login_p50_ms": round(statistics.median(stats.login_ms), 2),
        "login_p99_ms": round(statistics.quantiles(stats.login_ms, n=100)[98], 2),
        "client_errors": stats.errors, "statuses": stats.by_status,
        "challenges_verified": stats.challenges_closed, "audit": audit,
        "server_scored": server_scored,
        "audit_complete": audit["decisions"] == stats.scored == server_scored == audit.get("distinct_ids"),
        "gunicorn_exit": proc.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=["sqlite", "redis"], default="redis")
    parser.add_argument("--service", choices=["flask", "fastapi"], default="flask",
                        help="the Flask example under gunicorn, or the FastAPI example under uvicorn")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--requests", type=int, default=3000, help="stop after this many HTTP requests")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--generator", choices=["python", "wrk"], default="python")
    parser.add_argument("--seconds", type=int, default=10, help="wrk: how long to drive the load")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args.store, args.workers, args.requests, args.concurrency, args.users,
                 args.generator, args.seconds, args.service)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        a = report["audit"]
        print(f"service={args.service} store={report['store']} workers={report['workers']} "
              f"requests={report['http_requests']} "
              f"in {report['elapsed_s']} s → {report['requests_per_s']} req/s")
        print(f"  /login latency (client): p50 {report['login_p50_ms']} ms, p99 {report['login_p99_ms']} ms")
        print(f"  engine latency (audit latency_us): p50 {a.get('engine_p50_us', 0):.0f} µs, "
              f"p99 {a.get('engine_p99_us', 0):.0f} µs")
        print(f"  scored logins {report['scored_logins']} (client) / {report.get('server_scored')} (server access "
              f"log), audit decision rows {a['decisions']} "
              f"(distinct ids {a.get('distinct_ids')}) → {'COMPLETE' if report['audit_complete'] else 'MISMATCH'}")
        print(f"  actions {a.get('actions')}, challenge outcomes {a.get('challenge_outcomes')}, "
              f"statuses {report['statuses']}, client errors {report['client_errors']}")
    return 0 if report["audit_complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
