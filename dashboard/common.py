"""What every dashboard page shares: where the audit root is, the global filters in the
sidebar, cached calls into :mod:`riskengine.analytics`, number formatting and empty states.

Pages call only the wrappers here (which call only ``AuditDB`` methods): no SQL and no
scoring logic lives in the dashboard, so the numbers always agree with the notebooks and
``riskengine report``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl
import streamlit as st

from riskengine.analytics import AuditDB, Filters
from riskengine.core.config import DashboardSettings, Settings

ROOT_ENV = "RISKENGINE_AUDIT_ROOT"
LABELS_ENV = "RISKENGINE_LABELS"
CACHE_TTL_SECONDS = 30
"""Query results are reused for this long: the engine keeps writing, so not longer."""

CONFIG_ENV = "RISKENGINE_DASHBOARD_CONFIG"
WHATIF_RANGE = (0.05, 0.95)
"""The what-if slider's range; a configured threshold outside it starts the slider at the nearest end."""

EXPLORER_PAGE = "views/audit_explorer.py"
# session-state keys of the audit explorer's own filters; other pages set them to "drill"
DRILL_KEYS = {"action": "x_actions", "reason": "x_reasons", "country": "x_countries", "user": "x_user"}
FILTERS_KEY = "global_filters"
_HASH = {Filters: repr}  # Filters is a frozen dataclass: its repr is a stable cache key


# --------------------------------------------------------------------------- configuration
def _script_args(argv: Sequence[str]) -> argparse.Namespace:
    """``streamlit run dashboard/app.py -- --root DIR --labels PATH`` puts these in sys.argv."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--root")
    parser.add_argument("--labels")
    parser.add_argument("--config")
    known, _ = parser.parse_known_args(list(argv))
    return known


AuditRoot = Path | str
"""A folder, or ``s3://bucket/prefix`` kept as a string (``Path`` would fold its ``//``)."""


def audit_root() -> AuditRoot | None:
    """The audit root from ``--root`` (after ``--``) or ``RISKENGINE_AUDIT_ROOT``: a folder or
    ``s3://bucket/prefix``."""
    value = _script_args(sys.argv[1:]).root or os.environ.get(ROOT_ENV)
    if not value:
        return None
    return value if value.startswith("s3://") else Path(value).expanduser()


def root_exists(root: AuditRoot) -> bool:
    """Whether there is anything to read yet: the folder exists (an object store prefix
    always "exists"; an empty one simply has no data)."""
    return isinstance(root, str) or root.exists()


def labels_path() -> Path | None:
    """Optional ground-truth labels (decision id → attack?) for the what-if catch rate."""
    value = _script_args(sys.argv[1:]).labels or os.environ.get(LABELS_ENV)
    return Path(value).expanduser() if value else None


def config_path() -> Path | None:
    """The riskengine TOML the dashboard was started with (``riskengine dashboard --config``,
    i.e. ``--config`` after ``--``, or ``RISKENGINE_DASHBOARD_CONFIG``); None: built-in settings."""
    value = _script_args(sys.argv[1:]).config or os.environ.get(CONFIG_ENV)
    return Path(value).expanduser() if value else None


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _policy_threshold(path: str | None, env: tuple[tuple[str, str], ...]) -> tuple[float, str | None]:
    try:
        return Settings.load(path, env=dict(env)).policy.challenge_threshold, None
    except (OSError, ValueError) as exc:  # pydantic's ValidationError and TOML errors are ValueErrors
        where = f"--config {path}" if path else "the RISKENGINE_* environment"
        return Settings().policy.challenge_threshold, f"could not read the policy from {where}: {exc}"


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _policy_budget(path: str | None, env: tuple[tuple[str, str], ...]) -> tuple[float, int]:
    try:
        policy = Settings.load(path, env=dict(env)).policy
    except (OSError, ValueError):  # challenge_threshold() reports the problem
        policy = Settings().policy
    return policy.target_stepup_rate, policy.budget_established_logins


