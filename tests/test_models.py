"""Bad input gets a ValidationError naming the field, at the boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from riskengine import Engine, LoginAttempt
from riskengine.testing import T0

OK = {"user_id": "u1", "timestamp": T0, "ip": "81.2.69.160"}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("ip", "999.1.1.1", "not an IPv4 or IPv6 address"),
    ("ip", "", "at least 2 characters"),
    ("timestamp", datetime(2026, 1, 1, 9), "timezone"),
    ("user_id", "", "at least 1 character"),
    ("user_agent", "A" * 10_000, "at most 2048 characters"),
    ("country", "GBR", "ISO 3166-1 alpha-2"),
    ("latitude", 91.0, "less than or equal to 90"),
    ("asn", -1, "greater than or equal to 0"),
    ("enrolled_factors", ["carrier-pigeon"], "passkey"),
])
def test_errors_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        LoginAttempt(**{**OK, field: value})
    err = info.value.errors()[0]
    assert err["loc"][0] == field
    assert message in str(info.value)


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="ip_adress"):
        LoginAttempt(**OK, ip_adress="1.2.3.4")


def test_ip_forms_are_normalised() -> None:
    assert LoginAttempt(**{**OK, "ip": " 2001:0db8:0000::1 "}).ip == "2001:db8::1"
    assert LoginAttempt(**{**OK, "ip": "::ffff:81.2.69.160"}).ip == "::ffff:5102:45a0"
    assert LoginAttempt(**{**OK, "country": "gb"}).country == "GB"


def test_ipv6_zone_ids_are_dropped_and_non_ascii_countries_rejected() -> None:
    base = {"user_id": "u", "timestamp": datetime(2026, 3, 2, 9, tzinfo=UTC)}
    assert LoginAttempt(**base, ip="fe80::1%eth0").ip == "fe80::1"
    assert LoginAttempt(**base, ip="2001:218::1%\x00").ip == "2001:218::1"  # NUL once crashed GeoIP
    for bad in ("ßa", "éé"):
        with pytest.raises(ValidationError, match="alpha-2"):
            LoginAttempt(**base, ip="81.2.69.160", country=bad)


def test_failed_password_user_ids_are_stripped_like_logins(engine: Engine) -> None:
    ts = datetime(2026, 3, 2, 9, tzinfo=UTC)
    for i in range(3):
        engine.record_failure(" alice ", "81.2.69.160", ts - timedelta(minutes=i + 1))
    d = engine.score({"user_id": " alice ", "timestamp": ts, "ip": "81.2.69.160"})
    assert "FAILED_ATTEMPTS_USER" in d.reason_codes


@pytest.mark.parametrize("bad", [0.0, -1.0, 60_000.0, float("inf"), float("nan")])
def test_rtt_must_be_a_finite_positive_time_under_a_minute(bad: float) -> None:
    from datetime import UTC, datetime

    from riskengine import LoginAttempt
    with pytest.raises(ValueError, match="rtt_ms"):
        LoginAttempt(user_id="u", timestamp=datetime(2026, 1, 1, tzinfo=UTC), ip="81.2.69.160", rtt_ms=bad)


def test_rtt_just_inside_the_bounds_is_accepted() -> None:
    from datetime import UTC, datetime

    from riskengine import LoginAttempt
    for ok in (0.001, 59_999.9):
        assert LoginAttempt(user_id="u", timestamp=datetime(2026, 1, 1, tzinfo=UTC), ip="81.2.69.160",
                            rtt_ms=ok).rtt_ms == ok
