"""Detection metrics shared by training, ``riskengine evaluate`` and the notebooks.

The operating question is always the same: *if we may step up at most X % of established
users' legitimate logins, what share of attacks do we catch?* :func:`tradeoff` answers it
for any score where higher means riskier (rules' risk, model probability, blended risk,
Freeman log-likelihood ratio), so all scorers are compared on the same footing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from riskengine._extras import extra

with extra("model", feature="model training (riskengine model)"):
    import numpy as np
    import polars as pl

DEFAULT_STEP_UP_TARGETS: Final = (0.01, 0.02, 0.05)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Flag a login when ``score > threshold``."""

    target_step_up: float
    threshold: float
    step_up: float
    """Share of established users' legitimate logins flagged (≤ target)."""
    catch: float
    """Share of attack logins flagged."""
    catch_by_family: dict[str, float]


def threshold_for_step_up(legit_scores: Sequence[float] | np.ndarray, target: float) -> float:
    """The lowest threshold ``t`` with ``mean(legit > t) <= target`` (ties stay unflagged).

    >>> threshold_for_step_up([0.1, 0.2, 0.3, 0.4], 0.25)
    0.3
    >>> threshold_for_step_up([0.5, 0.5, 0.5, 0.1], 0.5)  # flagging any 0.5 would flag 75 %
    0.5
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
    return float(legit[allowed])


def tradeoff(
    scores: Sequence[float] | np.ndarray, is_attack: Sequence[bool] | np.ndarray,
    established: Sequence[bool] | np.ndarray, family: Sequence[str | None] | None = None,
    targets: Sequence[float] = DEFAULT_STEP_UP_TARGETS,
) -> list[OperatingPoint]:
    """Catch rate at each target step-up rate of established users' legitimate logins.

    Null scores (unscored rows) count as 0 (never flagged).
    """
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-math.inf)
    attack = np.asarray(is_attack, dtype=bool)
    est = np.asarray(established, dtype=bool)
    legit = s[~attack & est]
    fams = np.asarray([f or "" for f in family], dtype=object) if family is not None else None
    points = []
    for target in targets:
        t = threshold_for_step_up(legit, target)
        flagged = s > t
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


__all__ = ["DEFAULT_STEP_UP_TARGETS", "OperatingPoint", "calibration_error", "pr_auc",
           "reliability_table", "summary", "threshold_for_step_up", "tradeoff"]