def stepup_budget() -> tuple[float, int]:
    """``(policy.target_stepup_rate, policy.budget_established_logins)`` from the configuration
    the dashboard was started with (0.0: a fixed threshold, no budget)."""
    path = config_path()
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("RISKENGINE_")))
    return _policy_budget(str(path) if path is not None else None, env)


def challenge_threshold() -> tuple[float, str | None]:
    """The engine's ``policy.challenge_threshold`` from the configuration the dashboard was
    started with (``--config`` + ``RISKENGINE_*`` environment overrides, as the engine reads
    them): where the what-if slider starts. Returns (threshold, problem): when the configuration
    cannot be read, the built-in default and what went wrong, for the page to show."""
    path = config_path()
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("RISKENGINE_")))
    return _policy_threshold(str(path) if path is not None else None, env)


# --------------------------------------------------------------------------- access
@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: ``name`` is None with ``auth = "none"`` (nobody is identified)."""

    name: str | None
    raw_ids: bool
    """Offered the raw-identifier toggle (listed in ``dashboard.pii_viewers``)."""


@dataclass(frozen=True, slots=True)
class Denied:
    """No data for this request, and why (shown on the page)."""

    message: str
    offer: Literal["login", "logout"] | None = None
    """The button the page offers (OIDC): sign in, or sign out to switch accounts."""


def listed(user: str, entries: Sequence[str]) -> bool:
    """Is ``user`` one of ``entries`` (e-mail addresses, or ``@domain`` for a whole domain)?

    >>> listed("Ana@Example.com", ["ana@example.com"]), listed("bo@example.com", ["@example.com"])
    (True, True)
    >>> listed("bo@evil-example.com", ["@example.com"]), listed("x@y@example.com", ["@example.com"])
    (False, False)
    >>> listed("\u017fam@example.com", ["sam@example.com"])  # a long s does not fold into "sam"
    False
    """
    if not user.isascii():
        return False  # lists hold plain addresses: Unicode folding would make look-alikes equal
    who = user.strip().lower()
    for entry in entries:
        want = entry.strip().lower()
        if want.startswith("@"):
            if who.count("@") == 1 and who.endswith(want):
                return True
        elif want and who == want:
            return True
    return False


def resolve_viewer(settings: DashboardSettings, *, header_values: Sequence[str] = (),
                   user: Mapping[str, Any] | None = None) -> Viewer | Denied:
    """Decide who is looking from what the request carries: ``header_values`` (every value of
    ``trusted_user_header``) in header mode, ``user`` (``st.user``'s claims) in OIDC mode."""
    if settings.auth == "none":
        return Viewer(None, raw_ids=False)
    if settings.auth == "header":
        values = [v.strip() for v in header_values if v.strip()]
        if not values:
            return Denied(f"Not signed in: this dashboard is served behind a sign-in proxy, and the request "
                          f"carried no `{settings.trusted_user_header}` header. Open it through the proxy.")
        if len(set(values)) > 1 or "," in values[0]:
            # a client-supplied header the proxy appended to instead of replacing: trust neither
            return Denied(f"Ambiguous sign-in: the request carried several `{settings.trusted_user_header}` "
                          "values. The proxy must overwrite that header, not append to it.")
        name = values[0]
    else:
        claims = dict(user or {})
        if not claims.get("is_logged_in"):
            return Denied("Sign in to see the dashboard: it shows who was challenged where.", offer="login")
        # only an e-mail the provider says it verified (a JSON true, not "false", not absent: a
        # multi-tenant provider may sign in a stranger's tenant user with anyone's address)
        if claims.get("email_verified") is not True:
            return Denied("Your identity provider has not verified your e-mail address.", offer="logout")
        name = str(claims.get("email") or "").strip()
        if not name:
            return Denied("Your identity provider sent no e-mail address.", offer="logout")
    if settings.allowed_users and not listed(name, settings.allowed_users):
        return Denied(f"{name} is not allowed to open this dashboard (dashboard.allowed_users).",
                      offer="logout" if settings.auth == "oidc" else None)
    return Viewer(name, raw_ids=listed(name, settings.pii_viewers))


def dashboard_settings() -> tuple[DashboardSettings | None, str | None]:
    """The ``[dashboard]`` section of the configuration the dashboard was started with (read on
    every run, so a change of who may look takes effect at once); (None, problem) when it
    cannot be read — the caller then shows no data."""
    path = config_path()
    try:
        return DashboardSettings.load(path, env=os.environ), None
    except (OSError, ValueError) as exc:
        where = f"--config {path}" if path else "the RISKENGINE_* environment"
        return None, f"could not read the dashboard settings from {where}: {exc}"


def _oidc_problem(settings: DashboardSettings) -> str | None:
    if importlib.util.find_spec("authlib") is None:
        return ('dashboard.auth = "oidc" needs Authlib: pip install "riskengine[dashboard]" '
                '(or "streamlit[auth]")')
    try:
        auth = st.secrets["auth"]
    except Exception:  # no secrets.toml, or no [auth] in it (Streamlit raises its own error types)
        return ('dashboard.auth = "oidc" but no [auth] section was found in .streamlit/secrets.toml: '
                "see docs/dashboard.md")
    if settings.oidc_provider and settings.oidc_provider not in auth:
        name = settings.oidc_provider
        return f"dashboard.oidc_provider = {name!r} but .streamlit/secrets.toml has no [auth.{name}]"
    return None


def viewer() -> Viewer | Denied:
    """Who is looking at this run (no output): pages ask it before offering anything beyond
    the pseudonymised default."""
    settings, problem = dashboard_settings()
    if settings is None:
        return Denied(f"The dashboard is closed: {problem}")
    if settings.auth == "oidc":
        problem = _oidc_problem(settings)
        if problem is not None:
            return Denied(f"The dashboard is closed: {problem}")
        return resolve_viewer(settings, user=st.user.to_dict())
    if settings.auth == "header":
        assert settings.trusted_user_header is not None
        return resolve_viewer(settings, header_values=st.context.headers.get_all(settings.trusted_user_header))
    return resolve_viewer(settings)


def require_viewer() -> Viewer:
    """The access gate the entry point runs before any page: a signed-in (or, with
    ``auth = "none"``, local) viewer, or a sign-in page and ``st.stop()`` — no data is read."""
    who = viewer()
    if isinstance(who, Denied):
        st.title("riskengine")
        st.warning(who.message, icon=":material/lock:")
        if who.offer == "logout":
            st.button("Log out", on_click=st.logout, key="auth_logout")
        elif who.offer == "login":
            settings, _ = dashboard_settings()
            provider = settings.oidc_provider if settings is not None else None
            st.button("Log in", on_click=st.login, args=(provider,) if provider else (), key="auth_login",
                      type="primary")
        st.stop()
    assert isinstance(who, Viewer)
    if who.name is not None:
        st.sidebar.caption(f"Signed in as {who.name}")
        if st.user.get("is_logged_in"):
            st.sidebar.button("Log out", on_click=st.logout, key="auth_logout")
    return who


# --------------------------------------------------------------------------- cached queries
@st.cache_resource(show_spinner=False)
def _db(root: str) -> AuditDB:
    return AuditDB(root)


def db(root: AuditRoot) -> AuditDB:
    return _db(str(root))


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def has_data(root: str) -> bool:
    return _db(root).has_data()


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def date_range(root: str) -> tuple[datetime, datetime] | None:
    return _db(root).date_range()


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def kpis(root: str, f: Filters) -> dict[str, Any]:
    """Counts and rates; ``users`` is None here (a distinct count needs every raw row, and most
    pages do not show it): see :func:`active_users`."""
    return dict(_db(root).kpis(f, users=False))


EXACT_USERS_UP_TO = 1_000_000
"""Windows with more logins than this show a HyperLogLog estimate of distinct users."""


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def active_users(root: str, f: Filters, logins: int) -> tuple[int, bool]:
    """(distinct users, whether that is an estimate): exact up to ``EXACT_USERS_UP_TO`` logins."""
    approximate = logins > EXACT_USERS_UP_TO
    return _db(root).distinct_users(f, approximate=approximate), approximate


def previous_window(f: Filters) -> Filters | None:
    """The same-length window just before ``f`` (what ``kpis_vs_previous`` compares with)."""
    return f.previous()


def kpis_vs_previous(root: str, f: Filters) -> dict[str, tuple[Any, Any]]:
    """``AuditDB.kpis_vs_previous`` without distinct users, like :func:`kpis` (see
    :func:`active_users`). For a window closed at both ends (the sidebar's always is) that is
    ``kpis`` of the window and of :meth:`Filters.previous`, so it is put together from the two
    cached :func:`kpis` calls: the window's own is the one every page already made."""
    before = f.previous()
    if before is None:
        return _kpis_vs_previous(root, f)
    now, then = kpis(root, f), kpis(root, before)
    return {k: (now[k], then[k]) for k in now}


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def _kpis_vs_previous(root: str, f: Filters) -> dict[str, tuple[Any, Any]]:
    return dict(_db(root).kpis_vs_previous(f, users=False))


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def kpi_series(root: str, f: Filters, grain: str) -> pl.DataFrame:
    return _db(root).kpi_series(f, grain=grain)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def breakdown(root: str, f: Filters, by: str) -> pl.DataFrame:
    return _db(root).breakdown(f, by)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def channel_success(root: str, f: Filters) -> pl.DataFrame:
    return _db(root).channel_success(f)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def fallback_funnel(root: str, f: Filters) -> pl.DataFrame:
    return _db(root).fallback_funnel(f)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def fallback_paths(root: str, f: Filters) -> pl.DataFrame:
    return _db(root).fallback_paths(f)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def time_to_verify(root: str, f: Filters) -> pl.DataFrame:
    """Percentiles read from 2 %-wide buckets (within ~1 %; from the rollups where current)."""
    return _db(root).time_to_verify(f, approximate=True)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def avoidable_challenges(root: str, f: Filters) -> dict[str, Any]:
    return dict(_db(root).avoidable_challenges(f))


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def send_summary(root: str, f: Filters) -> pl.DataFrame:
    return _db(root).send_summary(f)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def pumping_alerts(root: str, f: Filters) -> pl.DataFrame:
    return _db(root).pumping_alerts(f)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def reason_counts(root: str, f: Filters) -> pl.DataFrame:
    return _db(root).reason_counts(f)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def feedback_by_reason(root: str, f: Filters) -> pl.DataFrame:
    return _db(root).feedback_by_reason(f)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def policy_modes(root: str, f: Filters) -> pl.DataFrame:
    return _db(root).policy_modes(f)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def event_breakdown(root: str, f: Filters) -> pl.DataFrame:
    return _db(root).event_breakdown(f)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def shadow_reason_counts(root: str, f: Filters) -> pl.DataFrame:
    return _db(root).shadow_reason_counts(f)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def budget_series(root: str, f: Filters, grain: str, established_logins: int) -> pl.DataFrame:
    return _db(root).budget_series(f, grain=grain, established_logins=established_logins)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def risk_histogram(root: str, f: Filters, bins: int = 20) -> pl.DataFrame:
    return _db(root).risk_histogram(f, bins=bins)


@st.cache_data(ttl=300, show_spinner=False)
def load_labels(path: str) -> pl.DataFrame:
    """Read a labels file (CSV or Parquet) once; ``whatif`` validates its columns."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"labels file not found: {p}")
    return pl.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pl.read_csv(p)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def whatif(root: str, f: Filters, thresholds: tuple[float, ...], labels: str | None) -> pl.DataFrame:
    frame = load_labels(labels) if labels else None
    return _db(root).whatif(f, thresholds, labels=frame)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def events(root: str, f: Filters, table: str, limit: int, offset: int = 0) -> pl.DataFrame:
    return _db(root).events(f, table=table, limit=limit, offset=offset)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def alerts(root: str, f: Filters) -> pl.DataFrame:
    return _db(root).alerts(f)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def experiment_names(root: str) -> list[str]:
    return list(_db(root).experiment_names())


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, hash_funcs=_HASH)
def experiment_readout(root: str, name: str, f: Filters) -> dict[str, Any]:
    return dict(_db(root).experiment_readout(name, f).to_dict())


@st.cache_data(ttl=10 * CACHE_TTL_SECONDS, show_spinner=False)
def segment_options(root: str, by: str) -> list[str]:
    """Values offered by a multiselect: every value seen in the whole log (``reason``: codes)."""
    return sorted(_db(root).segment_values(by))


# --------------------------------------------------------------------------- sidebar
def _bounds(day: date, end: bool = False) -> datetime:
    at = datetime.combine(day, time(0), tzinfo=UTC)
    return at + timedelta(days=1) if end else at


def sidebar_filters(root: AuditRoot | None) -> Filters | None:
    """Render the global filters; every page reads the result via :func:`current_filters`.

    The date range is whole UTC days, inclusive of the end day (``until`` is exclusive, so it
    is the midnight after it). Returns None while there is nothing to filter.
    """
    st.session_state[FILTERS_KEY] = None
    if root is None or not root_exists(root) or not has_data(str(root)):
        return None
    span = date_range(str(root))
    if span is None:
        return None
    first, last = span[0].astimezone(UTC).date(), span[1].astimezone(UTC).date()
    sb = st.sidebar
    sb.header("Filters")
    picked = sb.date_input("Date range (UTC)", value=(first, last), min_value=first, max_value=last,
                           key="f_dates", help="Whole days, both ends included.")
    if isinstance(picked, tuple | list) and len(picked) == 2:
        since_day, until_day = picked
    elif isinstance(picked, tuple | list) and len(picked) == 1:
        since_day = until_day = picked[0]  # the second click of a range has not happened yet
    else:
        since_day = until_day = picked  # type: ignore[assignment]
    countries = sb.multiselect("Country", segment_options(str(root), "country"), key="f_countries",
                               placeholder="All countries")
    devices = sb.multiselect("Device type", segment_options(str(root), "device_type"), key="f_devices",
                             placeholder="All device types")
    policies = sb.multiselect("Policy version", segment_options(str(root), "policy_version"),
                              key="f_policies", placeholder="All policy versions")
    if sb.button("Refresh data", help=f"Results are cached for {CACHE_TTL_SECONDS} s; reload now."):
        st.cache_data.clear()
    f = Filters(since=_bounds(since_day), until=_bounds(until_day, end=True),
                countries=tuple(countries), device_types=tuple(devices), policy_versions=tuple(policies))
    st.session_state[FILTERS_KEY] = f
    return f


def page_context(title: str, *, needs_logins: bool = True) -> tuple[AuditRoot, Filters]:
    """Title, then the (root, filters) a page works with — or a friendly message and stop."""
    st.title(title)
    root = audit_root()
    if root is None:
        st.info(f"No audit root configured. Start the dashboard with `riskengine dashboard --root DIR` "
                f"or set {ROOT_ENV}.")
        st.stop()
    assert root is not None
    if not root_exists(root):
        st.info(f"The audit root `{root}` does not exist yet. It appears when the engine writes its first "
                "events (Engine with `audit.root` set), e.g. after `riskengine demo`.")
        st.stop()
    f = st.session_state.get(FILTERS_KEY)
    if f is None:
        st.info(f"No data yet in `{root}`: no decisions have been written. Score some logins with an "
                "Engine whose `audit.root` points here; this page refreshes every "
                f"{CACHE_TTL_SECONDS} s.")
        st.stop()
    assert isinstance(f, Filters)
    if needs_logins and not kpis(str(root), f)["logins"]:
        st.info("No logins match the current filters. Widen the date range or clear the country, "
                "device type or policy filters in the sidebar.")
        st.stop()
    return root, f


def with_filters(f: Filters, **changes: Any) -> Filters:
    return replace(f, **changes)


# --------------------------------------------------------------------------- drill-down
def drill(*, reason: str | None = None, country: str | None = None, action: str | None = None,
          user: str | None = None) -> None:
    """Open the audit explorer filtered to the events behind a chart mark."""
    st.session_state[DRILL_KEYS["reason"]] = [reason] if reason else []
    st.session_state[DRILL_KEYS["country"]] = [country] if country else []
    st.session_state[DRILL_KEYS["action"]] = [action] if action else []
    st.session_state[DRILL_KEYS["user"]] = user or ""
    st.switch_page(EXPLORER_PAGE)


def drill_picker(label: str, options: Sequence[str], kind: str, key: str) -> None:
    """A selectbox + button: 'show me the events behind this value'."""
    if not options:
        return
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    choice = left.selectbox(label, list(options), key=key)
    if right.button("Open in Audit explorer", key=f"{key}_go", icon=":material/search:") and choice:
        drill(**{kind: choice})


def drillable_chart(chart: Any, *, field: str, kind: str, key: str, label: str, options: Sequence[str]) -> None:
    """Render a chart whose marks open the audit explorer on the clicked value (an Altair
    selection named ``pick`` over ``field``), plus the same as a picker for keyboard users."""
    event = st.altair_chart(chart, width="stretch", on_select="rerun", key=f"{key}_chart")
    clicked = selected_value(event, "pick", field)
    if clicked:
        drill(**{kind: clicked})
    drill_picker(label, options, kind, key=f"drill_{key}")


def selected_value(event: Any, param: str, field_name: str) -> str | None:
    """The field value of the first point selected in an Altair chart (``on_select='rerun'``)."""
    try:
        points = event["selection"][param]
    except (KeyError, TypeError):
        return None
    if isinstance(points, list) and points and isinstance(points[0], dict):
        value = points[0].get(field_name)
        return str(value) if value is not None else None
    return None


# --------------------------------------------------------------------------- formatting
def pct(value: float | None, digits: int = 1) -> str:
    """0.1234 → '12.3%'; missing → '–'."""
    if value is None or value != value:  # None or NaN
        return "–"
    return f"{value * 100:.{digits}f}%"


def num(value: float | int | None) -> str:
    if value is None:
        return "–"
    return f"{int(value):,}"


def pp_delta(current: float | None, previous: float | None) -> str | None:
    """Change of a rate in percentage points, for ``st.metric(delta=...)``."""
    if current is None or previous is None or current != current or previous != previous:
        return None
    return f"{(current - previous) * 100:+.1f} pp"


def count_delta(current: float | None, previous: float | None) -> str | None:
    if current is None or previous is None:
        return None
    return f"{int(current) - int(previous):+,}"


_PSEUDONYM = re.compile(r"^[0-9a-f]{16}$")
_DISPLAY_KEY = secrets.token_bytes(16)  # per process: display hashes are not joinable elsewhere
IDENTIFIER_COLUMNS = ("user_key", "session_key")


def pseudonymise(frame: pl.DataFrame) -> pl.DataFrame:
    """Identifiers as the audit log stores them are already keyed hashes; an audit root written
    with ``audit.pseudonymize = false`` holds raw ids, which are hashed here for display."""

    def mask(value: str | None) -> str | None:
        if value is None or _PSEUDONYM.match(value):
            return value
        return "~" + hashlib.blake2b(value.encode(), key=_DISPLAY_KEY, digest_size=8).hexdigest()

    cols = [c for c in IDENTIFIER_COLUMNS if c in frame.columns and frame.schema[c] == pl.Utf8]
    if not cols:
        return frame
    return frame.with_columns(pl.col(c).map_elements(mask, return_dtype=pl.Utf8) for c in cols)
