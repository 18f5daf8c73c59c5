"""The dashboard in a real headless Chromium (Debian's ``chromium``) driven by Playwright,
against ``riskengine dashboard`` (i.e. ``streamlit run``) on an audit root the real Engine
wrote. Screenshots of every page land in ``test-artifacts/dashboard/<page>.png``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = {  # url path → (title, an element that shows the page has rendered its data)
    "overview": ("Overview", '[data-testid="stVegaLiteChart"]'),
    "challenges": ("Challenges & channels", '[data-testid="stVegaLiteChart"]'),
    "experiments": ("Experiments", '[data-testid="stDataFrame"]'),
    "risk": ("Risk & signals", '[data-testid="stVegaLiteChart"]'),
    "explorer": ("Audit explorer", '[data-testid="stDataFrame"]'),
}
ERROR_ELEMENTS = '[data-testid="stException"], [data-testid="stErrorBlock"]'


@functools.cache
def _synthetic_module() -> ModuleType:
    """The dashboard tests' generator (tests/ is not a package, so load it by path)."""
    path = REPO / "tests" / "dashboard" / "synthetic_audit.py"
    spec = importlib.util.spec_from_file_location("dashboard_synthetic_audit", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _synthetic_module().build(tmp_path_factory.mktemp("e2e") / "audit")


@pytest.fixture(scope="module")
def server(synthetic: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``riskengine dashboard`` on a free loopback port, until the module's tests are done."""
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKENGINE_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "riskengine", "dashboard", "--root", str(synthetic.root), "--port", str(port),
             "--labels", str(synthetic.labels_path)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
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
        yield base
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
        pytest.fail("Debian's chromium is not installed at /usr/bin/chromium: run scripts/system-deps.sh "
                    "(`make system-deps`); these tests must not be skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    p = context.new_page()
    p.set_default_timeout(30_000)
    try:
        yield p
    finally:
        context.close()


def _settle(page: Any) -> None:
    """Wait until the script run is over (Streamlit shows a status widget while running)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')")
    page.wait_for_timeout(500)


def _open(page: Any, base: str, path: str) -> None:
    title, ready = PAGES[path]
    page.goto(f"{base}/{'' if path == 'overview' else path}")  # the default page lives at the root
    page.get_by_role("heading", name=title, level=1).wait_for()
    page.locator(ready).first.wait_for()
    _settle(page)
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    for i in range(charts.count()):  # vega draws after the element appears
        charts.nth(i).locator("canvas, svg").first.wait_for()


def _metric(page: Any, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label)).first
    return str(box.locator('[data-testid="stMetricValue"]').inner_text()).strip()


@pytest.mark.parametrize("path", list(PAGES))
def test_page_loads_without_errors_and_is_screenshotted(server: str, page: Any, path: str) -> None:
    _open(page, server, path)
    errors = page.locator(ERROR_ELEMENTS)
    assert errors.count() == 0, errors.first.inner_text()
    alerts = page.locator('[data-testid="stAlertContentError"]')
    if path == "experiments":  # the intended sample-ratio-mismatch banner, and nothing else
        assert alerts.count() == 1 and "Sample-ratio mismatch" in alerts.first.inner_text()
    else:
        assert alerts.count() == 0, alerts.first.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": max(1000, _content_height(page))})
    _settle(page)
    page.screenshot(path=str(ARTIFACTS / f"{path}.png"), full_page=True)


def _content_height(page: Any) -> int:
    """The main block scrolls inside the window; grow the window to show all of it."""
    return int(page.evaluate(
        "() => Math.max(...['stMain', 'stAppViewContainer', 'stMainBlockContainer'].map(id => {"
        " const m = document.querySelector(`[data-testid=\"${id}\"]`); return m ? m.scrollHeight : 0; })) + 80"))


def test_country_filter_updates_the_headline_numbers(server: str, page: Any, synthetic: Any) -> None:
    generator = _synthetic_module()
    everything, france = generator.expected(synthetic), generator.expected(synthetic, countries=("FR",))
    _open(page, server, "overview")
    assert _metric(page, "Logins") == f"{everything['logins']:,}"
    box = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(has_text="Country")
    box.locator("input").first.click()
    page.get_by_role("option", name="FR", exact=True).click()
    page.keyboard.press("Escape")
    page.locator('[data-testid="stMetricValue"]', has_text=f"{france['logins']:,}").first.wait_for()
    _settle(page)
    assert _metric(page, "Logins") == f"{france['logins']:,}"
    assert _metric(page, "Challenge rate") == f"{france['challenge_rate'] * 100:.1f}%"


def test_explorer_exports_csv(server: str, page: Any, synthetic: Any) -> None:
    _open(page, server, "explorer")
    with page.expect_download() as info:
        page.get_by_role("button", name="Export CSV").click()
    path = info.value.path()
    lines = Path(path).read_text().splitlines()
    header = lines[0].split(",")
    assert {"event_time", "action", "risk", "reasons"} <= set(header)
    assert len(lines) - 1 == len(synthetic.rows["decisions"])


def test_challenges_page_flags_the_pumping_wave(server: str, page: Any, synthetic: Any) -> None:
    _open(page, server, "challenges")
    page.get_by_role("heading", name="OTP sends by destination country").wait_for()
    made = [r for r in synthetic.rows["sends"] if r["action"] == "allow"]
    assert _metric(page, "OTP sends") == f"{len(made):,}"
    assert _metric(page, "Send cost") == f"{sum(r['price'] for r in made):,.2f}"
    warnings = page.locator('[data-testid="stAlertContentWarning"]').filter(has_text="pumping")
    assert warnings.count() == 1 and "to UZ" in warnings.first.inner_text()
