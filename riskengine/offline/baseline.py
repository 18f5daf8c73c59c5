"""Reference baseline: Freeman et al., NDSS 2016, "Who are you? A statistical approach to
measuring user authenticity".

The paper scores a login ``x = (x_1 … x_d)`` for user ``u`` with the likelihood ratio

    S_u(x) = Π_k  p(x_k | attack) / p(x_k | u)

assuming features independent and attackers distributed like the global population, so
``p(x_k | attack) ≈ p(x_k)``. The user's own estimate is smoothed against that global
estimate so that values the user has never shown get a small, history-dependent
probability instead of zero:

    p̃(v | u) = (c_u(v) + μ · p(v)) / (N_u + μ)

(``c_u(v)``: the user's logins with value ``v``; ``N_u``: the user's logins; ``μ``: the
smoothing mass). The global estimate keeps one pseudo-count for never-seen values,
``p(v) = (c(v) + 1) / (N + |V| + 1)``. With no history ``p̃ = p`` and the score is 1 (log 0).

Features, as in the paper: IP address, ASN, country, browser (family and major version)
and OS (family). We return ``log S`` (higher = more suspicious); a user's history grows
online in the same stream the engine sees. Deliberately left out (not needed for the
comparison): the paper's IP-prefix backoff, time-of-day features and the ``p(u|attack)``
account-level prior.

>>> b = FreemanBaseline(smoothing=1.0)
>>> b.observe("u", ("1.2.3.4", 1, "GB", "Chrome 120", "Windows"), learn=True)
0.0
>>> round(b.score("u", ("1.2.3.4", 1, "GB", "Chrome 120", "Windows")), 4)
-1.1157
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Final

FEATURES: Final = ("ip", "asn", "country", "browser", "os")


class FreemanBaseline:
    """Online per-user likelihood-ratio scorer (memory: distinct values per user and overall)."""

    def __init__(self, smoothing: float = 1.0, features: Sequence[str] = FEATURES) -> None:
        if smoothing <= 0:
            raise ValueError(f"smoothing must be positive, got {smoothing}")
        self.mu = smoothing
        self.features = tuple(features)
        self._global: list[dict[Hashable, int]] = [{} for _ in self.features]
        self._global_total = 0
        self._users: dict[str, tuple[list[dict[Hashable, int]], list[int]]] = {}

    def global_probability(self, k: int, value: Hashable) -> float:
        counts = self._global[k]
        return (counts.get(value, 0) + 1) / (self._global_total + len(counts) + 1)

    def user_probability(self, user_id: str, k: int, value: Hashable) -> float:
        p_global = self.global_probability(k, value)
        entry = self._users.get(user_id)
        if entry is None:
            return p_global
        counts, total = entry
        return (counts[k].get(value, 0) + self.mu * p_global) / (total[0] + self.mu)

    def score(self, user_id: str, values: Sequence[Hashable | None]) -> float:
        """``log S_u(x)``: Σ_k log p(x_k) − log p̃(x_k | u); unknown (None) features are skipped."""
        total = 0.0
        entry = self._users.get(user_id)
        g_total = self._global_total
        for k, value in enumerate(values):
            if value is None:
                continue
            counts = self._global[k]
            p_global = (counts.get(value, 0) + 1) / (g_total + len(counts) + 1)
            if entry is None:
                continue  # p̃ = p: this feature contributes log 1
            user_counts, user_total = entry
            p_user = (user_counts[k].get(value, 0) + self.mu * p_global) / (user_total[0] + self.mu)
            total += math.log(p_global) - math.log(p_user)
        return total

    def learn(self, user_id: str, values: Sequence[Hashable | None]) -> None:
        """Add an accepted login to the user's history."""
        entry = self._users.get(user_id)
        if entry is None:
            entry = self._users[user_id] = ([{} for _ in self.features], [0])
        counts, total = entry
        for k, value in enumerate(values):
            if value is not None:
                counts[k][value] = counts[k].get(value, 0) + 1
        total[0] += 1

    def see(self, values: Sequence[Hashable | None]) -> None:
        """Add any login to the global population estimate."""
        for k, value in enumerate(values):
            if value is not None:
                self._global[k][value] = self._global[k].get(value, 0) + 1
        self._global_total += 1

    def global_probabilities(self, values: Sequence[Hashable | None]) -> tuple[float | None, ...]:
        """``p(x_k)`` for each feature of a login (None for an unknown feature), then the login
        joins the population: the cross-user half of :meth:`observe`, which replay's global
        pre-pass runs in input order and hands to the partitions (see :meth:`observe_given`)."""
        g_total = self._global_total
        out = tuple(None if value is None else
                    (self._global[k].get(value, 0) + 1) / (g_total + len(self._global[k]) + 1)
                    for k, value in enumerate(values))
        self.see(values)
        return out

    def observe_given(self, user_id: str, values: Sequence[Hashable | None],
                      p_global: Sequence[float | None], learn: bool) -> float:
        """:meth:`observe` with the population's probabilities computed elsewhere
        (:meth:`global_probabilities`): the per-user half. Same arithmetic, same result."""
        total = 0.0
        entry = self._users.get(user_id)
        if entry is not None:
            # replay calls this once per login: names bound once, features zipped (the same
            # operations in the same order as score(), so the same floats)
            user_counts, user_total = entry
            mu = self.mu
            denominator = user_total[0] + mu
            log = math.log
            for counts, value, pg in zip(user_counts, values, p_global, strict=False):
                if value is None or pg is None:
                    continue
                total += log(pg) - log((counts.get(value, 0) + mu * pg) / denominator)
        if learn:
            self.learn(user_id, values)
        return total

    def observe(self, user_id: str, values: Sequence[Hashable | None], learn: bool) -> float:
        """Score, then update the population (always) and the user's history (when accepted)."""
        s = self.score(user_id, values)
        self.see(values)
        if learn:
            self.learn(user_id, values)
        return s
