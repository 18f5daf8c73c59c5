"""Every dashboard page rendered by Streamlit's AppTest on an audit root the real Engine wrote.

Expected numbers are counted here from the events the Engine emitted (kept in memory while
it wrote the Parquet root), independently of ``riskengine.analytics``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from scipy import stats
from streamlit.testing.v1 import AppTest
from synthetic_audit import (
    MAIN_EXPERIMENT,
    PUMPING_WAVE_SENDS,
    SKEWED_EXPERIMENT,
    START,
    SyntheticAudit,
    expected,
)

PAGES = ("views/overview.py", "views/challenges.py", "views/experiments.py", "views/risk.py",
         "views/audit_explorer.py")
Opener = Callable[..., AppTest]


def pct(x: float, digits: int = 1) -> str:
    return f"{x * 100:.{digits}f}%"


def metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}; have {[m.label for m in at.metric]}"
    return found[0]


def clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def last_day(s: SyntheticAudit) -> date:
    return max(r["event_time"] for r in s.rows["decisions"]).date()


# ------------------------------------------------------------------ every page
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(open_app: Opener, page: str) -> None:
    at = clean(open_app(page))
    assert at.title, "page has a title"
    assert not at.error or page == "views/experiments.py"  # the SRM banner is the only error


def test_overview_headline_numbers(open_app: Opener, synthetic: SyntheticAudit) -> None:
    at = clean(open_app())
    at.selectbox(key="main_experiment").set_value(MAIN_EXPERIMENT).run()
    want = expected(synthetic)
    assert metric(at, "Challenge rate") == pct(want["challenge_rate"])
    assert metric(at, "Challenge success rate") == pct(want["challenge_success_rate"])
    assert metric(at, "Fallback rate") == pct(want["fallback_rate"])
    assert metric(at, "Deny rate") == pct(want["deny_rate"], 2)
    assert metric(at, "Logins") == f"{want['logins']:,}"
    exposures = synthetic.frame("exposures").filter(pl.col("experiment") == MAIN_EXPERIMENT)
    conversions = synthetic.frame("conversions").filter(pl.col("experiment") == MAIN_EXPERIMENT)
    rate = conversions["user_key"].n_unique() / exposures["user_key"].n_unique()
    assert metric(at, f"A/B conversion ({MAIN_EXPERIMENT})") == pct(rate)


def test_date_filter_changes_the_overview(open_app: Opener, synthetic: SyntheticAudit) -> None:
    at = open_app()
    since, until = START.date() + timedelta(days=14), last_day(synthetic)
    at.date_input(key="f_dates").set_value((since, until)).run()
    clean(at)
    want, everything = expected(synthetic, since, until), expected(synthetic)
    assert want["logins"] < everything["logins"]
    assert metric(at, "Logins") == f"{want['logins']:,}"
    assert metric(at, "Challenge rate") == pct(want["challenge_rate"])
    assert metric(at, "Challenge success rate") == pct(want["challenge_success_rate"])
    # the delta compares with the 14 days before... of which the data holds the whole previous week
    previous = expected(synthetic, since - timedelta(days=until.toordinal() - since.toordinal() + 1),
                        since - timedelta(days=1))
    delta = [m.delta for m in at.metric if m.label == "Challenge rate"][0]
    assert delta == f"{(want['challenge_rate'] - previous['challenge_rate']) * 100:+.1f} pp"


def test_country_filter_applies_to_every_page(open_app: Opener, synthetic: SyntheticAudit) -> None:
    at = open_app()
    at.multiselect(key="f_countries").set_value(["FR"]).run()
    want = expected(synthetic, countries=("FR",))
    assert metric(clean(at), "Logins") == f"{want['logins']:,}"
    assert metric(at, "Challenge rate") == pct(want["challenge_rate"])
    at.switch_page("views/challenges.py").run()  # the sidebar selection follows to the next page
    assert metric(clean(at), "Challenges with an outcome") == f"{want['challenges']:,}"
    assert metric(at, "Verified") == f"{want['verified']:,}"


def test_challenges_page_numbers(open_app: Opener, synthetic: SyntheticAudit) -> None:
    at = clean(open_app("views/challenges.py"))
    want = expected(synthetic)
    assert metric(at, "Challenges with an outcome") == f"{want['challenges']:,}"
    assert metric(at, "Verified") == f"{want['verified']:,}"
    assert metric(at, "Fallback rate") == pct(want["fallback_rate"])
    assert [s.value for s in at.subheader][:3] == [
        "Success by factor and final channel", "Fallback funnel", "Time to verify"]


def test_challenges_page_shows_sends_cost_verify_ratio_and_the_pumping_wave(
        open_app: Opener, synthetic: SyntheticAudit) -> None:
    at = clean(open_app("views/challenges.py"))
    sends = synthetic.frame("sends")
    made = sends.filter(pl.col("action") == "allow")
    assert "OTP sends by destination country" in [s.value for s in at.subheader]
    assert metric(at, "OTP sends") == f"{made.height:,}"
    assert metric(at, "Send cost") == f"{made['price'].sum():,.2f}"
    verified = sends.filter(pl.col("verified")).height
    assert metric(at, "Verify ratio") == pct(verified / made.height)
    table = next(t.value for t in at.dataframe if "dest_country" in t.value.columns)
    by_country = dict(zip(table["dest_country"], table["sent"], strict=True))
    assert by_country["UZ"] == PUMPING_WAVE_SENDS
    for country in ("GB", "FR"):
        assert by_country.get(country, 0) == made.filter(pl.col("dest_country") == country).height
    waves = [w.value for w in at.warning if "pumping" in w.value]
    assert len(waves) == 1 and "to UZ" in waves[0] and "0% verified" in waves[0]


def test_experiments_page_readout_and_srm_banner(open_app: Opener, synthetic: SyntheticAudit) -> None:
    at = clean(open_app("views/experiments.py"))
    exposures = synthetic.frame("exposures")
    conversions = synthetic.frame("conversions")
    assert [h.value for h in at.main.header] == sorted([MAIN_EXPERIMENT, SKEWED_EXPERIMENT])
    for table in at.dataframe:
        frame = table.value
        arm = frame["arm"].str.replace(" (control)", "", regex=False)
        name = MAIN_EXPERIMENT if "mfa_at_signup" in set(arm) else SKEWED_EXPERIMENT
        for variant, users, converted in zip(arm, frame["users"], frame["conversions"], strict=True):
            exposed = exposures.filter((pl.col("experiment") == name) & (pl.col("variant") == variant))
            keys = set(exposed["user_key"])
            conv = conversions.filter((pl.col("experiment") == name) & pl.col("user_key").is_in(keys))
            assert users == len(keys)
            assert converted == conv["user_key"].n_unique()
    # a sample-ratio mismatch is flagged for the 80/20 experiment only (scipy as the oracle)
    counts = exposures.group_by("experiment", "variant").agg(pl.col("user_key").n_unique())
    skewed = counts.filter(pl.col("experiment") == SKEWED_EXPERIMENT)["user_key"].to_list()
    balanced = counts.filter(pl.col("experiment") == MAIN_EXPERIMENT)["user_key"].to_list()
    assert stats.chisquare(skewed).pvalue < 0.001 < stats.chisquare(balanced).pvalue
    assert len(at.error) == 1 and "Sample-ratio mismatch" in at.error[0].value
    # ~35 users per arm is below the default 100: the readout says so
    assert any("Not enough data yet" in i.value for i in at.info)


def test_risk_page_whatif_follows_the_slider(open_app: Opener, synthetic: SyntheticAudit) -> None:
    at = clean(open_app("views/risk.py"))
    d = synthetic.frame("decisions")
    labels = pl.read_csv(synthetic.labels_path)
    attacks = set(labels.filter(pl.col("is_attack"))["decision_id"])

    def projected(t: float) -> str:
        return pct(d.filter(pl.col("risk") >= t).height / d.height)

    def caught(t: float) -> str:
        hit = d.filter(pl.col("decision_id").is_in(attacks) & (pl.col("risk") >= t)).height
        return pct(hit / len(attacks))

    assert metric(at, "Projected challenge rate") == projected(0.4)
    assert metric(at, "Current challenge rate") == pct(expected(synthetic)["challenge_rate"])
    assert metric(at, "Catch rate (labelled attacks stepped up)") == caught(0.4)
    at.slider(key="whatif_threshold").set_value(0.9).run()
    clean(at)
    assert projected(0.9) != projected(0.4)
    assert metric(at, "Projected challenge rate") == projected(0.9)
    assert metric(at, "Catch rate (labelled attacks stepped up)") == caught(0.9)
    # every reason code that fired is offered for drill-down
    codes = set(d.explode("reasons")["reasons"].drop_nulls())
    assert set(at.selectbox(key="drill_reason").options) == codes


def test_drill_from_risk_page_opens_the_explorer(open_app: Opener, synthetic: SyntheticAudit) -> None:
    at = open_app("views/risk.py")
    at.selectbox(key="drill_reason").set_value("NEW_COUNTRY").run()
    at.button(key="drill_reason_go").click().run()
    clean(at)
    assert at.title[0].value == "Audit explorer"
    assert at.multiselect(key="x_reasons").value == ["NEW_COUNTRY"]
    rows = at.dataframe[0].value
    d = synthetic.frame("decisions")
    want = d.filter(pl.col("reasons").list.contains("NEW_COUNTRY")).height
    assert len(rows) == min(want, 500)
    assert all("NEW_COUNTRY" in list(r) for r in rows["reasons"])


def test_explorer_filters_by_action_and_user(open_app: Opener, synthetic: SyntheticAudit) -> None:
    at = clean(open_app("views/audit_explorer.py"))
    d = synthetic.frame("decisions")
    assert len(at.dataframe[0].value) == min(d.height, 500)
    at.multiselect(key="x_actions").set_value(["deny"]).run()
    rows = clean(at).dataframe[0].value
    assert len(rows) == d.filter(pl.col("action") == "deny").height
    assert set(rows["action"]) == {"deny"}
    user = d["user_key"][0]
    at.multiselect(key="x_actions").set_value([]).run()
    at.text_input(key="x_user").input(user).run()
    rows = clean(at).dataframe[0].value
    assert len(rows) == d.filter(pl.col("user_key") == user).height
    assert set(rows["user_key"]) == {user}  # stored keys are already pseudonyms: shown as they are


def test_empty_states_are_friendly(open_app: Opener, synthetic: SyntheticAudit, tmp_path: Path) -> None:
    for page in PAGES:
        at = clean(open_app(page, root=tmp_path / "missing"))
        assert any("does not exist yet" in i.value for i in at.info), page
    (tmp_path / "empty").mkdir()
    for page in PAGES:
        at = clean(open_app(page, root=tmp_path / "empty"))
        assert any("No data yet" in i.value for i in at.info), page
    # filters that exclude everything: a foreign country on a day without the attack burst
    at = open_app()
    day = START.date()
    at.date_input(key="f_dates").set_value((day, day)).run()
    at.multiselect(key="f_countries").set_value(["CN"]).run()
    assert any("No logins match" in i.value for i in clean(at).info)


def _realised_established_rate(s: SyntheticAudit, established_logins: int = 5) -> float:
    """Over the page's window: the last 7 days of the data."""
    d = s.frame("decisions")
    d = d.filter(pl.col("event_time") >= d["event_time"].max() - timedelta(days=7))  # type: ignore[operator]
    d = d.filter((pl.col("user_logins") >= established_logins) & (pl.col("action") != "deny"))
    return d.filter(pl.col("action") == "challenge").height / d.height


def test_risk_page_shows_the_budget_the_threshold_and_the_realised_rate(
        open_app: Opener, synthetic: SyntheticAudit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKENGINE_POLICY_TARGET_STEPUP_RATE", "0")  # a fixed policy (the default is a budget)
    at = clean(open_app("views/risk.py"))
    # the synthetic root was scored with the fixed policy: every decision at 0.4
    assert set(synthetic.frame("decisions")["threshold"]) == {0.4}
    assert metric(at, "Step-up budget (established users)") == "off (fixed threshold)"
    assert metric(at, "Live threshold (latest hour, mean)") == "0.400"
    assert metric(at, "Realised established step-up rate") == pct(_realised_established_rate(synthetic))
    monkeypatch.setenv("RISKENGINE_POLICY_TARGET_STEPUP_RATE", "0.015")
    at = clean(open_app("views/risk.py"))
    assert metric(at, "Step-up budget (established users)") == "1.5%"
