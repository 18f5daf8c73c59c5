"""NEW_PREFIX: the address block, only inside a known network AS; prefix lengths from config."""

from __future__ import annotations

import ipaddress
import random

from riskengine.core.signals.prefix import address_prefix, new_prefix, prefix_seen

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


def test_prefix_seen_is_the_complement_of_new_prefix_at_the_history_boundary() -> None:
    seen = {"81.2.69.0": 0}
    assert prefix_seen("81.2.69.0", seen, 365 * DAY, 365)
    assert not prefix_seen("81.2.69.0", seen, 365 * DAY + 1, 365)
    assert not prefix_seen("81.2.70.0", seen, DAY, 365)
    assert not prefix_seen(None, seen, DAY, 365)
    for now in (DAY, 365 * DAY, 365 * DAY + 1):
        for prefix in ("81.2.69.0", "81.2.70.0"):
            assert prefix_seen(prefix, seen, now, 365) == (new_prefix(prefix, False, seen, now, 365).value == 0.0)


def test_a_new_network_is_counted_once_by_new_asn() -> None:
    r = new_prefix("203.0.113.0", True, {"81.2.69.0": 0}, DAY, 365)
    assert r.value == 0.0 and "NEW_ASN" in r.detail
    assert new_prefix(None, False, {"81.2.69.0": 0}, DAY, 365).value == 0.0


def _by_ipaddress(ip: str, bits: int) -> str | None:
    """The definition: ipaddress's network address of the /bits prefix (None: not an address)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.version != 4:
        return "v6"
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False).network_address)


def test_ipv4_fast_path_agrees_with_ipaddress_on_valid_and_malformed_strings() -> None:
    """The dotted-quad fast path returns what ipaddress returns, and leaves everything it does
    not accept (leading zeros, 256, five octets, spaces, non-ASCII digits) to ipaddress."""
    rng = random.Random(5)
    odd = ["01.2.3.4", "1.2.3.04", "256.1.1.1", "1.2.3", "1.2.3.4.5", " 1.2.3.4", "1.2.3.4\n", "1.2.3.4 ",
           "١.2.3.4", "1..3.4", "0.0.0.0", "255.255.255.255", "1.2.3.-4", "+1.2.3.4", "::ffff:81.2.69.160",
           "1.2.3.4/24", "0x1.2.3.4", ""]
    samples = odd + [".".join(str(rng.randrange(256)) for _ in range(4)) for _ in range(2000)]
    for ip in samples:
        for bits in (8, 13, 16, 24, 31, 32):
            address_prefix.cache_clear()
            got = address_prefix(ip, bits)
            want = _by_ipaddress(ip, bits)
            if want == "v6":
                continue
            assert got == want, (ip, bits)
