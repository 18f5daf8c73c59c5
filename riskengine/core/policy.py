"""Signals → risk, action, reasons, recommended factor.

Risk is a noisy-OR of weighted signals, ``1 − Π(1 − wᵢ·vᵢ)``: each independent piece of
evidence closes part of the remaining gap to 1, so risk stays in [0, 1] and adding a
signal never lowers it. Rules on top encode what field practice says weights cannot:
failures step up regardless, an odd hour never steps up alone, a trusted device skips
the challenge unless a strong signal fires, too many OTP failures deny, a profile reset by
support steps up until a challenge is verified, and a trusted device (a valid device token)
is challenged, not denied, when failed passwords alone would deny.

Sensitive events (``LoginAttempt.event`` other than ``"login"``) are decided by the same
arithmetic under their own fixed thresholds (``policy.events.<event>``, compiled here into a
small lookup); the engine adds their rule signals (:data:`~riskengine.core.reasons.EVENT_RULE_CODES`):
``RECOVERY_HIGH_RISK`` denies, the others step up, and no trusted device skips them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from riskengine.core import reasons as R
from riskengine.core.config import Settings
from riskengine.core.decision import FACTOR_STRENGTH, Action, Event, Factor, Reason
from riskengine.core.signals.base import SignalResult


@dataclass(frozen=True, slots=True)
class Assessment:
    action: Action
    risk: float
    reasons: tuple[Reason, ...]
    factor: Factor | None
    threshold: float = 0.0
    """The challenge threshold this decision was made with (0.0 on the clean-allow fast path)."""
    floor: bool = False
    """A budget floor signal fired, or (with a model) the rules' risk alone reached
    ``budget_max_threshold``: the login is challenged whatever the threshold, and the
    step-up budget counts it as forced."""


_CLEAN_ALLOW = Assessment("allow", 0.0, (), None)


def _none_fired(signals: Sequence[SignalResult]) -> bool:
    """``all(sig.value <= 0.0 for sig in signals)`` without a generator (every login asks)."""
    for sig in signals:
        if sig.value > 0.0:
            return False
    return True


@dataclass(frozen=True, slots=True)
class EventRule:
    """One sensitive event's compiled policy section (see :class:`~riskengine.core.config.EventPolicy`)."""

    challenge_threshold: float
    deny_threshold: float
    deny_new_device_and_country: bool
    challenge_untrusted_device: bool
    challenge_no_history: bool
    challenge_after_otp_failures: bool
    recent_device_s: float


def _by_weight(reason: Reason) -> float:
    return reason.weight


