"""riskengine evaluate: numbers checked by hand on a tiny decisions/labels pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from riskengine.apps.cli import main
from riskengine.offline.evaluate import evaluate, load_labels

NEG_INF = float("-inf")


@pytest.fixture
def decisions() -> pl.DataFrame:
    return pl.DataFrame({
        "index": [0, 1, 2, 3, 4, 5, 6, 7, 8],
        "decision": ["allow", "challenge", "allow", "challenge", "allow", "deny", "", "allow", "allow"],
        "risk_score": [0.1, 0.5, 0.2, 0.6, 0.3, 0.97, None, 0.45, 0.05],
        "reasons": [[], ["NEW_DEVICE"], [], [], [], [], [], ["NEW_DEVICE", "TRUSTED_DEVICE"], []],
        "baseline_score": [-1.0, 0.0, 0.0, 2.0, 1.0, 3.0, None, 0.5, -2.0],
    }, schema_overrides={"index": pl.Int64})


@pytest.fixture
def labels() -> pl.DataFrame:
    return pl.DataFrame({
        "index": [0, 1, 2, 3, 4, 5, 6, 7, 8],
        "is_attack": [False, False, False, True, True, True, True, False, False],
        "attack_family": [None, None, None, "stuffing", "stuffing", "ato_foreign", "stuffing", None, None],
        "established": [True, True, False, True, False, True, False, True, True],
    }, schema_overrides={"index": pl.Int64})


def test_rates_as_configured(decisions: pl.DataFrame, labels: pl.DataFrame) -> None:
    ev = evaluate(decisions, labels, target_stepup=0.25)
    assert ev.logins == 8 and ev.legit == 5  # the failed-password row is not a login
    assert ev.stepup_overall == pytest.approx(1 / 5)
    assert ev.stepup_established == pytest.approx(1 / 4)
    assert ev.stepup_cold == 0.0
    assert ev.catch == {"ato_foreign": 1.0, "stuffing": 0.5}
    assert ev.catch_established == {"ato_foreign": 1.0, "stuffing": 1.0}


def test_operating_point_at_a_target_stepup(decisions: pl.DataFrame, labels: pl.DataFrame) -> None:
    ev = evaluate(decisions, labels, target_stepup=0.25)
    t, rate, caught = ev.ours.at_target(0.25)
    # established legit scores 0.1, 0.5, 0.05 and the trusted-device override (never stepped up)
    assert (t, rate) == (0.2, 0.25)
    assert caught == {"ato_foreign": 1.0, "stuffing": 1.0}
    assert ev.ours.at_target(0.0) == (0.6, 0.0, {"ato_foreign": 1.0, "stuffing": 0.5})
    assert ev.baseline is not None
    assert ev.baseline.at_target(0.25) == (0.5, 0.25, {"ato_foreign": 1.0, "stuffing": 1.0})
    table = {r["scorer"]: r for r in ev.table.iter_rows(named=True)}
    assert table["riskengine"]["threshold"] == 0.2 and table["freeman2016"]["threshold"] == 0.5


def test_labels_from_an_rba_csv(tmp_path: Path) -> None:
    rows = ["index,User ID,Login Successful,Is Account Takeover"]
    rows += [f"{i},u1,True,False" for i in range(6)] + ["6,u1,False,False", "7,u1,True,True", "8,u2,True,False"]
    path = tmp_path / "rba.csv"
    path.write_text("\n".join(rows) + "\n")
    lab = load_labels(path)
    assert lab["established"].to_list() == [False] * 5 + [True, True, True, False]
    assert lab["attack_family"].to_list()[7] == "account_takeover"


def test_cli_writes_curve_and_plot(decisions: pl.DataFrame, labels: pl.DataFrame, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    decisions.write_parquet(tmp_path / "d.parquet")
    labels.write_parquet(tmp_path / "l.parquet")
    assert main(["evaluate", "--decisions", str(tmp_path / "d.parquet"), "--labels", str(tmp_path / "l.parquet"),
                 "--target-stepup", "0.25", "--out", str(tmp_path / "ev")]) == 0
    assert "freeman2016" in capsys.readouterr().out
    assert (tmp_path / "ev" / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    curve = pl.read_csv(tmp_path / "ev" / "curve.csv")
    assert curve["legit_stepup_established"].is_sorted()


def test_unlabelled_decisions_are_an_error(decisions: pl.DataFrame, labels: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="no label"):
        evaluate(decisions, labels.head(3))


def _with_warmup(decisions: pl.DataFrame, labels: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Three warm-up logins in front: established legitimate users, two stepped up at high risk."""
    warm_dec = pl.DataFrame({
        "index": [100, 101, 102],
        "decision": ["challenge", "deny", "allow"],
        "risk_score": [0.9, 0.99, 0.0],
        "reasons": [["NEW_DEVICE"], ["NEW_COUNTRY"], []],
        "baseline_score": [5.0, 6.0, -3.0],
    }, schema_overrides={"index": pl.Int64})
    warm_lab = pl.DataFrame({
        "index": [100, 101, 102], "is_attack": [False] * 3, "attack_family": [None] * 3,
        "established": [True] * 3, "warmup": [True] * 3,
    }, schema_overrides={"index": pl.Int64, "attack_family": pl.Utf8})
    return (pl.concat([warm_dec, decisions]),
            pl.concat([warm_lab, labels.with_columns(pl.lit(False).alias("warmup"))]))


