"""Detection metrics shared by training, ``riskengine evaluate``, ``evaluate --model`` and
the notebooks.

"Stepped up" is defined here, once, the way the engine acts: a login is stepped up at
threshold ``t`` when its score is **at least** ``t`` (the engine challenges at
``risk >= policy.challenge_threshold``). A NaN score (unscored) and ``-inf`` (never stepped up:
e.g. a trusted-device allow) are stepped up at no threshold. :func:`stepped_up`,
:func:`stepped_up_rate` and :func:`curve` apply that rule; everything else builds on them.

The operating question is always the same: *if we may step up at most X % of established
users' legitimate logins, what share of attacks do we catch?* :func:`tradeoff` and
:meth:`Curve.at_target` answer it for any score where higher means riskier (rules' risk,
model probability, blended risk, Freeman log-likelihood ratio), so all scorers are compared
on the same footing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from riskengine._extras import extra

with extra("model", feature="model training (riskengine model)"):
    import numpy as np
    import polars as pl

DEFAULT_STEP_UP_TARGETS: Final = (0.01, 0.02, 0.05)


def stepped_up(scores: Sequence[float] | np.ndarray[Any, Any], threshold: float) -> np.ndarray[Any, Any]:
    """Which logins are stepped up at ``threshold``: ``score >= threshold`` (NaN and ``-inf``
    never are).

    >>> stepped_up([0.39, 0.4, 0.41, float("nan"), float("-inf")], 0.4).tolist()
    [False, True, True, False, False]
    """
    s = np.asarray(scores, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.asarray((s >= threshold) & (s > -np.inf), dtype=bool)


def stepped_up_rate(scores: Sequence[float] | np.ndarray[Any, Any],
                    thresholds: Sequence[float] | np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Share of ``scores`` stepped up (:func:`stepped_up`) at each of ``thresholds``; one sort,
    then a binary search per threshold. Empty ``scores``: 0 everywhere.

    >>> stepped_up_rate([0.2, 0.4, 0.4, 0.9], [0.4, 0.5, float("inf")]).tolist()
    [0.75, 0.25, 0.0]
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if s.size == 0:
        return np.zeros(t.size)
    ordered = np.sort(s[np.isfinite(s) | (s == np.inf)])  # NaN and -inf: never stepped up
    reached = ordered.size - np.searchsorted(ordered, t, side="left")  # side="left": ties count
    return np.asarray(reached / s.size, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Curve:
    """Thresholds (descending) and, at each, the step-up/catch rates."""

    thresholds: np.ndarray[Any, np.dtype[np.float64]]
    legit_established: np.ndarray[Any, np.dtype[np.float64]]
    legit_all: np.ndarray[Any, np.dtype[np.float64]]
    catch: dict[str, np.ndarray[Any, np.dtype[np.float64]]]

    def at_target(self, target: float) -> tuple[float, float, dict[str, float]]:
        """(threshold, established step-up rate, catch per family) at the lowest threshold
        whose established-user step-up rate is ≤ ``target``."""
        ok = np.nonzero(self.legit_established <= target + 1e-12)[0]
        if len(ok) == 0:
            return float("inf"), 0.0, {f: 0.0 for f in self.catch}
        i = int(ok[-1])  # thresholds descend, rates ascend: the last index that fits
        return float(self.thresholds[i]), float(self.legit_established[i]), {
            f: float(c[i]) for f, c in self.catch.items()}

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame({
            "threshold": self.thresholds, "legit_stepup_established": self.legit_established,
            "legit_stepup_all": self.legit_all,
            **{f"catch_{f}": c for f, c in self.catch.items()}})


def curve(score: np.ndarray[Any, Any], is_attack: np.ndarray[Any, Any], established: np.ndarray[Any, Any],
          family: Sequence[str | None], families: Sequence[str]) -> Curve:
    """The trade-off curve over every distinct score (plus +inf: nobody stepped up)."""
    finite = score[np.isfinite(score)]
    thresholds = np.concatenate([[np.inf], np.unique(finite)[::-1]])
    legit = ~is_attack
    fam = np.array([f or "" for f in family], dtype=object)
    catch = {f: stepped_up_rate(score[is_attack & (fam == f)], thresholds) for f in families}
    return Curve(thresholds, stepped_up_rate(score[legit & established], thresholds),
                 stepped_up_rate(score[legit], thresholds), catch)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Step up a login when ``score >= threshold`` (:func:`stepped_up`)."""

    target_step_up: float
    threshold: float
    step_up: float
    """Share of established users' legitimate logins flagged (≤ target)."""
    catch: float
    """Share of attack logins flagged."""
    catch_by_family: dict[str, float]


