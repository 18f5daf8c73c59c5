"""Overview: the four headline numbers vs the previous period, trends, alerts, logins per day."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import altair as alt
import polars as pl
import streamlit as st

from riskengine.apps.dashboard_cli import app_module

common = app_module("common", __file__)

root, f = common.page_context("Overview")
r = str(root)

span = (f.until - f.since) if f.since and f.until else None
if f.since and f.until and span:
    st.caption(f"{f.since:%d %b %Y} – {f.until - timedelta(days=1):%d %b %Y} (UTC); changes are against "
               f"the {span.days} days before.")

now_prev = common.kpis_vs_previous(r, f)


previous_has_data = bool(now_prev.get("logins", (0, 0))[1])


def _pair(key: str) -> tuple[Any, Any]:
    """(current, previous); no previous when the period before held no logins (no fake "+100 %")."""
    value = now_prev.get(key, (None, None))
    return value[0], (value[1] if previous_has_data else None)


def _experiment_conversion(name: str, window: common.Filters) -> float | None:
    readout = common.experiment_readout(r, name, window)
    variants = readout.get("variants", {})
    n = sum(v.get("n", 0) for v in variants.values())
    conversions = sum(v.get("conversions", 0) for v in variants.values())
    return conversions / n if n else None


names = common.experiment_names(r)
exposed = {name: sum(v.get("n", 0) for v in common.experiment_readout(r, name, f).get("variants", {}).values())
           for name in names}
# the main experiment: the one with the most exposed users in this period, unless picked below
ranked = sorted(names, key=lambda name: -exposed[name])
main_experiment = st.session_state.get("main_experiment") or (ranked[0] if ranked else None)

c1, c2, c3, c4 = st.columns(4)
rate, prev = _pair("challenge_rate")
c1.metric("Challenge rate", common.pct(rate), common.pp_delta(rate, prev), delta_color="inverse",
          help="(challenged + denied logins) / scored logins", border=True)
rate, prev = _pair("challenge_success_rate")
c2.metric("Challenge success rate", common.pct(rate), common.pp_delta(rate, prev),
          help="verified / challenges with a recorded outcome", border=True)
rate, prev = _pair("fallback_rate")
c3.metric("Fallback rate", common.pct(rate), common.pp_delta(rate, prev), delta_color="inverse",
          help="challenges that needed more than one channel / challenges with an outcome", border=True)
if main_experiment is None:
    c4.metric("A/B conversion", "–", help="No experiment exposures recorded yet.", border=True)
else:
    current = _experiment_conversion(main_experiment, f)
    previous = None
    if f.since is not None and f.until is not None:
        previous = _experiment_conversion(main_experiment, common.previous_window(f) or f)
    c4.metric(f"A/B conversion ({main_experiment})", common.pct(current), common.pp_delta(current, previous),
              help="conversions / exposed users, all arms of the main experiment (details: Experiments)",
              border=True)

d1, d2, d3, d4 = st.columns(4)
value, prev = _pair("logins")
d1.metric("Logins", common.num(value), common.count_delta(value, prev), delta_color="off")
value, prev = _pair("deny_rate")
d2.metric("Deny rate", common.pct(value, 2), common.pp_delta(value, prev), delta_color="inverse")
value, prev = _pair("failures")
d3.metric("Failed passwords", common.num(value), common.count_delta(value, prev), delta_color="inverse")
logins_now, logins_before = now_prev.get("logins", (0, 0))
users_now, estimated = common.active_users(r, f, int(logins_now or 0))
before = common.previous_window(f)
users_before: int | None = None
if previous_has_data and before is not None:
    users_before, estimated_before = common.active_users(r, before, int(logins_before or 0))
    estimated = estimated or estimated_before
d4.metric("Active users (≈)" if estimated else "Active users", common.num(users_now),
          common.count_delta(users_now, users_before), delta_color="off",
          help="Distinct pseudonymous users who logged in. Over more than "
               f"{common.EXACT_USERS_UP_TO:,} logins this is a HyperLogLog estimate (typically within ~2 %)."
          if estimated else "Distinct pseudonymous users who logged in (exact count).")

if len(names) > 1:
    st.selectbox("Experiment shown in the A/B conversion tile", ranked, key="main_experiment",
                 width=360)

# ---------------------------------------------------------------- shadow policy
modes = common.policy_modes(r, f)
if not modes.filter(pl.col("mode") == "shadow").is_empty():
    st.subheader("Shadow policy (would-be, not enforced)")
    st.caption("Decisions scored with policy.mode = \"shadow\" were allowed; their would-be challenge and "
               "deny rates (from shadow_action) sit beside the enforced rates of enforced decisions.")
    left, right = st.columns(2)
    left.dataframe(modes, hide_index=True, width="stretch", column_config={
        "policy_version": "Policy version", "mode": "Mode",
        "decisions": st.column_config.NumberColumn("Decisions", format="%d"),
        "challenge_rate": st.column_config.NumberColumn("Challenge rate (would-be in shadow)", format="percent"),
        "deny_rate": st.column_config.NumberColumn("Deny rate (would-be in shadow)", format="percent")})
    right.dataframe(common.shadow_reason_counts(r, f).head(10), hide_index=True, width="stretch",
                    column_config={
                        "reason": "Reason", "decisions": st.column_config.NumberColumn("Decisions", format="%d"),
                        "share": st.column_config.NumberColumn("Share", format="percent"),
                        "would_be_challenge_rate": st.column_config.NumberColumn("Would step up",
                                                                                  format="percent")})

# ---------------------------------------------------------------- sensitive events
events = common.event_breakdown(r, f)
if not events.filter(pl.col("event") != "login").is_empty():
    st.subheader("Decisions by event")
    st.caption("Recoveries, factor changes and password resets are scored against the same profile under "
               "their own stricter policy (policy.events); the headline rates above count every decision.")
    st.dataframe(events, hide_index=True, width="stretch", column_config={
        "event": "Event", "decisions": st.column_config.NumberColumn("Decisions", format="%d"),
        "challenged": st.column_config.NumberColumn("Challenged", format="%d"),
        "denied": st.column_config.NumberColumn("Denied", format="%d"),
        "challenge_rate": st.column_config.NumberColumn("Challenge rate", format="percent"),
        "deny_rate": st.column_config.NumberColumn("Deny rate", format="percent")})

# ---------------------------------------------------------------- trends
days = span.days if span else 30
grain = "hour" if days <= 3 else ("day" if days <= 120 else "week")
series = common.kpi_series(r, f, grain)
st.subheader("Trends")
if series.is_empty():
    st.info("No logins in this period.")
else:
    rates = series.select("bucket", "challenge_rate", "challenge_success_rate", "fallback_rate", "deny_rate")
    long = rates.unpivot(index="bucket", variable_name="metric", value_name="rate").with_columns(
        pl.col("metric").replace({"challenge_rate": "Challenge rate", "challenge_success_rate": "Challenge success",
                                  "fallback_rate": "Fallback", "deny_rate": "Deny rate"}))
    rate_chart = (
        alt.Chart(long.to_pandas(), title=f"Rates per {grain}")
        .mark_line(point=True)
        .encode(
            x=alt.X("bucket:T", title=f"Time ({grain}, UTC)"),
            y=alt.Y("rate:Q", title="Rate (% of logins / challenges)", axis=alt.Axis(format="%")),
            color=alt.Color("metric:N", title="Metric"),
            tooltip=[alt.Tooltip("bucket:T", title=grain.title()), alt.Tooltip("metric:N", title="Metric"),
                     alt.Tooltip("rate:Q", title="Rate", format=".1%")],
        )
    )
    logins = series.select("bucket", "logins", "challenged", "denied").with_columns(
        allowed=pl.col("logins") - pl.col("challenged") - pl.col("denied"))
    stacked = logins.select("bucket", "allowed", "challenged", "denied").unpivot(
        index="bucket", variable_name="action", value_name="count")
    login_chart = (
        alt.Chart(stacked.to_pandas(), title=f"Logins per {grain} by decision")
        .mark_bar()
        .encode(
            x=alt.X("bucket:T", title=f"Time ({grain}, UTC)"),
            y=alt.Y("count:Q", title="Logins (count)", stack=True),
            color=alt.Color("action:N", title="Decision",
                            scale=alt.Scale(domain=["allowed", "challenged", "denied"],
                                            range=["#4c9f70", "#f2a541", "#d1495b"])),
            tooltip=[alt.Tooltip("bucket:T", title=grain.title()), "action:N",
                     alt.Tooltip("count:Q", title="Logins", format=",")],
        )
    )
    left, right = st.columns(2)
    left.altair_chart(rate_chart, width="stretch")
    right.altair_chart(login_chart, width="stretch")

# ---------------------------------------------------------------- alerts
st.subheader("Active alerts")
found = common.alerts(r, f)
if found.is_empty():
    st.success("No spikes: challenge rate and failed passwords are within their usual range.")
else:
    st.warning(f"{found.height} spike(s) against the trailing baseline in this period.")
    st.dataframe(
        found.sort("bucket", descending=True),
        hide_index=True, width="stretch",
        column_config={
            "bucket": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm"),
            "metric": "Metric", "value": st.column_config.NumberColumn("Value", format="%.3f"),
            "baseline": st.column_config.NumberColumn("Baseline", format="%.3f"),
            "zscore": st.column_config.NumberColumn("z-score", format="%.1f"), "severity": "Severity",
        })
