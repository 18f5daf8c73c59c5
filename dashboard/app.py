"""riskengine dashboard: ``streamlit run dashboard/app.py -- --root DIR [--labels PATH] [--config TOML]``.

Also reads ``RISKENGINE_AUDIT_ROOT`` / ``RISKENGINE_LABELS``; ``riskengine dashboard --root DIR``
starts it for you. The entry point draws the navigation and the global sidebar filters (so
every page honours the same filters), then runs the selected page from ``views/``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from riskengine.apps.dashboard_cli import app_module

_HERE = Path(__file__).resolve().parent
common = app_module("common", __file__)  # dashboard.common in a checkout, riskengine.dashboard_app.common installed

st.set_page_config(page_title="riskengine", page_icon=":material/shield_lock:", layout="wide")

PAGES = [
    st.Page(str(_HERE / "views" / "overview.py"), title="Overview", icon=":material/dashboard:",
            url_path="overview", default=True),
    st.Page(str(_HERE / "views" / "challenges.py"), title="Challenges & channels", icon=":material/sms:",
            url_path="challenges"),
    st.Page(str(_HERE / "views" / "experiments.py"), title="Experiments", icon=":material/science:",
            url_path="experiments"),
    st.Page(str(_HERE / "views" / "risk.py"), title="Risk & signals", icon=":material/warning:",
            url_path="risk"),
    st.Page(str(_HERE / "views" / "audit_explorer.py"), title="Audit explorer", icon=":material/search:",
            url_path="explorer"),
]

common.require_viewer()  # before any page or filter reads the audit root: a sign-in page, or the viewer
page = st.navigation(PAGES)
common.sidebar_filters(common.audit_root())
page.run()
