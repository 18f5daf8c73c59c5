"""Threat model: hiding a relay's round-trip time behind the victim's own address block.

``RTT_ANOMALY`` counts at ``rtt.known_prefix_value`` when the login comes from an address block
the user has logged in from (an RTT excursion there is congestion, not a relay). An attacker
would want the block of his relay's exit to look known. Only accepted logins teach the profile
its blocks, so challenged attempts from the exit's block teach nothing and the relay's RTT keeps
counting in full there, beside ``NEW_PREFIX``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from riskengine import Engine
from riskengine.testing import establish, make_attempt, offline_settings

KIT = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0"


def _rtt_weight(engine: Engine, ts_days: float, ip: str, rtt_ms: float,
                user: str = "alice") -> tuple[str, float, tuple[str, ...]]:
    t0 = make_attempt().timestamp.replace(hour=9)
    d = engine.score(make_attempt(user, ts=t0 + timedelta(days=ts_days), ip=ip, rtt_ms=rtt_ms))
    return d.action, next((r.weight for r in d.reasons if r.code == "RTT_ANOMALY"), 0.0), d.reason_codes


def test_challenged_attempts_from_the_relays_block_do_not_make_it_known() -> None:
    settings = offline_settings(rtt={"known_prefix_value": 0.3})
    engine = Engine(settings)
    last = establish(engine, rtt_ms=35.0)  # 20 days from 81.2.69.0/24, 35 ms
    # the attacker probes from his relay's block with a new device (challenged) and fails the
    # second factor each time: the block is not learned
    for k in range(5):
        ts = last + timedelta(hours=k + 1)
        d = engine.score(make_attempt(ts=ts, ip="81.2.99.7", ua=KIT, rtt_ms=240.0))
        assert d.action == "challenge"
        engine.record_outcome(d.decision_id, "failed", channels=["sms"], timestamp=ts + timedelta(seconds=30))
    # then with the victim's browser: the relay's RTT counts in full, the block is new
    action, weight, codes = _rtt_weight(engine, 21, "81.2.99.8", 240.0)
    assert weight == pytest.approx(settings.rtt.weight)
    assert "NEW_PREFIX" in codes


def test_the_discount_is_only_for_a_block_of_the_users_own_accepted_logins() -> None:
    settings = offline_settings(rtt={"known_prefix_value": 0.3})
    engine = Engine(settings)
    for user in ("alice", "bob"):
        establish(engine, user, rtt_ms=35.0)  # 20 days from 81.2.69.0/24, 35 ms
    _, own, _ = _rtt_weight(engine, 20, "81.2.69.50", 240.0, "alice")      # the owner's block
    assert own == pytest.approx(settings.rtt.weight * 0.3)
    _, other, codes = _rtt_weight(engine, 20, "81.2.70.50", 240.0, "bob")  # next /24 of the same network
    assert other == pytest.approx(settings.rtt.weight) and "NEW_PREFIX" in codes
