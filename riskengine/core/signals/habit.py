"""How much a never-seen network or place says, given how often this user shows new ones.

A first login from a new address block, network AS, city or region is the same event for two
users, but not the same evidence. For a user who has logged in 60 times from two address
blocks, a third one is rare; for a user behind carrier NAT whose every mobile login comes
from another block, it is the normal case. The likelihood-ratio scorer of Freeman et al.
(NDSS 2016) gets this from per-user counts (a never-seen value has probability
``μ·p(v) / (N + μ)``: the longer the history, the stronger the novelty); the rules get it here
from what the profile already keeps — the distinct values and the login count.

Every distinct value after the first arrived as a novelty, so ``(distinct − 1) / logins``
estimates how often this user's logins bring a new value (the first login is new against
nothing and is not counted; dividing by ``logins`` rather than ``logins − 1`` keeps a short
history from looking perfectly stable). The novelty's strength is what is left,
``1 − that``, never below ``floor``:

- 60 logins from one address block: 1.0 (a single value: the unweighted rule);
- 60 logins from 2 blocks: 0.98;
- 8 logins from 3 networks: 0.75;
- 20 logins from 12 blocks (carrier NAT; the profile keeps 12): 0.45, and the floor (0.3) for a
  user whose every login brings a new one.

Bounded profile maps (``geo.max_prefixes`` and friends) cap ``distinct``: a user who rotates
through more values than the map keeps looks somewhat more stable than they are (the strength
stays conservative, never above 1, so this only ever errs towards the unweighted rule).
Weighting only lowers a novelty's value: it can never raise a login's risk above what the
unweighted rule gave, and ``floor = 1`` turns it off.
"""

from __future__ import annotations

from riskengine.core.signals.base import SignalResult


def novelty_strength(distinct: int, logins: int, floor: float) -> float:
    """``max(floor, 1 − (distinct − 1) / logins)``: the share of a novelty's weight it keeps.

    >>> novelty_strength(1, 60, 0.3)
    1.0
    >>> novelty_strength(2, 60, 0.3)
    0.9833
    >>> novelty_strength(12, 20, 0.3)
    0.45
    >>> novelty_strength(12, 12, 0.3)
    0.3
    >>> novelty_strength(3, 8, 1.0)  # floor 1: off
    1.0
    """
    if floor >= 1.0:
        return 1.0
    if distinct <= 1:
        return 1.0
    # more values than logins (profiles merged from several workers): each login a new value
    strength = 1.0 - (distinct - 1) / max(logins, distinct)
    return round(max(floor, min(1.0, strength)), 4)


def habitual(sig: SignalResult, distinct: int, logins: int, floor: float, noun: str) -> SignalResult:
    """``sig`` with its value scaled by :func:`novelty_strength` when it fired; a signal that
    did not fire (or weighting turned off, ``floor = 1``) is returned as it is, unallocated.

    >>> s = SignalResult("NEW_PREFIX", 1.0, "first login from address block 81.2.69.0")
    >>> r = habitual(s, 12, 20, 0.3, "address blocks")
    >>> r.value
    0.45
    >>> r.detail.split("; ")[1]
    '12 address blocks in 20 logins: new ones are common for this user'
    >>> habitual(s, 2, 60, 0.3, "address blocks").value
    0.9833
    >>> habitual(SignalResult("NEW_PREFIX", 0.0, "seen"), 12, 20, 0.3, "address blocks").value
    0.0
    """
    if sig.value <= 0.0 or floor >= 1.0:
        return sig
    strength = novelty_strength(distinct, logins, floor)
    if strength >= 1.0:
        return sig
    common = "new ones are common for this user" if strength < 0.9 else "new ones are rare for this user"
    return SignalResult(sig.code, round(sig.value * strength, 4),
                        f"{sig.detail}; {distinct} {noun} in {logins} logins: {common}")


__all__ = ["habitual", "novelty_strength"]
