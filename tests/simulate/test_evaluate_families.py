"""`riskengine evaluate`'s per-family catch table against a hand-built decisions/labels pair.

Every expected number below is counted by hand from the frames (comments show the count).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from riskengine.apps.cli import main
from riskengine.offline.evaluate import PER_FAMILY_COLUMNS, evaluate, format_per_family, with_model

# established legitimate logins: 8, two challenged as configured (risk 0.45, 0.6) -> 25 %
EST_RISK = [0.05, 0.1, 0.1, 0.2, 0.3, 0.35, 0.45, 0.6]
EST_DECISION = ["allow"] * 6 + ["challenge"] * 2
EST_BASE = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0]
# cold-start legitimate logins: 2, one challenged -> 50 %
COLD_RISK, COLD_DECISION, COLD_BASE = [0.5, 0.1], ["challenge", "allow"], [0.0, 0.0]
# attacks
LOOK_RISK, LOOK_DECISION = [0.3, 0.35, 0.5, 0.9], ["allow", "allow", "challenge", "challenge"]
LOOK_BASE = [0.5, 2.5, 3.5, -1.0]
PROXY_RISK, PROXY_DECISION, PROXY_BASE = [0.2, 0.7], ["allow", "deny"], [5.0, 1.5]


def frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    risk = EST_RISK + COLD_RISK + LOOK_RISK + PROXY_RISK
    decision = EST_DECISION + COLD_DECISION + LOOK_DECISION + PROXY_DECISION
    base = EST_BASE + COLD_BASE + LOOK_BASE + PROXY_BASE
    family = [None] * 10 + ["ato_lookalike"] * 4 + ["ato_residential_proxy"] * 2
    established = [True] * 8 + [False] * 2 + [True] * 6
    n = len(risk)
    decisions = pl.DataFrame({"index": list(range(n)), "decision": decision, "risk_score": risk,
                              "reasons": [[] for _ in range(n)], "baseline_score": base},
                             schema_overrides={"index": pl.Int64, "reasons": pl.List(pl.Utf8)})
    labels = pl.DataFrame({"index": list(range(n)), "is_attack": [f is not None for f in family],
                           "attack_family": family, "established": established},
                          schema_overrides={"index": pl.Int64, "attack_family": pl.Utf8})
    return decisions, labels


def test_per_family_table_hand_counted() -> None:
    decisions, labels = frames()
    ev = evaluate(decisions, labels, target_stepup=0.125)
    # legitimate step-up rates reported apart: established 2/8, cold start 1/2, all 3/10
    assert (ev.stepup_established, ev.stepup_cold, ev.stepup_overall) == (0.25, 0.5, pytest.approx(0.3))
    table = {r["family"]: r for r in ev.per_family.iter_rows(named=True)}
    assert tuple(ev.per_family.columns) == PER_FAMILY_COLUMNS
    assert table["ato_lookalike"] == {
        "family": "ato_lookalike", "logins": 4,
        "rules_configured": 0.5,            # challenged: risk 0.5 and 0.9
        # Freeman at 25 % of established legit (its scores >= 2.5: 3 and 4 of -3..4): 2.5, 3.5
        "freeman_at_configured_rate": 0.5,
        # 12.5 % = 1 of 8 established legit: the lowest threshold keeping 0.45 unflagged is the
        # next score above it, 0.5 (an attack's) -> 0.5 and 0.9 caught
        "rules_at_target": 0.5,
        "freeman_at_target": 0.25,          # 1 of 8 -> baseline >= 3.5: only 3.5
        "model_at_target": None, "blend_at_target": None}
    assert table["ato_residential_proxy"] == {
        "family": "ato_residential_proxy", "logins": 2,
        "rules_configured": 0.5,            # the deny at 0.7
        "freeman_at_configured_rate": 0.5,  # 5.0 >= 2.5, 1.5 is not
        "rules_at_target": 0.5,             # 0.7 >= 0.5, 0.2 is not
        "freeman_at_target": 0.5,           # 5.0 >= 3.5
        "model_at_target": None, "blend_at_target": None}
    text = format_per_family(ev.per_family, ev.stepup_established, ev.target)
    assert "ato_lookalike" in text and "25.0%" in text and "—" in text  # Freeman at target: 25 %


def test_without_a_baseline_score_freeman_columns_are_null() -> None:
    decisions, labels = frames()
    ev = evaluate(decisions.drop("baseline_score"), labels, target_stepup=0.125)
    assert ev.per_family["freeman_at_target"].null_count() == ev.per_family.height == 2
    assert ev.per_family["rules_at_target"].to_list() == [0.5, 0.5]


def test_model_and_blend_columns_come_from_the_comparison() -> None:
    decisions, labels = frames()
    ev = evaluate(decisions, labels, target_stepup=0.125)
    comparison = pl.DataFrame({"scorer": ["rules", "model", "blended", "freeman2016"],
                               "catch_ato_lookalike": [0.25, 0.75, 1.0, 0.25],
                               "catch_ato_residential_proxy": [0.5, 0.5, 1.0, 0.5]})
    filled = with_model(ev.per_family, comparison)
    assert filled["model_at_target"].to_list() == [0.75, 0.5]
    assert filled["blend_at_target"].to_list() == [1.0, 1.0]
    assert filled.drop("model_at_target", "blend_at_target").equals(
        ev.per_family.drop("model_at_target", "blend_at_target"))


def test_cli_json_and_csv_carry_the_per_family_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    decisions, labels = frames()
    decisions.write_parquet(tmp_path / "decisions.parquet")
    labels.write_parquet(tmp_path / "labels.parquet")
    args = ["evaluate", "--decisions", str(tmp_path / "decisions.parquet"),
            "--labels", str(tmp_path / "labels.parquet"), "--target-stepup", "0.125"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # the keys evaluate had before stay (contract), per_family is added
    assert {"stepup_established", "stepup_cold", "stepup_overall", "catch", "operating_point"} <= set(result)
    rows = {r["family"]: r for r in result["per_family"]}
    assert list(rows["ato_lookalike"]) == list(PER_FAMILY_COLUMNS)
    assert rows["ato_lookalike"]["rules_at_target"] == 0.5
    assert main([*args, "--out", str(tmp_path / "eval")]) == 0
    assert "catch rate per attack family" in capsys.readouterr().out
    csv = pl.read_csv(tmp_path / "eval" / "per_family.csv")
    assert csv["freeman_at_configured_rate"].to_list() == [0.5, 0.5]
