"""Destination parsing and number types, on phonenumbers' own documented example numbers."""

from __future__ import annotations

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from riskengine.core.sms import MAX_DESTINATION_CHARS, InvalidDestination, parse_destination


def example(region: str, kind: int) -> str:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None, (region, kind)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize(("region", "kind", "name"), [
    ("GB", PhoneNumberType.MOBILE, "mobile"),
    ("GB", PhoneNumberType.PREMIUM_RATE, "premium_rate"),
    ("GB", PhoneNumberType.UAN, "uan"),
    ("GB", PhoneNumberType.TOLL_FREE, "toll_free"),
    ("FR", PhoneNumberType.SHARED_COST, "shared_cost"),
    ("US", PhoneNumberType.PREMIUM_RATE, "premium_rate"),
    ("DE", PhoneNumberType.MOBILE, "mobile"),
])
def test_example_numbers_keep_country_prefix_and_type(region: str, kind: int, name: str) -> None:
    number = example(region, kind)
    dest = parse_destination(number, 4)
    assert dest.country == region
    assert dest.number_type == name
    cc = str(phonenumbers.country_code_for_region(region))
    national = number[1 + len(cc):]
    assert dest.prefix == f"+{cc}{national[:4]}"
    assert number not in dest.prefix or len(national) <= 4  # never the full number


@pytest.mark.parametrize("digits", [1, 4, 8])
def test_prefix_keeps_the_configured_number_of_national_digits(digits: int) -> None:
    assert parse_destination("+44 7400 123456", digits).prefix == "+44" + "7400123456"[:digits]


def test_formatting_is_normalised() -> None:
    assert parse_destination(" +44 (0)7400-123 456 ", 4) == parse_destination("+447400123456", 4)


@pytest.mark.parametrize(("text", "why"), [
    ("+447700900123", "assigned range"),  # Ofcom's drama range: fictional, never assigned
    ("07400123456", "international form"),  # no country code
    ("+44", "not a phone number"),
    ("+4470", "assigned range"),
    ("+999 1234567", "not a phone number"),  # no such country code
    ("hello", "international form"),
    ("+" + "1" * MAX_DESTINATION_CHARS, "more than"),
])
def test_invalid_destinations_are_rejected_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidDestination, match=why) as info:
        parse_destination(text, 4)
    assert text.strip("+") not in str(info.value) or len(text) < 5  # the error never repeats the number


def test_a_non_string_is_rejected() -> None:
    with pytest.raises(InvalidDestination, match="string"):
        parse_destination(447400123456, 4)  # type: ignore[arg-type]
