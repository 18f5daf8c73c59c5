"""Pydantic models at the boundary: untrusted input from the auth service."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, NamedTuple

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from riskengine.core.decision import Channel, Event, Factor, Outcome
from riskengine.core.identity import normalize_user_id

MAX_USER_AGENT_LENGTH = 2048
"""Real user agents stay under ~600 characters; anything past 2 kB is an attack or a bug."""
MAX_ID_LENGTH = 256
"""User, device and session ids."""
MAX_PLACE_LENGTH = 128
"""Region and city names."""
MAX_ASN = 4_294_967_295
MAX_RTT_MS = 60_000.0
"""Round-trip times are in (0, 60 s): anything else is a measuring bug, not a network."""
MAX_DEVICE_TOKEN_LENGTH = 4096
"""A cookie's size limit: anything a client can send. A token that is not one of ours is
scored as ``DEVICE_TOKEN_INVALID`` rather than rejected, so a hostile cookie can never turn
into an exception in the caller's login flow."""


def _blank_to_none(value: str | None) -> str | None:
    return value if value else None


@lru_cache(maxsize=65536)
def _normalise_ip(value: str) -> str:
    """Validate and normalise an address (cached: the same addresses log in again and again)."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"not an IPv4 or IPv6 address: {value[:64]!r}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        # "fe80::1%eth0": the zone names an interface of the host that saw the address, which
        # says nothing about the client (and GeoIP readers reject it): dropped
        address = ipaddress.IPv6Address(int(address))
    return address.compressed


def _upper_country(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) != 2 or not (value.isascii() and value.isalpha()):
        raise ValueError(f"country must be an ISO 3166-1 alpha-2 code, got {value[:16]!r}")
    return value.upper()


EARLIEST_TIME = datetime(1970, 1, 2, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)


def _sane_time(value: datetime) -> datetime:
    """Reject times the engine cannot do arithmetic on (year 1 at UTC+14 overflows; pre-1970
    epoch seconds go negative and would compare as "trusted until" 0)."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp out of range") from None
    if not EARLIEST_TIME <= utc < LATEST_TIME:
        raise ValueError(f"timestamp must be between 1970-01-02 and 2200-01-01 UTC, got {utc.isoformat()}")
    return value


def _some_user(value: str) -> str:
    """Refuse an id that is empty in its comparison form: pydantic strips Unicode white space,
    Python's ``str.strip`` (which the engine's normalisation uses) also strips the separators
    U+001C..U+001F, so ``"\x1d"`` passed the model and failed inside ``score()``."""
    if not normalize_user_id(value):
        raise ValueError(f"user_id {value[:32]!r} is empty once white space and separators are stripped")
    return value


Timestamp = Annotated[AwareDatetime, AfterValidator(_sane_time)]
UserId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(_some_user)]
IPAddressStr = Annotated[str, Field(min_length=2, max_length=64), AfterValidator(_normalise_ip)]
CountryCode = Annotated[str | None, AfterValidator(_upper_country)]


class LoginAttempt(BaseModel):
    """A login whose password has already been checked, as the auth service saw it.

    >>> from datetime import datetime, timezone
    >>> a = LoginAttempt(user_id="u1", timestamp=datetime(2026, 1, 5, 9, tzinfo=timezone.utc),
    ...                  ip="81.2.69.160", user_agent="Mozilla/5.0")
    >>> a.ip
    '81.2.69.160'
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    user_id: UserId
    timestamp: Timestamp
    ip: IPAddressStr
    user_agent: str = Field(default="", max_length=MAX_USER_AGENT_LENGTH)
    device_id: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    country: CountryCode = None
    region: str | None = Field(default=None, max_length=MAX_PLACE_LENGTH)
    city: str | None = Field(default=None, max_length=MAX_PLACE_LENGTH)
    asn: int | None = Field(default=None, ge=0, le=MAX_ASN)
    latitude: float | None = Field(default=None, ge=-90.0, le=90.0)
    longitude: float | None = Field(default=None, ge=-180.0, le=180.0)
    time_zone: str | None = Field(default=None, max_length=64)
    enrolled_factors: tuple[Factor, ...] = ()
    session_id: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    device_token: Annotated[str | None, AfterValidator(_blank_to_none)] = Field(
        default=None, max_length=MAX_DEVICE_TOKEN_LENGTH)
    """The device token ``Engine.record_outcome(..., trust_device=True)`` returned for this
    user's device, as the client presented it (a cookie). Only a valid one makes a device
    trusted; a forged, foreign, expired or revoked one adds ``DEVICE_TOKEN_INVALID``."""
    rtt_ms: float | None = Field(default=None, gt=0.0, lt=MAX_RTT_MS, allow_inf_nan=False)
    """Round-trip time of the client's connection as the login server measured it (ms), when
    it does: the ``RTT_ANOMALY`` signal compares it with the user's band on this network."""
    event: Event = "login"
    """What the user is doing: ``"login"``, or a sensitive event (``"recovery"``,
    ``"factor_change"``, ``"password_reset"``) scored against the same profile under its own
    stricter section ``policy.events.<event>``. A sensitive event never teaches the profile
    (docs/signals.md, "Sensitive events"). Anything else is a ``ValidationError`` naming it."""


class ValidatedAttempt(NamedTuple):
    """The fields of a :class:`LoginAttempt` that a caller has already validated in bulk.

    ``riskengine replay`` checks whole input columns against the same rules (the limits
    above, :func:`normalise_ip`, aware timestamps in range) and then scores plain tuples:
    building a pydantic model per row cost more than the rest of the replay loop. Only
    :meth:`Engine.score_validated` takes these; everything else goes through ``score()``.
    """

    user_id: str
    timestamp: datetime
    ip: str
    user_agent: str = ""
    device_id: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    asn: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    time_zone: str | None = None
    enrolled_factors: tuple[Factor, ...] = ()
    session_id: str | None = None
    device_token: str | None = None
    rtt_ms: float | None = None
    event: Event = "login"


Attempt = LoginAttempt | ValidatedAttempt
"""What the engine's scoring path reads: a validated model or a bulk-validated tuple."""


def normalise_ip(value: str) -> str:
    """The address in canonical form; ``ValueError`` naming it when it is not one."""
    return _normalise_ip(value)


class ChallengeOutcome(BaseModel):
    """What happened to a challenge, as reported through `Engine.record_outcome`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: str = Field(min_length=1, max_length=128)
    outcome: Outcome
    channels: tuple[Channel, ...] = ()
    attempts: int = Field(default=1, ge=0, le=1000)
    trust_device: bool = False
    seconds_to_verify: float | None = Field(default=None, ge=0.0)
    timestamp: Timestamp | None = None


class FailedPassword(BaseModel):
    """A failed password check, reported through `Engine.record_failure`."""

    # stripped as LoginAttempt strips them: " alice " fails and logs in as "alice"
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    user_id: UserId
    ip: IPAddressStr
    timestamp: Timestamp


def utc_seconds(ts: datetime) -> float:
    """Seconds since the epoch of an aware datetime."""
    return ts.timestamp()
