"""``Engine.record_signup``: the signup session as the account's first history.

It teaches what an allowed login from the same session teaches (the same lesson), except that
it is not a login: ``logins`` does not count it (cold start and "established" are unchanged),
it never feeds the population prior, and ``signup_at`` records it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from riskengine import Engine, UserProfile
from riskengine.audit.base import MemorySink
from riskengine.core.profile import DeviceSeen
from riskengine.testing import CHANGCHUN, EDINBURGH, FIREFOX_MAC, IPHONE, LONDON, T0, make_attempt, offline_settings

SESSION = {"device_id": "owner-phone", "rtt_ms": 38.0}


def _seeded(**sections: dict[str, object]) -> tuple[Engine, UserProfile]:
    engine = Engine(offline_settings(**sections), sink=MemorySink())
    assert engine.record_signup(make_attempt(**SESSION)) is True
    p = engine.store.get("alice")
    assert p is not None
    return engine, p


def test_a_signup_teaches_what_an_allowed_first_login_teaches_but_is_not_a_login() -> None:
    engine, seeded = _seeded()
    with Engine(offline_settings()) as other:
        d = other.score(make_attempt(**SESSION))
        assert d.action == "allow"
        login = other.store.get("alice")
    assert login is not None and login.logins == 1
    assert seeded.logins == 0 and seeded.signup_at == int(T0.timestamp())
    # … except the last login's time and place: a signup is no reference for impossible travel
    assert seeded._replace(signup_at=0) == login._replace(logins=0, last_ts=0, last_lat=None, last_lon=None)
    assert seeded.samples == 1 and not seeded.blank and UserProfile().blank
    engine.close()


def test_a_mapping_is_validated_at_the_boundary_as_score_does() -> None:
    with Engine(offline_settings()) as engine:
        with pytest.raises(ValueError, match="timezone"):
            engine.record_signup({"user_id": "alice", "timestamp": T0.replace(tzinfo=None), "ip": "81.2.69.160"})
        with pytest.raises(ValueError, match="ip"):
            engine.record_signup({"user_id": "alice", "timestamp": T0, "ip": "999.1.1.1"})
        assert engine.store.get("alice") is None
        assert engine.record_signup({"user_id": "alice", "timestamp": T0, "ip": "81.2.69.160", **LONDON}) is True


def test_the_owners_first_login_from_the_signup_session_is_familiar() -> None:
    engine, _ = _seeded()
    d = engine.score(make_attempt(ts=T0 + timedelta(minutes=3), **SESSION))
    assert d.reason_codes == ("COLD_START",) and d.action == "allow"
    engine.close()


def test_an_attackers_first_login_elsewhere_is_novel() -> None:
    """The cold victim of session 8: without the seed the attacker's login is the profile's
    first, ``NEW_DEVICE`` (cold-scaled) + ``COLD_START`` = 0.3475, allowed. With it, a new
    region and network and a place far from the owner's say so."""
    attacker = make_attempt(ts=T0 + timedelta(days=2), place=EDINBURGH | {"asn": 64512}, ip="198.51.100.7",
                            ua=FIREFOX_MAC, device_id="attacker-laptop")
    with Engine(offline_settings()) as cold:
        d = cold.score(attacker)
        assert d.action == "allow" and d.risk == pytest.approx(0.3475)
    engine, _ = _seeded()
    d = engine.score(attacker)
    assert {"NEW_DEVICE", "NEW_REGION", "NEW_ASN", "COLD_START"} <= set(d.reason_codes)
    assert d.action == "challenge"
    engine.close()


def test_the_signup_is_no_reference_for_impossible_travel() -> None:
    """A signup in London, the owner's first login 10 minutes later from Edinburgh (an app on a
    carrier network that geolocates elsewhere): the new region is evidence, impossible travel
    is not — the signup was not a login, and its position is not the last login's."""
    engine, seeded = _seeded()
    assert seeded.last_ts == 0 and seeded.last_lat is None
    d = engine.score(make_attempt(ts=T0 + timedelta(minutes=10), place=EDINBURGH, **SESSION))
    assert "NEW_REGION" in d.reason_codes and "IMPOSSIBLE_TRAVEL" not in d.reason_codes
    p = engine.store.get("alice")
    assert p is not None and p.last_lat == EDINBURGH["latitude"]  # the login is the reference from now on
    d = engine.score(make_attempt(ts=T0 + timedelta(minutes=20), place=CHANGCHUN, ip="1.2.3.4", **SESSION))
    assert "IMPOSSIBLE_TRAVEL" in d.reason_codes
    engine.close()


