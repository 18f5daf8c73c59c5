"""``Policy.decide`` rule by rule, every figure derived from ``Settings()`` (a changed default
stays pinned): the fast path and the full path agreeing, the noisy-OR with cold start and a
model's contribution, each deny/challenge rule and its risk floor, the trusted-device skip,
the budget floor, sensitive events' own thresholds, and the recommended factor.

Written against the survivors of ``mutmut run "riskengine.core.policy*"`` (docs/testing.md)."""

from __future__ import annotations

import math

import pytest

from riskengine.core.config import Settings
from riskengine.core.decision import Reason
from riskengine.core.policy import Policy
from riskengine.core.signals.base import SignalResult
from riskengine.testing import offline_settings

S = Settings()
P = Policy(S)
CT, DT = S.policy.challenge_threshold, S.policy.deny_threshold


def sig(code: str, value: float = 1.0) -> SignalResult:
    return SignalResult(code, value, f"{code} detail")


def noisy_or(*weights: float) -> float:
    return 1.0 - math.prod(1.0 - w for w in weights)


# ---------------------------------------------------------------- the fast path
def test_nothing_fired_is_a_clean_allow_at_zero_with_no_threshold() -> None:
    a = P.decide([sig("NEW_DEVICE", 0.0), sig("NEW_COUNTRY", 0.0)])
    assert (a.action, a.risk, a.reasons, a.factor, a.threshold, a.floor) == ("allow", 0.0, (), None, 0.0, False)


def test_a_model_contribution_below_the_threshold_allows_with_its_reasons_heaviest_first() -> None:
    light, heavy = Reason("MODEL_A", 0.05, "a"), Reason("MODEL_B", 0.2, "b")
    risk = CT / 3 + 1e-7  # more digits than a decision keeps
    a = P.decide([], extra_risk=risk, extra_reasons=[light, heavy])
    assert (a.action, a.risk, a.reasons, a.factor, a.threshold) == ("allow", round(risk, 6), (heavy, light), None, CT)
    # informational reasons alone (GEO_UNKNOWN) ride along on an allow at risk 0
    info = Reason("GEO_UNKNOWN", 0.0, "IP not in the GeoIP database")
    assert P.decide([], extra_reasons=[info]) .reasons == (info,)
    # a budget's live threshold is reported as the one decided with
    assert P.decide([], extra_risk=0.01, threshold=CT / 2).threshold == CT / 2


@pytest.mark.parametrize("step", [-1, 0])
def test_a_model_contribution_exactly_at_the_threshold_challenges(step: int) -> None:
    """The fast path ends where the full path would challenge: ``extra_risk`` at the threshold
    (inclusive) challenges, one float step below allows."""
    risk = CT if step == 0 else math.nextafter(CT, 0.0)
    a = P.decide([], extra_risk=risk)
    assert a.action == ("challenge" if step == 0 else "allow"), a
    assert a.risk == round(risk, 6)


# ---------------------------------------------------------------- the full path's arithmetic
def test_cold_start_scales_the_novelty_signals_and_adds_its_own_weight() -> None:
    c = S.coldstart
    assert "NEW_DEVICE" in c.scaled_signals and "NEW_COUNTRY" not in c.scaled_signals
    a = P.decide([sig("NEW_DEVICE"), sig("NEW_COUNTRY", 0.5)], cold_start=True)
    w_dev = S.device.weight * c.novelty_scale
    w_country = S.geo.new_country_weight * 0.5
    assert a.risk == round(noisy_or(w_dev, w_country, c.weight), 6)
    assert [(r.code, r.weight) for r in a.reasons] == sorted(
        [("NEW_DEVICE", round(w_dev, 4)), ("NEW_COUNTRY", round(w_country, 4)), ("COLD_START", c.weight)],
        key=lambda cw: cw[1], reverse=True)
    # cold start alone (nothing fired) still takes the full path and carries its reason
    alone = P.decide([], cold_start=True)
    assert [r.code for r in alone.reasons] == ["COLD_START"] and alone.risk == round(c.weight, 6)
    assert isinstance(alone.reasons[0].detail, str) and alone.reasons[0].detail


