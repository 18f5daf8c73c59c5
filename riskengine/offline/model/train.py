"""Train, calibrate and save the risk model on a time-based split.

The split is by time, never shuffled: the first ``warmup_days`` are dropped (profiles are
still empty there, every login looks new), then training weeks, then ``validation_weeks``
used to calibrate (and to choose between the estimators), then the last ``test_weeks``
which only ever produce the reported numbers. Attacks come in waves, so a shuffled split
would let a wave's rows leak into both sides and flatter the model.

Logistic regression and histogram gradient boosting are both fitted and compared; the
chosen one is calibrated on the validation weeks (Platt sigmoid, or isotonic with enough
positives) and saved as plain parameters in ``model.json`` that
:mod:`riskengine.core.model.inference` evaluates in pure Python — plus ``model.joblib`` (the
fitted scikit-learn object, for analysts) and ``metrics.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from riskengine._extras import extra

with extra("model", feature="model training (riskengine model)"):
    import numpy as np
    import polars as pl

from riskengine.core.model.features import FEATURE_NAMES, FeatureConfig
from riskengine.offline.metrics import (
    DEFAULT_STEP_UP_TARGETS,
    calibration_error,
    pr_auc,
    tradeoff,
)
from riskengine.offline.model.export import export_parameters

MODEL_FILE: Final = "model.json"
SKLEARN_FILE: Final = "model.joblib"
METRICS_FILE: Final = "metrics.json"
FORMAT_VERSION: Final = 1
ESTIMATORS: Final = ("logistic", "hgb")
ISOTONIC_MIN_POSITIVES: Final = 200
"""Isotonic calibration needs many positives; below this the two-parameter sigmoid is steadier."""
HGB_PREFERENCE_MARGIN: Final = 0.005
"""``auto`` keeps the (faster, explainable) logistic model unless HGB's validation PR-AUC is
higher by more than this."""


@dataclass(frozen=True, slots=True)
class TimeSplit:
    """Row masks of one time-based split and where its boundaries fall."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    boundaries: dict[str, str]


def time_split(times: pl.Series, *, test_weeks: float = 2.0, validation_weeks: float = 1.0,
               warmup_days: float = 7.0) -> TimeSplit:
    """Masks for warm-up (dropped) < train < validation < test, by event time.

    >>> from datetime import timedelta
    >>> t = pl.Series([datetime(2025, 9, 1, tzinfo=UTC) + timedelta(days=d) for d in range(35)])
    >>> s = time_split(t, test_weeks=1, validation_weeks=1, warmup_days=7)
    >>> int(s.train.sum()), int(s.validation.sum()), int(s.test.sum())
    (13, 7, 8)
    """
    if times.null_count():
        raise ValueError("every row needs an event_time")
    if min(test_weeks, validation_weeks) <= 0 or warmup_days < 0:
        raise ValueError("test and validation weeks must be positive, warm-up days not negative")
    ts = times.dt.replace_time_zone(None).to_numpy().astype("datetime64[us]")
    first, last = ts.min(), ts.max()
    test_start = last - np.timedelta64(int(test_weeks * 7 * 86400e6), "us")
    val_start = test_start - np.timedelta64(int(validation_weeks * 7 * 86400e6), "us")
    train_start = first + np.timedelta64(int(warmup_days * 86400e6), "us")
    if train_start >= val_start:
        span = (last - first) / np.timedelta64(1, "D")
        raise ValueError(
            f"data spans {span:.1f} days: too short for {warmup_days:g} warm-up days + training + "
            f"{validation_weeks:g} validation + {test_weeks:g} test weeks")
    train = (ts >= train_start) & (ts < val_start)
    validation = (ts >= val_start) & (ts < test_start)
    test = ts >= test_start

    def iso(x: np.datetime64) -> str:
        return str(np.datetime_as_string(x, unit="s")) + "Z"

    return TimeSplit(train, validation, test, {
        "data_start": iso(first), "train_start": iso(train_start), "validation_start": iso(val_start),
        "test_start": iso(test_start), "data_end": iso(last)})


