"""dashboard/common.py: the cached wrappers give the library's numbers, and the settings it reads."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from synthetic_audit import START, SyntheticAudit, expected

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:  # `import dashboard` from the checkout
    sys.path.insert(0, _REPO)

from dashboard import common  # noqa: E402
from riskengine.analytics import AuditDB, Filters  # noqa: E402
from riskengine.core.config import Settings  # noqa: E402


def windows() -> list[Filters]:
    week = timedelta(days=7)
    return [
        Filters(since=START + week, until=START + 2 * week),             # the previous week is all data
        Filters(since=START + 2 * week, until=START + 3 * week, countries=("FR",)),
        Filters(since=START, until=START + week),                        # nothing before: zeros, no rates
        Filters(since=START + 10 * timedelta(days=1), until=START + 11 * timedelta(days=1),
                device_types=("desktop",)),
        Filters(since=START + 2 * week),                                 # open-ended: the library closes it
    ]


@pytest.mark.parametrize("f", windows(), ids=repr)
def test_dashboard_kpis_vs_previous_is_the_library_s(synthetic: SyntheticAudit, f: Filters) -> None:
    db = AuditDB(synthetic.root)
    try:
        library = db.kpis_vs_previous(f, users=False)
    finally:
        db.close()
    dashboard = common.kpis_vs_previous(str(synthetic.root), f)
    assert dashboard == library
    assert set(dashboard) >= {"logins", "challenge_rate", "challenge_success_rate", "fallback_rate", "deny_rate"}


def test_kpis_vs_previous_matches_an_independent_count(synthetic: SyntheticAudit) -> None:
    week = timedelta(days=7)
    f = Filters(since=START + week, until=START + 2 * week)
    got = common.kpis_vs_previous(str(synthetic.root), f)
    now = expected(synthetic, (START + week).date(), (START + 2 * week - timedelta(days=1)).date())
    before = expected(synthetic, START.date(), (START + week - timedelta(days=1)).date())
    for key in ("logins", "challenges", "verified"):
        assert got[key] == (now[key], before[key])
    for key in ("challenge_rate", "challenge_success_rate", "fallback_rate", "deny_rate"):
        assert got[key] == (pytest.approx(now[key]), pytest.approx(before[key]))
    assert got["users"] == (None, None)  # distinct users come from active_users, not from here


def test_previous_window_is_the_library_s() -> None:
    f = Filters(since=START + timedelta(days=7), until=START + timedelta(days=10), countries=("FR",))
    assert common.previous_window(f) == f.previous() == Filters(
        since=START + timedelta(days=4), until=START + timedelta(days=7), countries=("FR",))
    assert common.previous_window(Filters(since=START)) is None


# ------------------------------------------------------------------ the what-if threshold comes from config
def _slider_start(open_app: Callable[..., AppTest]) -> float:
    at = open_app("views/risk.py")
    assert not at.exception, [e.value for e in at.exception]
    return float(at.slider(key="whatif_threshold").value)


def test_whatif_slider_starts_at_the_built_in_threshold(open_app: Callable[..., AppTest],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(common.CONFIG_ENV, raising=False)
    monkeypatch.delenv("RISKENGINE_POLICY_CHALLENGE_THRESHOLD", raising=False)
    assert _slider_start(open_app) == pytest.approx(Settings().policy.challenge_threshold)


def test_whatif_slider_starts_at_the_configured_threshold(open_app: Callable[..., AppTest], tmp_path: Path,
                                                          synthetic: SyntheticAudit,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "riskengine.toml"
    config.write_text("[policy]\nchallenge_threshold = 0.55\ndeny_threshold = 0.9\n")
    monkeypatch.setattr(sys, "argv", [sys.argv[0], "--root", str(synthetic.root), "--config", str(config)])
    assert _slider_start(open_app) == pytest.approx(0.55)


def test_whatif_slider_follows_the_environment_override(open_app: Callable[..., AppTest],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKENGINE_POLICY_CHALLENGE_THRESHOLD", "0.62")
    assert _slider_start(open_app) == pytest.approx(0.62)


def test_unreadable_config_is_named_and_the_default_used(open_app: Callable[..., AppTest], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[policy]\nchallenge_threshold = 7\n")  # out of [0, 1]
    monkeypatch.setenv(common.CONFIG_ENV, str(config))
    at = open_app("views/risk.py")
    assert not at.exception
    assert at.slider(key="whatif_threshold").value == pytest.approx(Settings().policy.challenge_threshold)
    assert any(str(config) in w.value and "challenge_threshold" in w.value for w in at.warning)


def test_dashboard_command_passes_config_to_the_app(tmp_path: Path) -> None:
    from riskengine.apps.dashboard_cli import build_command

    config = tmp_path / "riskengine.toml"
    config.write_text("[policy]\nchallenge_threshold = 0.3\n")
    argv = build_command(str(tmp_path), config=str(config))
    app_args = argv[argv.index("--") + 1:]
    assert app_args[app_args.index("--config") + 1] == str(config.resolve())
    assert common._script_args(app_args).config == str(config.resolve())  # what the app parses
    assert "--config" not in build_command(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="--config file not found"):
        build_command(str(tmp_path), config=str(tmp_path / "missing.toml"))