class Policy:
    """Compiled once from settings; ``decide`` is arithmetic over a handful of signals."""

    def __init__(self, settings: Settings) -> None:
        s = settings
        self.version = s.policy.version
        self.challenge_threshold = s.policy.challenge_threshold
        self.deny_threshold = s.policy.deny_threshold
        self.travel_denies = s.policy.impossible_travel_action == "deny"
        self.cold_scale = s.coldstart.novelty_scale
        self.cold_weight = s.coldstart.weight
        self.cold_scaled = frozenset(s.coldstart.scaled_signals)
        self.strong = frozenset(s.policy.strong_signals)
        self.floor = frozenset(s.policy.budget_floor_signals) if s.policy.target_stepup_rate else frozenset()
        # the budget's clamp on the rules' scale when a model's term joins the risk (docs/budget.md,
        # "With a model"): the rules alone at the top of the clamp always step up
        self.rules_top: float | None = s.policy.budget_max_threshold \
            if s.policy.target_stepup_rate and s.policy.model is not None else None
        self.default_factors = s.policy.default_factors
        self.weights: dict[str, float] = {
            R.NEW_DEVICE: s.device.weight,
            R.NEW_COUNTRY: s.geo.new_country_weight,
            R.NEW_REGION: s.geo.new_region_weight,
            R.NEW_ASN: s.geo.new_asn_weight,
            R.IMPOSSIBLE_TRAVEL: s.geo.impossible_travel_weight,
            R.HOSTING_NETWORK: s.geo.hosting_weight,
            R.RARE_COUNTRY_FOR_SERVICE: s.geo.rare_country_weight,
            R.UNUSUAL_HOUR: s.hour.weight,
            R.FAILED_ATTEMPTS_USER: s.failures.user_weight,
            R.FAILED_ATTEMPTS_IP: s.failures.ip_weight,
            R.FAILED_ATTEMPTS_EXCESSIVE: s.failures.excessive_weight,
            R.DEVICE_TOKEN_INVALID: s.trust.invalid_token_weight,
            R.PROFILE_RESET: 0.0,
            R.ANONYMOUS_PROXY: s.geo.anonymous_weight,
            R.NETWORK_DENYLIST: 1.0,
            R.NEW_UA_VERSION: s.device.new_ua_version_weight,
            R.UA_DOWNGRADE: s.device.ua_downgrade_weight,
            R.NEW_PREFIX: s.geo.new_prefix_weight,
            R.NEW_CITY: s.geo.new_city_weight,
            R.FAR_FROM_USUAL_PLACES: s.geo.far_weight,
            R.RTT_ANOMALY: s.rtt.weight,
            R.DORMANT_ACCOUNT: s.coldstart.dormant_weight,
        }
        # the sensitive-event rules carry no weight: they set the action, the evidence the risk
        for code in R.EVENT_RULE_CODES:
            self.weights[code] = 0.0
        self.events: dict[str, EventRule] = {
            name: EventRule(e.challenge_threshold, e.deny_threshold, e.deny_new_device_and_country,
                            e.challenge_untrusted_device, e.challenge_no_history,
                            e.challenge_after_otp_failures, e.recent_device_hours * 3600.0)
            for name, e in (("recovery", s.policy.events.recovery),
                            ("factor_change", s.policy.events.factor_change),
                            ("password_reset", s.policy.events.password_reset))}
        self._step_up_codes = frozenset({R.FAILED_ATTEMPTS_USER, R.FAILED_ATTEMPTS_IP, R.PROFILE_RESET}
                                        | (R.EVENT_RULE_CODES - {R.RECOVERY_HIGH_RISK}))
        self._unskippable = self.strong | R.EVENT_RULE_CODES

    def decide(
        self,
        signals: Sequence[SignalResult],
        *,
        cold_start: bool = False,
        trusted: bool = False,
        otp_failures_exceeded: bool = False,
        otp_locked: bool = False,
        enrolled: Sequence[Factor] = (),
        extra_risk: float = 0.0,
        extra_reasons: Sequence[Reason] = (),
        threshold: float | None = None,
        event: Event = "login",
    ) -> Assessment:
        """Combine fired signals into a decision.

        >>> from riskengine.core.config import Settings
        >>> p = Policy(Settings())
        >>> p.decide([SignalResult("NEW_DEVICE", 1.0, "first login from this device")]).action
        'challenge'
        >>> p.decide([SignalResult("UNUSUAL_HOUR", 1.0, "3 am")]).action
        'allow'
        >>> p.decide([SignalResult("NEW_PREFIX", 1.0, "new address block")], event="recovery").action
        'allow'
        >>> p.decide([SignalResult("NEW_ASN", 1.0, "new AS")], event="recovery").action
        'challenge'
        >>> p.decide([SignalResult("NEW_REGION", 1.0, "new region")], event="recovery").action
        'challenge'

        ``threshold``: the live challenge threshold of a step-up budget (default: the fixed
        ``challenge_threshold``); with a budget on, a floor signal always challenges, and with a
        model configured so does a login whose rules' risk (everything but ``extra_risk``)
        reaches ``budget_max_threshold``. It applies to logins only: a sensitive ``event`` is
        decided by its own fixed section.
        """
        if event == "login":
            challenge_threshold = self.challenge_threshold if threshold is None else threshold
            deny_threshold = self.deny_threshold
        else:
            rule = self.events[event]
            challenge_threshold, deny_threshold = rule.challenge_threshold, rule.deny_threshold
        if not cold_start and not otp_failures_exceeded and not otp_locked and extra_risk < challenge_threshold \
                and _none_fired(signals):
            # the common case: a familiar login, nothing fired (a model may still add a little
            # below the threshold, with its reason; informational reasons such as GEO_UNKNOWN
            # ride along). The full path below would reach the same allow.
            if not extra_risk and not extra_reasons:
                return _CLEAN_ALLOW
            if len(extra_reasons) > 1:
                extra_reasons = sorted(extra_reasons, key=_by_weight, reverse=True)
            return Assessment("allow", round(extra_risk, 6), tuple(extra_reasons), None, challenge_threshold)
        contributions: list[Reason] = []
        remaining = 1.0
        remaining_without_excessive = 1.0
        hour: SignalResult | None = None
        fired: set[str] = set()
        for sig in signals:
            if sig.value <= 0.0:
                continue
            if sig.code == R.UNUSUAL_HOUR:
                hour = sig
                continue
            w = self.weights.get(sig.code, 0.0) * sig.value
            if cold_start and sig.code in self.cold_scaled:
                w *= self.cold_scale
            fired.add(sig.code)
            remaining *= 1.0 - w
            if sig.code != R.FAILED_ATTEMPTS_EXCESSIVE:
                remaining_without_excessive *= 1.0 - w
            contributions.append(Reason(sig.code, round(w, 4), sig.detail))
        if hour is not None and contributions:
            # weak alone: an odd hour only adds to other evidence
            w = self.weights[R.UNUSUAL_HOUR] * hour.value
            remaining *= 1.0 - w
            remaining_without_excessive *= 1.0 - w
            fired.add(R.UNUSUAL_HOUR)
            contributions.append(Reason(R.UNUSUAL_HOUR, round(w, 4), hour.detail))
        if cold_start:
            remaining *= 1.0 - self.cold_weight
            remaining_without_excessive *= 1.0 - self.cold_weight
            contributions.append(Reason(
                R.COLD_START, self.cold_weight,
                "little history for this user: novelty signals count for less"))
        rules_remaining = remaining
        if extra_risk > 0.0:
            remaining *= 1.0 - extra_risk
            remaining_without_excessive *= 1.0 - extra_risk
        contributions.extend(extra_reasons)
        risk = min(1.0, max(0.0, 1.0 - remaining))

        if trusted and R.FAILED_ATTEMPTS_EXCESSIVE in fired and not otp_failures_exceeded \
                and not otp_locked:
            # the failures may be anyone's (a username is not a secret); a valid device token
            # is not: step up instead of locking the owner out on their own device
            without = min(1.0, max(0.0, 1.0 - remaining_without_excessive))
            if without < deny_threshold:
                fired.discard(R.FAILED_ATTEMPTS_EXCESSIVE)
                fired.add(R.FAILED_ATTEMPTS_USER)  # strong: the trust does not skip the challenge
                risk = max(without, challenge_threshold)
        if R.FAILED_ATTEMPTS_EXCESSIVE in fired or otp_failures_exceeded or otp_locked \
                or R.NETWORK_DENYLIST in fired or R.RECOVERY_HIGH_RISK in fired:
            action: Action = "deny"
            risk = max(risk, deny_threshold)
        elif self.travel_denies and R.IMPOSSIBLE_TRAVEL in fired:
            action = "deny"
            risk = max(risk, deny_threshold)
        elif risk >= deny_threshold:
            action = "deny"
        elif fired & self._step_up_codes or fired & self.floor:
            action = "challenge"  # steps up regardless of how familiar the rest looks
            risk = max(risk, challenge_threshold)
        elif risk >= challenge_threshold:
            action = "challenge"
        else:
            action = "allow"
        # with a model, the clamp's top holds on the rules' scale: whatever the live threshold on
        # the blended risk, the rules alone at budget_max_threshold step up (a never-seen device)
        at_top = self.rules_top is not None and threshold is not None and event == "login" \
            and 1.0 - rules_remaining >= self.rules_top
        if at_top and action == "allow":
            action = "challenge"

        if otp_failures_exceeded:
            contributions.append(Reason(
                R.OTP_ATTEMPTS_EXCEEDED, 1.0, "too many failed second-factor attempts in this session"))
        if otp_locked:
            contributions.append(Reason(
                R.OTP_LOCKED, 1.0, "too many failed second-factor attempts for this user recently"))
        if trusted and action == "challenge" and not (fired & self._unskippable) and not (fired & self.floor):
            at_top = False  # as without a model: the trusted device skips it (counted exempt)
            action = "allow"
            contributions.append(Reason(
                R.TRUSTED_DEVICE, 0.0, "device trusted after a verified challenge"))

        factor = self.recommend_factor(risk, enrolled) if action == "challenge" else None
        contributions.sort(key=lambda r: r.weight, reverse=True)
        return Assessment(action, round(risk, 6), tuple(contributions), factor, challenge_threshold,
                          bool(fired & self.floor) or (at_top and action == "challenge"))

    def recommend_factor(self, risk: float, enrolled: Sequence[Factor]) -> Factor | None:
        """The strongest enrolled factor. SMS/voice/email only when nothing stronger is enrolled.

        >>> from riskengine.core.config import Settings
        >>> Policy(Settings()).recommend_factor(0.9, ["sms", "totp"])
        'totp'
        """
        options = enrolled or self.default_factors
        for factor in FACTOR_STRENGTH:
            if factor in options:
                return factor
        return None
