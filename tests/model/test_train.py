"""Training: time split without leaks, calibration, metrics against independent computations."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score

from riskengine.model.features import FEATURE_NAMES, FeatureConfig
from riskengine.model.metrics import calibration_error, threshold_for_step_up, tradeoff
from riskengine.model.train import time_split, train_model


def test_time_split_orders_parts_and_drops_warmup(dataset: pl.DataFrame) -> None:
    split = time_split(dataset["event_time"], test_weeks=2, validation_weeks=1, warmup_days=7)
    t = dataset["event_time"]
    train, val, test = t.filter(pl.Series(split.train)), t.filter(pl.Series(split.validation)), \
        t.filter(pl.Series(split.test))
    assert train.max() < val.min() and val.max() < test.min()  # type: ignore[operator]
    assert not (split.train & split.test).any() and not (split.train & split.validation).any()
    assert train.min() >= t.min() + timedelta(days=7)  # type: ignore[operator]
    assert int(split.train.sum() + split.validation.sum() + split.test.sum()) < dataset.height  # warm-up
    assert datetime.fromisoformat(split.boundaries["test_start"].replace("Z", "+00:00")) <= test.min()  # type: ignore[operator]


def test_training_never_sees_test_rows(dataset: pl.DataFrame, tmp_path: Path) -> None:
    """Flip every label in the test weeks: the fitted and calibrated model must not change."""
    split = time_split(dataset["event_time"])
    a = train_model(dataset, tmp_path / "a", feature_config=FeatureConfig(), estimator="hgb",
                    calibration="sigmoid")
    flipped = dataset.with_columns(
        pl.when(pl.Series(split.test)).then(~pl.col("is_attack")).otherwise(pl.col("is_attack"))
        .alias("is_attack"))
    b = train_model(flipped, tmp_path / "b", feature_config=FeatureConfig(), estimator="hgb",
                    calibration="sigmoid")
    doc_a = json.loads((tmp_path / "a" / "model.json").read_text())
    doc_b = json.loads((tmp_path / "b" / "model.json").read_text())
    assert doc_a["estimator"] == doc_b["estimator"] and doc_a["calibrator"] == doc_b["calibrator"]
    assert a["comparison"]["hgb"]["validation_pr_auc"] == b["comparison"]["hgb"]["validation_pr_auc"]
    assert a["test"]["test_pr_auc"] != b["test"]["test_pr_auc"]  # only the reported numbers move


def test_training_beats_random_and_is_calibrated(dataset: pl.DataFrame, trained: Callable[..., Path]) -> None:
    out = trained("logistic", "sigmoid")
    doc = json.loads((out / "model.json").read_text())
    m = doc["metrics"]
    assert m["test"]["test_pr_auc"] > 3 * m["test_random_pr_auc"]
    assert m["test"]["test_calibration_error"] < 0.05
    assert set(m["comparison"]) == {"logistic", "hgb"} and "test_rules" in m and "test_freeman" in m
    assert doc["features"] == list(FEATURE_NAMES)
    assert doc["training_window"]["train_start"] < doc["training_window"]["test_start"]
    # the reported PR-AUC is scikit-learn's on the test weeks, recomputed here independently
    split = time_split(dataset["event_time"])
    x = dataset.select(FEATURE_NAMES).to_numpy()[split.test]
    y = dataset["is_attack"].to_numpy()[split.test]
    p = joblib.load(out / "model.joblib").predict_proba(x)[:, 1]
    assert m["test"]["test_pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert json.loads((out / "metrics.json").read_text())["chosen"] == "logistic"


def test_too_short_or_unlabelled_data_is_a_clear_error(dataset: pl.DataFrame, tmp_path: Path) -> None:
    short = dataset.filter(pl.col("event_time") < pl.col("event_time").min() + timedelta(days=10))
    with pytest.raises(ValueError, match="too short"):
        train_model(short, tmp_path, feature_config=FeatureConfig())
    with pytest.raises(ValueError, match="labels"):
        train_model(dataset.drop("is_attack"), tmp_path, feature_config=FeatureConfig())
    clean = dataset.with_columns(pl.lit(False).alias("is_attack"))
    with pytest.raises(ValueError, match="need both classes"):
        train_model(clean, tmp_path, feature_config=FeatureConfig())


def test_threshold_and_tradeoff_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(500), 2)  # ties on purpose
    attack = rng.random(500) < 0.1
    scores[attack] += 0.3
    est = rng.random(500) < 0.8
    for target in (0.0, 0.01, 0.02, 0.1, 0.5, 1.0):
        (pt,) = tradeoff(scores, attack, est, targets=(target,))
        legit = scores[~attack & est]
        assert pt.step_up <= target + 1e-12
        # stepped up means score >= threshold, as the engine challenges at risk >= threshold
        assert pt.step_up == pytest.approx(float(np.mean(legit >= pt.threshold)))
        assert pt.catch == pytest.approx(float(np.mean(scores[attack] >= pt.threshold)))
        # no lower threshold among the observed values keeps within the target
        lower = [v for v in np.unique(scores) if v < pt.threshold]
        if lower:
            assert np.mean(legit >= max(lower)) > target
    with pytest.raises(ValueError):
        threshold_for_step_up([0.1], 1.5)


def test_calibration_error_against_hand_computation() -> None:
    p = np.array([0.05, 0.05, 0.15, 0.95, 0.95])
    y = np.array([0, 0, 1, 1, 0])
    # bins: [0,.1): mean .05 vs 0 (2 rows); [.1,.2): .15 vs 1 (1); [.9,1]: .95 vs .5 (2)
    expected = 2 / 5 * 0.05 + 1 / 5 * 0.85 + 2 / 5 * 0.45
    assert calibration_error(p, y) == pytest.approx(expected)
    with pytest.raises(ValueError):
        calibration_error([1.5], [1])


def test_split_boundaries_are_utc_iso(dataset: pl.DataFrame) -> None:
    s = time_split(dataset["event_time"])
    for v in s.boundaries.values():
        assert datetime.fromisoformat(v.replace("Z", "+00:00")).tzinfo == UTC