def test_on_a_trusted_device_under_excessive_failures_cold_start_and_the_model_still_count() -> None:
    """The risk without the failures keeps every other term of the noisy-OR, cold start's
    included (NEW_COUNTRY is not scaled by cold start)."""
    c = S.coldstart
    without = noisy_or(S.geo.new_country_weight, c.weight)
    assert CT < without < DT
    a = P.decide([sig("FAILED_ATTEMPTS_EXCESSIVE"), sig("NEW_COUNTRY")], cold_start=True, trusted=True)
    assert (a.action, a.risk) == ("challenge", round(without, 6))
    # ... and a model's contribution
    model = 0.2
    with_model = noisy_or(S.geo.new_country_weight, model)
    assert CT < with_model < DT
    b = P.decide([sig("FAILED_ATTEMPTS_EXCESSIVE"), sig("NEW_COUNTRY")], trusted=True, extra_risk=model)
    assert (b.action, b.risk) == ("challenge", round(with_model, 6))


def test_a_model_contribution_joins_the_noisy_or_and_its_reasons_are_kept() -> None:
    w = round(min(1.0, S.geo.new_asn_weight + 0.1), 4)  # the model's term outweighs the novelty
    model = Reason("MODEL_SCORE", w, "model")
    a = P.decide([sig("NEW_ASN")], extra_risk=w, extra_reasons=[model])
    assert a.risk == round(noisy_or(S.geo.new_asn_weight, w), 6)
    assert [r.code for r in a.reasons] == ["MODEL_SCORE", "NEW_ASN"]  # heaviest first


def test_weights_are_rounded_to_four_digits_and_risk_to_six() -> None:
    value = 0.2468013579
    w = S.device.weight * value
    assert round(w, 4) != round(w, 5) and round(w, 6) != round(w, 7)  # the digits are seen
    a = P.decide([sig("NEW_DEVICE", value)])
    assert a.reasons[0].weight == round(w, 4) and a.risk == round(w, 6)


def test_an_unknown_code_counts_nothing_and_a_zero_value_is_not_evidence() -> None:
    a = P.decide([sig("NOT_A_CODE"), sig("NEW_DEVICE", 0.0), sig("NEW_ASN")])
    assert a.risk == round(S.geo.new_asn_weight, 6)
    assert [r.code for r in a.reasons] == ["NEW_ASN", "NOT_A_CODE"]


def test_an_odd_hour_adds_its_weight_times_its_value_to_other_evidence() -> None:
    value = 0.6172839
    w_hour = S.hour.weight * value
    assert round(w_hour, 4) != round(w_hour, 5)
    a = P.decide([sig("UNUSUAL_HOUR", value), sig("NEW_REGION")])
    assert a.risk == round(noisy_or(S.geo.new_region_weight, w_hour), 6)
    assert ("UNUSUAL_HOUR", round(w_hour, 4), "UNUSUAL_HOUR detail") in [
        (r.code, r.weight, r.detail) for r in a.reasons]


def test_an_odd_hour_counts_as_fired_for_configured_strong_and_floor_signals() -> None:
    """``UNUSUAL_HOUR`` may be configured strong (a trusted device then does not skip it) or a
    budget floor signal; it counts as fired only beside other evidence."""
    strong = Policy(offline_settings(policy={"strong_signals": ["UNUSUAL_HOUR"]}))
    hour_and_device = [sig("UNUSUAL_HOUR"), sig("NEW_DEVICE")]
    assert strong.decide(hour_and_device, trusted=True).action == "challenge"
    assert P.decide(hour_and_device, trusted=True).action == "allow"
    floor = Policy(offline_settings(policy={"budget_floor_signals": ["UNUSUAL_HOUR"]}))
    a = floor.decide([sig("UNUSUAL_HOUR"), sig("NEW_ASN")])
    assert (a.action, a.floor) == ("challenge", True)
    assert floor.decide([sig("UNUSUAL_HOUR")]).action == "allow"


# ---------------------------------------------------------------- deny rules
@pytest.mark.parametrize(("exceeded", "locked", "code"), [
    (True, False, "OTP_ATTEMPTS_EXCEEDED"), (False, True, "OTP_LOCKED")])
