"""The step-up budget: the live challenge threshold from a streaming quantile of recent
established users' login risks (``[policy] target_stepup_rate``).

Pure code: no store, no clock. The sketch is a fixed-bin histogram over [0, 1]
(``BINS`` bins, width 1/BINS) with forward-decayed weights (Cormode et al., ICDE 2009: a
login at ``t`` weighs 2^((t − landmark)/half-life), so decaying every count is a division
at read time that cancels out of a quantile). Histograms with the same bins add, so
workers merge their deltas into one shared copy in the store (one key per bin, summed
atomically) and read the merged sketch back.

Three extra keys ride along:

- ``forced``: the weight of established logins the floor challenged regardless of their
  risk (strong signals). They are part of the realised rate: the threshold for the rest is
  set so that forced + tail ≈ budget · total.
- ``n``: an undecayed count of logins merged (the warm-up counter).

And retractions: a challenged login counts when it is scored (a service that never reports
outcomes still has a budget), but when its challenge then fails, is abandoned or expires,
the engine takes it back out (:meth:`BudgetSketch.retract`): its weight is added to the
field's retraction twin, ``x<bin>`` or ``xforced`` (added, never subtracted, so stores keep
only atomic sums). The sketch reads each field net of its twin (:func:`net_weight`). This is
what keeps an attacker from buying a higher threshold: takeover attempts that the second
factor stops would otherwise fill the sketch's tail (and the floor's share) and push the
threshold up for everyone (docs/threat-model.md).

The threshold is the lower edge ``e`` (a multiple of 1/BINS) of the lowest non-empty bin
whose tail mass of non-forced logins with ``risk >= e`` fits in what the floor leaves of the
budget — the same
"lowest threshold whose established step-up rate is ≤ target" that ``riskengine evaluate``
reports, on a bin-width grid — clamped to ``[min_threshold, max_threshold]``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain

BINS = 400
"""Bin width 0.0025: far finer than any weight in the policy (the smallest is 0.05)."""
FORCED_KEY = "forced"
COUNT_KEY = "n"
RETRACTED = "x"
"""Prefix of a field's retraction twin: ``x17`` takes weight back out of bin 17, ``xforced`` out of ``forced``."""
RETRACT_TOLERANCE = 1e-9
"""A field whose net weight is at most this share of what was added is empty: what is left is the
rounding of sums of the same weights added and taken back (relative 1e-16 per operation)."""
LANDMARK = 1_735_689_600.0
"""2025-01-01 UTC, the population prior's landmark."""
ERA_HALF_LIVES = 512
"""Forward-decay weights grow as 2^(half-lives since the landmark) and would overflow a float
after ~1,000 half-lives (about 8 years at the 72 h default). So time is cut into eras of 512
half-lives (about 4 years at 72 h): weights count from the era's start (at most 2^512, and a
sum of a billion of them stays finite), and the keys carry the era (``"<era>:<bin>"``). A new
era starts a fresh sketch: the threshold falls back to ``challenge_threshold`` for one
warm-up (``budget_warmup_logins``), then follows the new era's logins; the old era's keys
stay in the store, unread (about 400 small fields per era)."""
_MAX_EXPONENT = 1000.0


def era_of(t: float, half_life_s: float) -> int:
    """The era of ``t`` (see :data:`ERA_HALF_LIVES`).

    >>> era_of(LANDMARK, 3600.0), era_of(LANDMARK + 512 * 3600.0, 3600.0)
    (0, 1)
    """
    return math.floor((t - LANDMARK) / (ERA_HALF_LIVES * half_life_s))


def decay_weight(t: float, half_life_s: float) -> float:
    """Forward-decay weight of an observation at ``t`` (seconds since the epoch), counted
    from the start of its era: in [1, 2^512).

    >>> decay_weight(LANDMARK + 3600.0, 3600.0)
    2.0
    >>> decay_weight(LANDMARK + 513 * 3600.0, 3600.0)  # one half-life into era 1
    2.0
    """
    exponent = (t - LANDMARK) / half_life_s - era_of(t, half_life_s) * ERA_HALF_LIVES
    return float(2.0 ** max(-_MAX_EXPONENT, min(_MAX_EXPONENT, exponent)))


def era_key(era: int, key: str) -> str:
    """A sketch field of one era."""
    return f"{era}:{key}"


