"""The synthetic audit root (one per test session) and an AppTest factory for the dashboard."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"

if "synthetic_audit" not in sys.modules:  # tests/ is not a package: register the sibling helper by path
    _spec = importlib.util.spec_from_file_location("synthetic_audit", Path(__file__).with_name("synthetic_audit.py"))
    assert _spec is not None and _spec.loader is not None
    sys.modules["synthetic_audit"] = _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)

from synthetic_audit import SyntheticAudit, build  # noqa: E402


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticAudit:
    return build(tmp_path_factory.mktemp("dashboard") / "audit")


@pytest.fixture
def open_app(synthetic: SyntheticAudit, monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """``open_app("views/risk.py")`` → an AppTest that has rendered that page on the synthetic root."""

    def opener(page: str | None = None, *, root: Path | None = None, labels: bool = True) -> AppTest:
        monkeypatch.setenv("RISKENGINE_AUDIT_ROOT", str(root or synthetic.root))
        if labels:
            monkeypatch.setenv("RISKENGINE_LABELS", str(synthetic.labels_path))
        else:
            monkeypatch.delenv("RISKENGINE_LABELS", raising=False)
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()
        if page is not None:
            at.switch_page(page)
            at.run()
        return at

    return opener
