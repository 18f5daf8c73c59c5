"""NEW_PREFIX: the address block, only inside a known network AS; prefix lengths from config."""

from __future__ import annotations

from riskengine.core.signals.prefix import address_prefix, new_prefix

DAY = 86400.0


def test_prefix_lengths_are_configuration() -> None:
    assert address_prefix("81.2.69.160") == "81.2.69.0"
    assert address_prefix("81.2.69.160", 16) == "81.2.0.0"
    assert address_prefix("2001:db8:abcd:12::1") == "2001:db8:abcd::"
    assert address_prefix("2001:db8:abcd:12::1", 24, 64) == "2001:db8:abcd:12::"
    assert address_prefix("::ffff:81.2.69.160") == "81.2.69.0"  # IPv4-mapped: its IPv4 block


def test_one_address_either_side_of_a_24_boundary() -> None:
    seen = {address_prefix("81.2.69.255") or "": 0}
    assert new_prefix(address_prefix("81.2.69.0"), False, seen, DAY, 365).value == 0.0
    assert new_prefix(address_prefix("81.2.70.0"), False, seen, DAY, 365).value == 1.0
    assert new_prefix(address_prefix("81.2.68.255"), False, seen, DAY, 365).value == 1.0


def test_history_window_boundary() -> None:
    seen = {"81.2.69.0": 0}
    assert new_prefix("81.2.69.0", False, seen, 365 * DAY, 365).value == 0.0
    assert new_prefix("81.2.69.0", False, seen, 365 * DAY + 1, 365).value == 1.0


def test_a_new_network_is_counted_once_by_new_asn() -> None:
    r = new_prefix("203.0.113.0", True, {"81.2.69.0": 0}, DAY, 365)
    assert r.value == 0.0 and "NEW_ASN" in r.detail
    assert new_prefix(None, False, {"81.2.69.0": 0}, DAY, 365).value == 0.0
