from __future__ import annotations

from datetime import timedelta

import pytest

from riskengine import Engine
from riskengine.audit.base import NullSink
from riskengine.core.signals.population import rare_country_for_service
from riskengine.testing import CHANGCHUN, LONDON, PARIS, T0, make_attempt, offline_settings


def service_with_history(min_logins: int = 50) -> Engine:
    engine = Engine(offline_settings(geo={"rare_country_min_logins": min_logins}), sink=NullSink())
    for i in range(240):  # 240 logins of 40 members: GB 200, FR 40
        place = PARIS if i % 6 == 0 else LONDON
        ts = T0 + timedelta(hours=i)
        d = engine.score(make_attempt(user_id=f"member-{i % 40}", ts=ts, place=place))
        if d.action == "challenge":  # first trips to Paris: the members pass the challenge
            engine.record_outcome(d.decision_id, "verified", timestamp=ts + timedelta(minutes=1))
    # only established members' accepted logins count (the first 3 of each member do not: the
    # logins at hours 120..239), each decayed by the 30-day half-life to hour 240
    decayed = sum(0.5 ** ((240 - hour) / (30 * 24)) for hour in range(120, 240))
    assert engine.population_logins(T0 + timedelta(hours=240)) == pytest.approx(decayed, rel=1e-9)
    return engine


def test_new_user_from_a_country_the_service_never_sees_is_stepped_up() -> None:
    with service_with_history() as e:
        d = e.score(make_attempt(user_id="fresh", ts=T0 + timedelta(days=10), place=CHANGCHUN))
    assert d.action == "challenge"
    assert d.reason_codes[0] == "RARE_COUNTRY_FOR_SERVICE"


def test_new_user_from_a_common_country_is_not() -> None:
    with service_with_history() as e:
        d = e.score(make_attempt(user_id="fresh", ts=T0 + timedelta(days=10), place=PARIS))
    assert d.action == "allow" and "RARE_COUNTRY_FOR_SERVICE" not in d.reason_codes


def test_quiet_until_the_service_has_enough_history_and_never_for_users_with_history() -> None:
    with service_with_history(min_logins=1000) as e:
        d = e.score(make_attempt(user_id="fresh", ts=T0 + timedelta(days=10), place=CHANGCHUN))
        assert "RARE_COUNTRY_FOR_SERVICE" not in d.reason_codes
    with service_with_history() as e:
        # an established member travelling there: NEW_COUNTRY speaks, the population prior does not
        d = e.score(make_attempt(user_id="member-1", ts=T0 + timedelta(days=10), place=CHANGCHUN))
        assert "NEW_COUNTRY" in d.reason_codes and "RARE_COUNTRY_FOR_SERVICE" not in d.reason_codes


def test_the_prior_decays_and_cold_accounts_never_feed_it() -> None:
    with service_with_history() as e:
        now = T0 + timedelta(hours=240)
        weight = e.population_logins(now)
        for i in range(200):  # a wave of fresh accounts: allowed (cold start), never counted
            e.score(make_attempt(user_id=f"fresh-{i}", ts=now, place=CHANGCHUN))
        assert e.population_logins(now) == pytest.approx(weight, rel=1e-12)
        # one half-life later the same logins weigh half
        assert e.population_logins(now + timedelta(days=30)) == pytest.approx(weight / 2, rel=1e-9)


def test_two_engines_on_one_store_share_the_prior() -> None:
    with service_with_history() as first:
        second = Engine(offline_settings(geo={"rare_country_min_logins": 50}), store=first.store,
                        sink=NullSink())
        d = second.score(make_attempt(user_id="fresh", ts=T0 + timedelta(days=10), place=CHANGCHUN))
        assert d.reason_codes[0] == "RARE_COUNTRY_FOR_SERVICE"  # learnt by the other engine


def test_rare_country_boundaries_at_the_configured_minimum_and_share() -> None:
    rare = 0.005
    counts = {"GB": 996.0, "VN": 4.0}  # VN: 0.40 %, under the share
    fired = rare_country_for_service("VN", counts, 1000.0, 1000.0, rare)  # exactly the minimum total
    assert (fired.value, fired.detail) == (
        1.0, "VN is 0.40% of this service's logins and the user has no history")
    assert rare_country_for_service("VN", counts, 1000.0, 1000.5, rare).value == 0.0  # just under it
    # exactly at the rare share is common enough; a hair under is rare
    assert rare_country_for_service("VN", {"GB": 995.0, "VN": 5.0}, 1000.0, 500.0, rare).value == 0.0
    assert rare_country_for_service("VN", {"GB": 995.01, "VN": 4.99}, 1000.0, 500.0, rare).value == 1.0
    # a country nobody has logged in from has share 0, however small the total
    assert rare_country_for_service("KP", {"GB": 100.0}, 100.0, 100.0, rare).value == 1.0
