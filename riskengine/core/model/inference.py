"""Hot-path inference: the fitted model reduced to plain parameters, evaluated in pure Python.

Calling scikit-learn's ``predict_proba`` on a one-row array costs ~100 µs of input checking
per login — the whole latency budget. Training therefore exports what the prediction needs
(:func:`riskengine.offline.model.export.export_parameters`): for logistic regression the
scaler folded into one weight per feature (a dot product of 30 floats), for histogram
gradient boosting every tree as
flat arrays (a few comparisons per tree), plus the calibrator (two Platt numbers, or the
isotonic knots for linear interpolation). ``LoadedModel`` reproduces scikit-learn's
calibrated ``predict_proba`` to ~1e-12 (tests check 1e-9) at a few microseconds.

Reasons: the features that pushed this login's score up most. For the linear model a
feature's push is ``w·(x − mean)`` (its term relative to an average login); for trees the
change in node value along the login's path at splits on that feature (Saabas).
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from operator import mul
from pathlib import Path
from typing import Any, Final

from riskengine.core import reasons as R
from riskengine.core.attempt import Attempt
from riskengine.core.decision import Reason
from riskengine.core.enrich.geoip import GeoInfo
from riskengine.core.model.features import FEATURE_NAMES, FeatureConfig, FeatureExtractor
from riskengine.core.profile import UserProfile
from riskengine.core.signals.base import SignalResult

MODEL_FILE: Final = "model.json"
MIN_CONTRIBUTION: Final = 0.005
"""Model terms below this add nothing: no risk, no reason (keeps clean logins on the fast path)."""
TOP_FEATURES: Final = 3
EXPLAIN_MIN: Final = 0.05
"""Terms from here up name their top features; smaller ones (a calibrated model's floor on
familiar logins: boosting's is above ``MIN_CONTRIBUTION`` on ~9 logins in 10) carry a reason with
the probability only — the attribution walk costs 7–15 µs and says little about a 1 % risk."""
FEATURE_INDEX: Final = {name: k for k, name in enumerate(FEATURE_NAMES)}


def compile_trees(
    baseline: float, trees: Sequence[tuple[list[int], list[float], list[int], list[int], list[float], list[bool]]],
    n_features: int, *, explain: bool = False,
) -> Callable[..., float]:
    """The trees as one generated Python function of nested ``if``s over local variables.

    Walking flat arrays costs several list indexings per node (~50 µs for 60 trees); nested
    comparisons of locals cost a few nanoseconds each. Only numbers from the model file
    (through ``int()``/``float()``) reach the source, so nothing else can be injected.
    Rows with NaN take the flat-array path (where ``missing_go_to_left`` applies).
    """
    lines = ["def raw(x, p=None):", f"    {', '.join(f'x{k}' for k in range(n_features))}, = x",
             f"    s = {float(baseline)!r}"]

    def num(v: float) -> str:
        v = float(v)
        return "INF" if v == math.inf else "-INF" if v == -math.inf else repr(v)

    def node(feature: list[int], threshold: list[float], left: list[int], right: list[int],
             value: list[float], i: int, depth: int) -> None:
        pad = "    " * depth
        if not left[i]:
            lines.append(f"{pad}s += {num(value[i])}")
            return
        f = int(feature[i])
        lines.append(f"{pad}if x{f} <= {num(threshold[i])}:")
        if explain:  # Saabas: the change in node value, credited to the split's feature
            lines.append(f"{pad}    p[{f}] += {num(value[int(left[i])] - value[i])}")
        node(feature, threshold, left, right, value, int(left[i]), depth + 1)
        lines.append(f"{pad}else:")
        if explain:
            lines.append(f"{pad}    p[{f}] += {num(value[int(right[i])] - value[i])}")
        node(feature, threshold, left, right, value, int(right[i]), depth + 1)

    for feature, threshold, left, right, value, _missing in trees:
        node(feature, threshold, left, right, value, 0, 1)
    lines.append("    return s")
    namespace: dict[str, Any] = {"INF": math.inf}
    exec(compile("\n".join(lines), "<riskengine model trees>", "exec"), namespace)  # noqa: S102
    fn: Callable[..., float] = namespace["raw"]
    return fn


class LoadedModel:
    """A trained model ready for ``Engine._decide``: features → probability → risk term + reasons.

    The term it adds to the noisy-OR is ``weight × q``, ``q`` the calibrated probability with
    its odds multiplied by ``odds`` (``policy.model_weight``, ``policy.model_odds``: see there
    why a probability needs rescaling before it joins signal strengths), times ``cold_scale``
    for a user with fewer than ``cold_logins`` accepted logins (the engine passes
    ``coldstart.min_logins`` and ``coldstart.novelty_scale``, as for the novelty signals).
    """

    def __init__(self, document: dict[str, Any], *, weight: float = 1.0, odds: float = 1.0,
                 cold_logins: int = 0, cold_scale: float = 1.0,
                 min_contribution: float = MIN_CONTRIBUTION, top: int = TOP_FEATURES) -> None:
        if document.get("format") != 1:
            raise ValueError(f"unsupported model format {document.get('format')!r}")
        if tuple(document.get("features", ())) != FEATURE_NAMES:
            raise ValueError("model features differ from this riskengine's: retrain the model")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"model weight must be in [0, 1], got {weight}")
        if not 1.0 <= odds <= 10_000.0:
            raise ValueError(f"model odds scale must be in [1, 10000], got {odds}")
        if not 0.0 <= cold_scale <= 1.0:
            raise ValueError(f"model cold-start scale must be in [0, 1], got {cold_scale}")
        self.document = document
        self.weight = weight
        self.odds = odds
        self.cold_logins = cold_logins
        self.cold_scale = cold_scale
        self.min_contribution = min_contribution
        self._small_reasons: dict[tuple[float, float], Reason] = {}
        self.top = top
        self.features = FeatureExtractor(FeatureConfig.from_json(document["feature_config"]))
        est = document["estimator"]
        self.kind: str = est["kind"]
        if self.kind == "logistic":
            self._intercept: float = est["intercept"]
            self._weights: list[float] = list(est["weights"])
            self._means: list[float] = list(est["means"])
            if len(self._weights) != len(FEATURE_NAMES):
                raise ValueError("model weights do not match the feature list")
        elif self.kind == "hgb":
            self._baseline: float = est["baseline"]
            self._trees: list[tuple[list[int], list[float], list[int], list[int], list[float], list[bool]]] = [
                (t["feature"], t["threshold"], t["left"], t["right"], t["value"], t["missing_left"])
                for t in est["trees"]]
            self._compiled = compile_trees(self._baseline, self._trees, len(FEATURE_NAMES))
            self._compiled_explain = compile_trees(self._baseline, self._trees, len(FEATURE_NAMES),
                                                   explain=True)
        else:
            raise ValueError(f"unknown estimator kind {self.kind!r}")
        cal = document["calibrator"]
        self.calibration: str = cal["method"]
        if self.calibration == "sigmoid":
            self._a: float = cal["a"]
            self._b: float = cal["b"]
        elif self.calibration == "isotonic":
            self._iso_x: list[float] = cal["x"]
            self._iso_y: list[float] = cal["y"]
            self._iso_lo: float = cal["x_min"]
            self._iso_hi: float = cal["x_max"]
        else:
            raise ValueError(f"unknown calibration {self.calibration!r}")

    @classmethod
    def load(cls, path: str | Path, *, weight: float = 1.0, odds: float = 1.0, cold_logins: int = 0,
             cold_scale: float = 1.0) -> LoadedModel:
        """From a ``riskengine model train --out`` directory (or its ``model.json``)."""
        p = Path(path)
        if p.is_dir():
            p = p / MODEL_FILE
        if not p.exists():
            raise FileNotFoundError(f"model not found: {p} (train one with `riskengine model train`)")
        try:
            document = json.loads(p.read_text())
        except ValueError as exc:
            raise ValueError(f"{p}: not a model file: {exc}") from None
        return cls(document, weight=weight, odds=odds, cold_logins=cold_logins, cold_scale=cold_scale)

    # ------------------------------------------------------------------ scoring
    def raw_score(self, x: Sequence[float]) -> float:
        """The estimator's decision function (log-odds scale) for one feature vector."""
        if self.kind == "logistic":
            if len(x) != len(self._weights):
                raise ValueError(f"expected {len(self._weights)} features, got {len(x)}")
            # sum() adds left to right from the intercept: the same float as the explicit loop
            return sum(map(mul, self._weights, x), self._intercept)
        total = sum(x)  # NaN when any feature is NaN (or +inf meets -inf): 0.1 µs against fsum's 0.6
        if total == total:  # no NaN (nor ±inf pairs): the compiled trees, ~5× faster
            return self._compiled(x)
        s = self._baseline
        for feature, threshold, left, right, value, missing_left in self._trees:
            i = 0
            while left[i]:
                v = x[feature[i]]
                if v != v:  # NaN
                    i = left[i] if missing_left[i] else right[i]
                else:
                    i = left[i] if v <= threshold[i] else right[i]
            s += value[i]
        return s

    def calibrate(self, raw: float) -> float:
        if self.calibration == "sigmoid":
            t = self._a * raw + self._b
            if t > 700.0:
                return 0.0
            p = 1.0 / (1.0 + math.exp(t))
        else:
            xs, ys = self._iso_x, self._iso_y
            v = min(max(raw, self._iso_lo), self._iso_hi)
            if len(xs) == 1:
                p = ys[0]
            else:
                j = bisect_right(xs, v)
                if j >= len(xs):
                    p = ys[-1]
                elif j == 0:
                    p = ys[0]
                else:
                    x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
                    p = y0 + (v - x0) * (y1 - y0) / (x1 - x0)
        return 1.0 if 1.0 < p <= 1.0 + 1e-5 else p

    def probability(self, x: Sequence[float]) -> float:
        """Calibrated probability that this login is an attack (scikit-learn's predict_proba[:, 1])."""
        return self.calibrate(self.raw_score(x))

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """Probabilities for many vectors (offline evaluation, notebooks)."""
        return [self.calibrate(self.raw_score(x)) for x in rows]

    def explain(self, x: Sequence[float]) -> list[tuple[str, float]]:
        """(feature, push on the log-odds) for every feature that pushed up, largest first."""
        pushes = [0.0] * len(FEATURE_NAMES)
        if self.kind == "logistic":
            for k, (w, v, m) in enumerate(zip(self._weights, x, self._means, strict=True)):
                pushes[k] = w * (v - m)
        elif (total := sum(x)) == total:  # no NaN: the compiled walk
            self._compiled_explain(x, pushes)
        else:
            for feature, threshold, left, right, value, missing_left in self._trees:
                i = 0
                while left[i]:
                    f = feature[i]
                    v = x[f]
                    go_left = missing_left[i] if v != v else v <= threshold[i]
                    child = left[i] if go_left else right[i]
                    pushes[f] += value[child] - value[i]
                    i = child
        up = [(FEATURE_NAMES[k], p) for k, p in enumerate(pushes) if p > 0.0]
        up.sort(key=lambda kv: kv[1], reverse=True)
        return up

    # ------------------------------------------------------------------ engine hook
    def contribution(
        self, attempt: Attempt, geo: GeoInfo, dkey: str, hour: int | None, profile: UserProfile,
        signals: Sequence[SignalResult], user_failures: int, ip_failures: int,
        now: float | None = None,
    ) -> tuple[float, list[Reason]]:
        """The model's term in the noisy-OR risk (``weight × q``, ``q`` the probability on the
        odds scale ``odds``) and its reason. ``now``: the attempt's epoch seconds when the caller
        already has them.

        A user's first login (no accepted login yet) gets no term while cold start is on
        (``cold_logins`` > 0): every feature of the user is "new" there, so the model's
        probability is its prior for new accounts, nearly the same for every first login, and
        it would lift them all over the threshold together (docs/budget.md, "With a model")."""
        x = self.features.vector(attempt.timestamp.timestamp() if now is None else now, attempt.user_agent,
                                 geo, dkey, hour, profile, user_failures, ip_failures, signals, attempt.event)
        if not profile.logins and self.cold_logins:
            return 0.0, []  # after the features: the hook's one computation of them per login
        p = self.probability(x)
        k = self.odds
        scale = self.weight
        if profile.logins < self.cold_logins:
            # cold start, as for the novelty signals: everything is new for a new user, and the
            # step-up budget watches established users only
            scale *= self.cold_scale
        term = scale * (p if k == 1.0 else k * p / (1.0 + (k - 1.0) * p))
        if term < self.min_contribution:
            return 0.0, []
        if term < EXPLAIN_MIN:
            # at most 450 distinct small reasons per scale (terms rounded to 4 places): built once each
            weight = round(term, 4)
            reason = self._small_reasons.get((weight, scale))
            if reason is None:
                q = weight / scale
                reason = self._small_reasons[weight, scale] = Reason(
                    R.MODEL_SCORE, weight, f"model p={q / (k - (k - 1.0) * q):.3f}")
            return term, [reason]
        top = self.explain(x)[: self.top]
        named = ", ".join(f"{name}={x[FEATURE_INDEX[name]]:.3g} (+{push:.2f})" for name, push in top) \
            or "no single feature"
        return term, [Reason(R.MODEL_SCORE, round(term, 4), f"model p={p:.2f}; top features: {named}")]


__all__ = ["EXPLAIN_MIN", "LoadedModel", "MIN_CONTRIBUTION"]
