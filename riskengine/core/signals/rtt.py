"""Round-trip time outside the user's band for this network.

A login server can measure the RTT of the connection (the public RBA data set records it).
The same user on the same network sees a stable RTT; a proxy or a relay in between adds
latency (or a host close to the server removes it). The profile keeps, per AS, the decayed
mean and mean absolute deviation of ``log(rtt)``; ``RTT_ANOMALY`` fires outside
``mean ± max(k·deviation, log(min_factor))`` and beyond ``slack_ms`` in absolute terms,
graded from 0.5 at the band's edge to 1.0 at twice the distance.

What an odd RTT says depends on where the login comes from. A relay (a residential proxy, a
VPN, a remote-access tool) shows the address of its exit, and that exit is almost never
inside an address block the user has logged in from: an RTT excursion on the user's own
block is the path's congestion (a busy evening, a Wi-Fi retry), not a relay.
:func:`on_known_prefix` weights the signal down there (``rtt.known_prefix_value``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from riskengine.core import reasons
from riskengine.core.profile import RttBand
from riskengine.core.signals.base import SignalResult

_QUIET = SignalResult(reasons.RTT_ANOMALY, 0.0, "round-trip time within the user's band")
_NO_BAND = SignalResult(reasons.RTT_ANOMALY, 0.0, "no round-trip time, or too few samples on this network")


def rtt_anomaly(
    rtt_ms: float | None, asn: int | None, bands: Mapping[int, RttBand], min_samples: int,
    k: float, min_factor: float, slack_ms: float, young_factor: float = 0.0,
) -> SignalResult:
    """How far ``rtt_ms`` lies outside the user's band on network ``asn``.

    ``young_factor`` (> 1; 0 = off): a user none of whose bands has ``min_samples`` yet (a
    young account) is not without evidence — a login more than ``young_factor`` times slower
    than the slowest of their few samples so far, and beyond ``slack_ms``, fires
    (:func:`_slower_than_a_young_history`).

    >>> band = {3320: RttBand(math.log(40.0), 0.1, 20)}
    >>> rtt_anomaly(45.0, 3320, band, 5, 3.0, 1.5, 20.0).value
    0.0
    >>> rtt_anomaly(260.0, 3320, band, 5, 3.0, 1.5, 20.0).value > 0.5
    True
    >>> rtt_anomaly(260.0, 3320, {3320: RttBand(math.log(40.0), 0.1, 2)}, 5, 3.0, 1.5, 20.0).value
    0.0
    >>> rtt_anomaly(260.0, 64500, band, 5, 3.0, 1.5, 20.0).value > 0.5  # a new network, far slower
    True
    >>> rtt_anomaly(20.0, 64500, band, 5, 3.0, 1.5, 20.0).value  # a new network, faster: normal
    0.0
    >>> young = {3320: RttBand(math.log(40.0), 0.05, 2)}
    >>> rtt_anomaly(260.0, 3320, young, 5, 3.0, 1.5, 20.0).value  # two samples: no band, no rule
    0.0
    >>> rtt_anomaly(400.0, 64500, young, 5, 3.0, 1.5, 20.0, young_factor=3.0).value  # 10 x
    1.0
    >>> rtt_anomaly(100.0, 64500, young, 5, 3.0, 1.5, 20.0, young_factor=3.0).value  # 2.5 x: quiet
    0.0
    """
    if rtt_ms is None:
        return _NO_BAND
    band = bands.get(asn) if asn is not None else None
    if band is None or band.n < min_samples:
        found = _slower_than_every_band(rtt_ms, asn, bands, min_samples, k, min_factor, slack_ms)
        if found is _NO_BAND and young_factor > 1.0 and bands:
            return _slower_than_a_young_history(rtt_ms, asn, bands, young_factor, slack_ms)
        return found
    width = max(k * band.log_dev, math.log(min_factor))
    centre = math.exp(band.log_mean)
    low, high = centre * math.exp(-width), centre * math.exp(width)
    if rtt_ms > high and rtt_ms - high > slack_ms:
        beyond = math.log(rtt_ms) - (band.log_mean + width)
    elif rtt_ms < low and low - rtt_ms > slack_ms:
        beyond = (band.log_mean - width) - math.log(rtt_ms)
    else:
        return _QUIET
    value = min(1.0, 0.5 + 0.5 * beyond / width)
    return SignalResult(reasons.RTT_ANOMALY, round(value, 4),
                        f"round-trip {rtt_ms:.0f} ms, usual on AS{asn} {low:.0f}–{high:.0f} ms")


def _slower_than_every_band(
    rtt_ms: float, asn: int | None, bands: Mapping[int, RttBand], min_samples: int, k: float,
    min_factor: float, slack_ms: float,
) -> SignalResult:
    """On a network without a band of its own (a new one: a residential proxy's, say), only
    the upward case can be told: slower than the user has been on every network with a band.
    A faster connection from a new network is normal (home broadband after a mobile one)."""
    edges = [(band.log_mean + max(k * band.log_dev, math.log(min_factor)), band.log_mean)
             for band in bands.values() if band.n >= min_samples]
    if not edges:
        return _NO_BAND
    edge, centre = max(edges)
    high = math.exp(edge)
    if rtt_ms <= high or rtt_ms - high <= slack_ms:
        return _QUIET
    width = edge - centre
    value = min(1.0, 0.5 + 0.5 * (math.log(rtt_ms) - edge) / width)
    where = f"AS{asn}" if asn is not None else "an unknown network"
    return SignalResult(reasons.RTT_ANOMALY, round(value, 4),
                        f"round-trip {rtt_ms:.0f} ms on {where}, slower than on any of the user's networks "
                        f"(at most {high:.0f} ms)")


def _slower_than_a_young_history(
    rtt_ms: float, asn: int | None, bands: Mapping[int, RttBand], factor: float, slack_ms: float,
) -> SignalResult:
    """No band has ``min_samples`` yet: its width (``k`` deviations) means nothing, but its
    centre does. A relay's hop multiplies a line's RTT (a residential proxy adds 60–220 ms to
    a 20–80 ms line on the simulator's default profile); what a young history cannot show yet —
    a mobile radio link, a congested moment — moves it by less than ``factor`` (3: a band's
    least half-width, ×1.6, on both sides, rounded up). Only the upward case, against the
    slowest centre: a faster login is a better line. Graded from 0.5 at ``factor`` × centre to
    1.0 at ``factor``² × centre."""
    centre = max(band.log_mean for band in bands.values())
    edge = centre + math.log(factor)
    high = math.exp(edge)
    if rtt_ms <= high or rtt_ms - high <= slack_ms:
        return _QUIET
    samples = sum(band.n for band in bands.values())
    value = min(1.0, 0.5 + 0.5 * (math.log(rtt_ms) - edge) / math.log(factor))
    where = f"AS{asn}" if asn is not None else "an unknown network"
    return SignalResult(reasons.RTT_ANOMALY, round(value, 4),
                        f"round-trip {rtt_ms:.0f} ms on {where}, over {factor:g}× the user's slowest so far "
                        f"({math.exp(centre):.0f} ms; {samples} sample(s), too few for a band)")


def on_known_prefix(sig: SignalResult, prefix_known: bool, value: float) -> SignalResult:
    """``sig`` with its value multiplied by ``value`` when it fired and the login comes from an
    address block the user has logged in from (``prefix_known``); otherwise ``sig`` itself.

    >>> s = SignalResult("RTT_ANOMALY", 1.0, "round-trip 300 ms, usual on AS3320 25–64 ms")
    >>> r = on_known_prefix(s, True, 0.4)
    >>> r.value
    0.4
    >>> r.detail.split("; ")[1]
    'from an address block the user uses: congestion more likely than a relay'
    >>> on_known_prefix(s, False, 0.4) is s
    True
    """
    if not prefix_known or sig.value <= 0.0 or value >= 1.0:
        return sig
    return SignalResult(sig.code, round(sig.value * value, 4),
                        f"{sig.detail}; from an address block the user uses: congestion more likely than a relay")


__all__ = ["on_known_prefix", "rtt_anomaly"]
