"""A country the service's users (almost) never log in from, for a user with no history.

A brand-new account, or one whose history the engine has not seen yet, has nothing of its own
to be new against. The service's population still knows something: a login from a country
that holds a tiny share of all accepted logins is far likelier to be an attacker's than a
member's (the attacker model of Freeman et al., NDSS 2016, is exactly this global
distribution). Only used when the user has no country history, and only once the engine has
seen enough accepted logins for the shares to mean anything. The counts come from the profile
store (shared by every worker), forward-decayed, fed only by established users' accepted
logins (see ``Engine._population_add``).
"""

from __future__ import annotations

from collections.abc import Mapping

from riskengine.core import reasons
from riskengine.core.signals.base import SignalResult

_QUIET = SignalResult(reasons.RARE_COUNTRY_FOR_SERVICE, 0.0, "country common for this service")


def rare_country_for_service(
    country: str | None, counts: Mapping[str, float], total: float, min_total: float, rare_share: float
) -> SignalResult:
    """1.0 when ``country`` holds less than ``rare_share`` of the service's accepted logins.

    >>> rare_country_for_service("VN", {"GB": 990, "VN": 1}, 991, 500, 0.005).value
    1.0
    >>> rare_country_for_service("GB", {"GB": 990, "VN": 1}, 991, 500, 0.005).value
    0.0
    >>> rare_country_for_service("VN", {"VN": 1}, 1, 500, 0.005).value  # too little data
    0.0
    """
    if country is None or total < min_total:
        return _QUIET
    share = counts.get(country, 0) / total
    if share >= rare_share:
        return _QUIET
    return SignalResult(reasons.RARE_COUNTRY_FOR_SERVICE, 1.0,
                        f"{country} is {share:.2%} of this service's logins and the user has no history")
