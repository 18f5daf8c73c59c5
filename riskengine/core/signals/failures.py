"""Failed password attempts for the user and for the IP, in a sliding window."""

from __future__ import annotations

from riskengine.core import reasons
from riskengine.core.signals.base import SignalResult


def failed_attempts(
    user_failures: int, ip_failures: int, user_threshold: int, user_deny: int,
    ip_threshold: int, ip_deny: int, window_minutes: float,
) -> tuple[SignalResult, ...]:
    """The failure signals that fire. Value 0.5 at the threshold, 1.0 at the deny level.

    >>> [s.code for s in failed_attempts(3, 0, 3, 10, 20, 200, 30)]
    ['FAILED_ATTEMPTS_USER']
    >>> [s.code for s in failed_attempts(12, 0, 3, 10, 20, 200, 30)]
    ['FAILED_ATTEMPTS_EXCESSIVE']
    """
    out: list[SignalResult] = []
    window = f"in the last {window_minutes:.0f} min"
    if user_failures >= user_deny or ip_failures >= ip_deny:
        out.append(SignalResult(
            reasons.FAILED_ATTEMPTS_EXCESSIVE, 1.0,
            f"{user_failures} failed passwords for the user, {ip_failures} from the IP {window}",
        ))
        return tuple(out)
    if user_failures >= user_threshold:
        span = max(1, user_deny - user_threshold)
        out.append(SignalResult(
            reasons.FAILED_ATTEMPTS_USER, 0.5 + 0.5 * (user_failures - user_threshold) / span,
            f"{user_failures} failed passwords for this user {window}",
        ))
    if ip_failures >= ip_threshold:
        span = max(1, ip_deny - ip_threshold)
        out.append(SignalResult(
            reasons.FAILED_ATTEMPTS_IP, 0.5 + 0.5 * (ip_failures - ip_threshold) / span,
            f"{ip_failures} failed passwords from this IP {window}",
        ))
    return tuple(out)
