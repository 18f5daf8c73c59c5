"""Experiments: deterministic variant assignment, exposures and conversions in the audit log."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime

from riskengine.audit import SCHEMA_VERSION
from riskengine.core.engine.audit_rows import AuditRows
from riskengine.core.identity import checked


def assign_variant(experiment: str, user_id: str, weights: Mapping[str, float]) -> str:
    """Hash ``experiment:user_id`` to [0, 1) and walk the cumulative weights.

    >>> assign_variant("signup_2fa", "u1", {"progressive": 0.5, "mfa_at_signup": 0.5}) in \
        ("progressive", "mfa_at_signup")
    True
    """
    if not experiment:
        raise ValueError("experiment name must not be empty")
    if not weights:
        raise ValueError("weights must name at least one variant")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError("variant weights must be non-negative and not all zero")
    digest = hashlib.blake2b(f"{experiment}\x00{user_id}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64 * sum(weights.values())
    cumulative = 0.0
    last = ""
    for name, weight in weights.items():
        cumulative += weight
        last = name
        if point < cumulative:
            return name
    return last


class Experiments(AuditRows):
    """Exposures and conversions, with the engine's pseudonyms."""

    def assign(
        self, experiment: str, user_id: str, weights: Mapping[str, float],
        timestamp: datetime | None = None,
    ) -> str:
        """Deterministic hash-based variant for ``user_id``; logs the exposure now.

        The first variant is the control. Same inputs → same variant in every process.
        """
        user_id = checked(self._uid, user_id)
        variant = assign_variant(experiment, user_id, weights)
        ts = timestamp or datetime.now(UTC)
        if ts.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        self._emit("exposures", {
            "event_time": ts.astimezone(UTC), "schema_version": SCHEMA_VERSION,
            "experiment": experiment, "variant": variant,
            "user_key": self.pseudonymizer.user(user_id),
            "control": next(iter(weights)), "variants": list(weights),
            "weights": [float(w) for w in weights.values()],
        })
        return variant

    def record_conversion(self, experiment: str, user_id: str, timestamp: datetime | None = None) -> None:
        """A conversion (e.g. signup completed) for a user exposed to ``experiment``."""
        if not experiment:
            raise ValueError("experiment name must not be empty")
        user_id = checked(self._uid, user_id)
        ts = timestamp or datetime.now(UTC)
        if ts.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        self._emit("conversions", {
            "event_time": ts.astimezone(UTC), "schema_version": SCHEMA_VERSION,
            "experiment": experiment, "user_key": self.pseudonymizer.user(user_id),
        })

