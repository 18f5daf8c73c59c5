"""The wheel works outside the checkout: a core-only install scores a login without the
analytics stack; a ``[dashboard]`` install serves the Streamlit app it ships.

Builds the wheel once (``pip wheel --no-deps``), then installs it into fresh virtual
environments with dependencies from the package index (pip's own cache is shared, so a
second run downloads nothing). Slow by nature: minutes on a cold cache.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("polars", "duckdb", "pyarrow", "sklearn", "streamlit", "scipy")
CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def _run(*argv: str | Path, cwd: Path, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _clean_env() -> dict[str, str]:
    """The environment without this checkout on the path: the venv must see only the wheel."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def _fresh_venv(path: Path, requirement: str) -> Path:
    """A new venv at ``path`` with ``requirement`` installed; returns its python."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    # --no-compile: pip would byte-compile every module of the dependencies (pyarrow, polars,
    # streamlit, …), a third of the install's time; Python compiles what the test imports
    _run(python, "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check", requirement,
         cwd=path, env=_clean_env())
    return python


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check", "-w", out, REPO,
         cwd=out)
    (built,) = out.glob("riskengine-*-py3-none-any.whl")
    return built


def test_wheel_holds_the_package_the_dashboard_and_the_licence(wheel: Path) -> None:
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    source = {str(p.relative_to(REPO)) for p in (REPO / "riskengine").rglob("*.py") if "__pycache__" not in p.parts}
    app = {"riskengine/dashboard_app/" + str(p.relative_to(REPO / "dashboard"))
           for p in (REPO / "dashboard").rglob("*.py") if "__pycache__" not in p.parts}
    assert source | app | {"riskengine/py.typed"} <= names
    assert "riskengine/dashboard_app/app.py" in names and "riskengine/dashboard_app/views/overview.py" in names
    # the Streamlit settings beside app.py: `streamlit run` of the installed app is loopback-only
    assert "riskengine/dashboard_app/.streamlit/config.toml" in names
    assert not any(n.startswith(("dashboard/", "tests/", "benchmarks/")) for n in names)
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Provides-Extra: dashboard" in metadata


def test_core_install_scores_a_login_without_the_analytics_stack(wheel: Path, tmp_path: Path) -> None:
    python = _fresh_venv(tmp_path / "core", str(wheel))
    script = f"""
import importlib.util, json, sys
from datetime import UTC, datetime
import riskengine
from riskengine import Engine, LoginAttempt
engine = Engine()
decision = engine.score(LoginAttempt(user_id="alice", ip="81.2.69.142", user_agent={CHROME_UA!r},
                                     timestamp=datetime(2026, 3, 2, 9, 30, tzinfo=UTC)))
engine.close()
print(json.dumps({{"action": decision.action, "risk": decision.risk, "version": riskengine.__version__,
                  "file": riskengine.__file__,
                  "installed": [m for m in {list(HEAVY)!r} if importlib.util.find_spec(m) is not None]}}))
"""
    # run from an empty folder, so the checkout cannot be imported by accident
    out = json.loads(_run(python, "-c", script, cwd=tmp_path, env=_clean_env()).strip().splitlines()[-1])
    assert out["action"] in ("allow", "challenge", "deny") and 0.0 <= out["risk"] <= 1.0
    assert out["file"].startswith(str(tmp_path / "core"))
    assert out["installed"] == []
    listed = _run(python, "-m", "pip", "list", "--format=freeze", cwd=tmp_path, env=_clean_env()).lower()
    for dist in ("polars", "duckdb", "pyarrow", "scikit-learn", "streamlit", "scipy"):
        assert f"\n{dist}==" not in f"\n{listed}"
    # the CLI lists every command with its extra, and a missing one says what to install
    riskengine_cli = tmp_path / "core" / "bin" / "riskengine"
    listing = _run(riskengine_cli, "--help", cwd=tmp_path, env=_clean_env())
    for command, extra_name in (("report", "analytics"), ("dashboard", "dashboard"), ("user", "core")):
        # the summary may wrap: the first bracket after the command's name is its extra
        assert re.search(rf"\n +{command} +[^\[]*\[{extra_name}\]", listing), listing
    done = subprocess.run([str(riskengine_cli), "dashboard", "--root", str(tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, env=_clean_env(), timeout=120)
    assert done.returncode == 1
    assert 'pip install "riskengine[dashboard]"' in done.stderr and "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a loopback URL we built
        return response.status, response.read().decode()


def test_dashboard_install_serves_the_app_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    python = _fresh_venv(tmp_path / "dash", f"{wheel}[dashboard]")
    root = tmp_path / "audit"
    # a few decisions in the audit log, written by the installed engine (the [audit] sink)
    _run(python, "-c", f"""
from datetime import UTC, datetime, timedelta
from riskengine import Engine, LoginAttempt
with Engine.from_config({{"audit": {{"root": {str(root)!r}}}}}) as engine:
    for i in range(20):
        engine.score(LoginAttempt(user_id=f"u{{i % 4}}", ip="81.2.69.142", user_agent={CHROME_UA!r},
                                  timestamp=datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(hours=i)))
""", cwd=tmp_path, env=_clean_env())
    assert list(root.glob("decisions/year=2026/month=03/*.parquet"))

    # every page of the installed app renders on that root (Streamlit's own test harness)
    rendered = _run(python, "-c", """
import json, os, sys
from pathlib import Path
import riskengine.dashboard_app
from streamlit.testing.v1 import AppTest
app = Path(riskengine.dashboard_app.__file__).with_name("app.py")
at = AppTest.from_file(str(app), default_timeout=120)
at.run()
errors = [str(e.value) for e in at.exception]
for page in ("views/challenges.py", "views/experiments.py", "views/risk.py", "views/audit_explorer.py"):
    at.switch_page(page)
    at.run()
    errors += [f"{page}: {e.value}" for e in at.exception]
print(json.dumps({"app": str(app), "errors": errors}))
""", cwd=tmp_path, env={**_clean_env(), "RISKENGINE_AUDIT_ROOT": str(root)})
    result = json.loads(rendered.strip().splitlines()[-1])
    assert result["app"].startswith(str(tmp_path / "dash"))
    assert result["errors"] == []

    # and `riskengine dashboard` serves it over HTTP
    port = _free_port()
    log = tmp_path / "dashboard.log"
    with log.open("w") as out, subprocess.Popen(
            [str(tmp_path / "dash" / "bin" / "riskengine"), "dashboard", "--root", str(root), "--port", str(port)],
            cwd=tmp_path, env=_clean_env(), stdout=out, stderr=subprocess.STDOUT) as server:
        try:
            deadline = time.monotonic() + 120
            health: tuple[int, str] | None = None
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    health = _get(f"http://127.0.0.1:{port}/_stcore/health")
                    break
                except OSError:
                    time.sleep(0.5)
            assert server.poll() is None, f"dashboard exited early:\n{log.read_text()}"
            assert health == (200, "ok"), log.read_text()
            status, page = _get(f"http://127.0.0.1:{port}/")
            assert status == 200 and "<title>Streamlit</title>" in page
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
