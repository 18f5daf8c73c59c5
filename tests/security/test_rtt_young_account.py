"""Threat model: a relay in front of a young account (issue #17, session 8).

A residential proxy in the victim's city shows a consumer address nearby; its hop multiplies
the round-trip time. ``RTT_ANOMALY`` used to need ``rtt.min_samples`` (5) logins on a network
before it said anything, so a victim with two or three logins gave the relay a free pass. With
``rtt.young_factor`` a login more than that many times slower than the slowest of the user's
few samples fires. Only accepted logins teach RTT samples, so an attacker's challenged and
failed attempts through the relay cannot make the young history look slow."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from riskengine import Engine
from riskengine.testing import LONDON, establish, make_attempt, offline_settings

PROXY = LONDON | {"asn": 64512}  # another consumer network in the victim's city


def _young_victim(engine: Engine) -> None:
    establish(engine, days=2, rtt_ms=35.0)  # two logins from home at 35 ms: no band yet


def test_a_relays_hop_on_a_young_account_is_evidence() -> None:
    settings = offline_settings()
    engine = Engine(settings)
    _young_victim(engine)
    t = make_attempt().timestamp + timedelta(days=3)
    d = engine.score(make_attempt(ts=t, ip="81.2.99.7", place=PROXY, rtt_ms=240.0))
    rtt = next(r for r in d.reasons if r.code == "RTT_ANOMALY")
    assert "too few for a band" in rtt.detail
    # the edge is 3 x the 35 ms centre; not a cold-start-scaled signal: the weight in full
    assert rtt.weight == pytest.approx(settings.rtt.weight * (0.5 + 0.5 * math.log(240.0 / 105.0) / math.log(3.0)),
                                       abs=1e-3)
    assert d.action == "challenge"  # COLD_START + NEW_ASN (cold) alone stayed under the threshold
    # the same login without the rule: allowed, no RTT evidence
    off = Engine(offline_settings(rtt={"young_factor": 0.0}))
    _young_victim(off)
    d_off = off.score(make_attempt(ts=t, ip="81.2.99.7", place=PROXY, rtt_ms=240.0))
    assert d_off.action == "allow" and "RTT_ANOMALY" not in d_off.reason_codes


def test_failed_attempts_through_the_relay_do_not_teach_its_rtt() -> None:
    engine = Engine(offline_settings())
    _young_victim(engine)
    t = make_attempt().timestamp + timedelta(days=3)
    for k in range(4):
        d = engine.score(make_attempt(ts=t + timedelta(hours=k), ip="81.2.99.7", place=PROXY, rtt_ms=240.0))
        assert d.action == "challenge" and "RTT_ANOMALY" in d.reason_codes
        engine.record_outcome(d.decision_id, "failed", channels=["sms"],
                              timestamp=t + timedelta(hours=k, seconds=30))
    d = engine.score(make_attempt(ts=t + timedelta(hours=6), ip="81.2.99.8", place=PROXY, rtt_ms=240.0))
    assert "RTT_ANOMALY" in d.reason_codes and d.action == "challenge"


def test_the_owners_slower_mobile_link_stays_quiet() -> None:
    """What a young history cannot show yet — a phone on a mobile network, twice as slow —
    is under the factor: no RTT evidence (the new network still counts as such)."""
    engine = Engine(offline_settings())
    _young_victim(engine)
    t = make_attempt().timestamp + timedelta(days=3)
    d = engine.score(make_attempt(ts=t, ip="81.2.99.7", place=PROXY, rtt_ms=80.0))
    assert "RTT_ANOMALY" not in d.reason_codes
