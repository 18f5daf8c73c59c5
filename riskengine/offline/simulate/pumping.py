"""SMS pumping (toll fraud) in the simulator, and every user's phone number.

- :func:`phone_for`: a valid mobile number in the user's country, the same for a user id
  and seed whatever else is drawn (a hash, not the shared random stream: adding phone
  numbers changed none of the other simulated events).
- :func:`pumping`: waves of fresh accounts, each logging in twice from hosting networks in two
  countries minutes apart (the second login is challenged: new country, impossible travel), so
  the service sends an OTP to the number on the account: premium-rate numbers, or numbers
  rotated within one mobile range of a high-termination-fee country the ring is paid for.
  The ring never enters a code. It runs on its own random stream (``[seed, 17]``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from riskengine.offline.simulate.addressing import HOSTING_ASNS, AddressPlan
from riskengine.offline.simulate.population import DEVICE_KINDS, new_device

FAMILY: Final = "sms_pumping"
PUMPED_COUNTRIES: Final = ("UZ", "KG", "TJ", "AZ")
"""High-termination-fee destinations (see ``[sms] price_per_country``)."""
ACCOUNTS_PER_WAVE: Final = 60


@dataclass(slots=True)
class PumpEvent:
    ts: float
    user_id: str
    ip: str
    ua: str
    session: int
    phone: str
    rtt: float
    """Round-trip time: the ring scripts from rented servers abroad (hosting, then a hop)."""


@lru_cache(maxsize=512)
def _template(country: str, kind: int) -> str | None:
    number = phonenumbers.example_number_for_type(country, kind)
    if number is None:
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _valid_variant(template: str, keep: int, draws: bytes) -> str:
    """``template`` with its digits after ``keep`` national digits replaced by ``draws`` (the
    first valid one of the template's number type; the template itself when none is)."""
    number = phonenumbers.parse(template, None)
    kind = phonenumbers.number_type(number)
    cc = f"+{number.country_code}"
    national = phonenumbers.national_significant_number(number)
    tail = len(national) - keep
    for i in range(0, len(draws) - tail + 1, tail):
        text = cc + national[:keep] + "".join(str(b % 10) for b in draws[i:i + tail])
        candidate = phonenumbers.parse(text, None)
        if phonenumbers.is_valid_number(candidate) and phonenumbers.number_type(candidate) == kind:
            return text
    return template


def phone_for(user_id: str, country: str, seed: int) -> str | None:
    """A valid mobile number in ``country`` for ``user_id`` (spread over the country's mobile
    ranges the way subscribers are), or None when the metadata has no mobile example.

    >>> phone_for("u0000001", "GB", 42) == phone_for("u0000001", "GB", 42)
    True
    >>> phonenumbers.region_code_for_number(phonenumbers.parse(phone_for("u1", "FR", 42), None))
    'FR'
    """
    template = _template(country, PhoneNumberType.MOBILE)
    if template is None:
        return None
    draws = hashlib.blake2b(f"{seed}:{user_id}".encode(), digest_size=64).digest()
    return _valid_variant(template, 1, draws)


def pumping(plan: AddressPlan, seed: int, start: float, end: float, session_serial: list[int],
            device_serial: list[int], waves: int) -> list[PumpEvent]:
    """``waves`` pumping waves in ``[start, end)``, ``ACCOUNTS_PER_WAVE`` fresh accounts each."""
    rng = np.random.default_rng([seed, 17])
    hosting = [i for asn in HOSTING_ASNS for i in plan.by_asn.get(asn, ())]
    events: list[PumpEvent] = []
    if not hosting or end - start < 4 * 3600:
        return events
    premium = _template("GB", PhoneNumberType.PREMIUM_RATE)
    for wave in range(waves):
        t0 = float(rng.uniform(start, end - 3 * 3600))
        country = PUMPED_COUNTRIES[int(rng.integers(len(PUMPED_COUNTRIES)))]
        mobile = _template(country, PhoneNumberType.MOBILE)
        for k in range(ACCOUNTS_PER_WAVE):
            user = f"p{wave:03d}{k:04d}"
            draws = rng.integers(0, 10, size=64, dtype=np.uint8).tobytes()
            if premium is not None and k % 4 == 0:
                phone = _valid_variant(premium, 3, draws)
            elif mobile is not None:
                phone = _valid_variant(mobile, 4, draws)  # rotating within one range
            else:
                continue
            ts = t0 + k * float(rng.uniform(20, 60))
            ua = new_device(rng, ts, 0.0, device_serial, list(DEVICE_KINDS)).ua(ts)
            first = hosting[int(rng.integers(len(hosting)))]
            elsewhere = [i for i in hosting if plan.networks[i].country != plan.networks[first].country] or hosting
            for hop, net in enumerate((first, elsewhere[int(rng.integers(len(elsewhere)))])):
                session_serial[0] += 1
                events.append(PumpEvent(ts + hop * float(rng.uniform(60, 300)), user, plan.address(net, rng), ua,
                                        session_serial[0], phone, round(float(rng.uniform(120.0, 320.0)), 1)))
    return [e for e in events if start <= e.ts < end]
