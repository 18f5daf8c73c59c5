"""SMS pumping (toll fraud) defence: what ``Engine.check_send`` decides before an OTP send.

Pure: a destination in, its country / prefix / number type out (:func:`parse_destination`,
over ``phonenumbers``' metadata, the maintained port of libphonenumber); counts and the
user's profile in, a :class:`SendDecision` out (:func:`judge_send`). The engine does the
store I/O and the audit row.

Only the destination's country and its **prefix** (country calling code + the first
``sms.prefix_digits`` digits of the national number: the carrier's number range) leave this
module; the full number is never stored or logged.

>>> d = parse_destination("+44 7400 123456", 4)
>>> d.country, d.prefix, d.number_type
('GB', '+447400', 'mobile')
>>> parse_destination("+44 909 879 0123", 4).number_type
'premium_rate'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from riskengine.core import reasons as R
from riskengine.core.config import SmsSettings
from riskengine.core.decision import Channel, Reason
from riskengine.core.typing import SendCounts

SendAction = Literal["allow", "block", "switch"]

BILLED_CHANNELS: Final[frozenset[str]] = frozenset({"sms", "voice", "whatsapp"})
"""Channels delivered to a phone number and billed per message: the ones ``check_send`` judges."""
MAX_DESTINATION_CHARS: Final = 64
PARSE_CACHE_SIZE: Final = 65_536
"""A longer destination is not a phone number (``phonenumbers`` itself caps input at 250)."""

_TYPE_NAMES: Final[dict[int, str]] = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
}


@dataclass(frozen=True, slots=True)
class Destination:
    """What is kept of a valid phone number: never the number itself."""

    country: str
    """ISO 3166 alpha-2 region of the number (``001`` for non-geographic numbering plans)."""
    prefix: str
    """``+`` country calling code + the first N digits of the national number."""
    number_type: str
    """``phonenumbers``' type, lower case: ``mobile``, ``premium_rate``, ``shared_cost``, …"""


@dataclass(frozen=True, slots=True)
class SendDecision:
    """``Engine.check_send``'s answer: may the OTP go to this destination over this channel?

    ``allow``: send it. ``block``: do not send anything to this destination. ``switch``: do
    not send it over this channel; offer ``suggested_channel`` (a factor nobody can bill).
    """

    action: SendAction
    reasons: tuple[Reason, ...]
    suggested_channel: str | None
    channel: str = "sms"
    country: str | None = None
    """The destination's country (None when the number is invalid or not needed)."""
    prefix: str | None = None
    number_type: str | None = None
    price: float = 0.0
    """What this send costs (``sms.price_per_country``); 0 for a channel nobody bills."""
    risk: float = 0.0

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    @property
    def degraded(self) -> bool:
        return R.ENGINE_DEGRADED in self.reason_codes


class InvalidDestination(ValueError):
    """The destination is not a valid phone number (the detail says why; never the number)."""


def parse_destination(destination: str, prefix_digits: int) -> Destination:
    """Parse an E.164 (``+`` and country code) destination and keep country, prefix and type.

    Raises :class:`InvalidDestination` for anything ``phonenumbers`` does not hold valid
    (unassigned ranges too, such as Ofcom's drama range +44 7700 900xxx).

    >>> parse_destination("+447700900123", 4)
    Traceback (most recent call last):
    ...
    riskengine.core.sms.InvalidDestination: not a valid number in any assigned range of +44
    """
    if not isinstance(destination, str):
        raise InvalidDestination(f"destination must be a string, got {type(destination).__name__}")
    if len(destination) > MAX_DESTINATION_CHARS:
        raise InvalidDestination(f"destination is {len(destination)} characters, more than {MAX_DESTINATION_CHARS}")
    found = _parsed(destination, prefix_digits)
    if isinstance(found, str):
        raise InvalidDestination(found)
    return found


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parsed(destination: str, prefix_digits: int) -> Destination | str:
    """:func:`parse_destination`'s work, cached (``phonenumbers`` takes ~0.1–0.3 ms a number and
    a user's resends and fallbacks repeat it): the destination, or why it is invalid. The
    cache holds numbers in this process's memory only; nothing of it is logged or stored."""
    text = destination.strip()
    if not text.startswith("+"):
        return "destination must be in international form (+ and country code)"
    try:
        number = phonenumbers.parse(text, None)
    except NumberParseException as exc:
        return f"not a phone number: {exc.args[0] if exc.args else exc}"
    if not phonenumbers.is_valid_number(number):
        return f"not a valid number in any assigned range of +{number.country_code}"
    region = phonenumbers.region_code_for_number(number) or "ZZ"
    national = phonenumbers.national_significant_number(number)
    kind = _TYPE_NAMES.get(phonenumbers.number_type(number), "unknown")
    return Destination(region, f"+{number.country_code}{national[:prefix_digits]}", kind)


def price_of(country: str | None, cfg: SmsSettings) -> float:
    """The configured price of one message to ``country``."""
    if country is None:
        return 0.0
    return cfg.price_per_country.get(country, cfg.default_price)


