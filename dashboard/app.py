"""riskengine dashboard: ``streamlit run dashboard/app.py -- --root DIR [--labels PATH] [--config TOML]``.

Also reads ``RISKENGINE_AUDIT_ROOT`` / ``RISKENGINE_LABELS``; ``riskengine dashboard --root DIR``
starts it for you. The entry point draws the navigation and the global sidebar filters (so
every page honours the same filters), then runs the selected page from ``views/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

_HERE = Path(__file__).resolve().parent
if str(_HERE.parent) not in sys.path:  # `import dashboard.common` from a source checkout
    sys.path.insert(0, str(_HERE.parent))

from dashboard import common  # noqa: E402

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

page = st.navigation(PAGES)
common.sidebar_filters(common.audit_root())
page.run()
