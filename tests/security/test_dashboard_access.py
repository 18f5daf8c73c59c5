"""Dashboard access: an unauthenticated request sees no data; raw identifiers only for pii_viewers.

Threats (docs/threat-model.md): someone who reaches the dashboard without signing in (OIDC not
completed, a request that bypassed the sign-in proxy, a proxy that appends a client-supplied
identity header), a signed-in user who is not allowed in (a public OIDC provider, an
unverified or look-alike e-mail), and a signed-in viewer who is not a pii_viewer trying to see
raw user ids. Every page is rendered by Streamlit's AppTest on an audit root the real Engine
wrote with pseudonymisation OFF, so any leak would show a raw user id.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from riskengine import Engine
from riskengine.core.config import DashboardSettings, Settings
from riskengine.testing import CHROME_WIN, LONDON, PARIS, offline_settings

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"
PAGES = ("views/overview.py", "views/challenges.py", "views/experiments.py", "views/risk.py",
         "views/audit_explorer.py")
RAW_USER = "ana.secret@example.org"
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
OIDC_SECRETS = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                "client_id": "riskengine-dashboard", "client_secret": "s3cret",
                "server_metadata_url": "https://idp.example.org/.well-known/openid-configuration"}


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audit root holding RAW user ids (audit.pseudonymize = false)."""
    root = tmp_path_factory.mktemp("raw") / "audit"
    settings = offline_settings(audit={"root": str(root), "pseudonymize": False})
    with Engine(settings) as engine:
        for day in range(6):
            place = LONDON if day < 5 else PARIS
            engine.score({"user_id": RAW_USER, "timestamp": T0 + timedelta(days=day), "ip": "81.2.69.160",
                          "user_agent": CHROME_WIN, "device_id": "laptop", "session_id": f"s{day}", **place})
    return root


@pytest.fixture
def open_page(raw_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., AppTest]]:
    for name in ("RISKENGINE_DASHBOARD_CONFIG", "RISKENGINE_LABELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RISKENGINE_AUDIT_ROOT", str(raw_root))

    def opener(page: str | None = None, *, user: dict[str, Any] | None = None, secrets: bool = True,
               **dashboard: str) -> AppTest:
        for key, value in dashboard.items():
            monkeypatch.setenv(f"RISKENGINE_DASHBOARD_{key.upper()}", value)
        at = AppTest.from_file(str(APP), default_timeout=60)
        if secrets:
            at.secrets["auth"] = dict(OIDC_SECRETS)
        if user is not None:
            at.user = user
        at.run()
        if page is not None:
            at.switch_page(page)
            at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield opener


def rendered(at: AppTest) -> str:
    """Everything the page shows as text: element tree plus the contents of every table."""
    tables = [d.value.to_csv() for d in at.dataframe]
    return repr(at._tree) + "".join(tables) + "".join(str(m.value) for m in at.markdown)


def shows_no_data(at: AppTest) -> None:
    """Nothing read from the audit root reached the page: no numbers, tables, charts or filters."""
    assert not at.metric and not at.dataframe and not at.sidebar.date_input
    assert not at.get("arrow_vega_lite_chart") and not at.get("vega_lite_chart")
    assert RAW_USER not in rendered(at)
    assert len(at.warning) == 1  # the gate's message, and nothing else ran


def shows_data(at: AppTest) -> None:
    assert at.metric or at.dataframe, "the page rendered no data"
    assert not at.warning or all("Sign in" not in w.value for w in at.warning)


# ------------------------------------------------------------------ unauthenticated requests
@pytest.mark.parametrize("page", PAGES)
def test_oidc_logged_out_sees_no_data_on_any_page(open_page: Callable[..., AppTest], page: str) -> None:
    at = open_page(page, user={"is_logged_in": False}, auth="oidc")
    shows_no_data(at)
    assert [b.label for b in at.button] == ["Log in"]


@pytest.mark.parametrize("page", PAGES)
def test_header_mode_request_without_the_header_sees_no_data(open_page: Callable[..., AppTest], page: str) -> None:
    """A request that reached Streamlit without going through the sign-in proxy (AppTest sends
    no headers, like a client talking to the port directly)."""
    at = open_page(page, auth="header", trusted_user_header="X-Forwarded-Email")
    shows_no_data(at)
    assert "X-Forwarded-Email" in at.warning[0].value


