from __future__ import annotations

from datetime import timedelta

from riskengine import Engine
from riskengine.audit.base import NullSink
from riskengine.testing import CHANGCHUN, LONDON, PARIS, T0, make_attempt, offline_settings


def service_with_history(min_logins: int = 50) -> Engine:
    engine = Engine(offline_settings(geo={"rare_country_min_logins": min_logins}), sink=NullSink())
    for i in range(120):  # 120 accepted logins: GB 100, FR 20
        place = PARIS if i % 6 == 0 else LONDON
        engine.score(make_attempt(user_id=f"member-{i % 40}", ts=T0 + timedelta(hours=i), place=place))
    assert engine.population.total >= 60  # the accepted ones (a few first trips to Paris were challenged)
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
