"""Challenges & channels: success by factor and channel, the fallback funnel, time to verify,
countries, how many challenges were avoidable, and OTP sends: sends, cost and verify ratio per
destination country, with pumping waves (SMS toll fraud) flagged as alerts."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from riskengine.apps.dashboard_cli import app_module

common = app_module("common", __file__)

root, f = common.page_context("Challenges & channels")
r = str(root)

k = common.kpis(r, f)
avoidable = common.avoidable_challenges(r, f)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Challenges with an outcome", common.num(k.get("challenges")), border=True)
c2.metric("Verified", common.num(k.get("verified")), border=True)
c3.metric("Challenge success rate", common.pct(k.get("challenge_success_rate")), border=True)
c4.metric("Fallback rate", common.pct(k.get("fallback_rate")), border=True,
          help="challenges that needed more than one channel")



def sms_section() -> None:
    """OTP sends checked by ``Engine.check_send``: cost and verify ratio per destination country."""
    st.subheader("OTP sends by destination country")
    waves = common.pumping_alerts(r, f)
    for w in waves.iter_rows(named=True):
        st.warning(f"Possible SMS pumping wave ({w['severity']}): {int(w['sends']):,} sends to "
                 f"{w['dest_country']} in the hour from {w['bucket']:%Y-%m-%d %H:%M} UTC, "
                 f"{w['verify_ratio']:.0%} verified (usual {w['baseline']:.0f} an hour)")
    summary = common.send_summary(r, f)
    if summary.is_empty():
        st.info("No OTP sends checked for these filters (the auth service checks each one with "
                "`Engine.check_send` before sending).")
        return
    sent, verified = int(summary["sent"].sum()), int(summary["verified"].sum())
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("OTP sends", common.num(sent), border=True)
    m2.metric("Blocked or switched", common.num(int(summary["blocked"].sum() + summary["switched"].sum())),
              border=True, help="sends check_send refused (premium numbers, velocity, low verify ratio…)")
    m3.metric("Send cost", f"{float(summary['cost'].sum()):,.2f}", border=True,
              help="sum of [sms] price_per_country over the sends made")
    m4.metric("Verify ratio", common.pct(verified / sent if sent else None), border=True,
              help="verified challenges / OTP sends made")
    st.dataframe(summary, hide_index=True, width="stretch", column_config={
        "dest_country": "Destination country", "checks": "Send checks", "sent": "Sent", "blocked": "Blocked",
        "switched": "Switched", "verified": "Verified",
        "verify_ratio": st.column_config.ProgressColumn("Verify ratio", format="percent", min_value=0, max_value=1),
        "cost": st.column_config.NumberColumn("Cost", format="%.2f"),
        "cost_avoided": st.column_config.NumberColumn("Cost avoided", format="%.2f"),
    })


if not k.get("challenges"):
    sms_section()
    st.info("No challenge outcomes recorded for these filters yet (the auth service reports them with "
            "`Engine.record_outcome`).")
    st.stop()

# ---------------------------------------------------------------- success by factor / channel
st.subheader("Success by factor and final channel")
by_channel = common.channel_success(r, f)
if by_channel.is_empty():
    st.info("No channel data for these filters.")
else:
    chart = (
        alt.Chart(by_channel.to_pandas(), title="Challenge success rate by final channel")
        .mark_bar()
        .encode(
            y=alt.Y("final_channel:N", title="Final channel", sort="-x"),
            x=alt.X("success_rate:Q", title="Success rate (% verified)", axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("factor:N", title="Recommended factor"),
            yOffset="factor:N",
            tooltip=[alt.Tooltip("factor:N", title="Factor"), alt.Tooltip("final_channel:N", title="Channel"),
                     alt.Tooltip("challenges:Q", title="Challenges", format=","),
                     alt.Tooltip("verified:Q", title="Verified", format=","),
                     alt.Tooltip("success_rate:Q", title="Success", format=".1%")],
        )
    )
    left, right = st.columns(2)
    left.altair_chart(chart, width="stretch")
    right.dataframe(by_channel, hide_index=True, width="stretch", column_config={
        "factor": "Factor", "final_channel": "Final channel", "challenges": "Challenges",
        "verified": "Verified", "failed": "Failed", "expired": "Expired", "abandoned": "Abandoned",
        "success_rate": st.column_config.ProgressColumn("Success", format="percent", min_value=0, max_value=1),
    })

# ---------------------------------------------------------------- fallback funnel
st.subheader("Fallback funnel")
funnel = common.fallback_funnel(r, f)
if funnel.is_empty():
    st.info("No channel paths recorded for these filters.")
else:
    labelled = funnel.with_columns(
        stage=pl.format("{}. {}", pl.col("step"), pl.col("channel")),
        continued=pl.col("reached") - pl.col("verified_here") - pl.col("dropped_here"),
    )
    long = labelled.select("stage", "step", "verified_here", "continued", "dropped_here").unpivot(
        index=["stage", "step"], variable_name="result", value_name="challenges").with_columns(
        pl.col("result").replace({"verified_here": "verified here", "continued": "fell back to next channel",
                                  "dropped_here": "dropped here"}))
    funnel_chart = (
        alt.Chart(long.to_pandas(), title="Where challenges end, channel by channel")
        .mark_bar()
        .encode(
            y=alt.Y("stage:N", title="Step · channel", sort=alt.SortField("step"), axis=alt.Axis(labelLimit=200)),
            x=alt.X("challenges:Q", title="Challenges reaching this step (count)", stack=True),
            color=alt.Color("result:N", title="Outcome at this step",
                            scale=alt.Scale(domain=["verified here", "fell back to next channel", "dropped here"],
                                            range=["#4c9f70", "#8fb8de", "#d1495b"])),
            tooltip=["stage:N", "result:N", alt.Tooltip("challenges:Q", format=",")],
        )
    )
    st.altair_chart(funnel_chart, width="stretch")
    paths = common.fallback_paths(r, f)
    if not paths.is_empty():
        st.dataframe(paths, hide_index=True, width="stretch", column_config={
            "primary_channel": "First channel", "fallback_channel": "Fallback channel", "path": "Full path",
            "challenges": "Challenges",
            "success_rate": st.column_config.ProgressColumn("Success", format="percent", min_value=0, max_value=1),
        })

# ---------------------------------------------------------------- time to verify / avoidable
left, right = st.columns(2)
with left:
    st.subheader("Time to verify")
    ttv = common.time_to_verify(r, f)
    if ttv.is_empty():
        st.info("No verified challenges with a recorded duration.")
    else:
        long = ttv.select("factor", "p50", "p90", "p99").unpivot(
            index="factor", variable_name="percentile", value_name="seconds")
        st.altair_chart(
            alt.Chart(long.to_pandas(), title="Seconds from challenge to verified, by factor (≈ ±1 %)")
            .mark_bar()
            .encode(
                x=alt.X("factor:N", title="Factor", axis=alt.Axis(labelAngle=0)),
                xOffset="percentile:N",
                y=alt.Y("seconds:Q", title="Time to verify (seconds)"),
                color=alt.Color("percentile:N", title="Percentile", sort=["p50", "p90", "p99"]),
                tooltip=["factor:N", "percentile:N", alt.Tooltip("seconds:Q", format=".1f")],
            ),
            width="stretch")
with right:
    st.subheader("Avoidable challenges")
    if not avoidable:
        st.info("Nothing to report.")
    else:
        share = avoidable.get("avoidable_share")
        if share is not None:
            st.metric("Share of challenges that were avoidable", common.pct(share))
        rows = [{"kind": str(key).replace("_", " "), "value": value}
                for key, value in avoidable.items() if key != "avoidable_share"]
        st.dataframe(pl.DataFrame(rows, schema={"kind": pl.Utf8, "value": pl.Float64}, strict=False),
                     hide_index=True, width="stretch",
                     column_config={"kind": "Challenge kind", "value": "Count / share"})

# ---------------------------------------------------------------- countries
st.subheader("By country")
countries = common.breakdown(r, f, "country")
if countries.is_empty():
    st.info("No country data for these filters.")
else:
    pick = alt.selection_point(name="pick", fields=["key"])
    chart = (
        alt.Chart(countries.head(25).to_pandas(), title="Challenge rate and success by country (top 25 by logins)")
        .mark_bar()
        .encode(
            y=alt.Y("key:N", title="Country", sort="-x"),
            x=alt.X("challenge_rate:Q", title="Challenge rate (% of logins)", axis=alt.Axis(format="%")),
            color=alt.Color("challenge_success_rate:Q", title="Success rate",
                            scale=alt.Scale(scheme="redyellowgreen", domain=[0, 1]), legend=alt.Legend(format="%")),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.5)),
            tooltip=[alt.Tooltip("key:N", title="Country"), alt.Tooltip("logins:Q", format=","),
                     alt.Tooltip("challenge_rate:Q", title="Challenge rate", format=".1%"),
                     alt.Tooltip("challenge_success_rate:Q", title="Success", format=".1%"),
                     alt.Tooltip("fallback_rate:Q", title="Fallback", format=".1%")],
        )
        .add_params(pick)
    )
    common.drillable_chart(chart, field="key", kind="country", key="country",
                           label="Show the events of a country", options=countries["key"].drop_nulls().to_list())

sms_section()
