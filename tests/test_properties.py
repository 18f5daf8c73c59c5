"""Hypothesis properties of the engine as a whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from riskengine import Engine, LoginAttempt
from riskengine.audit.base import NullSink
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE, offline_settings

PLACES = [
    ("GB", "England", 51.5, -0.1, 2856),
    ("GB", "Scotland", 55.9, -3.2, 2856),
    ("FR", "Ile-de-France", 48.9, 2.35, 3215),
    ("US", "Washington", 47.2, -122.3, 209),
    ("CN", "Jilin", 43.9, 125.3, 4837),
]
T0 = datetime(2026, 1, 1, tzinfo=UTC)

history = st.lists(
    st.tuples(st.integers(0, 60 * 24 * 30), st.sampled_from(PLACES),
              st.sampled_from([CHROME_WIN, FIREFOX_MAC, IPHONE])),
    max_size=25,
)
probe = st.tuples(st.integers(0, 60 * 24 * 40), st.sampled_from(PLACES),
                  st.sampled_from([CHROME_WIN, FIREFOX_MAC, IPHONE]))


def attempt(minute: int, place: tuple[str, str, float, float, int], ua: str) -> LoginAttempt:
    country, region, lat, lon, asn = place
    return LoginAttempt(user_id="p", timestamp=T0 + timedelta(minutes=minute), ip="198.51.100.7",
                        user_agent=ua, country=country, region=region, latitude=lat,
                        longitude=lon, asn=asn)


def replay(logins: list[tuple[int, tuple[str, str, float, float, int], str]],
           failures: int = 0, at: int = 0) -> Engine:
    e = Engine(offline_settings(), sink=NullSink())
    for minute, place, ua in sorted(logins, key=lambda x: x[0]):
        e.score(attempt(minute, place, ua))
    for i in range(failures):
        e.record_failure("p", "198.51.100.7", T0 + timedelta(minutes=at, seconds=-i - 1))
    return e


@settings(max_examples=60, deadline=None)
@given(history, probe)
def test_risk_is_always_in_unit_interval(logins: list, p: tuple) -> None:  # type: ignore[type-arg]
    d = replay(logins).score(attempt(*p))
    assert 0.0 <= d.risk <= 1.0
    assert d.action in ("allow", "challenge", "deny")
    assert all(0.0 <= r.weight <= 1.0 for r in d.reasons)


@settings(max_examples=40, deadline=None)
@given(history, probe, st.integers(0, 12), st.integers(0, 12))
def test_more_failed_attempts_never_lower_risk(logins: list, p: tuple, a: int, b: int) -> None:  # type: ignore[type-arg]
    fewer, more = sorted((a, b))
    at = p[0] + 60 * 24 * 30  # after the whole history, so failures are the newest events
    probe_attempt = attempt(at, p[1], p[2])
    low = replay(logins, fewer, at).score(probe_attempt)
    high = replay(logins, more, at).score(probe_attempt)
    assert high.risk >= low.risk
    order = {"allow": 0, "challenge": 1, "deny": 2}
    assert order[high.action] >= order[low.action]


@settings(max_examples=40, deadline=None)
@given(history, probe)
def test_identical_history_and_attempt_give_identical_decision(logins: list, p: tuple) -> None:  # type: ignore[type-arg]
    a = replay(logins).score(attempt(*p))
    b = replay(logins).score(attempt(*p))
    assert (a.action, a.risk, a.reasons, a.factor) == (b.action, b.risk, b.reasons, b.factor)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 0.3999), st.lists(st.tuples(st.sampled_from(["MODEL_SCORE", "GEO_UNKNOWN"]),
                                                   st.floats(0.0, 0.4)), max_size=3))
def test_policy_fast_path_agrees_with_the_full_path(extra_risk: float, extra: list[tuple[str, float]]) -> None:
    """Nothing fired and a model term under the threshold: the shortcut returns what the full
    noisy-OR path returns (forced here by a fired signal whose configured weight is 0)."""
    from riskengine.core.config import Settings
    from riskengine.core.decision import Reason
    from riskengine.core.policy import Policy
    from riskengine.core.signals.base import SignalResult

    policy = Policy(Settings())
    reasons = [Reason(code, weight, "detail") for code, weight in extra]
    quiet = [SignalResult("NEW_DEVICE", 0.0, "known"), SignalResult("NEW_COUNTRY", 0.0, "seen")]
    fast = policy.decide(quiet, extra_risk=extra_risk, extra_reasons=reasons)
    full = policy.decide([*quiet, SignalResult("NO_SUCH_SIGNAL", 1.0, "weight 0")],
                         extra_risk=extra_risk, extra_reasons=reasons)
    assert (fast.action, fast.factor) == (full.action, full.factor) == ("allow", None)
    assert fast.risk == pytest.approx(full.risk, abs=1e-6)
    assert [r for r in full.reasons if r.code != "NO_SUCH_SIGNAL"] == list(fast.reasons)


RICH_CODES = ["NEW_DEVICE", "NEW_COUNTRY", "NEW_REGION", "NEW_ASN", "NEW_PREFIX", "NEW_CITY", "NEW_UA_VERSION",
              "UA_DOWNGRADE", "FAR_FROM_USUAL_PLACES", "RTT_ANOMALY", "HOSTING_NETWORK", "IMPOSSIBLE_TRAVEL",
              "UNUSUAL_HOUR", "ANONYMOUS_PROXY"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(RICH_CODES), st.floats(0.0, 1.0)), max_size=6),
       st.sampled_from(RICH_CODES), st.floats(0.0, 1.0), st.booleans(), st.booleans())
def test_adding_a_signal_never_lowers_risk(fired: list[tuple[str, float]], code: str, value: float,
                                           cold: bool, trusted: bool) -> None:
    """One more piece of evidence (any signal, the new ones included) never lowers the risk nor
    softens the action, in or out of cold start, on a trusted device or not."""
    from riskengine.core.config import Settings
    from riskengine.core.policy import Policy
    from riskengine.core.signals.base import SignalResult

    policy = Policy(Settings())
    base = list({c: SignalResult(c, v, "d") for c, v in fired}.values())  # the engine fires each code once
    assume(code not in {s.code for s in base})
    before = policy.decide(base, cold_start=cold, trusted=trusted)
    after = policy.decide([*base, SignalResult(code, value, "d")], cold_start=cold, trusted=trusted)
    assert after.risk >= before.risk - 1e-12
    order = {"allow": 0, "challenge": 1, "deny": 2}
    assert order[after.action] >= order[before.action]


_RANK = {"allow": 0, "challenge": 1, "deny": 2}


@settings(max_examples=40, deadline=None)
@given(history, probe, st.sampled_from(["recovery", "factor_change", "password_reset"]), st.integers(0, 12))
def test_a_sensitive_event_is_never_treated_more_leniently_than_the_same_login(
        logins: list, p: tuple, event: str, failures: int) -> None:  # type: ignore[type-arg]
    """Same history, same attempt: the event's action is at least the login's (its thresholds
    are lower and its rules only add), and scoring it teaches the profile nothing."""
    engine = replay(logins, failures, p[0])
    before = engine.store.get("p")
    sensitive = engine.score(attempt(*p).model_copy(update={"event": event}))
    assert engine.store.get("p") == before
    login = engine.score(attempt(*p))
    assert _RANK[sensitive.action] >= _RANK[login.action], (sensitive, login)
    if sensitive.action == login.action == "allow":  # no rule fired: the same evidence, the same risk
        assert sensitive.risk == login.risk
