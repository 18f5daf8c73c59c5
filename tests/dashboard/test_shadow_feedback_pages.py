"""The Overview page shows a shadow policy's would-be rates beside the enforced ones; the Risk
page shows fraud feedback per reason code and policy version (real Engine-written roots)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from streamlit.testing.v1 import AppTest

from riskengine import Engine
from riskengine.testing import CHANGCHUN, FIREFOX_MAC, establish, make_attempt, offline_settings

Opener = Callable[..., AppTest]


def frames_with(at: AppTest, column: str) -> list[object]:
    return [df.value for df in at.dataframe if column in df.value.columns]


def write_root(root: Path) -> str:
    audit = {"root": str(root), "key": "dashboard-shadow-" + "k" * 20}
    with Engine(offline_settings(audit=audit, policy={"version": "v2-shadow", "mode": "shadow"})) as shadow:
        last = establish(shadow, days=4)
        d = shadow.score(make_attempt(ts=last + timedelta(hours=2), place=CHANGCHUN, ua=FIREFOX_MAC))
        assert d.shadow_action in ("challenge", "deny")
    with Engine(offline_settings(audit=audit)) as enforce:
        c = enforce.score(make_attempt(user_id="bob", ts=last + timedelta(hours=3), ua=FIREFOX_MAC))
        enforce.report_fraud(decision_id=c.decision_id, user_id="bob", kind="false_positive", actor="analyst",
                             timestamp=last + timedelta(hours=4))
    return d.decision_id


def test_overview_shows_shadow_rates_and_risk_shows_feedback(open_app: Opener, tmp_path: Path) -> None:
    root = tmp_path / "audit"
    write_root(root)
    overview = open_app("views/overview.py", root=root, labels=False)
    assert not overview.exception
    modes = frames_with(overview, "mode")
    assert modes, "no shadow-policy table on the Overview page"
    rows = {r["mode"]: r for r in modes[0].to_dict("records")}  # type: ignore[attr-defined]
    assert rows["shadow"]["policy_version"] == "v2-shadow" and rows["shadow"]["decisions"] == 5
    assert abs(rows["shadow"]["challenge_rate"] - 1 / 5) < 1e-9
    assert rows["enforce"]["decisions"] == 1
    reasons = frames_with(overview, "would_be_challenge_rate")
    assert reasons and "NEW_COUNTRY" in set(reasons[0]["reason"])  # type: ignore[index]

    risk = open_app("views/risk.py", root=root, labels=False)
    assert not risk.exception
    feedback = frames_with(risk, "false_positives")
    assert feedback, "no feedback table on the Risk page"
    table = feedback[0].to_dict("records")  # type: ignore[attr-defined]
    assert {(r["reason"], r["policy_version"], r["false_positives"]) for r in table} >= {
        ("NEW_DEVICE", "rules-v1", 1)}


def test_overview_breaks_decisions_down_by_event(open_app: Opener, tmp_path: Path) -> None:
    root = tmp_path / "audit"
    audit = {"root": str(root), "key": "dashboard-events-" + "k" * 20}
    with Engine(offline_settings(audit=audit)) as engine:
        last = establish(engine, days=4)
        engine.score(make_attempt(ts=last + timedelta(hours=2), place=CHANGCHUN, ua=FIREFOX_MAC, event="recovery"))
        engine.score(make_attempt(ts=last + timedelta(hours=3), event="recovery"))
    overview = open_app("views/overview.py", root=root, labels=False)
    assert not overview.exception
    tables = frames_with(overview, "event")
    assert tables, "no per-event table on the Overview page"
    rows = {r["event"]: r for r in tables[0].to_dict("records")}  # type: ignore[attr-defined]
    assert rows["login"]["decisions"] == 4 and rows["login"]["challenge_rate"] == 0
    assert (rows["recovery"]["decisions"], rows["recovery"]["denied"]) == (2, 1)
    assert rows["recovery"]["deny_rate"] == 0.5


def test_overview_has_no_event_table_with_logins_only(open_app: Opener, tmp_path: Path) -> None:
    root = tmp_path / "audit"
    write_root(root)
    overview = open_app("views/overview.py", root=root, labels=False)
    assert not overview.exception and not frames_with(overview, "event")
