"""Experiment readouts from per-variant counts (the SQL that counts lives in db.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from riskengine.analytics import stats as S

SRM_ALPHA = 0.001
"""Sample-ratio mismatch is flagged below this p-value (the usual, deliberately strict, bar)."""


@dataclass(frozen=True)
class VariantResult:
    n: int
    conversions: int
    rate: float | None
    lift: float | None = None
    lift_ci: tuple[float, float] | None = None
    diff: float | None = None
    diff_ci: tuple[float, float] | None = None
    p_value: float | None = None
    chance_to_beat_control: float | None = None
    sequential_ci: tuple[float, float] | None = None
    sequential_significant: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "conversions": self.conversions, "rate": self.rate, "lift": self.lift,
            "lift_ci": list(self.lift_ci) if self.lift_ci is not None else None,
            "diff": self.diff, "diff_ci": list(self.diff_ci) if self.diff_ci is not None else None,
            "p_value": self.p_value, "chance_to_beat_control": self.chance_to_beat_control,
            "sequential_ci": list(self.sequential_ci) if self.sequential_ci is not None else None,
            "sequential_significant": self.sequential_significant,
        }


@dataclass(frozen=True)
class ExperimentReadout:
    """One experiment: per-variant results against the control, SRM check, sample guard.

    ``enough_data`` is False while any arm has fewer than ``min_samples`` exposed users:
    the numbers are shown but should not be acted on. ``sequential_ci`` (a confidence
    sequence) stays valid however often the readout is looked at; the fixed ``diff_ci`` and
    ``p_value`` assume a single look at a planned sample size.
    """

    name: str
    control: str
    variants: dict[str, VariantResult]
    srm_statistic: float
    srm_p_value: float
    srm_flag: bool
    enough_data: bool
    min_samples: int
    expected_weights: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "control": self.control, "srm_p_value": self.srm_p_value, "srm_flag": self.srm_flag,
            "srm_statistic": self.srm_statistic, "enough_data": self.enough_data,
            "min_samples": self.min_samples, "expected_weights": dict(self.expected_weights),
            "variants": {name: v.to_dict() for name, v in self.variants.items()},
        }


def readout(
    name: str,
    counts: Mapping[str, tuple[int, int]],
    control: str,
    weights: Mapping[str, float] | None = None,
    min_samples: int = 100,
    level: float = 0.95,
) -> ExperimentReadout:
    """Readout from ``counts``: variant → (exposed users, converted users).

    >>> r = readout("x", {"a": (100, 50), "b": (100, 60)}, control="a")
    >>> r.variants["b"].lift, r.variants["a"].lift, r.enough_data
    (0.19999999999999996, None, True)
    """
    if control not in counts:
        counts = {control: (0, 0), **counts}
    order: Sequence[str] = [control, *[v for v in counts if v != control]]
    design = dict(weights) if weights else {v: 1.0 for v in order}
    for v in order:
        design.setdefault(v, 0.0)
    n0, c0 = counts[control]
    results: dict[str, VariantResult] = {}
    for v in order:
        n, c = counts[v]
        rate = c / n if n else None
        if v == control:
            results[v] = VariantResult(n, c, rate)
            continue
        defined = n > 0 and n0 > 0
        diff = (c / n - c0 / n0) if defined else None
        results[v] = VariantResult(
            n, c, rate,
            lift=S.relative_lift(c, n, c0, n0),
            lift_ci=S.relative_lift_ci(c, n, c0, n0, level) if defined else None,
            diff=diff,
            diff_ci=S.newcombe_diff_ci(c, n, c0, n0, level) if defined else None,
            p_value=S.two_proportion_ztest(c, n, c0, n0)[1] if defined else None,
            chance_to_beat_control=S.chance_to_beat(c, n, c0, n0) if defined else None,
            sequential_ci=S.confidence_sequence_diff(c, n, c0, n0, 1 - level) if defined else None,
        )
        seq = results[v].sequential_ci
        if seq is not None:
            results[v] = _with_significance(results[v], not (seq[0] <= 0 <= seq[1]))
    planned = [v for v in order if design.get(v, 0) > 0]
    srm_stat, srm_p = S.srm_test([counts[v][0] for v in planned], [design[v] for v in planned])
    return ExperimentReadout(
        name=name, control=control, variants=results, srm_statistic=srm_stat, srm_p_value=srm_p,
        srm_flag=srm_p < SRM_ALPHA, enough_data=all(counts[v][0] >= min_samples for v in order),
        min_samples=min_samples, expected_weights={v: design[v] for v in order})


def _with_significance(v: VariantResult, significant: bool) -> VariantResult:
    from dataclasses import replace

    return replace(v, sequential_significant=significant)


__all__ = ["SRM_ALPHA", "ExperimentReadout", "VariantResult", "readout"]
