"""`riskengine dashboard` finds the app in a checkout, in an installed wheel, or where told."""

from __future__ import annotations

from pathlib import Path

import pytest

import riskengine
from riskengine.apps import dashboard_cli
from riskengine.apps.dashboard_cli import APP_ENV, app_module, app_path

REPO = Path(__file__).resolve().parents[2]


def test_checkout_runs_its_own_dashboard_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(APP_ENV, raising=False)
    assert Path(riskengine.__file__).resolve().parents[1] == REPO  # these tests run against the checkout
    assert app_path() == REPO / "dashboard" / "app.py"


def test_installed_layout_uses_the_packaged_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # site-packages/riskengine/ with dashboard_app/ inside and no pyproject.toml beside it
    package = tmp_path / "site-packages" / "riskengine"
    (package / "dashboard_app").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "dashboard_app" / "app.py").write_text("")
    monkeypatch.delenv(APP_ENV, raising=False)
    monkeypatch.setattr(dashboard_cli.riskengine, "__file__", str(package / "__init__.py"))
    assert app_path() == package / "dashboard_app" / "app.py"


def test_missing_app_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(APP_ENV, str(tmp_path / "nowhere.py"))
    with pytest.raises(FileNotFoundError, match="dashboard app not found at .*nowhere.py"):
        app_path()
    (tmp_path / "mine.py").write_text("")
    monkeypatch.setenv(APP_ENV, str(tmp_path / "mine.py"))
    assert app_path() == tmp_path / "mine.py"


def test_app_module_imports_the_pages_common_module_from_the_checkout() -> None:
    common = app_module("common", REPO / "dashboard" / "views" / "overview.py")
    assert common.__name__ == "dashboard.common"
    assert Path(str(common.__file__)).resolve() == REPO / "dashboard" / "common.py"
    assert app_module("common", REPO / "dashboard" / "app.py") is common
