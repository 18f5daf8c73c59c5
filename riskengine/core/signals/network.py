"""A login from a hosting provider or VPN exit the user has not used before."""

from __future__ import annotations

from collections.abc import Mapping

from riskengine.core import reasons
from riskengine.core.signals.base import SignalResult

_NOT_HOSTING = SignalResult(reasons.HOSTING_NETWORK, 0.0, "consumer network")
_KNOWN_HOSTING = SignalResult(reasons.HOSTING_NETWORK, 0.0, "hosting network this user uses")


def hosting_network(asn: int | None, org: str | None, is_hosting: bool,
                    known_asns: Mapping[int, int]) -> SignalResult:
    """Fires for a hosting/VPN network not in the user's history (a VPN user's own exit is
    learned after one verified challenge).

    >>> hosting_network(14061, "DigitalOcean, LLC", True, {}).value
    1.0
    >>> hosting_network(14061, "DigitalOcean, LLC", True, {14061: 5}).value
    0.0
    """
    if not is_hosting:
        return _NOT_HOSTING
    if asn is not None and asn in known_asns:
        return _KNOWN_HOSTING
    name = f"AS{asn}" if asn is not None else "an unknown AS"
    return SignalResult(reasons.HOSTING_NETWORK, 1.0,
                        f"login from a hosting/VPN network ({name}{', ' + org if org else ''})")
