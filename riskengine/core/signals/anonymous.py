"""A login through an anonymising network: a Tor exit, a public or residential proxy, a VPN."""

from __future__ import annotations

from collections.abc import Mapping

from riskengine.core import reasons
from riskengine.core.signals.base import SignalResult

_NOT_ANONYMOUS = SignalResult(reasons.ANONYMOUS_PROXY, 0.0, "not an anonymising network")
_ALWAYS = ("tor", "public_proxy", "residential_proxy")
_LABELS = {"tor": "Tor exit node", "public_proxy": "public proxy", "residential_proxy": "residential proxy",
           "vpn": "anonymous VPN", "anonymous": "anonymising network"}


def anonymous_proxy(categories: frozenset[str], asn: int | None, known_asns: Mapping[int, int]) -> SignalResult:
    """Fires for Tor exits and public/residential proxies always (nobody's own network), and
    for an anonymous VPN unless its AS is one the user logs in from (a VPN user's own exit is
    learned after one verified challenge, as with ``HOSTING_NETWORK``). Hosting alone and
    privacy relays (iCloud Private Relay) never fire.

    >>> anonymous_proxy(frozenset({"tor", "anonymous"}), None, {}).value
    1.0
    >>> anonymous_proxy(frozenset({"vpn", "anonymous"}), 9009, {9009: 4}).value
    0.0
    >>> anonymous_proxy(frozenset({"relay"}), None, {}).value
    0.0
    """
    named = [_LABELS[c] for c in ("tor", "public_proxy", "residential_proxy", "vpn") if c in categories]
    if not named and "anonymous" in categories and not categories & {"hosting", "relay"}:
        named = [_LABELS["anonymous"]]
    if not named:
        return _NOT_ANONYMOUS
    if not any(c in categories for c in _ALWAYS) and asn is not None and asn in known_asns:
        return SignalResult(reasons.ANONYMOUS_PROXY, 0.0, "anonymous VPN this user logs in from")
    return SignalResult(reasons.ANONYMOUS_PROXY, 1.0, f"login through: {', '.join(named)}")


__all__ = ["anonymous_proxy"]
