from __future__ import annotations

from riskengine.core.profile import DeviceSeen
from riskengine.core.signals.device import device_novelty, is_trusted

DAY = 86400


def test_new_known_and_stale_devices() -> None:
    devices = {"laptop": DeviceSeen(0, 10 * DAY, 12)}
    assert device_novelty("phone", devices, 11 * DAY, 30).code == "NEW_DEVICE"
    assert device_novelty("laptop", devices, 39 * DAY, 30).value == 0.0
    stale = device_novelty("laptop", devices, 41 * DAY, 30)
    assert (stale.code, stale.value) == ("NEW_DEVICE", 1.0)
    assert "31 days" in stale.detail
    returning = device_novelty("laptop", devices, 41 * DAY, 30, returning_value=0.75)
    assert (returning.code, returning.value) == ("NEW_DEVICE", 0.75)
    assert device_novelty("phone", devices, 41 * DAY, 30, returning_value=0.75).value == 1.0


def test_trust_expires() -> None:
    devices = {"laptop": DeviceSeen(0, 10, 3, trusted_until=100)}
    assert is_trusted("laptop", devices, 100)
    assert not is_trusted("laptop", devices, 101)
    assert not is_trusted("phone", devices, 50)
