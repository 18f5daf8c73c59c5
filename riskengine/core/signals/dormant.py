"""An account the engine has watched long enough to know is not new, logging in for the first time.

Cold-start leniency (``coldstart.novelty_scale``) exists because everything is new for a new
account: its first logins' device and places say little. That holds for an account the engine
learnt at signup (``Engine.record_signup``) or one created moments before its first login. It
does not hold for an account with **no login and no signup on record** in all the time the
profile store has been learning: either it has been dormant that long, or it was created before
the engine went live and never used since. Takeovers of dormant accounts are the attacker's
easiest kind — nobody is watching them — and their first login is exactly a new user's on
everything else the engine sees (session 8's "cold victims", docs/signals.md). So once the store
has ``coldstart.dormant_days`` of history, such a login carries ``DORMANT_ACCOUNT`` and its
novelty counts in full.

A service that does not call ``record_signup`` makes every new account look dormant once the
store is older than the window: its first login is then challenged (docs/integrating.md).
"""

from __future__ import annotations

from riskengine.core import reasons
from riskengine.core.signals.base import SignalResult

_SECONDS_PER_DAY = 86_400.0
_QUIET = SignalResult(reasons.DORMANT_ACCOUNT, 0.0, "the account has history, or the store is too young to tell")


def dormant_account(samples: int, now: float, history_start: float | None, dormant_s: float) -> SignalResult:
    """1.0 when the account has nothing on record (``samples`` = accepted logins plus a
    recorded signup is 0) and the store has been learning for at least ``dormant_s`` seconds
    before ``now`` (``history_start``: :meth:`ProfileStore.history_start`; None = unknown).
    ``dormant_s`` 0 turns the signal off.

    >>> day = 86_400.0
    >>> dormant_account(0, 40 * day, 0.0, 30 * day).value
    1.0
    >>> dormant_account(0, 20 * day, 0.0, 30 * day).value  # the store has watched 20 days only
    0.0
    >>> dormant_account(1, 40 * day, 0.0, 30 * day).value  # one login or a signup on record
    0.0
    >>> dormant_account(0, 40 * day, None, 30 * day).value  # the store could not say
    0.0
    """
    if samples or not dormant_s or history_start is None:
        return _QUIET
    watched = now - history_start
    if watched < dormant_s:
        return _QUIET
    return SignalResult(
        reasons.DORMANT_ACCOUNT, 1.0,
        f"no login or signup on record for this account in the {watched / _SECONDS_PER_DAY:.0f} days the engine "
        "has been learning: a dormant account, not a new one (novelty counts in full)")