def _estimator(kind: str, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    if kind == "hgb":
        # small trees, few of them: the hot path walks every tree in pure Python
        return HistGradientBoostingClassifier(
            max_iter=60, learning_rate=0.15, max_leaf_nodes=8, min_samples_leaf=20,
            l2_regularization=1.0, early_stopping=False, random_state=seed)
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {kind!r}")


def _calibrate(fitted: Any, method: str, x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    return CalibratedClassifierCV(FrozenEstimator(fitted), method=method).fit(x, y)


def _operating_points(scores: np.ndarray, frame: pl.DataFrame, targets: tuple[float, ...]) -> list[dict[str, Any]]:
    fam = frame["attack_family"].to_list() if "attack_family" in frame.columns else None
    return [
        {"target_step_up": p.target_step_up, "threshold": p.threshold, "step_up": p.step_up,
         "catch": p.catch, "catch_by_family": p.catch_by_family}
        for p in tradeoff(scores, frame["is_attack"].to_numpy(), frame["established"].to_numpy(), fam,
                          targets)]


def train_model(
    frame: pl.DataFrame, out: str | Path, *, feature_config: FeatureConfig, estimator: str = "auto",
    calibration: str = "auto", test_weeks: float = 2.0, validation_weeks: float = 1.0,
    warmup_days: float = 7.0, seed: int = 0, targets: tuple[float, ...] = DEFAULT_STEP_UP_TARGETS,
    source: str | Path | None = None,
) -> dict[str, Any]:
    """Fit both estimators, pick, calibrate, evaluate on the test weeks, save; returns the metrics.

    ``source``: the logins file the rows were replayed from; its fingerprint
    (:func:`file_fingerprint`) is saved as ``training_data`` so a comparison on that same file
    leaves the fitted weeks out and one on any other file counts every login
    (:func:`riskengine.offline.model.compare.compare_scorers`)."""
    with extra("model", feature="model training (riskengine model train)"):
        import joblib  # type: ignore[import-untyped]
        import sklearn

    if "is_attack" not in frame.columns:
        raise ValueError("training rows need labels (an is_attack column): pass --labels")
    if estimator not in ("auto", *ESTIMATORS):
        raise ValueError(f"--estimator must be auto, logistic or hgb, got {estimator!r}")
    if calibration not in ("auto", "sigmoid", "isotonic"):
        raise ValueError(f"--calibration must be auto, sigmoid or isotonic, got {calibration!r}")
    split = time_split(frame["event_time"], test_weeks=test_weeks, validation_weeks=validation_weeks,
                       warmup_days=warmup_days)
    x_all = frame.select(FEATURE_NAMES).to_numpy().astype(np.float64)
    y_all = frame["is_attack"].to_numpy().astype(bool)
    parts = {"train": split.train, "validation": split.validation, "test": split.test}
    for name, mask in parts.items():
        n_pos = int(y_all[mask].sum())
        if n_pos < 2 or n_pos == int(mask.sum()):
            raise ValueError(f"the {name} weeks hold {int(mask.sum())} logins with {n_pos} attacks: "
                             "need both classes — more data, or other --test-weeks/--validation-weeks")
    x_tr, y_tr = x_all[split.train], y_all[split.train]
    x_va, y_va = x_all[split.validation], y_all[split.validation]
    x_te, y_te = x_all[split.test], y_all[split.test]
    test_frame = frame.filter(pl.Series(split.test))

    candidates: dict[str, dict[str, Any]] = {}
    for kind in ESTIMATORS:
        fitted = _estimator(kind, seed).fit(x_tr, y_tr)
        candidates[kind] = {
            "fitted": fitted,
            "validation_pr_auc": pr_auc(fitted.predict_proba(x_va)[:, 1], y_va),
            "test_pr_auc_uncalibrated": pr_auc(fitted.predict_proba(x_te)[:, 1], y_te),
        }
    if estimator == "auto":
        lr_v, hgb_v = candidates["logistic"]["validation_pr_auc"], candidates["hgb"]["validation_pr_auc"]
        chosen = "hgb" if hgb_v > lr_v + HGB_PREFERENCE_MARGIN else "logistic"
    else:
        chosen = estimator
    method = calibration
    if method == "auto":
        method = "isotonic" if int(y_va.sum()) >= ISOTONIC_MIN_POSITIVES else "sigmoid"

    comparison: dict[str, Any] = {}
    calibrated_by_kind: dict[str, Any] = {}
    for kind, c in candidates.items():
        cal = _calibrate(c["fitted"], method, x_va, y_va)
        calibrated_by_kind[kind] = cal
        p_te = cal.predict_proba(x_te)[:, 1]
        comparison[kind] = {
            "validation_pr_auc": c["validation_pr_auc"],
            "test_pr_auc": pr_auc(p_te, y_te),
            "test_pr_auc_uncalibrated": c["test_pr_auc_uncalibrated"],
            "test_brier": float(np.mean((p_te - y_te) ** 2)),
            "test_calibration_error": calibration_error(p_te, y_te),
            "tradeoff": _operating_points(p_te, test_frame, targets),
        }
    model = calibrated_by_kind[chosen]
    rules = test_frame["rules_risk"].to_numpy() if "rules_risk" in test_frame.columns else None
    metrics: dict[str, Any] = {
        "chosen": chosen,
        "calibration": method,
        "test": comparison[chosen],
        "comparison": comparison,
        "rows": {name: int(mask.sum()) for name, mask in parts.items()},
        "attacks": {name: int(y_all[mask].sum()) for name, mask in parts.items()},
        "test_random_pr_auc": float(y_te.mean()),
    }
    if rules is not None:
        metrics["test_rules"] = {"pr_auc": pr_auc(rules, y_te),
                                 "tradeoff": _operating_points(rules, test_frame, targets)}
    if "baseline_score" in test_frame.columns:
        base = test_frame["baseline_score"].fill_null(0.0).to_numpy()
        metrics["test_freeman"] = {"pr_auc": pr_auc(base, y_te),
                                   "tradeoff": _operating_points(base, test_frame, targets)}

    params = export_parameters(model)
    document = {
        "format": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "sklearn_version": sklearn.__version__,
        "features": list(FEATURE_NAMES),
        "feature_config": feature_config.to_json(),
        **params,
        "training_window": split.boundaries,
        **({"training_data": {"file": Path(source).name, "sha256": file_fingerprint(source)}}
           if source is not None else {}),
        "metrics": metrics,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / MODEL_FILE, document)
    _write_json(out / METRICS_FILE, metrics)
    joblib.dump(model, out / SKLEARN_FILE)
    return metrics


def file_fingerprint(path: str | Path) -> str:
    """SHA-256 of a file's bytes: which logins file a model was trained on."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_finite(data), indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null / ±1e308 (thresholds of "flag everything")."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return math.copysign(1e308, value)
        return value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def format_metrics(metrics: dict[str, Any]) -> str:
    """The terminal summary of a training run."""
    lines = [f"rows train/validation/test: {metrics['rows']['train']:,}/{metrics['rows']['validation']:,}/"
             f"{metrics['rows']['test']:,}; attacks {metrics['attacks']['train']}/"
             f"{metrics['attacks']['validation']}/{metrics['attacks']['test']}",
             f"chosen: {metrics['chosen']} ({metrics['calibration']} calibration)",
             f"{'scorer':<10} {'PR-AUC':>7} " + " ".join(
                 f"catch@{p['target_step_up']:.0%}".rjust(10) for p in metrics["test"]["tradeoff"])]

    def row(name: str, pr: float, points: list[dict[str, Any]]) -> str:
        return f"{name:<10} {pr:7.3f} " + " ".join(f"{p['catch']:10.3f}" for p in points)

    for kind, c in metrics["comparison"].items():
        lines.append(row(kind, c["test_pr_auc"], c["tradeoff"]))
    if "test_rules" in metrics:
        lines.append(row("rules", metrics["test_rules"]["pr_auc"], metrics["test_rules"]["tradeoff"]))
    if "test_freeman" in metrics:
        lines.append(row("freeman", metrics["test_freeman"]["pr_auc"], metrics["test_freeman"]["tradeoff"]))
    lines.append(f"random PR-AUC {metrics['test_random_pr_auc']:.3f}; test calibration error "
                 f"{metrics['test']['test_calibration_error']:.4f}")
    return "\n".join(lines)