def test_second_factor_limits_deny_at_least_at_the_deny_threshold(exceeded: bool, locked: bool, code: str) -> None:
    """Past a second-factor limit the login is denied even with nothing else fired (the fast
    path must not take it), even on a trusted device, with the limit's reason at weight 1."""
    for trusted in (False, True):
        a = P.decide([], trusted=trusted, otp_failures_exceeded=exceeded, otp_locked=locked)
        assert (a.action, a.risk, a.factor) == ("deny", DT, None), a
        assert [(r.code, r.weight) for r in a.reasons] == [(code, 1.0)]
        assert isinstance(a.reasons[0].detail, str) and a.reasons[0].detail
    # on a trusted device with excessive failures: still a deny (the trust rule does not apply)
    excessive = P.decide([sig("FAILED_ATTEMPTS_EXCESSIVE")], trusted=True, otp_failures_exceeded=exceeded,
                         otp_locked=locked)
    assert excessive.action == "deny"


def test_a_denylisted_network_denies_at_its_fixed_full_weight() -> None:
    a = Policy(S).decide([sig("NETWORK_DENYLIST")], trusted=True)
    assert (a.action, a.risk, [(r.code, r.weight) for r in a.reasons]) == ("deny", 1.0, [("NETWORK_DENYLIST", 1.0)])


def test_excessive_failures_deny_at_the_deny_threshold_whatever_their_weight() -> None:
    weak = Policy(offline_settings(failures={"excessive_weight": 0.1}))
    a = weak.decide([sig("FAILED_ATTEMPTS_EXCESSIVE")])
    assert (a.action, a.risk, a.reasons[0].weight) == ("deny", DT, 0.1)


def test_recovery_high_risk_denies_at_the_recovery_deny_threshold() -> None:
    e = S.policy.events.recovery
    a = P.decide([sig("RECOVERY_HIGH_RISK")], event="recovery")
    assert (a.action, a.risk, a.threshold) == ("deny", e.deny_threshold, e.challenge_threshold)


def test_impossible_travel_denies_only_when_configured() -> None:
    travel = [sig("IMPOSSIBLE_TRAVEL")]
    w = S.geo.impossible_travel_weight
    assert w < DT
    assert (P.decide(travel).action, P.decide(travel).risk) == ("challenge", round(w, 6))
    denying = Policy(offline_settings(policy={"impossible_travel_action": "deny"}))
    assert (denying.decide(travel).action, denying.decide(travel).risk) == ("deny", DT)
    assert denying.decide([sig("NEW_ASN")]).action == "allow"


# ---------------------------------------------------------------- step-up rules
@pytest.mark.parametrize("code", ["FAILED_ATTEMPTS_USER", "FAILED_ATTEMPTS_IP", "PROFILE_RESET"])
def test_step_up_codes_challenge_at_least_at_the_threshold_whatever_their_weight(code: str) -> None:
    light = Policy(offline_settings(failures={"user_weight": 0.01, "ip_weight": 0.01}))
    a = light.decide([sig(code)])
    assert (a.action, a.risk) == ("challenge", CT), a
    # a trusted device does not skip them
    assert light.decide([sig(code)], trusted=True).action == "challenge"


def test_a_trusted_device_skips_a_weak_challenge_with_a_zero_weight_reason() -> None:
    signals = [sig("NEW_DEVICE")]
    assert P.decide(signals).action == "challenge"
    a = P.decide(signals, trusted=True)
    assert (a.action, a.factor) == ("allow", None)
    assert [(r.code, r.weight) for r in a.reasons] == [("NEW_DEVICE", S.device.weight), ("TRUSTED_DEVICE", 0.0)]
    assert isinstance(a.reasons[1].detail, str) and a.reasons[1].detail
    # nothing to skip: an allow stays an allow without the trust reason
    assert [r.code for r in P.decide([sig("NEW_ASN")], trusted=True).reasons] == ["NEW_ASN"]
    # a strong signal is never skipped
    assert P.decide([sig("NEW_COUNTRY")], trusted=True).action == "challenge"


def test_the_trusted_excessive_rule_keeps_the_deny_when_the_rest_already_denies() -> None:
    """On a trusted device excessive failures become a challenge only while the other evidence
    stays below the deny threshold; at or above it the login is denied."""
    p = Policy(offline_settings(device={"weight": DT}))
    a = p.decide([sig("FAILED_ATTEMPTS_EXCESSIVE"), sig("NEW_DEVICE")], trusted=True)
    assert a.action == "deny"
    below = Policy(offline_settings(device={"weight": math.nextafter(DT, 0.0)}))
    b = below.decide([sig("FAILED_ATTEMPTS_EXCESSIVE"), sig("NEW_DEVICE")], trusted=True)
    assert b.action == "challenge" and "FAILED_ATTEMPTS_EXCESSIVE" in [r.code for r in b.reasons]


