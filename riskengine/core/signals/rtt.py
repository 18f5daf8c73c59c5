"""Round-trip time outside the user's band for this network.

A login server can measure the RTT of the connection (the public RBA data set records it).
The same user on the same network sees a stable RTT; a proxy or a relay in between adds
latency (or a host close to the server removes it). The profile keeps, per AS, the decayed
mean and mean absolute deviation of ``log(rtt)``; ``RTT_ANOMALY`` fires outside
``mean ± max(k·deviation, log(min_factor))`` and beyond ``slack_ms`` in absolute terms,
graded from 0.5 at the band's edge to 1.0 at twice the distance.
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
    k: float, min_factor: float, slack_ms: float,
) -> SignalResult:
    """How far ``rtt_ms`` lies outside the user's band on network ``asn``.

    >>> band = {3320: RttBand(math.log(40.0), 0.1, 20)}
    >>> rtt_anomaly(45.0, 3320, band, 5, 3.0, 1.5, 20.0).value
    0.0
    >>> rtt_anomaly(260.0, 3320, band, 5, 3.0, 1.5, 20.0).value > 0.5
    True
    >>> rtt_anomaly(260.0, 3320, {3320: RttBand(math.log(40.0), 0.1, 2)}, 5, 3.0, 1.5, 20.0).value
    0.0
    """
    if rtt_ms is None or asn is None:
        return _NO_BAND
    band = bands.get(asn)
    if band is None or band.n < min_samples:
        return _NO_BAND
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


__all__ = ["rtt_anomaly"]
