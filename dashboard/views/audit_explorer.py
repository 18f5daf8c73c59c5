"""Audit explorer: the events behind every number, filtered by time (sidebar), action, reason,
country and user key; CSV export. Other pages "drill" here by setting the ``x_*`` filters;
links can carry them as query parameters (``?reason=NEW_DEVICE&country=CN``)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from riskengine.apps.dashboard_cli import app_module

common = app_module("common", __file__)

root, f = common.page_context("Audit explorer", needs_logins=False)
r = str(root)
K = common.DRILL_KEYS
TABLES = ("decisions", "challenges", "failures", "exposures", "conversions")
PAGE_ROWS = 500
EXPORT_ROWS = 100_000

# a shared link (query parameters) fills the filters once
params = {name: st.query_params.get_all(name) for name in ("action", "reason", "country", "user")}
signature = repr(sorted(params.items()))
if any(params.values()) and st.session_state.get("x_params_applied") != signature:
    st.session_state[K["action"]] = params["action"]
    st.session_state[K["reason"]] = params["reason"]
    st.session_state[K["country"]] = params["country"]
    st.session_state[K["user"]] = (params["user"] or [""])[0]
    st.session_state["x_params_applied"] = signature


def _options(values: list[str], key: str) -> list[str]:
    chosen = st.session_state.get(key) or []
    return sorted(set(values) | set(chosen))


c1, c2, c3, c4 = st.columns([2, 3, 2, 3])
table = c1.selectbox("Table", TABLES, key="x_table")
actions = c1.multiselect("Action", _options(["allow", "challenge", "deny"], K["action"]), key=K["action"],
                         placeholder="All actions")
reasons = c2.multiselect("Reason code", _options(common.segment_options(r, "reason"), K["reason"]),
                         key=K["reason"], placeholder="Any reason", help="Decisions with ANY of these codes.")
countries = c3.multiselect("Country", _options(common.segment_options(r, "country"), K["country"]),
                           key=K["country"], placeholder="Sidebar countries")
user_key = c4.text_input("User key", key=K["user"], placeholder="pseudonymised user key (exact)",
                         help="The keyed hash stored in the audit log, e.g. copied from a row below.").strip()

view = common.with_filters(
    f, actions=tuple(actions), reasons=tuple(reasons),
    countries=tuple(countries) or f.countries, user_key=user_key or None)
if table in ("failures", "exposures", "conversions") and (actions or reasons or countries):
    st.caption(f"The {table} table has no action, reason or country: those filters are ignored for it.")

# mirror the filters into the URL so it can be shared; remember it so it is not re-applied
shared = {"action": list(actions), "reason": list(reasons), "country": list(countries),
          "user": [user_key] if user_key else []}
st.query_params.from_dict({k: v for k, v in shared.items() if v})
st.session_state["x_params_applied"] = repr(sorted(shared.items()))

# raw identifiers only for dashboard.pii_viewers: everyone else gets no toggle (nor its state)
who = common.viewer()
pseudo = True
if isinstance(who, common.Viewer) and who.raw_ids:
    pseudo = st.toggle("Pseudonymised identifiers", value=True, key="x_pseudo",
                       help="User and session keys stay hashed; raw ids (audit roots written with "
                            "pseudonymisation off) are hashed for display.")

if st.session_state.get("x_view") != (repr(view), table):  # new filters: back to the first page
    st.session_state["x_view"] = (repr(view), table)
    st.session_state["x_page"] = 1
page_no = int(st.session_state.get("x_page", 1))
rows = common.events(r, view, table, PAGE_ROWS + 1, (page_no - 1) * PAGE_ROWS)
more = rows.height > PAGE_ROWS
rows = rows.head(PAGE_ROWS)
if rows.is_empty():
    st.info("No events match these filters. Clear some of them, or widen the date range in the sidebar.")
    st.stop()

shown = common.pseudonymise(rows) if pseudo else rows
st.caption(f"Rows {(page_no - 1) * PAGE_ROWS + 1:,}–{(page_no - 1) * PAGE_ROWS + rows.height:,}"
           f"{' (more on the next page)' if more else ''}, newest first.")
st.dataframe(shown, hide_index=True, width="stretch", key="x_rows", column_config={
    "event_time": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "risk": st.column_config.NumberColumn("Risk", format="%.3f"),
    "latency_us": st.column_config.NumberColumn("Latency (µs)", format="%.1f"),
    "seconds_to_verify": st.column_config.NumberColumn("Seconds to verify", format="%.1f"),
})

left, mid, right = st.columns([1, 1, 3], vertical_alignment="center")
if left.button("◀ Newer", disabled=page_no <= 1, key="x_prev"):
    st.session_state["x_page"] = page_no - 1
    st.rerun()
if mid.button("Older ▶", disabled=not more, key="x_next"):
    st.session_state["x_page"] = page_no + 1
    st.rerun()


def _csv() -> bytes:
    """Up to EXPORT_ROWS matching rows; list columns (reasons, channels) joined with '|'."""
    out = common.events(r, view, table, EXPORT_ROWS, 0)
    if pseudo:
        out = common.pseudonymise(out)
    out = out.with_columns(pl.col(c).cast(pl.List(pl.Utf8)).list.join("|")
                           for c, dtype in out.schema.items() if isinstance(dtype, pl.List))
    return out.write_csv().encode()


right.download_button(f"Export CSV (up to {EXPORT_ROWS:,} rows)", _csv, file_name=f"riskengine-{table}.csv",
                      mime="text/csv", icon=":material/download:", key="x_export", on_click="ignore")
