"""Impossible travel between two of the user's usual places (``geo.travel_between_usual_places``).

A VPN user alternates between home and the VPN's exit: both are places the user has logged in
from on several days, and a jump between them is not two parties at once. The threat: an
attacker who makes his own location look like one of the victim's usual places, so that his
login right after the owner's is not impossible travel. Only accepted logins (allowed, or a
verified challenge) make a place usual, so challenged attempts from the attacker's city teach
nothing and the travel keeps firing (and, with a step-up budget, keeps its floor)."""

from __future__ import annotations

from datetime import datetime, timedelta

from riskengine import Engine
from riskengine.core.decision import Decision
from riskengine.testing import EDINBURGH, LONDON, PARIS, T0, make_attempt, offline_settings

SCOTLAND_EXIT = {**EDINBURGH, "asn": 9009}  # a VPN exit 530 km from London
KIT = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0"


def _accepted(engine: Engine, ts: datetime, place: dict[str, object], ip: str) -> Decision:
    d = engine.score(make_attempt(ts=ts, place=place, ip=ip))
    if d.action == "challenge":
        engine.record_outcome(d.decision_id, "verified", channels=["sms"], timestamp=ts + timedelta(seconds=30))
    assert d.action != "deny", d
    return d


def _vpn_user(engine: Engine) -> datetime:
    """20 days at home in London at 09:00; on five evenings through a VPN exit in Edinburgh."""
    for day in range(20):
        _accepted(engine, T0 + timedelta(days=day), LONDON, "81.2.69.160")
        if day % 3 == 2 and day < 17:
            _accepted(engine, T0 + timedelta(days=day, hours=11), SCOTLAND_EXIT, "185.220.7.7")
    return T0 + timedelta(days=20)


def _jump(engine: Engine, morning: datetime, to: dict[str, object], ip: str) -> Decision:
    """The owner at home at ``morning``, then a login from ``to`` ten minutes later."""
    _accepted(engine, morning, LONDON, "81.2.69.160")
    return engine.score(make_attempt(ts=morning + timedelta(minutes=10), place=to, ip=ip))


def test_home_to_the_vpn_exit_is_not_impossible_travel_when_on() -> None:
    on = Engine(offline_settings(geo={"travel_between_usual_places": True}))
    off = Engine(offline_settings(geo={"travel_between_usual_places": False}))
    for engine in (on, off):
        morning = _vpn_user(engine)
        d = _jump(engine, morning, SCOTLAND_EXIT, "185.220.7.8")
        assert ("IMPOSSIBLE_TRAVEL" in d.reason_codes) == (engine is off), d


def test_challenged_attempts_from_the_attackers_city_do_not_make_it_usual() -> None:
    engine = Engine(offline_settings(geo={"travel_between_usual_places": True}))
    morning = _vpn_user(engine)
    # the attacker tries from Paris on five days with his own device: challenged, never verified
    for day in range(5):
        ts = morning - timedelta(days=5 - day, hours=-4)
        d = engine.score(make_attempt(ts=ts, place=PARIS, ip="198.51.100.7", ua=KIT))
        assert d.action in ("challenge", "deny")
        if d.action == "challenge":
            engine.record_outcome(d.decision_id, "failed", channels=["sms"], timestamp=ts + timedelta(seconds=30))
    d = _jump(engine, morning, PARIS, "198.51.100.8")
    assert "IMPOSSIBLE_TRAVEL" in d.reason_codes and d.action != "allow"
