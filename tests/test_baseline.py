"""Freeman et al. (NDSS 2016) baseline: the likelihood ratio checked by hand on a tiny history."""

from __future__ import annotations

import math

import pytest

from riskengine.offline.baseline import FreemanBaseline

HOME = ("1.1.1.1", 10, "GB", "Chrome 120", "Windows")


def test_likelihood_ratio_by_hand() -> None:
    b = FreemanBaseline(smoothing=2.0, features=("country",))
    for value in ("GB", "GB", "GB", "FR"):  # population: GB×3, FR×1; u1 learns GB, GB
        b.see((value,))
    b.learn("u1", ("GB",))
    b.learn("u1", ("GB",))
    # global p(v) = (c + 1) / (N + |V| + 1) with N = 4, |V| = 2
    p_gb, p_fr, p_new = 4 / 7, 2 / 7, 1 / 7
    assert b.global_probability(0, "GB") == pytest.approx(p_gb)
    # user: (c_u + μ p) / (N_u + μ) with N_u = 2, μ = 2
    assert b.score("u1", ("GB",)) == pytest.approx(math.log(p_gb) - math.log((2 + 2 * p_gb) / 4))
    assert b.score("u1", ("FR",)) == pytest.approx(math.log(p_fr) - math.log((2 * p_fr) / 4))
    assert b.score("u1", ("JP",)) == pytest.approx(math.log(p_new) - math.log((2 * p_new) / 4))
    assert b.score("nobody", ("FR",)) == 0.0  # no history: p̃ = p


def test_unseen_values_score_higher_and_history_sharpens() -> None:
    b = FreemanBaseline()
    for _ in range(3):
        b.observe("u", HOME, learn=True)
    b.observe("v", ("2.2.2.2", 20, "FR", "Firefox 121", "Linux"), learn=True)
    familiar = b.score("u", HOME)
    stranger = b.score("u", ("2.2.2.2", 20, "FR", "Firefox 121", "Linux"))
    assert stranger > 0 > familiar
    for _ in range(10):
        b.observe("u", HOME, learn=True)
    assert b.score("u", ("2.2.2.2", 20, "FR", "Firefox 121", "Linux")) > stranger


def test_unknown_features_are_skipped_and_bad_smoothing_rejected() -> None:
    b = FreemanBaseline()
    b.observe("u", HOME, learn=True)
    assert b.score("u", (None, None, None, None, None)) == 0.0
    with pytest.raises(ValueError, match="smoothing"):
        FreemanBaseline(smoothing=0)
