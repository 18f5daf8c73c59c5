"""Engine behaviour beyond the golden cases: learning, outcomes, factors, experiments, audit rows."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from riskengine import Engine, LoginAttempt, UnknownDecisionError, assign_variant
from riskengine.audit.base import MemorySink
from riskengine.testing import (
    CHROME_WIN,
    FIREFOX_MAC,
    IPHONE,
    PARIS,
    T0,
    establish,
    make_attempt,
    offline_settings,
)


def test_failed_challenge_does_not_teach_the_profile(engine: Engine) -> None:
    last = establish(engine)
    ts = last + timedelta(days=1)
    d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
    engine.record_outcome(d.decision_id, "failed", channels=["sms"], timestamp=ts)
    assert engine.score(make_attempt(ts=ts + timedelta(hours=1), ua=FIREFOX_MAC)).action == "challenge"


def test_verified_challenge_teaches_the_profile(engine: Engine) -> None:
    last = establish(engine)
    ts = last + timedelta(days=1)
    d = engine.score(make_attempt(ts=ts, place=PARIS))
    engine.record_outcome(d.decision_id, "verified", channels=["whatsapp"], timestamp=ts)
    again = engine.score(make_attempt(ts=ts + timedelta(days=2), place=PARIS))
    assert again.action == "allow"


def test_verified_challenge_clears_failed_passwords(engine: Engine) -> None:
    last = establish(engine)
    ts = last + timedelta(days=1)
    for i in range(3):
        engine.record_failure("alice", "81.2.69.160", ts - timedelta(minutes=i + 1))
    d = engine.score(make_attempt(ts=ts))
    assert d.action == "challenge"
    engine.record_outcome(d.decision_id, "verified", timestamp=ts + timedelta(seconds=30))
    assert engine.score(make_attempt(ts=ts + timedelta(minutes=2))).action == "allow"


def test_record_failure_takes_its_time_as_ts_or_timestamp_but_not_both(engine: Engine) -> None:
    ts = T0 + timedelta(days=3)
    assert engine.record_failure("bob", "81.2.69.160", ts=ts) == 1  # DESIGN.md's name
    assert engine.record_failure("bob", "81.2.69.160", timestamp=ts + timedelta(minutes=1)) == 2
    assert engine.record_failure("bob", "81.2.69.160", ts + timedelta(minutes=2)) == 3
    with pytest.raises(TypeError, match="once"):
        engine.record_failure("bob", "81.2.69.160", ts, timestamp=ts)
    with pytest.raises(TypeError, match="once"):
        engine.record_failure("bob", "81.2.69.160")
    assert engine.store.snapshot("bob", "81.2.69.160", (ts - timedelta(minutes=1)).timestamp()).user_failures == 3


def test_outcome_for_unknown_decision_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(UnknownDecisionError, match="not a pending challenge"):
        engine.record_outcome("nope", "verified")
    last = establish(engine, days=5)
    allowed = engine.score(make_attempt(ts=last + timedelta(days=1)))
    with pytest.raises(UnknownDecisionError):
        engine.record_outcome(allowed.decision_id, "verified")


def test_outcome_is_one_shot_and_validated(engine: Engine) -> None:
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), ua=FIREFOX_MAC))
    with pytest.raises(ValidationError, match="outcome"):
        engine.record_outcome(d.decision_id, "maybe")  # type: ignore[arg-type]
    engine.record_outcome(d.decision_id, "abandoned", timestamp=last + timedelta(days=1))
    with pytest.raises(UnknownDecisionError):
        engine.record_outcome(d.decision_id, "verified", timestamp=last + timedelta(days=1))


def test_expired_challenge_is_unknown(engine: Engine) -> None:
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), ua=FIREFOX_MAC))
    with pytest.raises(UnknownDecisionError, match="expired"):
        engine.record_outcome(d.decision_id, "verified", timestamp=last + timedelta(days=1, hours=1))


def test_factor_is_strongest_enrolled_never_sms_when_stronger_exists(engine: Engine) -> None:
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), place=PARIS, ua=IPHONE,
                                  enrolled_factors=["sms", "voice", "totp"]))
    assert d.action == "challenge" and d.factor == "totp"
    d2 = engine.score(make_attempt(ts=last + timedelta(days=1), place=PARIS, ua=IPHONE,
                                   enrolled_factors=["voice", "sms"]))
    assert d2.factor == "sms"
    allow = engine.score(make_attempt(ts=last + timedelta(days=1, minutes=5)))
    assert allow.factor is None


def test_decision_and_challenge_rows_are_audited(sink: MemorySink, engine: Engine) -> None:
    last = establish(engine, days=3)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), ua=FIREFOX_MAC, session_id="s"))
    engine.record_outcome(d.decision_id, "verified", channels=["whatsapp", "sms"], attempts=2,
                          seconds_to_verify=41.5, timestamp=last + timedelta(days=1, minutes=1))
    rows = sink.rows("decisions")
    assert len(rows) == 4
    row = rows[-1]
    assert row["action"] == "challenge" and row["reasons"] == ["NEW_DEVICE"]
    assert row["user_key"] != "alice" and len(row["user_key"]) == 16
    assert row["ip_prefix"] == "81.2.69.0/24"
    assert row["browser_family"] == "Firefox" and row["device_type"] == "pc"
    (ch,) = sink.rows("challenges")
    assert ch["decision_id"] == d.decision_id and ch["fallback_used"] is True
    assert (ch["final_channel"], ch["outcome"], ch["attempts"]) == ("sms", "verified", 2)
    assert ch["user_key"] == row["user_key"]
    # the challenge row carries the decision's segment so breakdowns need no join
    assert (ch["device_type"], ch["reasons"], ch["policy_version"]) == ("pc", ["NEW_DEVICE"], "rules-v1")


def test_assignment_is_deterministic_and_balanced(engine: Engine, sink: MemorySink) -> None:
    weights = {"progressive": 0.5, "mfa_at_signup": 0.5}
    variants = [assign_variant("signup_2fa", f"user-{i}", weights) for i in range(4000)]
    share = variants.count("progressive") / len(variants)
    assert 0.46 < share < 0.54
    assert variants == [assign_variant("signup_2fa", f"user-{i}", weights) for i in range(4000)]
    assert engine.assign("signup_2fa", "user-7", weights, timestamp=T0) == variants[7]
    engine.record_conversion("signup_2fa", "user-7", timestamp=T0 + timedelta(minutes=3))
    assert sink.rows("exposures")[0]["variant"] == variants[7]
    assert sink.rows("conversions")[0]["experiment"] == "signup_2fa"
    with pytest.raises(ValueError, match="weights"):
        engine.assign("x", "u", {})


def test_score_is_thread_safe_and_counts_every_call() -> None:
    sink = MemorySink()
    with Engine(offline_settings(), sink=sink) as e:
        def worker(n: int) -> None:
            for i in range(200):
                e.score(make_attempt(user_id=f"u{n}-{i % 10}", ts=T0 + timedelta(minutes=i)))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert e.health()["scored"] == 1600
        assert len(sink.rows("decisions")) == 1600
        assert len(e.store.user_ids(limit=1000)) == 80


def _rba_like(ts: datetime, ip: str, country: str, region: str | None, city: str | None) -> LoginAttempt:
    """Geo as an RBA file or a CDN header gives it: names, no coordinates, no time zone."""
    return LoginAttempt(user_id="rba-user", timestamp=ts, ip=ip, user_agent=CHROME_WIN,
                        country=country, region=region, city=city, asn=2856)


def test_supplied_geo_without_coordinates_gets_them_from_geoip_where_it_agrees(
        maxmind: Callable[[str], Path]) -> None:
    settings = offline_settings(geo={"city_db": str(maxmind("GeoIP2-City-Test.mmdb"))})
    with Engine(settings, sink=MemorySink()) as engine:
        ts = T0
        for day in range(10):
            ts = T0 + timedelta(days=day)
            assert engine.score(_rba_like(ts, "81.2.69.160", "GB", "England", "London")).action == "allow"
        # the test database puts 175.16.199.0 in Changchun: 8,000 km in an hour
        far = engine.score(_rba_like(ts + timedelta(hours=1), "175.16.199.0", "CN", "Jilin Sheng", "Changchun"))
        assert "IMPOSSIBLE_TRAVEL" in far.reason_codes
        # the caller names another city than GeoIP's: no coordinates, so no travel claim
        elsewhere = engine.score(_rba_like(ts + timedelta(hours=1), "175.16.199.0", "CN", "Jilin Sheng", "Jilin"))
        assert "IMPOSSIBLE_TRAVEL" not in elsewhere.reason_codes
        assert "NEW_COUNTRY" in elsewhere.reason_codes
        # the given columns are never replaced: a country GeoIP disagrees with stays as given
        mismatch = engine.score(_rba_like(ts + timedelta(hours=2), "175.16.199.0", "JP", None, None))
        assert "IMPOSSIBLE_TRAVEL" not in mismatch.reason_codes
        assert engine.store.get("rba-user").last_lat == pytest.approx(51.5142)  # London, learned


def test_supplied_coordinates_are_used_as_given(maxmind: Callable[[str], Path]) -> None:
    settings = offline_settings(geo={"city_db": str(maxmind("GeoIP2-City-Test.mmdb"))})
    with Engine(settings, sink=MemorySink()) as engine:
        attempt = make_attempt(user_id="given", ip="175.16.199.0", place={**PARIS, "country": "CN"})
        engine.score(attempt)
        profile = engine.store.get("given")
        assert profile is not None and (profile.last_lat, profile.last_lon) == (PARIS["latitude"], PARIS["longitude"])


def test_a_time_zone_folder_name_from_the_caller_scores_by_the_country(engine: Engine) -> None:
    # "Europe" is a folder of the zone database: reading it used to raise IsADirectoryError
    d = engine.score(make_attempt(user_id="tz", place={**PARIS, "time_zone": "Europe"}))
    assert d.action == "allow" and not d.degraded
