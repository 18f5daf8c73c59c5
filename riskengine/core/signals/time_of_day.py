"""Time of day: how unusual this local hour is for this user. Weak alone by design."""

from __future__ import annotations

from riskengine.core import reasons
from riskengine.core.profile import UserProfile
from riskengine.core.signals.base import SignalResult

_USUAL = SignalResult(reasons.UNUSUAL_HOUR, 0.0, "a usual hour for this user")


def unusual_hour(
    local_hour: int | None, profile: UserProfile, min_logins: int, rare_share: float
) -> SignalResult:
    """1.0 at an hour the user (almost) never logs in at, scaled down towards ``rare_share``.

    Needs ``min_logins`` of history; before that every hour is unremarkable.

    >>> from riskengine.core.profile import UserProfile
    >>> p = UserProfile(logins=20, hours=tuple(10.0 if h in (9, 10, 11) else 0.0 for h in range(24)))
    >>> unusual_hour(3, p, 8, 0.02).value
    1.0
    >>> unusual_hour(10, p, 8, 0.02).value
    0.0
    """
    if local_hour is None:
        return SignalResult(reasons.UNUSUAL_HOUR, 0.0, "local time unknown")
    if profile.logins < min_logins:
        return SignalResult(reasons.UNUSUAL_HOUR, 0.0, "too little history for hours")
    share = profile.hour_share(local_hour)
    if share >= rare_share:
        return _USUAL
    value = 1.0 - share / rare_share if rare_share > 0 else 0.0
    return SignalResult(
        reasons.UNUSUAL_HOUR, round(value, 4),
        f"{share:.1%} of this user's logins are near {local_hour:02d}:00 local time",
    )
