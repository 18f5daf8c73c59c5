"""Risk & signals: which reason codes fire, the risk distribution, challenge rate by segment and a
policy what-if on recorded traffic."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import altair as alt
import polars as pl
import streamlit as st

from riskengine.apps.dashboard_cli import app_module

common = app_module("common", __file__)

root, f = common.page_context("Risk & signals")
r = str(root)

# ---------------------------------------------------------------- reason codes
st.subheader("Reason codes")
reasons = common.reason_counts(r, f)
if reasons.is_empty():
    st.info("No reason codes recorded for these filters.")
else:
    pick = alt.selection_point(name="pick", fields=["reason"])
    chart = (
        alt.Chart(reasons.to_pandas(), title="How often each reason code fires (click a bar to see its events)")
        .mark_bar()
        .encode(
            y=alt.Y("reason:N", title="Reason code", sort="-x", axis=alt.Axis(labelLimit=260)),
            x=alt.X("decisions:Q", title="Decisions with this reason (count)"),
            color=alt.Color("challenge_rate:Q", title="Challenge rate", legend=alt.Legend(format="%"),
                            scale=alt.Scale(scheme="orangered", domain=[0, 1])),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.45)),
            tooltip=[alt.Tooltip("reason:N", title="Reason"), alt.Tooltip("decisions:Q", format=","),
                     alt.Tooltip("share:Q", title="Share of decisions", format=".1%"),
                     alt.Tooltip("challenge_rate:Q", title="Challenge rate", format=".1%")],
        )
        .add_params(pick)
    )
    common.drillable_chart(chart, field="reason", kind="reason", key="reason",
                           label="Show the events of a reason code", options=reasons["reason"].to_list())

# ---------------------------------------------------------------- risk histogram
st.subheader("Risk-score distribution")
hist = common.risk_histogram(r, f, 20)
if hist.is_empty():
    st.info("No scored logins for these filters.")
else:
    long = hist.unpivot(index=["bin_low", "bin_high"], on=["allow", "challenge", "deny"],
                        variable_name="action", value_name="logins")
    st.altair_chart(
        alt.Chart(long.to_pandas(), title="Logins by risk score and decision")
        .mark_bar()
        .encode(
            x=alt.X("bin_low:Q", bin="binned", title="Risk score (0 = safe, 1 = certain attack)"),
            x2="bin_high:Q",
            y=alt.Y("logins:Q", title="Logins (count)", stack=True),
            color=alt.Color("action:N", title="Decision", scale=alt.Scale(
                domain=["allow", "challenge", "deny"], range=["#4c9f70", "#f2a541", "#d1495b"])),
            tooltip=[alt.Tooltip("bin_low:Q", title="From", format=".2f"),
                     alt.Tooltip("bin_high:Q", title="To", format=".2f"), "action:N",
                     alt.Tooltip("logins:Q", format=",")],
        ),
        width="stretch")

# ---------------------------------------------------------------- step-up budget
BUDGET_WINDOW = timedelta(days=7)
st.subheader("Step-up budget")
budget, established_logins = common.stepup_budget()
# an operations view: the last 7 days of the selection, per hour (a raw scan of the threshold
# column; over a whole range of 100M decisions that took 10 s)
span = common.date_range(r)
last = span[1] if span else None
if last is not None and f.until is not None:
    last = min(last, f.until)
since = last - BUDGET_WINDOW if last is not None else f.since
if since is not None and f.since is not None:
    since = max(since, f.since)
recent = replace(f, since=since)
st.caption(f"The last {BUDGET_WINDOW.days} days of the selection, per hour.")
series = common.budget_series(r, recent, "hour", established_logins)
recorded = series.filter(pl.col("threshold").is_not_null()) if not series.is_empty() else series
if recorded.is_empty():
    st.info("No decision in these filters recorded its challenge threshold (audit logs written before "
            "the `threshold` column existed).")
else:
    est = int(recorded["established"].sum())
    realised = int(recorded["established_challenged"].sum()) / est if est else None
    b1, b2, b3 = st.columns(3)
    b1.metric("Step-up budget (established users)", common.pct(budget) if budget else "off (fixed threshold)",
              border=True)
    b2.metric("Live threshold (latest hour, mean)", f"{recorded['threshold'][-1]:.3f}", border=True)
    b3.metric("Realised established step-up rate", common.pct(realised) if realised is not None else "no data",
              common.pp_delta(realised, budget) if budget and realised is not None else None,
              delta_color="inverse", border=True)
    st.caption(f"Established = the user had ≥ {established_logins} logins; the rate is challenged / "
               "established logins that were not denied (what the budget counts).")
    frame = recorded.select("bucket", "threshold", "established_stepup_rate").to_pandas()
    thr = alt.Chart(frame, title="Challenge threshold used, per hour").mark_line().encode(
        x=alt.X("bucket:T", title="Hour (UTC)"),
        y=alt.Y("threshold:Q", title="Challenge threshold (risk score)", scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("bucket:T", title="Hour"), alt.Tooltip("threshold:Q", format=".3f")])
    st.altair_chart(thr, width="stretch")
    rate = alt.Chart(frame, title="Realised established step-up rate per hour, against the budget").mark_line(
        color="#f2a541").encode(
        x=alt.X("bucket:T", title="Hour (UTC)"),
        y=alt.Y("established_stepup_rate:Q", title="Established step-up rate (%)", axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("bucket:T", title="Hour"),
                 alt.Tooltip("established_stepup_rate:Q", title="Step-up rate", format=".2%")])
    if budget:
        rate = rate + alt.Chart(pl.DataFrame({"budget": [budget]}).to_pandas()).mark_rule(
            strokeDash=[4, 4], color="gray").encode(y="budget:Q")
    st.altair_chart(rate, width="stretch")

# ---------------------------------------------------------------- segments
st.subheader("Challenge rate by segment")
segments = {"Country": "country", "Device type": "device_type", "Browser": "browser_family",
            "Recommended factor": "factor", "Policy version": "policy_version"}
label = st.segmented_control("Segment", list(segments), default="Country", key="segment_by") or "Country"
seg = common.breakdown(r, f, segments[label])
if seg.is_empty():
    st.info("No data for this segment.")
else:
    top = seg.sort("logins", descending=True).head(25).with_columns(pl.col("key").cast(pl.Utf8).fill_null("unknown"))
    st.altair_chart(
        alt.Chart(top.to_pandas(), title=f"Challenge and deny rate by {label.lower()} (top 25 by logins)")
        .transform_fold(["challenge_rate", "deny_rate"], as_=["metric", "rate"])
        .transform_calculate(metric="datum.metric == 'deny_rate' ? 'Deny rate' : 'Challenge rate'")
        .mark_bar()
        .encode(
            y=alt.Y("key:N", title=label, sort=alt.SortField("logins", order="descending")),
            x=alt.X("rate:Q", title="Rate (% of logins)", axis=alt.Axis(format="%")),
            yOffset="metric:N",
            color=alt.Color("metric:N", title="Metric", scale=alt.Scale(
                domain=["Challenge rate", "Deny rate"], range=["#f2a541", "#d1495b"])),
            tooltip=[alt.Tooltip("key:N", title=label), alt.Tooltip("logins:Q", format=","), "metric:N",
                     alt.Tooltip("rate:Q", format=".1%")],
        ),
        width="stretch")

# ---------------------------------------------------------------- what-if
st.subheader("Policy what-if")
labels = common.labels_path()
st.caption("Replays the recorded risk scores against another challenge threshold: which share of these logins "
           "would have been stepped up." + (" Catch rate uses the labels file." if labels else
                                             " Start with `--labels PATH` to also see the catch rate."))
configured, problem = common.challenge_threshold()
if problem:
    st.warning(f"{problem}. The slider starts at the built-in threshold {configured:g}.")
low, high = common.WHATIF_RANGE
threshold = st.slider("Challenge threshold (risk ≥ threshold is challenged)", low, high,
                      min(max(configured, low), high), 0.01, key="whatif_threshold",
                      help=f"Starts at the configured policy.challenge_threshold ({configured:g}).")
# the curve on a coarse grid plus the exact point, in one query: each what-if reads every risk
# score once however many thresholds it asks about
grid = tuple(round(0.05 * i, 2) for i in range(1, 20))
asked = (*grid, float(threshold))
try:
    both = common.whatif(r, f, asked, str(labels) if labels else None)
except (ValueError, FileNotFoundError) as exc:
    st.warning(f"Labels not used: {exc}")
    labels = None
    both = common.whatif(r, f, asked, None)
curve, point = both.head(len(grid)), both.tail(1)
if curve.is_empty() or point.is_empty():
    st.info("No scored logins to replay.")
else:
    row = point.row(0, named=True)
    m1, m2, m3 = st.columns(3)
    m1.metric("Projected challenge rate", common.pct(row["projected_challenge_rate"]),
              common.pp_delta(row["projected_challenge_rate"], row["current_challenge_rate"]),
              delta_color="inverse", border=True)
    m2.metric("Current challenge rate", common.pct(row["current_challenge_rate"]), border=True)
    catch = row.get("catch_rate")
    m3.metric("Catch rate (labelled attacks stepped up)", common.pct(catch) if catch is not None else "no labels",
              border=True)
    folded = ["projected_challenge_rate"] + (["catch_rate"] if curve["catch_rate"].drop_nulls().len() else [])
    base = alt.Chart(curve.to_pandas(), title="Projected challenge rate (and catch rate) by threshold")
    lines = base.transform_fold(folded, as_=["metric", "rate"]).transform_calculate(
        metric="datum.metric == 'catch_rate' ? 'Catch rate' : 'Projected challenge rate'"
    ).mark_line().encode(
        x=alt.X("threshold:Q", title="Challenge threshold (risk score)"),
        y=alt.Y("rate:Q", title="Rate (%)", axis=alt.Axis(format="%")),
        color=alt.Color("metric:N", title="Metric"),
        tooltip=[alt.Tooltip("threshold:Q", format=".2f"), "metric:N", alt.Tooltip("rate:Q", format=".1%")],
    )
    rule = alt.Chart(pl.DataFrame({"threshold": [threshold]}).to_pandas()).mark_rule(
        strokeDash=[4, 4], color="gray").encode(x="threshold:Q")
    st.altair_chart(lines + rule, width="stretch")

# ---------------------------------------------------------------- fraud feedback
st.subheader("Fraud feedback by reason code and policy version")
feedback = common.feedback_by_reason(r, f)
if feedback.is_empty():
    st.info("No fraud feedback in this period (engine.report_fraud: not_me, confirmed_takeover, false_positive).")
else:
    st.caption("Reports filed in this period, joined to the decisions they are about; a decision with several "
               "reasons counts under each. Many false positives under one reason: its weight is too high.")
    st.dataframe(feedback, hide_index=True, width="stretch", column_config={
        "reason": "Reason", "policy_version": "Policy version",
        "confirmed_takeovers": st.column_config.NumberColumn("Confirmed takeovers", format="%d"),
        "false_positives": st.column_config.NumberColumn("False positives", format="%d"),
        "not_me": st.column_config.NumberColumn("\"Not me\" reports", format="%d")})
