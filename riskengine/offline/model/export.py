"""Export a fitted scikit-learn model to the plain parameters that
:class:`riskengine.core.model.LoadedModel` evaluates in pure Python (the training side of
:mod:`riskengine.core.model.inference`: the engine never imports scikit-learn)."""

from __future__ import annotations

import math
from typing import Any

from riskengine._extras import extra

with extra("model", feature="model training (riskengine model)"):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline


def export_parameters(calibrated: Any) -> dict[str, Any]:
    """``{"estimator": …, "calibrator": …}`` from a fitted binary ``CalibratedClassifierCV``
    whose base estimator is a (StandardScaler → LogisticRegression) pipeline or a
    ``HistGradientBoostingClassifier``."""
    if len(getattr(calibrated, "calibrated_classifiers_", ())) != 1:
        raise ValueError("expected a CalibratedClassifierCV fitted on one validation slice")
    cc = calibrated.calibrated_classifiers_[0]
    base = getattr(cc.estimator, "estimator", cc.estimator)  # unwrap FrozenEstimator
    if list(base.classes_) != [False, True] and list(base.classes_) != [0, 1]:
        raise ValueError(f"expected a binary classifier, got classes {list(base.classes_)}")
    estimator: dict[str, Any]
    if isinstance(base, Pipeline):
        scaler, lr = base.steps[0][1], base.steps[-1][1]
        coef = [float(c) for c in lr.coef_[0]]
        means = [float(m) for m in scaler.mean_]
        scales = [float(s) for s in scaler.scale_]
        weights = [c / s for c, s in zip(coef, scales, strict=True)]
        estimator = {
            "kind": "logistic",
            "intercept": float(lr.intercept_[0]) - math.fsum(w * m for w, m in zip(weights, means, strict=True)),
            "weights": weights,
            "means": means,
        }
    elif isinstance(base, HistGradientBoostingClassifier):
        if base.n_trees_per_iteration_ != 1:
            raise ValueError("expected a binary HistGradientBoostingClassifier")
        rate = float(base.learning_rate)
        trees = []
        for (predictor,) in base._predictors:
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported by the exported model")
            leaf = nodes["is_leaf"].astype(bool)
            trees.append({
                "feature": [int(f) for f in nodes["feature_idx"]],
                "threshold": [float(t) for t in nodes["num_threshold"]],
                "missing_left": [bool(m) for m in nodes["missing_go_to_left"]],
                "left": [0 if lf else int(n) for n, lf in zip(nodes["left"], leaf, strict=True)],
                "right": [int(n) for n in nodes["right"]],
                # leaves are already shrunk by the learning rate, inner nodes are not
                "value": [float(v) if lf else float(v) * rate for v, lf in zip(nodes["value"], leaf, strict=True)],
            })
        estimator = {"kind": "hgb", "baseline": float(base._baseline_prediction.ravel()[0]), "trees": trees}
    else:
        raise ValueError(f"unsupported estimator {type(base).__name__}")
    calibrator = cc.calibrators[0]
    method = calibrated.method
    if method == "sigmoid":
        cal: dict[str, Any] = {"method": "sigmoid", "a": float(calibrator.a_), "b": float(calibrator.b_)}
    elif method == "isotonic":
        cal = {"method": "isotonic", "x": [float(v) for v in calibrator.X_thresholds_],
               "y": [float(v) for v in calibrator.y_thresholds_],
               "x_min": float(calibrator.X_min_), "x_max": float(calibrator.X_max_)}
    else:
        raise ValueError(f"unsupported calibration method {method!r}")
    return {"estimator": estimator, "calibrator": cal}


__all__ = ["export_parameters"]
