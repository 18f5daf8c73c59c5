"""Second-factor delivery: per channel and country, delivery and completion probabilities,
fallback after a timeout (WhatsApp → SMS → voice), users who abandon, attackers who fail.

The numbers are plausible orders of magnitude from public operator reports (SMS delivery in
the high 90s in most markets, noticeably worse where grey routes are common; WhatsApp
near-universal in Brazil/India/Mexico, patchy in the US and Japan), not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

CHANNELS: Final = ("passkey", "totp", "whatsapp", "sms", "voice")
TIMEOUT_SECONDS: Final = 60.0
"""How long a user waits for a code before asking for the next channel."""

FALLBACK: Final[dict[str, tuple[str, ...]]] = {
    "passkey": ("sms",),
    "totp": ("sms",),
    "whatsapp": ("sms", "voice"),
    "sms": ("voice",),
    "voice": (),
}
DELIVERY: Final[dict[str, float]] = {"passkey": 1.0, "totp": 1.0, "whatsapp": 0.95, "sms": 0.96, "voice": 0.97}
COUNTRY_DELIVERY: Final[dict[tuple[str, str], float]] = {
    ("whatsapp", "US"): 0.80, ("whatsapp", "JP"): 0.70, ("whatsapp", "CA"): 0.85,
    ("whatsapp", "BR"): 0.985, ("whatsapp", "IN"): 0.98, ("whatsapp", "MX"): 0.98,
    ("sms", "NG"): 0.82, ("sms", "IN"): 0.88, ("sms", "BR"): 0.90, ("sms", "MX"): 0.91,
    ("sms", "TR"): 0.92, ("voice", "NG"): 0.85,
}
COMPLETION: Final[dict[str, float]] = {"passkey": 0.985, "totp": 0.95, "whatsapp": 0.95, "sms": 0.94, "voice": 0.85}
"""Given the code (or prompt) arrived, the share of users who complete the step."""
ABANDON: Final = 0.03
WRONG_CODE: Final = 0.07
MEDIAN_DELIVERY_S: Final[dict[str, float]] = {"passkey": 0.0, "totp": 0.0, "whatsapp": 3.0, "sms": 8.0, "voice": 20.0}
MEDIAN_ENTRY_S: Final[dict[str, float]] = {"passkey": 6.0, "totp": 14.0, "whatsapp": 12.0, "sms": 15.0, "voice": 25.0}
WHATSAPP_COUNTRIES: Final = frozenset({"BR", "IN", "MX", "NG", "ZA", "ES", "IT", "TR", "DE", "NL"})


@dataclass(frozen=True, slots=True)
class ChallengeBehaviour:
    """What would happen if this login were challenged with its user's first factor."""

    would_pass: bool
    channels: tuple[str, ...]
    outcome: str  # verified | failed | abandoned | expired
    attempts: int
    seconds_to_verify: float | None
    trust_device: bool


def enrolment(country: str, rng: np.random.Generator) -> tuple[str, ...]:
    """Factors a user has set up, strongest first (the engine recommends the first)."""
    u = rng.random()
    if u < 0.07:
        return ("passkey", "sms", "voice")
    if u < 0.22:
        return ("totp", "sms", "voice")
    wa_share = 0.5 if country in WHATSAPP_COUNTRIES else 0.08
    if rng.random() < wa_share:
        return ("whatsapp", "sms", "voice")
    return ("sms", "voice")


def simulate_challenge(first: str, country: str, legitimate: bool, rng: np.random.Generator) -> ChallengeBehaviour:
    """Walk the fallback chain from ``first``; attackers never hold the second factor."""
    if not legitimate:
        if rng.random() < 0.5:
            return ChallengeBehaviour(False, (first,), "abandoned", 0, None, False)
        return ChallengeBehaviour(False, (first,), "failed", int(rng.integers(1, 4)), None, False)
    chain = (first, *FALLBACK.get(first, ()))
    used: list[str] = []
    elapsed = 0.0
    attempts = 0
    for channel in chain:
        used.append(channel)
        if rng.random() < ABANDON:
            return ChallengeBehaviour(True, tuple(used), "abandoned", attempts, None, False)
        delivered = rng.random() < COUNTRY_DELIVERY.get((channel, country), DELIVERY[channel])
        if not delivered:
            elapsed += TIMEOUT_SECONDS
            continue
        elapsed += MEDIAN_DELIVERY_S[channel] * float(rng.lognormal(0.0, 0.5))
        attempts += 1
        while rng.random() < WRONG_CODE and attempts < 4:
            attempts += 1
            elapsed += 10.0
        if rng.random() >= COMPLETION[channel]:
            return ChallengeBehaviour(True, tuple(used), "abandoned", attempts, None, False)
        elapsed += MEDIAN_ENTRY_S[channel] * float(rng.lognormal(0.0, 0.45))
        return ChallengeBehaviour(True, tuple(used), "verified", attempts, round(elapsed, 1),
                                  bool(rng.random() < 0.3))
    return ChallengeBehaviour(True, tuple(used), "expired", attempts, None, False)
