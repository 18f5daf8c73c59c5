"""The exported names are a contract: this list changes only on purpose."""

from __future__ import annotations

import riskengine


def test_exported_members() -> None:
    assert sorted(riskengine.__all__) == sorted([
        "Action", "Decision", "Engine", "Factor", "LoginAttempt", "Reason", "Settings",
        "UnknownDecisionError", "UserProfile", "__version__", "assign_variant",
    ])
    for name in riskengine.__all__:
        assert hasattr(riskengine, name), name


def test_decision_shape() -> None:
    fields = set(riskengine.Decision.__dataclass_fields__)
    assert {"decision_id", "action", "risk", "reasons", "factor"} <= fields
    assert set(riskengine.Reason.__dataclass_fields__) == {"code", "weight", "detail"}
