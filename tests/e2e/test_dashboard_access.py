"""The shipped dashboard under plain ``streamlit run`` (no flags), in a real headless Chromium.

``streamlit run …/dashboard/app.py`` from another folder, with an empty home directory (no
``~/.streamlit``): the ``.streamlit/config.toml`` shipped beside ``app.py`` must make it listen
on loopback only and hide the developer toolbar's "Deploy" button. The app runs in header
mode (``[dashboard] auth = "header"``), as behind a sign-in proxy: a browser whose requests
carry the proxy's identity header sees the data, one without it sees only the sign-in notice.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from riskengine import Engine
from riskengine.testing import CHROME_WIN, LONDON, offline_settings

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HEADER = "X-Forwarded-Email"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) with a socket LISTENing on ``port``."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A = TCP_LISTEN
                found.add(address)
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    root = tmp_path_factory.mktemp("audit") / "audit"
    with Engine(offline_settings(audit={"root": str(root)})) as engine:
        t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
        for day in range(5):
            engine.score({"user_id": "ana", "timestamp": t0 + timedelta(days=day), "ip": "81.2.69.160",
                          "user_agent": CHROME_WIN, "device_id": "laptop", "session_id": f"s{day}", **LONDON})
    home = tmp_path_factory.mktemp("home")  # no ~/.streamlit, and the working directory has none either
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RISKENGINE_", "STREAMLIT_"))}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), STREAMLIT_SERVER_PORT=str(port),  # a free port, not a flag
               RISKENGINE_AUDIT_ROOT=str(root), RISKENGINE_DASHBOARD_AUTH="header",
               RISKENGINE_DASHBOARD_TRUSTED_USER_HEADER=HEADER)
    log = home / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP)], cwd=home, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not become healthy:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield base, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed at /usr/bin/chromium: run scripts/system-deps.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _open(browser: Any, base: str, headers: dict[str, str]) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, extra_http_headers=headers)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(base)
    page.locator("h1").first.wait_for()
    page.wait_for_function(  # the script run is over
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')")
    return context, page


def test_plain_streamlit_run_listens_on_loopback_only(server: tuple[str, int]) -> None:
    _, port = server
    assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, not 0.0.0.0 or ::


def test_request_without_the_proxy_header_sees_no_data(server: tuple[str, int], browser: Any) -> None:
    context, page = _open(browser, server[0], {})
    try:
        page.get_by_text("Not signed in").wait_for()
        assert page.locator('[data-testid="stMetric"]').count() == 0
        assert page.locator('[data-testid="stSidebar"] [data-testid="stDateInput"]').count() == 0
        assert page.locator('[data-testid="stAppDeployButton"]').count() == 0  # viewer toolbar
    finally:
        context.close()


def test_request_through_the_proxy_sees_the_data(server: tuple[str, int], browser: Any) -> None:
    context, page = _open(browser, server[0], {HEADER: "ana@example.org"})
    try:
        page.get_by_role("heading", name="Overview", level=1).wait_for()
        page.locator('[data-testid="stMetric"]').first.wait_for()
        assert page.get_by_text("Signed in as ana@example.org").count() == 1
        assert page.get_by_text("Not signed in").count() == 0
        assert page.locator('[data-testid="stAppDeployButton"]').count() == 0
    finally:
        context.close()