def _premium_reason(dest: Destination, cfg: SmsSettings) -> Reason | None:
    if dest.number_type not in cfg.blocked_number_types:
        return None
    return Reason(R.SMS_PREMIUM_NUMBER, cfg.premium_weight,
                  f"{dest.number_type.replace('_', '-')} number in {dest.country} ({dest.prefix}…)")


def number_check(channel: Channel, dest: Destination, cfg: SmsSettings) -> SendDecision | None:
    """The decision when the number's type alone blocks it (no store needed, so it holds in
    an outage and costs no counter), else None.

    >>> number_check("sms", Destination("GB", "+449098", "premium_rate"), SmsSettings()).action
    'block'
    >>> number_check("sms", Destination("GB", "+447400", "mobile"), SmsSettings()) is None
    True
    """
    reason = _premium_reason(dest, cfg)
    if reason is None:
        return None
    d = _decide(channel, dest, [reason], price_of(dest.country, cfg), cfg)
    return d if d.action == "block" else None


def judge_send(channel: Channel, dest: Destination, counts: SendCounts | None,
               profile_countries: Mapping[str, int] | None, profile_logins: int,
               cfg: SmsSettings) -> SendDecision:
    """The decision for a valid destination: number type, then the store's counts (None when
    the store could not count: ``sms.fail_mode``), then the user's history.

    >>> from riskengine.core.typing import SendCounts
    >>> d = judge_send("sms", Destination("GB", "+447400", "mobile"), SendCounts(1, 1, 0, 1, 1),
    ...                {"GB": 1}, 10, SmsSettings())
    >>> d.action, d.reason_codes
    ('allow', ())
    """
    reasons: list[Reason] = []
    price = price_of(dest.country, cfg)
    premium = _premium_reason(dest, cfg)
    if premium is not None:
        reasons.append(premium)
    if counts is None:
        degraded = Reason(R.ENGINE_DEGRADED, 0.0, "profile store unavailable: send counters not checked")
        if reasons:  # the number's type needs no store
            return _decide(channel, dest, [*reasons, degraded], price, cfg)
        action = cfg.fail_mode
        return SendDecision(action, (degraded,), cfg.switch_channel if action == "switch" else None, channel,
                            dest.country, dest.prefix, dest.number_type, price, 0.0)
    if counts.prefix_sends > cfg.prefix_max_sends:
        reasons.append(Reason(R.SMS_PREFIX_VELOCITY, cfg.prefix_velocity_weight,
                              f"{counts.prefix_sends} sends to {dest.prefix}… in {cfg.prefix_window_minutes:g} min "
                              f"(limit {cfg.prefix_max_sends})"))
    if counts.user_sends > cfg.user_max_sends:
        reasons.append(Reason(R.SMS_USER_VELOCITY, cfg.user_velocity_weight,
                              f"{counts.user_sends} sends for this user in {cfg.user_window_minutes:g} min "
                              f"(limit {cfg.user_max_sends})"))
    earlier = counts.ratio_sends - 1  # this send cannot have been verified yet
    if earlier >= cfg.ratio_min_sends:
        ratio = counts.ratio_verified / earlier
        if ratio < cfg.min_verify_ratio:
            reasons.append(Reason(R.SMS_LOW_VERIFY_RATIO, cfg.low_ratio_weight,
                                  f"{counts.ratio_verified} of {earlier} sends to {dest.prefix}… verified "
                                  f"({ratio:.0%} < {cfg.min_verify_ratio:.0%}) in {cfg.ratio_window_minutes:g} min"))
    if profile_countries and dest.country not in profile_countries:
        reasons.append(Reason(R.SMS_NEW_COUNTRY, cfg.new_country_weight,
                              f"destination in {dest.country}, where this user never logged in from"))
    if profile_logins < cfg.new_account_logins and counts.user_prefixes > cfg.max_prefixes_new_account:
        reasons.append(Reason(R.SMS_MANY_PREFIXES, cfg.many_prefixes_weight,
                              f"new account ({profile_logins} logins) sent to {counts.user_prefixes} prefixes "
                              f"in {cfg.user_window_minutes:g} min (limit {cfg.max_prefixes_new_account})"))
    return _decide(channel, dest, reasons, price, cfg)


def _decide(channel: Channel, dest: Destination, reasons: list[Reason], price: float,
            cfg: SmsSettings) -> SendDecision:
    keep = 1.0
    for r in reasons:
        keep *= 1.0 - r.weight
    risk = 1.0 - keep
    reasons.sort(key=lambda r: -r.weight)
    action: SendAction = "allow"
    if risk >= cfg.block_threshold and risk > 0:
        action = "block"
    elif risk >= cfg.switch_threshold and risk > 0:
        action = "switch"
    return SendDecision(action, tuple(reasons), cfg.switch_channel if action == "switch" else None, channel,
                        dest.country, dest.prefix, dest.number_type, price, round(risk, 6))


def refused(channel: Channel, code: str, detail: str, *, dest: Destination | None = None,
            price: float = 0.0) -> SendDecision:
    """A hard ``block`` (invalid number, unknown decision): no weights involved."""
    return SendDecision("block", (Reason(code, 1.0, detail),), None, channel,
                        dest.country if dest else None, dest.prefix if dest else None,
                        dest.number_type if dest else None, price, 1.0)
