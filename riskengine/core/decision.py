"""What `Engine.score()` returns: frozen, slotted, cheap to build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["allow", "challenge", "deny"]
Factor = Literal["passkey", "totp", "push", "whatsapp", "sms", "voice", "email"]
Outcome = Literal["verified", "failed", "expired", "abandoned"]
Channel = Literal["passkey", "totp", "push", "whatsapp", "sms", "voice", "email"]
Event = Literal["login", "recovery", "factor_change", "password_reset"]
"""What the user is doing: a login, or a sensitive event scored against the same profile with
its own (stricter) policy section, ``policy.events.<event>``."""
EVENTS: tuple[Event, ...] = ("login", "recovery", "factor_change", "password_reset")

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
    shadow_action: Action | None = None
    """Shadow mode (``policy.mode = "shadow"``): what enforcement would have done (``action``
    is then always ``"allow"``); None in enforce mode."""
    threshold: float | None = None
    """The challenge threshold this decision was made with: ``policy.challenge_threshold``,
    or the step-up budget's live threshold (``policy.target_stepup_rate``); None for a
    fail-mode decision."""
    event: Event = "login"
    """The event scored (``LoginAttempt.event``): which policy section decided."""

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    @property
    def degraded(self) -> bool:
        return any(r.code == "ENGINE_DEGRADED" for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for logs and APIs (never send ``reasons`` or ``risk`` to an
        unauthenticated client: they tell an attacker what to change).

        >>> Decision("d1", "allow", 0.0, (), None, "u1", "k", "rules-v1").to_dict()["action"]
        'allow'
        """
        return {
            "decision_id": self.decision_id, "action": self.action, "risk": self.risk,
            "reasons": [{"code": r.code, "weight": r.weight, "detail": r.detail} for r in self.reasons],
            "factor": self.factor, "user_id": self.user_id, "device_key": self.device_key,
            "policy_version": self.policy_version, "shadow_action": self.shadow_action,
            "threshold": self.threshold,
            "event": self.event,
        }
