"""Known answers from MaxMind's published test databases (../shared/data/maxmind-test)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from riskengine import Engine
from riskengine.core.enrich.geoip import GeoIP, builtin_city_db
from riskengine.testing import CHROME_WIN, T0, offline_settings


@pytest.fixture
def geo(maxmind: Callable[[str], Path]) -> GeoIP:
    return GeoIP(str(maxmind("GeoIP2-City-Test.mmdb")), str(maxmind("GeoLite2-ASN-Test.mmdb")))


def test_known_answers(geo: GeoIP) -> None:
    london, problem = geo.lookup("81.2.69.160")
    assert problem is None and london is not None
    assert (london.country, london.region, london.city) == ("GB", "England", "London")
    assert (london.latitude, london.longitude) == (51.5142, -0.0931)
    assert london.time_zone == "Europe/London"
    linkoping, _ = geo.lookup("89.160.20.112")
    assert linkoping is not None and linkoping.country == "SE" and linkoping.asn == 29518
    milton, _ = geo.lookup("216.160.83.56")
    assert milton is not None and (milton.country, milton.city, milton.asn) == ("US", "Milton", 209)
    japan, _ = geo.lookup("2001:218::1")
    assert japan is not None and japan.country == "JP"


def test_unknown_ip_is_none(geo: GeoIP) -> None:
    assert geo.lookup("8.8.8.8") == (None, None)


def test_missing_database_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    g = GeoIP(str(tmp_path / "nope.mmdb"), None)
    assert not g.available and "no such file" in g.problems[0]
    assert g.lookup("81.2.69.160")[0] is None


@pytest.mark.parametrize("name", [
    "GeoIP2-City-Test-Broken-Double-Format.mmdb",
    "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
    "MaxMind-DB-test-broken-pointers-24.mmdb",
    "MaxMind-DB-test-broken-search-tree-24.mmdb",
])
def test_corrupt_databases_never_raise(name: str, maxmind: Callable[[str], Path]) -> None:
    g = GeoIP(str(maxmind(name)), None)
    for ip in ("81.2.69.160", "1.1.1.1", "2001:218::1", "175.16.199.0"):
        info, problem = g.lookup(ip)
        assert info is None or info.country is None or len(info.country) == 2
        del problem


def test_engine_scores_through_corrupt_database(tmp_path: Path, maxmind: Callable[[str], Path]) -> None:
    bad = tmp_path / "city.mmdb"
    shutil.copy(maxmind("MaxMind-DB-test-broken-pointers-24.mmdb"), bad)
    settings = offline_settings(geo={"city_db": str(bad)})
    from riskengine import LoginAttempt

    with Engine(settings) as e:
        d = e.score(LoginAttempt(user_id="u", timestamp=T0, ip="1.1.1.1", user_agent=CHROME_WIN))
    assert d.action in ("allow", "challenge")
    assert not d.degraded


def test_engine_reports_missing_database(tmp_path: Path) -> None:
    from riskengine import LoginAttempt

    settings = offline_settings(geo={"city_db": str(tmp_path / "missing.mmdb")})
    with Engine(settings) as e:
        d = e.score(LoginAttempt(user_id="u", timestamp=T0, ip="81.2.69.160", user_agent=CHROME_WIN))
        assert e.health()["geoip_problems"]
    assert "GEOIP_UNAVAILABLE" in d.reason_codes


def test_engine_end_to_end_with_test_databases(maxmind: Callable[[str], Path]) -> None:
    from datetime import timedelta

    from riskengine import LoginAttempt

    settings = offline_settings(geo={"city_db": str(maxmind("GeoIP2-City-Test.mmdb")),
                                     "asn_db": str(maxmind("GeoLite2-ASN-Test.mmdb"))})
    with Engine(settings) as e:
        for day in range(10):
            e.score(LoginAttempt(user_id="u", timestamp=T0 + timedelta(days=day), ip="81.2.69.160",
                                 user_agent=CHROME_WIN))
        d = e.score(LoginAttempt(user_id="u", timestamp=T0 + timedelta(days=9, hours=1),
                                 ip="175.16.199.0", user_agent=CHROME_WIN))
    assert d.action == "challenge"
    assert {"NEW_COUNTRY", "IMPOSSIBLE_TRAVEL"} <= set(d.reason_codes)


def test_builtin_geolite2_resolves_real_addresses() -> None:
    path = builtin_city_db()
    assert path is not None, "maxminddb-geolite2 is a runtime dependency"
    info, _ = GeoIP("geolite2").lookup("81.2.69.160")
    assert info is not None and info.country == "GB"


@pytest.mark.parametrize("net24", ["81.27.221", "81.33.34", "81.2.69"])
def test_prefix_caches_give_the_uncached_answer_for_every_address(net24: str) -> None:
    """81.27.221.0/24 and 81.33.34.0/24 are split into /25s with different cities in the
    2018 GeoLite2-City; 81.2.69.0/24 is not. Whatever order the addresses arrive in, the
    per-/24 and per-network caches answer exactly what a cache-less lookup does."""
    db = builtin_city_db()
    if db is None:
        pytest.skip("maxminddb-geolite2 is not installed")
    cached, plain = GeoIP(db, cache_size=1024), GeoIP(db, cache_size=0)
    plain._by24_limit = 0  # no prefix cache either: every lookup decodes the record
    order = [*range(0, 256, 7), *range(255, -1, -1)]
    answers = {plain.lookup(f"{net24}.{d}") for d in range(256)}
    for d in order:
        assert cached.lookup(f"{net24}.{d}") == plain.lookup(f"{net24}.{d}")
    if net24 != "81.2.69":
        assert len({a[0].city if a[0] else None for a in answers}) > 1