def test_the_signup_counts_for_novelty_never_for_cold_start_or_established() -> None:
    engine, _ = _seeded()
    cold_min = engine.settings.coldstart.min_logins
    for k in range(cold_min + 1):
        d = engine.score(make_attempt(ts=T0 + timedelta(days=k + 1), **SESSION))
        # the signup is not one of the logins that end cold start
        assert ("COLD_START" in d.reason_codes) == (k < cold_min), k
    p = engine.store.get("alice")
    assert p is not None and p.logins == cold_min + 1 and p.samples == cold_min + 2
    engine.close()


def test_a_signup_never_feeds_the_population_prior() -> None:
    engine, _ = _seeded()
    engine.record_signup(make_attempt("bob", place=CHANGCHUN, ip="1.2.3.4"))
    engine.flush()
    assert engine._population_counts() == {}
    engine.close()


def test_habit_weighting_counts_the_signup_as_one_sample() -> None:
    """``habitual`` reads ``distinct / (samples + 1)``: after a signup and one login from two
    networks, a third network is weighed as for a user with two logins from two."""
    engine, _ = _seeded()
    engine.score(make_attempt(ts=T0 + timedelta(days=1), place=LONDON | {"asn": 5089}, ip="81.2.70.1", **SESSION))
    d = engine.score(make_attempt(ts=T0 + timedelta(days=2), place=LONDON | {"asn": 64512}, ip="81.2.71.1",
                                  **SESSION))
    with Engine(offline_settings()) as twice:
        twice.score(make_attempt(**SESSION))
        twice.score(make_attempt(ts=T0 + timedelta(days=1), place=LONDON | {"asn": 5089}, ip="81.2.70.1", **SESSION))
        e = twice.score(make_attempt(ts=T0 + timedelta(days=2), place=LONDON | {"asn": 64512}, ip="81.2.71.1",
                                     **SESSION))
    # two logins (not yet established): COLD_START on one side, the third login on the other
    new_asn = next(r for r in d.reasons if r.code == "NEW_ASN")
    assert new_asn.detail == next(r for r in e.reasons if r.code == "NEW_ASN").detail
    engine.close()


def test_profile_round_trips_the_signup_and_older_readers_data_loads() -> None:
    _, p = _seeded()
    raw = p.to_bytes()
    assert UserProfile.from_bytes(raw) == p
    doc = json.loads(raw)
    assert doc["su"] == p.signup_at and doc["n"] == 0
    # a profile written before the field (no "su") loads as never seeded
    del doc["su"]
    assert UserProfile.from_json(doc).signup_at == 0
    # no signup: no key (a profile without one stays as small as before)
    assert "su" not in UserProfile().learned(now=1, device_key="d", country="GB", region=None, asn=None,
                                             latitude=None, longitude=None, local_hour=None).to_json()


def test_merge_keeps_the_earliest_signup() -> None:
    a = UserProfile(signup_at=200, devices={"d": DeviceSeen(200, 200, 1)})
    b = UserProfile(signup_at=100, logins=2)
    assert a.merge(b).signup_at == b.merge(a).signup_at == 100
    assert a.merge(UserProfile()).signup_at == 200


def test_the_summary_and_the_audit_show_the_seed() -> None:
    engine, p = _seeded()
    summary = engine.user_summary("alice", now=T0 + timedelta(hours=1))
    assert summary["known"] is True and summary["logins"] == 0
    assert summary["signup_at"] == T0.isoformat()
    assert isinstance(engine.sink, MemorySink)
    (row,) = engine.sink.rows("admin")
    assert row["operation"] == "signup" and row["actor"] == "record_signup"
    assert row["user_key"] == engine.pseudonymizer.user("alice")
    assert row["device_key"] == next(iter(p.devices))
    assert "country GB, region England, AS 2856" in row["note"]
    assert engine.sink.rows("decisions") == []  # not a decision
    assert engine.health()["scored"] == 0
    engine.close()


def test_a_signup_from_an_iphone_learns_its_ua_version() -> None:
    engine = Engine(offline_settings(), sink=MemorySink())
    assert engine.record_signup(make_attempt(ua=IPHONE))
    p = engine.store.get("alice")
    assert p is not None and p.ua_newest.get("o:iOS") == "17.1"
    engine.close()
