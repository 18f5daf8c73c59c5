"""How much a never-seen network or place says, given how often this user shows new ones.

A first login from a new address block, network AS, city or region is the same event for two
users, but not the same evidence. For a user who has logged in 60 times from two address
blocks, a third one is rare; for a user behind carrier NAT whose every mobile login comes
from another block, it is the normal case. The likelihood-ratio scorer of Freeman et al.
(NDSS 2016) gets this from per-user counts (a never-seen value has probability
``μ·p(v) / (N + μ)``: the longer the history, the stronger the novelty); the rules get it here
from what the profile already keeps — the distinct values and the login count.

Each distinct value arrived once as a novelty, so ``distinct / (logins + 1)`` estimates how
likely this user's next login is to bring a new value (the Chinese-restaurant estimate of a
new table). The evidence of a novelty is the log of its inverse, the surprise; it counts in
full once a new value is rarer than one login in ``full_ratio``, in proportion below that,
never below ``floor``:

    strength = clip(log((logins + 1) / distinct) / log(full_ratio), floor, 1)

with ``full_ratio`` 20 and ``floor`` 0.3 (``geo.novelty_full_ratio``, ``geo.novelty_floor``):

- 20 or more logins from one address block, 60 from two: 1.0;
- 9 logins from 2 networks: 0.54; 5 logins from one: 0.6;
- 20 logins from 12 blocks (carrier NAT; the profile keeps 12): the floor, 0.3.

Bounded profile maps (``geo.max_prefixes`` and friends) cap ``distinct``: a user who rotates
through more values than the map keeps looks somewhat steadier than they are. ``floor = 1``
turns the weighting off (every novelty at full strength).
"""

from __future__ import annotations

import math

from riskengine.core.signals.base import SignalResult


def novelty_strength(distinct: int, logins: int, floor: float, full_ratio: float = 20.0) -> float:
    """``clip(log((logins + 1) / distinct) / log(full_ratio), floor, 1)``: the share of a
    novelty's weight it carries for this user.

    >>> novelty_strength(1, 20, 0.3)
    1.0
    >>> novelty_strength(2, 60, 0.3)
    1.0
    >>> novelty_strength(2, 9, 0.3)
    0.5372
    >>> novelty_strength(12, 20, 0.3)
    0.3
    >>> novelty_strength(3, 8, 1.0)  # floor 1: off
    1.0
    """
    if floor >= 1.0 or distinct <= 0:
        return 1.0
    # more values than logins (profiles merged from several workers): each login a new value
    surprise = math.log((max(logins, distinct) + 1.0) / distinct)
    return round(max(floor, min(1.0, surprise / math.log(full_ratio))), 4)


def habitual(sig: SignalResult, distinct: int, logins: int, floor: float, full_ratio: float,
             noun: str) -> SignalResult:
    """``sig`` with its value scaled by :func:`novelty_strength` when it fired; a signal that
    did not fire (or at full strength) is returned as it is, unallocated.

    >>> s = SignalResult("NEW_PREFIX", 1.0, "first login from address block 81.2.69.0")
    >>> r = habitual(s, 12, 20, 0.3, 20.0, "address blocks")
    >>> r.value
    0.3
    >>> r.detail.split("; ")[1]
    '12 address blocks in 20 logins: new ones are common for this user'
    >>> habitual(s, 1, 60, 0.3, 20.0, "address blocks") is s
    True
    >>> habitual(SignalResult("NEW_PREFIX", 0.0, "seen"), 12, 20, 0.3, 20.0, "address blocks").value
    0.0
    """
    if sig.value <= 0.0 or floor >= 1.0:
        return sig
    strength = novelty_strength(distinct, logins, floor, full_ratio)
    if strength >= 1.0:
        return sig
    common = "new ones are common for this user" if strength < 0.7 else "too few logins to call it rare"
    return SignalResult(sig.code, round(sig.value * strength, 4),
                        f"{sig.detail}; {distinct} {noun} in {logins} logins: {common}")


__all__ = ["habitual", "novelty_strength"]