def test_oidc_without_secrets_is_closed_not_open(open_page: Callable[..., AppTest]) -> None:
    at = open_page(user={"is_logged_in": True, "email": "ana@example.org"}, secrets=False, auth="oidc")
    shows_no_data(at)
    assert "secrets.toml" in at.warning[0].value


def test_unreadable_access_settings_close_the_dashboard(open_page: Callable[..., AppTest]) -> None:
    at = open_page(user={"is_logged_in": True, "email": "ana@example.org"}, auth="sso")  # not a mode
    shows_no_data(at)
    assert "dashboard" in at.warning[0].value and "auth" in at.warning[0].value


# ------------------------------------------------------------------ signed in, but not allowed
@pytest.mark.parametrize("claims", [
    {"is_logged_in": True, "email": "mallory@gmail.com"},                       # a public provider's user
    {"is_logged_in": True, "email": "mallory@evil-example.org"},                # look-alike domain
    {"is_logged_in": True, "email": "ana@example.org", "email_verified": False},  # unverified address
    {"is_logged_in": True, "email": "ana@example.org"},  # no email_verified claim (nOAuth: a stranger's tenant)
    {"is_logged_in": True, "email": "ana@example.org", "email_verified": "false"},  # a string is not true
    {"is_logged_in": True, "sub": "ana@example.org", "email_verified": True},  # a subject is not an address
    {"is_logged_in": True, "email": "\u0430na@example.org", "email_verified": True},  # Cyrillic a look-alike
    {"is_logged_in": True},                                                    # no identity at all
])
def test_signed_in_but_not_allowed_sees_no_data(open_page: Callable[..., AppTest], claims: dict[str, Any]) -> None:
    at = open_page("views/audit_explorer.py", user=claims, auth="oidc", allowed_users="@example.org")
    shows_no_data(at)
    assert [b.label for b in at.button] == ["Log out"]  # to switch accounts


def test_allowed_oidc_user_sees_the_data(open_page: Callable[..., AppTest]) -> None:
    at = open_page(user={"is_logged_in": True, "email": "Ana@Example.org", "email_verified": True},
                   auth="oidc", allowed_users="@example.org")
    shows_data(at)
    assert any("Ana@Example.org" in c.value for c in at.sidebar.caption)


# ------------------------------------------------------------------ raw identifiers
def test_raw_id_toggle_only_for_pii_viewers(open_page: Callable[..., AppTest]) -> None:
    viewer = open_page("views/audit_explorer.py", user={"is_logged_in": True, "email": "bo@example.org",
                                                         "email_verified": True},
                       auth="oidc", pii_viewers="ana@example.org")
    shows_data(viewer)
    assert not viewer.toggle  # not offered
    assert RAW_USER not in rendered(viewer)  # raw ids in the root are hashed for display

    privileged = open_page("views/audit_explorer.py", user={"is_logged_in": True, "email": "ana@example.org",
                                                             "email_verified": True},
                           auth="oidc", pii_viewers="ana@example.org")
    toggle = privileged.toggle(key="x_pseudo")
    assert toggle.value is True and RAW_USER not in rendered(privileged)  # hashed until switched off
    toggle.set_value(False).run()
    assert RAW_USER in rendered(privileged)


def test_without_sign_in_nobody_gets_raw_ids(open_page: Callable[..., AppTest]) -> None:
    at = open_page("views/audit_explorer.py")  # auth = "none": the loopback default
    shows_data(at)
    assert not at.toggle and RAW_USER not in rendered(at)


def test_client_set_toggle_state_is_ignored_for_other_viewers(open_page: Callable[..., AppTest]) -> None:
    """Session state named like the toggle does not switch pseudonymisation off for a non-viewer."""
    at = open_page("views/audit_explorer.py", user={"is_logged_in": True, "email": "bo@example.org",
                                                     "email_verified": True},
                   auth="oidc", pii_viewers="ana@example.org")
    at.session_state["x_pseudo"] = False
    at.run()
    assert not at.exception and not at.toggle and RAW_USER not in rendered(at)