def of_era(counts: Mapping[str, float], era: int) -> dict[str, float]:
    """The fields of one era of a merged sketch, without the era prefix.

    >>> of_era({"3:n": 2.0, "3:17": 1.5, "2:n": 9.0}, 3)
    {'n': 2.0, '17': 1.5}
    """
    prefix = f"{era}:"
    return {key[len(prefix):]: weight for key, weight in counts.items() if key.startswith(prefix)}


def net_weight(added: float, retracted: float) -> float:
    """A field's weight net of its retractions; exactly the added weight when nothing was
    retracted, and exactly 0.0 when what is left is rounding (:data:`RETRACT_TOLERANCE`).

    >>> net_weight(5.0, 0.0), net_weight(5.0, 2.0), net_weight(0.1 + 0.2, 0.3), net_weight(0.0, 0.0)
    (5.0, 3.0, 0.0, 0.0)
    """
    if retracted == 0.0:
        return added
    left = added - retracted
    return left if left > added * RETRACT_TOLERANCE else 0.0


def bin_of(risk: float) -> int:
    """The bin holding ``risk``: bin i covers [i/BINS, (i+1)/BINS); risk 1.0 goes in the last.

    >>> bin_of(0.0), bin_of(0.0025), bin_of(1.0)
    (0, 1, 399)
    """
    i = int(math.floor(risk * BINS + 1e-9))
    return min(BINS - 1, max(0, i))


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    target: float
    """Share of established logins to step up, in (0, 0.5]."""
    min_threshold: float
    max_threshold: float
    warmup_logins: int
    half_life_s: float


def threshold_from(counts: Mapping[str, float], cfg: BudgetConfig, fallback: float) -> float:
    """The live threshold from a (merged) sketch: ``fallback`` (the fixed
    ``challenge_threshold``) while fewer than ``cfg.warmup_logins`` logins were merged.

    >>> cfg = BudgetConfig(0.1, 0.0, 1.0, 0, 86400.0)
    >>> threshold_from({"100": 90.0, "200": 10.0, "n": 100}, cfg, 0.4)  # 10 % at risk 0.5
    0.5
    """
    bins = [0.0] * BINS
    taken = [0.0] * BINS
    forced = taken_forced = 0.0
    for key, weight in counts.items():
        if key == FORCED_KEY:
            forced += weight
        elif key == RETRACTED + FORCED_KEY:
            taken_forced += weight
        elif key.startswith(RETRACTED):
            taken[int(key[len(RETRACTED):])] += weight
        elif key != COUNT_KEY:
            bins[int(key)] += weight
    return threshold_of(_net(bins, taken), net_weight(forced, taken_forced), counts.get(COUNT_KEY, 0.0), cfg,
                        fallback)


def _net(bins: list[float], taken: list[float]) -> list[float]:
    """``bins`` net of their retractions (in place; the same list back)."""
    for i, x in enumerate(taken):
        if x != 0.0:
            bins[i] = net_weight(bins[i], x)
    return bins


def threshold_of(bins: Sequence[float], forced: float, count: float, cfg: BudgetConfig, fallback: float, *,
                 total: float | None = None, tails: list[float] | None = None) -> float:
    """:func:`threshold_from` on a sketch already laid out as ``BINS`` weights, the forced
    weight and the login count. The total is the exactly rounded sum of the bins and the
    forced weight (``math.fsum``), so the threshold does not depend on the order a store
    hands the fields back in. ``total`` may be passed when the caller keeps it up to date
    (:class:`MergedBins`; it must equal that sum), and ``tails``: the running sums of the bins
    from the top down (:func:`walk_tails`), or any prefix of them — a list the caller keeps
    between calls, which this function extends in place only as far as the walk needs (to
    the first sum past the budget), so a caller whose top bins did not change pays for no
    re-walk.

    >>> cfg = BudgetConfig(0.1, 0.0, 1.0, 0, 86400.0)
    >>> bins = [0.0] * BINS; bins[100], bins[200] = 90.0, 10.0
    >>> threshold_of(bins, 0.0, 100, cfg, 0.4), threshold_of(bins, 0.0, 100, BudgetConfig(0.1, 0, 1, 101, 1.0), 0.4)
    (0.5, 0.4)
    """
    if count < cfg.warmup_logins:
        return fallback
    if total is None:
        total = math.fsum(chain(bins, (forced,)))
    if total <= 0.0:
        return fallback
    room = cfg.target * total - forced
    edge = BINS  # "no bin": nothing but the floor challenges
    if room > 0.0:
        # Walk the bins from the top, adding each to the tail while it still fits (tolerating
        # float rounding: a tail exactly at the budget fits); the threshold is the lower edge of
        # the lowest non-empty bin that fits (empty bins below it would lower the threshold into
        # risks this sketch never saw: the upper quantile, not a gap). An empty bin never stops
        # the walk. Below ``low`` every edge clamps to ``min_threshold``, so the walk is the
        # running sums of the bins from the top down to ``low`` (``tails``, summed in C) and a
        # search in them; under ``low`` only the first non-empty bin matters.
        limit = room + room * 1e-9
        low = walk_floor_bin(cfg)
        run = [] if tails is None else tails
        full = BINS - low
        n = len(run)
        while n < full and (n == 0 or run[-1] <= limit):  # the same sums, in the same order, as walk_tails
            b = bins[BINS - 1 - n]
            run.append(b if n == 0 else run[-1] + b)
            n += 1
        tails = run
        fits = bisect_right(tails, limit)  # the top `fits` bins fit
        i = BINS - fits
        if fits == len(tails):  # everything down to `low` fits: the first non-empty bin below?
            tail = tails[-1] if tails else 0.0
            j = low - 1
            while j >= 0 and bins[j] <= 0.0:
                j -= 1
            if j >= 0 and tail + bins[j] <= limit:
                i = j
        while i < BINS and bins[i] <= 0.0:
            i += 1
        edge = i
    return min(cfg.max_threshold, max(cfg.min_threshold, edge / BINS))


