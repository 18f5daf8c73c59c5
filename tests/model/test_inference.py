"""Extracted parameters reproduce scikit-learn's calibrated predict_proba; reasons; loading."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import polars as pl
import pytest

from riskengine.core.model.features import FEATURE_NAMES
from riskengine.core.model.inference import LoadedModel


def _far_from_home() -> tuple[Any, Any, Any]:
    """An attempt stand-in (Chrome on Windows, a login), a GeoIP answer from Changchun and the
    profile of a user seen once from London on device ``d1``."""
    from riskengine.core.enrich.geoip import GeoInfo
    from riskengine.core.profile import UserProfile
    from riskengine.testing import CHROME_WIN

    class Attempt:
        user_agent = CHROME_WIN
        event = "login"

    away = GeoInfo("CN", "Jilin", "Changchun", 43.9, 125.3, "Asia/Shanghai", 4837, "China Unicom")
    profile = UserProfile().learned(now=1_700_000_000, device_key="d1", country="GB", region="England",
                                    asn=2856, latitude=51.5, longitude=-0.1, local_hour=9)
    return Attempt, away, profile


@pytest.mark.parametrize("estimator", ["logistic", "hgb"])
@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic"])
def test_inference_equals_sklearn_predict_proba(
        dataset: pl.DataFrame, trained: Callable[..., Path], estimator: str, calibration: str) -> None:
    out = trained(estimator, calibration)
    model = LoadedModel.load(out)
    assert model.kind == estimator and model.calibration == calibration
    x = dataset.select(FEATURE_NAMES).to_numpy()
    rng = np.random.default_rng(0)
    # plus off-distribution rows: random values inside and beyond the observed ranges
    extra = rng.uniform(-1, 1, size=(300, x.shape[1])) * (x.max(axis=0) + 1) * 1.5
    rows = np.vstack([x, extra])
    expected = joblib.load(out / "model.joblib").predict_proba(rows)[:, 1]
    got = np.array(model.predict(rows.tolist()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert ((got >= 0) & (got <= 1)).all()


def test_linear_explanation_sums_to_the_log_odds(trained: Callable[..., Path], dataset: pl.DataFrame) -> None:
    model = LoadedModel.load(trained("logistic", "sigmoid"))
    doc = model.document["estimator"]
    x = list(dataset.filter(pl.col("is_attack")).select(FEATURE_NAMES).row(0))
    pushes = [w * (v - m) for w, v, m in zip(doc["weights"], x, doc["means"], strict=True)]
    assert model.raw_score(x) == pytest.approx(model.raw_score(doc["means"]) + sum(pushes))
    top = model.explain(x)
    assert top == sorted(top, key=lambda kv: -kv[1]) and all(p > 0 for _, p in top)
    assert dict(top) == pytest.approx({FEATURE_NAMES[k]: p for k, p in enumerate(pushes) if p > 0})


def test_tree_explanation_follows_the_path(trained: Callable[..., Path], dataset: pl.DataFrame) -> None:
    model = LoadedModel.load(trained("hgb", "sigmoid"))
    x = list(dataset.filter(pl.col("is_attack")).select(FEATURE_NAMES).row(0))
    top = model.explain(x)
    assert top and top[0][1] > 0
    # Saabas by hand over the saved trees: node-value changes along the path, per split feature
    est = model.document["estimator"]
    pushes = [0.0] * len(FEATURE_NAMES)
    for t in est["trees"]:
        i = 0
        while t["left"][i]:
            child = t["left"][i] if x[t["feature"][i]] <= t["threshold"][i] else t["right"][i]
            pushes[t["feature"][i]] += t["value"][child] - t["value"][i]
            i = child
    assert dict(top) == pytest.approx({FEATURE_NAMES[k]: p for k, p in enumerate(pushes) if p > 0}, abs=1e-12)
    # and root values + all pushes = the raw score
    roots = est["baseline"] + sum(t["value"][0] for t in est["trees"])
    assert roots + sum(pushes) == pytest.approx(model.raw_score(x), abs=1e-9)
    # a NaN feature takes the flat-array path (missing values follow missing_go_to_left)
    x_nan = [float("nan"), *x[1:]]
    assert math.isfinite(model.raw_score(x_nan)) and isinstance(model.explain(x_nan), list)


def test_load_errors_are_clear(tmp_path: Path, trained: Callable[..., Path]) -> None:
    with pytest.raises(FileNotFoundError, match="model train"):
        LoadedModel.load(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a model file"):
        LoadedModel.load(tmp_path)
    doc = json.loads((trained("logistic", "sigmoid") / "model.json").read_text())
    with pytest.raises(ValueError, match="retrain"):
        LoadedModel({**doc, "features": ["x"]})
    with pytest.raises(ValueError, match="weight"):
        LoadedModel(doc, weight=2.0)


def test_small_terms_name_the_probability_large_ones_the_features(trained: Callable[..., Path]) -> None:
    """Below MIN_CONTRIBUTION the model adds nothing; under EXPLAIN_MIN its MODEL_SCORE reason
    carries the probability only (the attribution walk is skipped); from EXPLAIN_MIN up the
    reason names the top features. The reason's weight is always the term added to the risk.
    (The estimator's probability is pinned per case: the branch under test is what follows it.)"""
    from riskengine.core.model.inference import EXPLAIN_MIN, MIN_CONTRIBUTION, LoadedModel

    Attempt, away, profile = _far_from_home()
    model = LoadedModel.load(trained("logistic", "sigmoid"), weight=0.5)
    for p in (MIN_CONTRIBUTION, 0.02, 0.0999, 0.1, 0.6):
        model.probability = lambda x, p=p: p  # type: ignore[method-assign,misc]
        term, found = model.contribution(Attempt, away, "d9", 9, profile, [], 0, 0,  # type: ignore[arg-type]
                                         now=1_700_000_000 + 86400)
        if 0.5 * p < MIN_CONTRIBUTION:
            assert (term, found) == (0.0, [])
            continue
        (reason,) = found
        assert reason.code == "MODEL_SCORE" and term == pytest.approx(0.5 * p)
        assert reason.weight == round(term, 4)
        if term < EXPLAIN_MIN:
            assert reason.detail == f"model p={round(term, 4) / 0.5:.3f}"
        else:
            assert reason.detail.startswith(f"model p={p:.2f}; top features: ")


def test_odds_scale_puts_the_probability_on_the_rules_scale(trained: Callable[..., Path]) -> None:
    """``policy.model_odds`` K: the term is ``weight · K·p / (1 + (K − 1)·p)`` — monotone in p,
    1 at p = 1, the probability itself at K = 1 — and the reason still names the model's own p."""
    from riskengine.core.model.inference import EXPLAIN_MIN, LoadedModel

    Attempt, away, profile = _far_from_home()
    terms = {}
    for k in (1.0, 30.0):
        model = LoadedModel.load(trained("logistic", "sigmoid"), weight=0.5, odds=k)
        for p in (0.001, 0.01, 0.05, 0.5, 1.0):
            model.probability = lambda x, p=p: p  # type: ignore[method-assign,misc]
            term, found = model.contribution(Attempt, away, "d9", 9, profile, [], 0, 0,  # type: ignore[arg-type]
                                             now=1_700_000_000 + 86400)
            expected = 0.5 * k * p / (1 + (k - 1) * p)
            assert term == pytest.approx(expected if expected >= 0.005 else 0.0)
            if found and term < EXPLAIN_MIN:
                assert found[0].detail == f"model p={p:.3f}"
            terms[k, p] = term
    assert terms[1.0, 0.01] == 0.005 and terms[30.0, 0.01] == pytest.approx(0.5 * 0.3 / 1.29)
    assert terms[30.0, 1.0] == terms[1.0, 1.0] == 0.5
    ps = (0.001, 0.01, 0.05, 0.5)
    assert [terms[30.0, p] for p in ps] == sorted(terms[30.0, p] for p in ps)
    with pytest.raises(ValueError, match="odds scale"):
        LoadedModel.load(trained("logistic", "sigmoid"), odds=0.5)


def test_cold_start_scales_the_model_term_like_the_novelty_signals(trained: Callable[..., Path]) -> None:
    """A user with fewer than ``coldstart.min_logins`` accepted logins gets the model's term ×
    ``coldstart.novelty_scale`` (the engine passes both); an established user the full term."""
    from riskengine import Engine
    from riskengine.core.model.inference import LoadedModel
    from riskengine.testing import offline_settings

    Attempt, away, new = _far_from_home()
    known = new
    for day in range(1, 5):
        known = known.learned(now=1_700_000_000 + day * 86400, device_key="d1", country="GB", region="England",
                              asn=2856, latitude=51.5, longitude=-0.1, local_hour=9)
    model = LoadedModel.load(trained("logistic", "sigmoid"), weight=0.5, odds=30.0, cold_logins=3, cold_scale=0.5)
    model.probability = lambda x: 0.02  # type: ignore[method-assign,misc]
    terms = {}
    for name, profile in (("new", new), ("known", known)):
        terms[name], (reason,) = model.contribution(Attempt, away, "d9", 9, profile, [], 0, 0,  # type: ignore[arg-type]
                                                    now=1_700_000_000 + 10 * 86400)
        assert reason.weight == round(terms[name], 4)
    assert terms["known"] == pytest.approx(0.5 * 30 * 0.02 / (1 + 29 * 0.02))
    assert terms["new"] == pytest.approx(terms["known"] * 0.5)
    settings = offline_settings(policy={"model": str(trained("logistic", "sigmoid"))})
    with Engine(settings) as engine:
        loaded = engine.model
        assert isinstance(loaded, LoadedModel)
        assert (loaded.cold_logins, loaded.cold_scale, loaded.odds) == (
            settings.coldstart.min_logins, settings.coldstart.novelty_scale, settings.policy.model_odds)
    with pytest.raises(ValueError, match="cold-start scale"):
        LoadedModel.load(trained("logistic", "sigmoid"), cold_scale=2.0)
    # policy.model_cold_scale replaces coldstart.novelty_scale for the model's term only
    for scale in (0.0, 0.25):
        own = offline_settings(policy={"model": str(trained("logistic", "sigmoid")), "model_cold_scale": scale})
        with Engine(own) as engine:
            assert isinstance(engine.model, LoadedModel)
            assert engine.model.cold_scale == scale and own.coldstart.novelty_scale == 0.5


def test_a_first_login_gets_no_model_term_while_cold_start_is_on(tmp_path: Path) -> None:
    """No accepted login yet: every feature says "new", the probability is the model's prior
    for new accounts, the same for every first login; with cold start on it adds nothing."""
    from riskengine.core.model.inference import LoadedModel
    from riskengine.core.profile import UserProfile
    from riskengine.testing import write_linear_model

    Attempt, away, seen_once = _far_from_home()
    path = write_linear_model(tmp_path / "model", 0.0, {"new_user": 3.0})  # p = 0.95 for a first login
    cold = LoadedModel.load(path, weight=0.5, odds=30.0, cold_logins=3, cold_scale=0.5)
    first = UserProfile()
    assert first.logins == 0 and cold.probability(cold.features.vector(
        1_700_000_000, Attempt.user_agent, away, "d9", 9, first, 0, 0, [], "login")) > 0.9
    assert cold.contribution(Attempt, away, "d9", 9, first, [], 0, 0, now=1_700_000_000) == (0.0, [])  # type: ignore[arg-type]
    term, _ = cold.contribution(Attempt, away, "d9", 9, seen_once, [], 0, 0, now=1_700_086_400)  # type: ignore[arg-type]
    assert term > 0.0  # from the second login on, the (cold-scaled) term
    # cold start off: the first login's term as the model says
    plain = LoadedModel.load(path, weight=0.5, odds=30.0)
    assert plain.contribution(Attempt, away, "d9", 9, first, [], 0, 0, now=1_700_000_000)[0] > 0.4  # type: ignore[arg-type]
