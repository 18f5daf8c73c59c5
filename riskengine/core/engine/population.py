"""The population prior: how common each country is among established users' accepted logins,
forward-decayed, batched to shared stores (one write per country per second)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from riskengine.core.engine.state import EngineState

_POPULATION_LANDMARK = 1_735_689_600.0
"""2025-01-01 UTC: forward decay weighs a login at ``t`` by 2^((t − landmark)/half-life), so
decaying every count is dividing by the weight of "now" when reading (Cormode et al., ICDE 2009)."""
_POPULATION_FLUSH_ADDS = 256
_POPULATION_FLUSH_S = 1.0
_POPULATION_CACHE_S = 2.0


class PopulationPrior(EngineState):
    """The service-wide country prior (forward-decayed counts in the store)."""

    def _population_weight(self, now: float) -> float:
        exponent = (now - _POPULATION_LANDMARK) / self._population_half_life_s
        return float(2.0 ** max(-1000.0, min(1000.0, exponent)))

    def _population_add(self, country: str, now: float) -> None:
        weight = self._population_weight(now)
        if self._population_local:
            self.store.population_add(country, weight)  # in-process: exact and immediate
            return
        with self._population_lock:
            self._population_unsent[country] = self._population_unsent.get(country, 0.0) + weight
            self._population_unsent_n += 1
            due = self._population_unsent_n >= _POPULATION_FLUSH_ADDS or \
                time.monotonic() - self._population_sent_at >= _POPULATION_FLUSH_S
        if due:
            self._population_flush()

    def _population_flush(self) -> None:
        """Send this process's batched population counts to the shared store (networked stores
        get one write per country per second, not one per login)."""
        with self._population_lock:
            batch, self._population_unsent = self._population_unsent, {}
            self._population_unsent_n = 0
            self._population_sent_at = time.monotonic()
        try:
            for country, weight in batch.items():
                self.store.population_add(country, weight)
        except Exception as exc:  # noqa: BLE001 - a lost count shifts a share a little
            self._store_failed("population prior update failed", exc)

    def _population_counts(self) -> Mapping[str, float]:
        if self._population_local:
            return self.store.population()
        read_at, counts = self._population_cache
        if time.monotonic() - read_at > _POPULATION_CACHE_S:
            counts = self.store.population()
            self._population_cache = (time.monotonic(), counts)
        return counts

    def population_logins(self, now: datetime) -> float:
        """The population prior's weight at ``now``: established users' accepted logins, each
        decayed by ``geo.population_half_life_days`` (what ``rare_country_min_logins`` is
        compared with)."""
        self._population_flush()
        counts = self.store.population()
        return sum(counts.values()) / self._population_weight(now.timestamp())