# ------------------------------------------------------------------ the settings
def test_header_mode_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="trusted_user_header"):
        DashboardSettings(auth="header")
    with pytest.raises(ValueError, match='auth = "header"'):
        DashboardSettings(trusted_user_header="X-Forwarded-Email")
    with pytest.raises(ValueError, match="not an HTTP header name"):
        DashboardSettings(auth="header", trusted_user_header="X-User: admin")
    with pytest.raises(ValueError, match="needs sign-in"):
        DashboardSettings(allowed_users=("@example.org",))


def test_dashboard_env_overrides_and_launcher_variables_coexist() -> None:
    env = {"RISKENGINE_DASHBOARD_AUTH": "oidc", "RISKENGINE_DASHBOARD_PII_VIEWERS": "a@x.org, b@x.org",
           "RISKENGINE_DASHBOARD_CONFIG": "/etc/riskengine.toml", "RISKENGINE_DASHBOARD_APP": "/opt/app.py"}
    settings = Settings.load(env=env)  # the launcher's variables are not settings
    assert settings.dashboard == DashboardSettings(auth="oidc", pii_viewers=("a@x.org", "b@x.org"))
    assert DashboardSettings.load(env=env) == settings.dashboard


def test_a_broken_policy_does_not_open_or_close_the_gate(tmp_path: Path) -> None:
    config = tmp_path / "riskengine.toml"
    config.write_text('[policy]\nchallenge_threshold = 7\n\n[dashboard]\nauth = "oidc"\n')
    assert DashboardSettings.load(config, env={}).auth == "oidc"


# ------------------------------------------------------------------ the header a proxy sets
def _common() -> Any:
    if str(REPO) not in sys.path:  # `import dashboard` from the checkout
        sys.path.insert(0, str(REPO))
    from dashboard import common

    return common


HEADER = DashboardSettings(auth="header", trusted_user_header="X-Forwarded-Email", allowed_users=("@example.org",),
                           pii_viewers=("ana@example.org",))


@pytest.mark.parametrize(("values", "who"), [
    (["ana@example.org"], ("ana@example.org", True)),
    (["bo@example.org"], ("bo@example.org", False)),
    ([], None),                                            # bypassed the proxy
    (["   "], None),                                       # empty value
    (["mallory@evil.test", "ana@example.org"], None),      # client header + proxy header, appended
    (["mallory@evil.test, ana@example.org"], None),        # …folded into one value
    (["mallory@evil.test"], None),                         # signed in by the proxy, not allowed
])
def test_header_identity(values: list[str], who: tuple[str, bool] | None) -> None:
    common = _common()
    got = common.resolve_viewer(HEADER, header_values=values)
    if who is None:
        assert isinstance(got, common.Denied)
    else:
        assert got == common.Viewer(*who)


# ------------------------------------------------------------------ what `streamlit run` starts with
def test_shipped_streamlit_config_is_closed() -> None:
    """The file Streamlit reads beside app.py (tests/e2e/test_dashboard_access.py runs it)."""
    config = tomllib.loads((APP.parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["client"]["toolbarMode"] == "viewer"
    assert config["browser"]["gatherUsageStats"] is False


def test_dashboard_command_passes_the_same_settings(tmp_path: Path) -> None:
    from riskengine.apps.dashboard_cli import build_command

    argv = build_command(str(tmp_path))
    flags = dict(zip(argv[argv.index("run") + 2:argv.index("--"):2], argv[argv.index("run") + 3:argv.index("--"):2],
                     strict=True))
    assert flags["--server.address"] == "127.0.0.1"
    assert flags["--client.toolbarMode"] == "viewer"
    assert flags["--browser.gatherUsageStats"] == "false"


def test_dashboard_command_warns_when_exposed_without_sign_in(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from riskengine.apps.dashboard_cli import exposure_warning

    monkeypatch.delenv("RISKENGINE_DASHBOARD_AUTH", raising=False)
    assert exposure_warning("127.0.0.1", None) is None
    warning = exposure_warning("0.0.0.0", None)
    assert warning is not None and "0.0.0.0" in warning and 'auth = "none"' in warning
    config = tmp_path / "riskengine.toml"
    config.write_text('[dashboard]\nauth = "header"\ntrusted_user_header = "X-Forwarded-Email"\n')
    assert exposure_warning("0.0.0.0", str(config)) is None
