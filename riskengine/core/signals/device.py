"""Device novelty: a device not seen in the user's recent window is the strongest signal."""

from __future__ import annotations

from collections.abc import Mapping

from riskengine.core import reasons
from riskengine.core.profile import DeviceSeen
from riskengine.core.signals.base import SignalResult

_KNOWN = SignalResult(reasons.KNOWN_DEVICE, 0.0, "device seen before")


def device_novelty(
    device_key: str, devices: Mapping[str, DeviceSeen], now: float, window_days: float,
    returning_value: float = 1.0,
) -> SignalResult:
    """1.0 when the device is new to the user; ``returning_value`` when the user has used it
    before but not within ``window_days`` (new again, yet not a stranger); else 0.

    >>> device_novelty("abc", {}, 0, 30).code
    'NEW_DEVICE'
    >>> device_novelty("abc", {"abc": DeviceSeen(0, 100, 3)}, 200, 30).value
    0.0
    >>> device_novelty("abc", {"abc": DeviceSeen(0, 100, 3)}, 100 + 45 * 86400, 30, 0.75).value
    0.75
    """
    seen = devices.get(device_key)
    if seen is None:
        return SignalResult(reasons.NEW_DEVICE, 1.0, "first login from this device")
    idle_days = (now - seen.last_seen) / 86400.0
    if idle_days > window_days:
        return SignalResult(
            reasons.NEW_DEVICE, returning_value, f"device not seen for {idle_days:.0f} days"
        )
    return _KNOWN


def is_trusted(device_key: str, devices: Mapping[str, DeviceSeen], now: float) -> bool:
    """Whether the user marked this device trusted after a verified challenge, still valid."""
    seen = devices.get(device_key)
    return seen is not None and seen.trusted_until >= now