def walk_floor_bin(cfg: BudgetConfig) -> int:
    """The lowest bin whose lower edge is above ``min_threshold``: any edge below it clamps.

    >>> walk_floor_bin(BudgetConfig(0.02, 0.25, 0.5, 0, 1.0)), walk_floor_bin(BudgetConfig(0.02, 0.0, 1.0, 0, 1.0))
    (101, 1)
    """
    low = max(0, min(BINS, math.floor(cfg.min_threshold * BINS)))
    while low > 0 and (low - 1) / BINS > cfg.min_threshold:
        low -= 1
    while low < BINS and low / BINS <= cfg.min_threshold:
        low += 1
    return low


def walk_tails(bins: Sequence[float], low: int) -> list[float]:
    """Running sums of ``bins[low:]`` from the top bin down (``[b399, b399 + b398, ...]``):
    exactly the tails the walk from the top adds up, an empty bin adding nothing."""
    return list(accumulate(reversed(bins[low:])))


_EXACT_SHIFT = 1074 + 1
"""Every finite double is an integer multiple of 2^-1074: scaled by 2^1075, sums are exact ints."""


def _exact(x: float) -> int:
    n, d = x.as_integer_ratio()
    return n << (_EXACT_SHIFT - d.bit_length() + 1)


class MergedBins:
    """A merged sketch kept as bins per era, updated delta by delta: what a single reader of
    every delta (``riskengine replay``'s budget post-pass) keeps instead of the store's flat
    mapping. Each bin receives the same additions, in the same order, as
    :func:`merge_into` gives the mapping's field, and the total is kept as an exact integer
    sum (rounded once when read, as ``math.fsum`` rounds), so :meth:`threshold` equals
    ``threshold_from(of_era(mapping, era), cfg, fallback)`` exactly, at a fraction of its cost.

    >>> cfg = BudgetConfig(0.1, 0.0, 1.0, 0, 86400.0)
    >>> m = MergedBins(cfg); m.add({"0:100": 90.0, "0:200": 10.0, "0:n": 100.0, "1:n": 5.0})
    >>> m.threshold(0, 0.4), m.threshold(1, 0.4), m.threshold(2, 0.4)
    (0.5, 0.4, 0.4)
    """

    __slots__ = ("cfg", "_low", "_eras")

    def __init__(self, cfg: BudgetConfig) -> None:
        self.cfg = cfg
        self._low = walk_floor_bin(cfg)
        self._eras: dict[int, _Era] = {}

    def add(self, delta: Mapping[str, float]) -> None:
        for key, w in delta.items():
            era_text, _, field = key.partition(":")
            entry = self.era(int(era_text))
            if field == COUNT_KEY:
                entry.count += w
                continue
            retraction = field.startswith(RETRACTED)
            if retraction:
                field = field[len(RETRACTED):]
            entry.put(BINS if field == FORCED_KEY else int(field), w, retraction, self._low)

    def era(self, era: int) -> _Era:
        """The bins of one era (created empty)."""
        entry = self._eras.get(era)
        if entry is None:
            entry = self._eras[era] = _Era()
        return entry

    def threshold(self, era: int, fallback: float) -> float:
        entry = self._eras.get(era)
        if entry is None:  # nothing merged in this era: the warm-up
            return fallback
        return threshold_of(entry.bins, entry.forced, entry.count, self.cfg, fallback,
                            total=entry.exact / (1 << _EXACT_SHIFT), tails=entry.tails)


