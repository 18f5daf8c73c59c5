"""The engine with policy.model set; the CLI; the side-by-side comparison."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from riskengine import Engine
from riskengine.apps.cli import main
from riskengine.core import reasons
from riskengine.offline.model.compare import compare_scorers, format_comparison
from riskengine.testing import CHANGCHUN, LONDON, PARIS, T0, make_attempt, offline_settings

ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0.0.0 Mobile Safari/537.36")


def establish(engine: Engine, user: str, days: int) -> datetime:
    """Daily logins from home; challenges (a new user's first logins may get one) are passed."""
    ts = T0
    for day in range(days):
        ts = T0 + timedelta(days=day)
        d = engine.score(make_attempt(user, ts, LONDON))
        if d.action == "challenge":
            engine.record_outcome(d.decision_id, "verified", ["sms"], timestamp=ts + timedelta(seconds=20))
    return ts


def test_engine_blends_the_model_and_explains_it(trained: Callable[..., Path]) -> None:
    model_dir = trained("logistic", "sigmoid")
    with Engine(offline_settings()) as rules, \
            Engine(offline_settings(policy={"model": str(model_dir), "model_weight": 0.5})) as blended:
        for e in (rules, blended):
            last = establish(e, "bob", 20)
        familiar = make_attempt("bob", last + timedelta(days=1), LONDON)
        calm, plain = blended.score(familiar), rules.score(familiar)
        assert plain.reason_codes == () and calm.action == plain.action == "allow"
        # at most a model term on a familiar login, far below the threshold (policy.model_odds
        # lifts a small probability: 0.004 → 0.1)
        assert {r.code for r in calm.reasons} <= {reasons.MODEL_SCORE} and calm.risk < 0.1, calm
        away = make_attempt("bob", last + timedelta(days=2, hours=1), CHANGCHUN, ua=ANDROID,
                            ip="175.16.199.0")
        r, b = rules.score(away), blended.score(away)
    assert reasons.MODEL_SCORE in b.reason_codes and reasons.MODEL_SCORE not in r.reason_codes
    model_reason = next(x for x in b.reasons if x.code == reasons.MODEL_SCORE)
    assert 0.0 < model_reason.weight <= 0.5  # weight × probability
    # explained by the evidence of a stranger far away (which features lead depends on the fit)
    named = {"country_new", "device_new", "far_from_usual_places", "speed_kmh_log", "region_new", "asn_new"}
    assert "top features:" in model_reason.detail
    assert any(f"{name}=" in model_reason.detail for name in named)
    # one more independent term in the noisy-OR
    assert 1 - b.risk == pytest.approx((1 - r.risk) * (1 - model_reason.weight), abs=1e-3)


def test_model_weight_zero_changes_nothing(trained: Callable[..., Path]) -> None:
    model_dir = trained("hgb", "sigmoid")
    with Engine(offline_settings()) as rules, \
            Engine(offline_settings(policy={"model": str(model_dir), "model_weight": 0.0})) as muted:
        for e in (rules, muted):
            last = establish(e, "eve", 10)
        for k, place in enumerate((LONDON, PARIS, CHANGCHUN)):
            a = make_attempt("eve", last + timedelta(hours=5 * (k + 1)), place, ua=ANDROID)
            x, y = rules.score(a), muted.score(a)
            assert (x.action, x.risk, x.reason_codes) == (y.action, y.risk, y.reason_codes)


def test_missing_model_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model not found"):
        Engine(offline_settings(policy={"model": str(tmp_path / "none")}))


def test_cli_trains_and_evaluate_compares(logins: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    events, labels = logins
    out = tmp_path / "model"
    assert main(["model", "train", "--events", str(events), "--labels", str(labels), "--out", str(out),
                 "--estimator", "logistic"]) == 0
    printed = capsys.readouterr().out
    assert "PR-AUC" in printed and "chosen: logistic" in printed
    assert {p.name for p in out.iterdir()} == {"model.json", "model.joblib", "metrics.json"}
    assert main(["model", "train", "--out", str(out)]) == 2
    assert "give --root" in capsys.readouterr().err

    c = compare_scorers(events, labels, out, target_stepup=0.02)
    assert c.table["scorer"].to_list() == ["rules", "model", "blended", "freeman2016"]
    assert c.since is not None and c.rows["event_time"].min() >= c.since  # test weeks only
    assert (c.table["legit_stepup_established"] <= 0.02 + 1e-12).all()
    by = {r["scorer"]: r for r in c.table.iter_rows(named=True)}
    assert by["model"]["pr_auc"] > c.rows["is_attack"].mean()
    assert "blended" in format_comparison(c, 0.02)


def test_compare_leaves_warmup_logins_out_like_evaluate(
        logins: tuple[Path, Path], trained: Callable[[str, str], Path], tmp_path: Path) -> None:
    """Warm-up logins (flagged in the labels) are replayed so profiles learn, and counted
    nowhere — the same rule `riskengine evaluate` applies, so the two tables agree."""
    import polars as pl

    events, labels = logins
    frame = pl.read_parquet(labels)
    flagged = frame["index"].head(frame.height // 3)
    marked = tmp_path / "labels.parquet"
    frame.with_columns(pl.col("index").is_in(flagged.implode()).alias("warmup")).write_parquet(marked)
    model = trained("logistic", "sigmoid")
    every = compare_scorers(events, labels, model, since=None)
    without = compare_scorers(events, marked, model, since=None)
    assert not set(without.rows["index"].to_list()) & set(flagged.to_list())
    assert set(without.rows["index"].to_list()) == set(every.rows["index"].to_list()) - set(flagged.to_list())


def test_compare_counts_every_login_of_a_file_the_model_never_saw(
        logins: tuple[Path, Path], dataset: object, tmp_path: Path) -> None:
    """The training file's fingerprint is saved with the model: on that file the comparison
    keeps only the test weeks; another file with the same dates (another seed) is unseen from
    its first login, so nothing of it is dropped."""
    import polars as pl

    from riskengine.core.model.features import FeatureConfig
    from riskengine.offline.model.sample import write_sample
    from riskengine.offline.model.train import file_fingerprint, train_model

    events, labels = logins
    assert isinstance(dataset, pl.DataFrame)
    out = tmp_path / "model"
    train_model(dataset, out, feature_config=FeatureConfig(), estimator="logistic", calibration="sigmoid",
                source=events)
    import json

    saved = json.loads((out / "model.json").read_text())["training_data"]
    assert saved == {"file": events.name, "sha256": file_fingerprint(events)}
    same = compare_scorers(events, labels, out)
    assert same.since is not None and same.rows["event_time"].min() >= same.since
    other_events, other_labels = write_sample(tmp_path / "other", seed=2)
    assert file_fingerprint(other_events) != saved["sha256"]
    other = compare_scorers(other_events, other_labels, out)
    assert other.since is None
    assert other.rows["event_time"].min() < same.since
    assert other.rows.height > same.rows.height


def test_policy_model_makes_the_blend_the_scorer_of_replay(
        logins: tuple[Path, Path], trained: Callable[..., Path], dataset: object, tmp_path: Path) -> None:
    """A config naming a model makes replay score with the blend (model reasons appear); on
    each user's first login (nothing learned yet in either run, so the same features) the
    replayed risk is the rules' risk: the model's term there, ``weight · q ·
    coldstart.novelty_scale`` (``q``: p on the ``model_odds`` scale), is its prior for new
    accounts and is left out while cold start is on."""
    import polars as pl

    from riskengine import Settings
    from riskengine.core.model.features import FEATURE_NAMES
    from riskengine.core.model.inference import MIN_CONTRIBUTION, LoadedModel

    assert isinstance(dataset, pl.DataFrame)
    events, _ = logins
    model_dir = trained("logistic", "sigmoid")
    config = tmp_path / "riskengine.toml"
    config.write_text(f'[policy]\nmodel = "{model_dir}"\nmodel_weight = 0.5\n')
    out = tmp_path / "blended.parquet"
    assert main(["replay", str(events), "--format", "native", "--out", str(out), "--config", str(config),
                 "--no-progress"]) == 0
    blended = pl.read_parquet(out).filter(pl.col("decision") != "")
    assert blended["reasons"].list.contains(reasons.MODEL_SCORE).any()
    assert not dataset["rules_reasons"].list.contains(reasons.MODEL_SCORE).any()
    first = dataset.filter(pl.col("new_user") == 1.0).unique("user_id", keep="first", maintain_order=True)
    defaults = Settings()
    k = defaults.policy.model_odds  # the default odds scale, as the config leaves it
    # a first login is in cold start: the term is scaled as the novelty signals are
    scale = 0.5 * defaults.coldstart.novelty_scale
    model = LoadedModel.load(model_dir, weight=0.5, odds=k)
    p = model.predict(first.select(FEATURE_NAMES).rows())
    q = [k * v / (1 + (k - 1) * v) for v in p]
    terms = [scale * v if scale * v >= MIN_CONTRIBUTION else 0.0 for v in q]
    got = first.select("index", "rules_risk").join(blended.select("index", "risk_score"), on="index",
                                                   maintain_order="left")
    assert got.height == first.height > 10 and any(terms)  # the model has an opinion there...
    assert defaults.coldstart.min_logins > 0
    for rules_risk, risk in zip(got["rules_risk"], got["risk_score"], strict=True):
        assert risk == pytest.approx(rules_risk, abs=2e-6)  # ... which the blend leaves out
