from __future__ import annotations

from riskengine.core.signals.failures import failed_attempts


def codes(u: int, i: int) -> list[str]:
    return [s.code for s in failed_attempts(u, i, 3, 10, 20, 200, 30)]


def test_thresholds() -> None:
    assert codes(2, 19) == []
    assert codes(3, 0) == ["FAILED_ATTEMPTS_USER"]
    assert codes(0, 20) == ["FAILED_ATTEMPTS_IP"]
    assert codes(3, 20) == ["FAILED_ATTEMPTS_USER", "FAILED_ATTEMPTS_IP"]
    assert codes(10, 0) == ["FAILED_ATTEMPTS_EXCESSIVE"]
    assert codes(0, 200) == ["FAILED_ATTEMPTS_EXCESSIVE"]


def test_value_grows_with_count() -> None:
    values = [failed_attempts(n, 0, 3, 10, 20, 200, 30)[0].value for n in range(3, 10)]
    assert values == sorted(values) and values[0] == 0.5 and values[-1] < 1.0