class _Era:
    """One era's merged sketch: per field (the bins, then the forced weight at ``BINS``) what
    was added and retracted, as the store sums them; ``bins`` and ``forced`` are their net
    weights (:func:`net_weight`), ``exact`` the exact sum of those, and ``tails`` the prefix of
    the walk's running sums still valid (:func:`threshold_of` extends it)."""

    __slots__ = ("added", "taken", "bins", "forced", "count", "exact", "exacts", "tails")

    def __init__(self) -> None:
        self.added = [0.0] * (BINS + 1)
        self.taken = [0.0] * (BINS + 1)
        self.bins = [0.0] * BINS
        self.forced = 0.0
        self.count = 0.0
        self.exact = 0
        self.exacts = [0] * (BINS + 1)  # each field's net weight as an exact integer
        self.tails: list[float] = []

    def put(self, field: int, w: float, retraction: bool, low: int) -> None:
        """Add ``w`` to ``field`` (or to its retraction twin) and settle its net weight, the
        exact total and the tails (a change in bin ``i`` ≥ ``low`` invalidates the running
        sums from bin ``i`` down; those above it stand)."""
        if retraction:
            self.taken[field] += w
        else:
            self.added[field] += w
        new = net_weight(self.added[field], self.taken[field])
        if field == BINS:
            self.forced = new
        else:
            self.bins[field] = new
            if field >= low and len(self.tails) > BINS - 1 - field:
                del self.tails[BINS - 1 - field:]
        exact = _exact(new)
        self.exact += exact - self.exacts[field]
        self.exacts[field] = exact


class UserCap:
    """At most ``cap`` contributions per user per ``window_s`` window of event time (windows
    aligned on multiples of ``window_s``), so one account (or a few) flooding logins cannot
    move the quantile. Memory: one entry per user seen in the current window."""

    __slots__ = ("cap", "window_s", "_window", "_seen")

    def __init__(self, cap: int, window_s: float) -> None:
        self.cap = cap
        self.window_s = window_s
        self._window = -math.inf
        self._seen: dict[str, int] = {}

    def admit(self, user: str, t: float) -> bool:
        """Whether this contribution counts (and count it).

        >>> c = UserCap(2, 60.0)
        >>> [c.admit("u", 0.0), c.admit("u", 1.0), c.admit("u", 2.0), c.admit("u", 61.0)]
        [True, True, False, True]
        """
        window = math.floor(t / self.window_s)
        if window > self._window:
            self._window = float(window)
            self._seen.clear()
        elif window < self._window:
            return True  # a late event of an earlier window (clock skew): not counted against now
        seen = self._seen.get(user, 0)
        if seen >= self.cap:
            return False
        self._seen[user] = seen + 1
        return True