def test_warmup_logins_are_left_out_of_every_figure(decisions: pl.DataFrame, labels: pl.DataFrame) -> None:
    dec, lab = _with_warmup(decisions, labels)
    ev = evaluate(dec, lab, target_stepup=0.25)
    plain = evaluate(decisions, labels, target_stepup=0.25)
    assert ev.warmup_excluded == 3 and plain.warmup_excluded == 0
    assert (ev.logins, ev.legit) == (8, 5)
    assert ev.stepup_overall == pytest.approx(1 / 5) and ev.stepup_established == pytest.approx(1 / 4)
    assert ev.catch == plain.catch and ev.catch_established == plain.catch_established
    assert ev.ours.at_target(0.25) == (0.2, 0.25, {"ato_foreign": 1.0, "stuffing": 1.0})
    assert np.array_equal(ev.ours.legit_established, plain.ours.legit_established)
    assert ev.baseline is not None and plain.baseline is not None
    assert ev.baseline.at_target(0.25) == plain.baseline.at_target(0.25)
    assert ev.table.equals(plain.table)
    assert "warm-up logins excluded: 3" in ev.summary()
    # the same rows counted as ordinary logins would move the numbers: 3 of 7 established stepped up
    counted = evaluate(dec, lab.with_columns(pl.lit(False).alias("warmup")), target_stepup=0.25)
    assert counted.stepup_established == pytest.approx(3 / 7)
    t, rate, _ = counted.ours.at_target(0.25)
    assert (t, rate) == (0.97, pytest.approx(1 / 7))  # only the 0.99 warm-up deny above it


def test_warmup_flag_read_from_labels_parquet(decisions: pl.DataFrame, labels: pl.DataFrame, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    dec, lab = _with_warmup(decisions, labels)
    dec.write_parquet(tmp_path / "d.parquet")
    lab.write_parquet(tmp_path / "l.parquet")
    labels.write_parquet(tmp_path / "old.parquet")  # written before warm-up existed: no column
    assert load_labels(tmp_path / "l.parquet")["warmup"].sum() == 3
    assert not load_labels(tmp_path / "old.parquet")["warmup"].any()
    assert main(["evaluate", "--decisions", str(tmp_path / "d.parquet"), "--labels", str(tmp_path / "l.parquet"),
                 "--target-stepup", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "warm-up logins excluded: 3" in out
    assert "established 25.00%" in out
