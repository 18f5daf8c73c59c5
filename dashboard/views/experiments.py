"""Experiments: per experiment the arms, conversion with CI, lift with CI, p-value, chance to
beat control, the sample-ratio-mismatch banner and the sequential (always-valid) status."""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl
import streamlit as st

from riskengine.analytics.stats import wilson_ci
from riskengine.apps.dashboard_cli import app_module

common = app_module("common", __file__)

root, f = common.page_context("Experiments", needs_logins=False)
r = str(root)

names = common.experiment_names(r)
if not names:
    st.info("No experiments yet: exposures appear here once the auth service calls `Engine.assign(...)`.")
    st.stop()

st.caption("Conversion = converted users / exposed users. Intervals are 95 %. The sequential interval is "
           "always valid, so it may be checked every day without inflating false positives.")


def _interval(ci: Any, scale: float = 100.0, unit: str = " pp") -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "–"
    return f"[{ci[0] * scale:+.1f}, {ci[1] * scale:+.1f}]{unit}"


def _rate_interval(ci: Any) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "–"
    return f"[{ci[0] * 100:.1f}%, {ci[1] * 100:.1f}%]"


def _signed_pct(value: Any) -> str:
    return "–" if value is None else f"{value * 100:+.1f}%"


def _fixed(value: Any, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def _rate_ci(v: dict[str, Any]) -> Any:
    """The readout's own interval for one arm's conversion, else the Wilson score interval."""
    if v.get("rate_ci"):
        return v["rate_ci"]
    n, c = int(v.get("n") or 0), int(v.get("conversions") or 0)
    return wilson_ci(c, n) if n else None


for name in names:
    readout = common.experiment_readout(r, name, f)
    control = readout.get("control")
    variants: dict[str, dict[str, Any]] = readout.get("variants", {})
    st.header(name, divider="gray")
    if not variants or not sum(v.get("n", 0) for v in variants.values()):
        st.info("No exposures for this experiment with the current filters.")
        continue
    if readout.get("srm_flag"):
        st.error(
            f"**Sample-ratio mismatch** (χ² p = {readout.get('srm_p_value', float('nan')):.2g}): the arms did not "
            "get the share of users they were configured for. Assignment or exposure logging is broken; do "
            "not trust this readout until it is fixed.", icon=":material/report:")
    if not readout.get("enough_data", True):
        st.info("**Not enough data yet** to call this experiment: keep it running. The numbers below are "
                "provisional.", icon=":material/hourglass_top:")

    rows = []
    for arm, v in variants.items():
        is_control = arm == control
        rows.append({
            "arm": f"{arm} (control)" if is_control else arm,
            "users": v.get("n"),
            "conversions": v.get("conversions"),
            "conversion": v.get("rate"),
            "conversion_ci": _rate_interval(_rate_ci(v)),
            "lift": "–" if is_control else _signed_pct(v.get("lift")),
            "lift_ci": "–" if is_control else _interval(v.get("lift_ci"), unit=" %"),
            "p_value": "–" if is_control else _fixed(v.get("p_value"), "{:.4f}"),
            "chance_to_beat_control": "–" if is_control else _fixed(v.get("chance_to_beat_control"), "{:.0%}"),
            "sequential": "–" if is_control else (
                "significant" if v.get("sequential_significant") else "keep running"),
            "sequential_ci": "–" if is_control else _interval(v.get("sequential_ci")),
        })
    table = pl.DataFrame(rows, strict=False, infer_schema_length=None)
    st.dataframe(table, hide_index=True, width="stretch", key=f"exp_table_{name}", column_config={
        "arm": "Arm", "users": st.column_config.NumberColumn("Exposed users", format="%d"),
        "conversions": st.column_config.NumberColumn("Conversions", format="%d"),
        "conversion": st.column_config.NumberColumn("Conversion", format="percent"),
        "conversion_ci": "Conversion 95% CI",
        "lift": "Relative lift",
        "lift_ci": "Lift 95% CI",
        "p_value": "p-value", "chance_to_beat_control": "Chance to beat control",
        "sequential": "Sequential test", "sequential_ci": "Always-valid CI of the difference",
    })

    decided = [a for a, v in variants.items() if a != control and v.get("sequential_significant")]
    if decided:
        st.success(f"Sequential test: {', '.join(decided)} differ from control (always-valid 95 %).")
    elif readout.get("enough_data", True):
        st.caption("Sequential test: no arm has separated from control yet.")

    points = pl.DataFrame([
        {"arm": arm, "rate": v.get("rate"),
         "low": (_rate_ci(v) or [None, None])[0], "high": (_rate_ci(v) or [None, None])[1]}
        for arm, v in variants.items()], strict=False, infer_schema_length=None)
    base = alt.Chart(points.to_pandas(), title=f"{name}: conversion by arm")
    chart = base.mark_bar(size=36).encode(
        x=alt.X("arm:N", title="Arm", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("rate:Q", title="Conversion (% of exposed users)", axis=alt.Axis(format="%")),
        color=alt.Color("arm:N", legend=None),
        tooltip=["arm:N", alt.Tooltip("rate:Q", title="Conversion", format=".1%")],
    )
    if points["low"].drop_nulls().len():
        chart = chart + base.mark_errorbar(thickness=2).encode(
            x="arm:N", y=alt.Y("low:Q", title="Conversion (% of exposed users)"), y2="high:Q")
    st.columns(2)[0].altair_chart(chart, width="stretch")