class BudgetSketch:
    """One worker's view: the last merged sketch read from the store, the local delta not
    yet merged, and the threshold both give. Refreshes happen at event-time boundaries
    (multiples of ``refresh_s``), the same in a live engine and in ``apply_budget``."""

    __slots__ = ("cfg", "fallback", "refresh_s", "cap", "merged", "delta", "epoch", "threshold",
                 "_era", "_keys", "_index")

    def __init__(self, cfg: BudgetConfig, fallback: float, refresh_s: float, cap: UserCap) -> None:
        self.cfg = cfg
        self.fallback = fallback
        self.refresh_s = refresh_s
        self.cap = cap
        self.merged: dict[str, float] = {}
        self.delta: dict[str, float] = {}
        self.epoch = -math.inf
        self.threshold = fallback
        # the sketch's field names of the current era, built once per era (about every 4 years)
        # rather than formatted on every login: [bin 0 … bin BINS-1, forced, n, their
        # retraction twins x0 … x(BINS-1), xforced], and the reverse
        self._era: int | None = None
        self._keys: list[str] = []
        self._index: dict[str, int] = {}

    def _era_keys(self, era: int) -> list[str]:
        if era != self._era:
            fields = [*map(str, range(BINS)), FORCED_KEY]
            self._keys = [*(era_key(era, f) for f in fields), era_key(era, COUNT_KEY),
                          *(era_key(era, RETRACTED + f) for f in fields)]
            self._index = {key: i for i, key in enumerate(self._keys)}
            self._era = era
        return self._keys

    def due(self, t: float) -> bool:
        """Whether ``t`` starts a new refresh period (then merge ``take_delta()`` and ``install``)."""
        return math.floor(t / self.refresh_s) > self.epoch

    def take_delta(self) -> dict[str, float]:
        delta, self.delta = self.delta, {}
        return delta

    def install(self, merged: Mapping[str, float], t: float) -> None:
        """The merged sketch read back from the store at ``t``: recompute the threshold."""
        self.merged = dict(merged)
        self.epoch = float(math.floor(t / self.refresh_s))
        self.threshold = self._threshold(era_of(t, self.cfg.half_life_s))

    def _threshold(self, era: int) -> float:
        """``threshold_from(of_era(self.merged, era), ...)`` without parsing the merged
        sketch's field names (this runs at every refresh, inside ``score()``): the same bins,
        so the same float."""
        self._era_keys(era)
        index = self._index
        count_i = BINS + 1
        weights = [0.0] * (2 * BINS + 3)  # in key order: bins, forced, n, retractions
        for key, weight in self.merged.items():
            i = index.get(key)
            if i is not None:
                weights[i] += weight
        bins = _net(weights[:BINS], weights[count_i + 1:count_i + 1 + BINS])
        forced = net_weight(weights[BINS], weights[-1])
        return threshold_of(bins, forced, weights[count_i], self.cfg, self.fallback)

    def set_threshold(self, threshold: float, t: float) -> None:
        """A threshold computed from the merged sketch elsewhere (:class:`MergedBins`), as
        :meth:`install` would have computed it at ``t``."""
        self.epoch = math.floor(t / self.refresh_s)
        self.threshold = threshold

    def keep(self, t: float) -> None:
        """The store could not be reached: keep the last good threshold, retry next period
        (the delta is put back by the caller)."""
        self.epoch = float(math.floor(t / self.refresh_s))

    def observe(self, user: str, risk: float, forced: bool, t: float) -> bool:
        """Count one established login (not denied) in the local delta; False when the user's
        cap for this window is used up."""
        if not self.cap.admit(user, t):
            return False
        self._add(risk, forced, t, 0)
        return True

    def retract(self, risk: float, forced: bool, t: float) -> None:
        """Take back a login :meth:`observe` counted (the same ``risk``, ``forced`` and event
        time ``t``): its challenge failed, was abandoned or expired. The user's cap is not
        given back, and the warm-up count keeps it."""
        self._add(risk, forced, t, BINS + 2)

    def _add(self, risk: float, forced: bool, t: float, offset: int) -> None:
        """Add the forward-decayed weight of a login at ``t`` to its field (``offset`` 0) or to
        the field's retraction twin (``offset`` BINS + 2); an addition also counts one login."""
        half_life_s = self.cfg.half_life_s
        era = math.floor((t - LANDMARK) / (ERA_HALF_LIVES * half_life_s))  # era_of(t, half_life_s)
        keys = self._era_keys(era)
        key = keys[offset + (BINS if forced else bin_of(risk))]
        # decay_weight(t, half_life_s), with the era already at hand
        exponent = (t - LANDMARK) / half_life_s - era * ERA_HALF_LIVES
        w = float(2.0 ** max(-_MAX_EXPONENT, min(_MAX_EXPONENT, exponent)))
        delta = self.delta
        delta[key] = delta.get(key, 0.0) + w
        if not offset:
            count_key = keys[BINS + 1]
            delta[count_key] = delta.get(count_key, 0.0) + 1.0

    def restore(self, delta: Mapping[str, float]) -> None:
        """Put back a delta whose merge failed (added to what arrived since)."""
        for key, w in delta.items():
            self.delta[key] = self.delta.get(key, 0.0) + w


class DeferredBudget(BudgetSketch):
    """A sketch that never refreshes and learns nothing: the engine decides at the fixed
    ``challenge_threshold`` (the warm-up threshold) while the budget itself is applied later,
    by ``riskengine replay``'s deterministic post-pass (:mod:`riskengine.offline.budget`),
    from what :meth:`Engine.defer_budget` hands out per decision."""

    __slots__ = ()

    def due(self, t: float) -> bool:
        return False

    def observe(self, user: str, risk: float, forced: bool, t: float) -> bool:
        return True

    def retract(self, risk: float, forced: bool, t: float) -> None:
        return None


def merge_into(target: dict[str, float], delta: Mapping[str, float]) -> None:
    """Add ``delta`` to ``target`` key by key (what every store's ``budget_merge`` does)."""
    for key, w in delta.items():
        target[key] = target.get(key, 0.0) + w
