"""What `Engine.score()` returns: frozen, slotted, cheap to build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["allow", "challenge", "deny"]
Factor = Literal["passkey", "totp", "push", "whatsapp", "sms", "voice", "email"]
Outcome = Literal["verified", "failed", "expired", "abandoned"]
Channel = Literal["passkey", "totp", "push", "whatsapp", "sms", "voice", "email"]

# Strongest first. Phishing-resistant passkeys beat codes; app-bound codes beat
# anything delivered over the phone network (SIM swap, SS7 interception).
FACTOR_STRENGTH: tuple[Factor, ...] = ("passkey", "totp", "push", "whatsapp", "sms", "voice", "email")


@dataclass(frozen=True, slots=True)
class Reason:
    """One contribution to a decision: a stable code, its weight in the risk, a sentence."""

    code: str
    weight: float
    detail: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer for one login attempt.

    `risk` is in [0, 1]; `reasons` are sorted by weight, largest first; `factor`
    is the recommended second factor when `action == "challenge"`.
    """

    decision_id: str
    action: Action
    risk: float
    reasons: tuple[Reason, ...]
    factor: Factor | None
    user_id: str
    device_key: str
    policy_version: str

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    @property
    def degraded(self) -> bool:
        return any(r.code == "ENGINE_DEGRADED" for r in self.reasons)