def test_the_trusted_excessive_rule_lifts_a_small_remainder_to_the_threshold() -> None:
    a = P.decide([sig("FAILED_ATTEMPTS_EXCESSIVE"), sig("NEW_ASN")], trusted=True)
    assert (a.action, a.risk) == ("challenge", CT)
    alone = P.decide([sig("FAILED_ATTEMPTS_EXCESSIVE")], trusted=True)
    assert (alone.action, alone.risk) == ("challenge", CT)


# ---------------------------------------------------------------- the budget floor
def test_a_floor_signal_challenges_under_any_live_threshold_and_is_reported() -> None:
    assert S.policy.target_stepup_rate > 0 and "DEVICE_TOKEN_INVALID" in S.policy.budget_floor_signals
    light = Policy(offline_settings(trust={"invalid_token_weight": 0.05}))
    top = S.policy.budget_max_threshold
    a = light.decide([sig("DEVICE_TOKEN_INVALID")], threshold=top)
    assert (a.action, a.risk, a.threshold, a.floor) == ("challenge", top, top, True)
    assert light.decide([sig("DEVICE_TOKEN_INVALID")], trusted=True, threshold=top).action == "challenge"
    assert light.decide([sig("NEW_ASN")], threshold=top).floor is False
    # no budget (target_stepup_rate 0): no floor, the fixed threshold decides
    fixed = Policy(offline_settings(trust={"invalid_token_weight": 0.05}, policy={"target_stepup_rate": 0}))
    b = fixed.decide([sig("DEVICE_TOKEN_INVALID")])
    assert (b.action, b.floor) == ("allow", False)


# ---------------------------------------------------------------- the clamp on the rules' scale (a model)
MODELLED = offline_settings(policy={"model": "model-dir"})  # Policy never opens it: the engine does
PM = Policy(MODELLED)
TOP = MODELLED.policy.budget_max_threshold
BLEND_TOP = MODELLED.policy.budget_threshold_top()


def test_with_a_model_the_blends_threshold_tops_out_where_only_the_rules_clamp_steps_up() -> None:
    w = MODELLED.policy.model_weight
    assert BLEND_TOP == pytest.approx(noisy_or(TOP, w)) and TOP < BLEND_TOP < DT
    assert S.policy.budget_threshold_top() == TOP  # rules only: the clamp as configured
    # a login under the rules' top, with the largest term a model can add, stays under BLEND_TOP
    below = TOP - 1e-6
    assert noisy_or(below, w) < BLEND_TOP


def test_with_a_model_the_rules_alone_at_the_clamp_top_challenge_whatever_the_threshold() -> None:
    assert S.device.weight >= TOP  # a never-seen device alone reaches the rules' top
    a = PM.decide([sig("NEW_DEVICE")], threshold=BLEND_TOP)
    assert a.risk < a.threshold and (a.action, a.floor) == ("challenge", True)
    # counted as forced even when the blended risk passes the threshold by itself
    b = PM.decide([sig("NEW_DEVICE")], extra_risk=0.5, threshold=BLEND_TOP)
    assert b.risk >= b.threshold and (b.action, b.floor) == ("challenge", True)
    # under the top, the model's term must carry the blend over the live threshold
    r = S.geo.new_region_weight
    assert r < TOP
    assert PM.decide([sig("NEW_REGION")], extra_risk=0.2, threshold=0.6).action == \
        ("challenge" if noisy_or(r, 0.2) >= 0.6 else "allow")
    c = PM.decide([sig("NEW_REGION")], extra_risk=0.45, threshold=0.6)
    assert (c.action, c.floor) == ("challenge", False) and noisy_or(r, 0.45) >= 0.6
    # the model's term never counts towards the rules' top
    d = PM.decide([sig("NEW_ASN")], extra_risk=0.5, threshold=BLEND_TOP)
    assert (d.action, d.floor) == ("allow", False)