def threshold_for_step_up(legit_scores: Sequence[float] | np.ndarray, target: float) -> float:
    """The lowest threshold ``t`` with ``mean(legit >= t) <= target`` (:func:`stepped_up`):
    just above the score of the first legitimate login that must stay unflagged, so tied
    scores stay unflagged together.

    >>> t = threshold_for_step_up([0.1, 0.2, 0.3, 0.4], 0.25)
    >>> 0.3 < t <= 0.3 + 1e-15, float(stepped_up([0.1, 0.2, 0.3, 0.4], t).mean())
    (True, 0.25)
    >>> t = threshold_for_step_up([0.5, 0.5, 0.5, 0.1], 0.5)  # flagging any 0.5 would flag 75 %
    >>> stepped_up([0.5, 0.5, 0.5, 0.1, 0.51], t).tolist()
    [False, False, False, False, True]
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target step-up rate must be in [0, 1], got {target}")
    legit = np.sort(np.asarray(legit_scores, dtype=np.float64))[::-1]
    n = legit.size
    if n == 0:
        raise ValueError("no legitimate logins of established users to set a threshold on")
    allowed = int(math.floor(target * n + 1e-9))
    if allowed >= n:
        return -math.inf
    return float(np.nextafter(legit[allowed], math.inf))


def tradeoff(
    scores: Sequence[float] | np.ndarray, is_attack: Sequence[bool] | np.ndarray,
    established: Sequence[bool] | np.ndarray, family: Sequence[str | None] | None = None,
    targets: Sequence[float] = DEFAULT_STEP_UP_TARGETS,
) -> list[OperatingPoint]:
    """Catch rate at each target step-up rate of established users' legitimate logins.

    Null scores (unscored rows) are never stepped up.
    """
    s = np.asarray(scores, dtype=np.float64)
    attack = np.asarray(is_attack, dtype=bool)
    est = np.asarray(established, dtype=bool)
    legit = np.nan_to_num(s[~attack & est], nan=-math.inf)
    fams = np.asarray([f or "" for f in family], dtype=object) if family is not None else None
    points = []
    for target in targets:
        t = threshold_for_step_up(legit, target)
        flagged = stepped_up(s, t)
        by_family: dict[str, float] = {}
        if fams is not None:
            for name in sorted({f for f in fams[attack] if f}):
                mask = attack & (fams == name)
                by_family[name] = float(flagged[mask].mean())
        points.append(OperatingPoint(
            target, t, float(flagged[~attack & est].mean()),
            float(flagged[attack].mean()) if attack.any() else math.nan, by_family))
    return points


def pr_auc(scores: Sequence[float] | np.ndarray, is_attack: Sequence[bool] | np.ndarray) -> float:
    """Average precision (area under the precision–recall curve, step-wise as scikit-learn)."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(is_attack, dtype=bool)
    if not y.any():
        return math.nan
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-1e300)
    return float(average_precision_score(y, s))


def calibration_error(probabilities: Sequence[float] | np.ndarray, is_attack: Sequence[bool] | np.ndarray,
                      bins: int = 10) -> float:
    """Expected calibration error: bin-weighted |mean predicted − observed rate|, equal-width bins.

    >>> calibration_error([0.0, 0.0, 1.0, 1.0], [False, False, True, True])
    0.0
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(is_attack, dtype=np.float64)
    if p.size == 0:
        raise ValueError("no predictions")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must be in [0, 1]")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / p.size * abs(p[m].mean() - y[m].mean())
    return float(total)


def reliability_table(probabilities: Sequence[float] | np.ndarray, is_attack: Sequence[bool] | np.ndarray,
                      bins: int = 10) -> pl.DataFrame:
    """Per equal-width bin: logins, mean predicted probability, observed attack rate."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(is_attack, dtype=np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    frame = pl.DataFrame({"bin": idx, "p": p, "y": y})
    return frame.group_by("bin").agg(
        pl.len().alias("logins"), pl.col("p").mean().alias("predicted"), pl.col("y").mean().alias("observed"),
    ).sort("bin")


def summary(name: str, scores: Sequence[float] | np.ndarray, frame: pl.DataFrame,
            targets: Sequence[float] = DEFAULT_STEP_UP_TARGETS) -> dict[str, object]:
    """One comparison row: PR-AUC and catch at each target step-up rate (needs ``is_attack``,
    ``established``, optional ``attack_family`` columns in ``frame``)."""
    fam = frame["attack_family"].to_list() if "attack_family" in frame.columns else None
    points = tradeoff(scores, frame["is_attack"].to_numpy(), frame["established"].to_numpy(), fam, targets)
    row: dict[str, object] = {"scorer": name, "pr_auc": pr_auc(scores, frame["is_attack"].to_numpy())}
    for pt in points:
        row[f"catch@{pt.target_step_up:.0%}"] = pt.catch
    return row


__all__ = ["DEFAULT_STEP_UP_TARGETS", "Curve", "OperatingPoint", "calibration_error", "curve", "pr_auc",
           "reliability_table", "stepped_up", "stepped_up_rate", "summary", "threshold_for_step_up", "tradeoff"]
