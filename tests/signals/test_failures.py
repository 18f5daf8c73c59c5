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


def test_values_and_details_exactly() -> None:
    """Value 0.5 at the threshold, rising linearly to 1.0 at the deny level; the detail names
    the counts and the window."""
    (user,) = failed_attempts(6, 0, 3, 10, 20, 200, 29.6)
    assert user == ("FAILED_ATTEMPTS_USER", 0.5 + 0.5 * 3 / 7, "6 failed passwords for this user in the last 30 min")
    (ip,) = failed_attempts(0, 65, 3, 10, 20, 200, 30)
    assert ip == ("FAILED_ATTEMPTS_IP", 0.5 + 0.5 * 45 / 180, "65 failed passwords from this IP in the last 30 min")
    (excessive,) = failed_attempts(10, 7, 3, 10, 20, 200, 30)
    assert excessive == ("FAILED_ATTEMPTS_EXCESSIVE", 1.0,
                         "10 failed passwords for the user, 7 from the IP in the last 30 min")