def test_the_rules_clamp_needs_a_model_a_budget_and_a_login() -> None:
    # rules only: the threshold never exceeds the top, the flag keeps its old meaning
    assert P.decide([sig("NEW_DEVICE")], threshold=TOP).floor is False
    # no budget (threshold None): the fixed threshold decides
    assert PM.decide([sig("NEW_DEVICE")]).floor is False
    fixed = Policy(offline_settings(policy={"model": "model-dir", "target_stepup_rate": 0}))
    assert fixed.rules_top is None
    # a sensitive event is decided by its own section
    assert PM.decide([sig("NEW_DEVICE")], threshold=BLEND_TOP, event="password_reset").floor is False


def test_a_trusted_device_skips_the_rules_clamp_as_it_skips_the_threshold() -> None:
    # a weak signal weighted up to the top: no strong signal, so the trusted device allows
    heavy = Policy(offline_settings(policy={"model": "model-dir"}, device={"new_ua_version_weight": TOP}))
    a = heavy.decide([sig("NEW_UA_VERSION")], trusted=True, threshold=BLEND_TOP)
    assert (a.action, a.floor) == ("allow", False) and "TRUSTED_DEVICE" in {r.code for r in a.reasons}
    assert heavy.decide([sig("NEW_UA_VERSION")], threshold=BLEND_TOP).action == "challenge"


def test_a_live_threshold_replaces_the_fixed_one_for_logins_only() -> None:
    w = S.geo.new_region_weight
    risk = noisy_or(w)  # the float the policy computes
    assert P.decide([sig("NEW_REGION")], threshold=risk).action == "challenge"
    assert P.decide([sig("NEW_REGION")], threshold=math.nextafter(risk, 1.0)).action == "allow"
    # a sensitive event ignores it: its own section decides
    e = S.policy.events.password_reset
    a = P.decide([sig("NEW_REGION")], threshold=0.01, event="password_reset")
    assert a.threshold == e.challenge_threshold
    assert a.action == ("challenge" if w >= e.challenge_threshold else "allow")


# ---------------------------------------------------------------- sensitive events
def _below(at: float) -> float:
    """The largest weight whose one-signal noisy-OR is below ``at``."""
    w = math.nextafter(at, 0.0)
    while noisy_or(w) >= at:
        w = math.nextafter(w, 0.0)
    return w


@pytest.mark.parametrize("event", ["recovery", "factor_change", "password_reset"])
@pytest.mark.parametrize("which", ["challenge", "deny"])
@pytest.mark.parametrize("step", [-1, 0])
def test_each_event_decides_at_its_own_thresholds_inclusive(event: str, which: str, step: int) -> None:
    section = getattr(S.policy.events, event)
    at = getattr(section, f"{which}_threshold")
    assert noisy_or(at) == at  # one signal at weight ``at`` gives exactly that risk
    weight = at if step == 0 else _below(at)
    p = Policy(offline_settings(device={"weight": weight}))
    a = p.decide([sig("NEW_DEVICE")], event=event)  # type: ignore[arg-type]
    below = "allow" if which == "challenge" else "challenge"
    assert a.action == (which if step == 0 else below), (event, which, step, a)
    assert a.threshold == section.challenge_threshold


@pytest.mark.parametrize("code", ["UNTRUSTED_DEVICE", "RECENT_NEW_DEVICE", "RECENT_OTP_FAILURES", "NO_HISTORY"])
def test_event_rules_step_up_even_on_a_trusted_device(code: str) -> None:
    a = P.decide([sig(code)], trusted=True, event="factor_change")
    assert (a.action, a.risk) == ("challenge", S.policy.events.factor_change.challenge_threshold)
    assert a.reasons[0].weight == 0.0  # the rule sets the action, not the risk


# ---------------------------------------------------------------- the recommended factor
def test_the_factor_is_the_strongest_enrolled_or_the_configured_default() -> None:
    challenge = [sig("NEW_DEVICE")]
    assert P.decide(challenge, enrolled=["email", "totp", "sms"]).factor == "totp"
    assert P.decide(challenge).factor == S.policy.default_factors[0]
    voice = Policy(offline_settings(policy={"default_factors": ["voice", "email"]}))
    assert voice.decide(challenge).factor == "voice"
    assert P.recommend_factor(0.9, ["passkey", "totp"]) == "passkey"
    assert Policy(offline_settings(policy={"default_factors": []})).recommend_factor(0.9, []) is None
