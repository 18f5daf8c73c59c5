"""Bad input gets a ValidationError naming the field, at the boundary."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from riskengine import LoginAttempt
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
