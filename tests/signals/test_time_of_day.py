from __future__ import annotations

import math

from riskengine.core.profile import UserProfile
from riskengine.core.signals.time_of_day import unusual_hour


def _profile(hours: dict[int, float], logins: int = 30) -> UserProfile:
    return UserProfile(logins=logins, hours=tuple(hours.get(h, 0.0) for h in range(24)))


def test_neighbouring_hours_are_not_unusual() -> None:
    p = _profile({9: 20, 10: 10})
    assert unusual_hour(8, p, 8, 0.02).value == 0.0  # 08:xx sits next to the 09:00 habit
    assert unusual_hour(3, p, 8, 0.02).value == 1.0


def test_share_scales_value() -> None:
    # 1 login in 100 at 03:00 ±1h → smoothed share 0.5 %; rare threshold 2 % → value 0.75
    p = _profile({9: 99, 3: 1}, logins=100)
    r = unusual_hour(3, p, 8, 0.02)
    assert abs(r.value - 0.75) < 1e-9


def test_needs_history_and_a_local_time() -> None:
    assert unusual_hour(3, _profile({9: 5}, logins=5), 8, 0.02).value == 0.0
    assert unusual_hour(None, _profile({9: 50}), 8, 0.02).value == 0.0


def test_exact_results_at_each_branch() -> None:
    p = _profile({9: 99.0, 3: 1.0})  # 03:00 holds 1 % of the weight
    assert unusual_hour(None, p, 8, 0.02) == ("UNUSUAL_HOUR", 0.0, "local time unknown")
    assert unusual_hour(3, _profile({9: 1.0}, logins=7), 8, 0.02) == (
        "UNUSUAL_HOUR", 0.0, "too little history for hours")
    share = p.hour_share(3)
    assert share == 0.005  # hour_share's own arithmetic (pinned in its tests)
    assert unusual_hour(3, p, 8, 0.03) == (
        "UNUSUAL_HOUR", round(1 - 0.005 / 0.03, 4), "0.5% of this user's logins are near 03:00 local time")
    assert round(1 - 0.005 / 0.03, 4) != round(1 - 0.005 / 0.03, 5)  # the rounding is pinned too
    # a share exactly at rare_share is usual (>=), one ULP above the share it is not
    assert unusual_hour(3, p, 8, share).detail == "a usual hour for this user"
    assert unusual_hour(3, p, 8, math.nextafter(share, 1.0)).detail.startswith("0.5% of this user's logins")
