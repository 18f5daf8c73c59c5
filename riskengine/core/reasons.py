"""Reason codes: stable identifiers that land in decisions, audit rows and dashboards.

Codes are part of the public contract (dashboards group by them, analysts filter on
them); add new ones, never rename.
"""

from __future__ import annotations

from typing import Final

NEW_DEVICE: Final = "NEW_DEVICE"
KNOWN_DEVICE: Final = "KNOWN_DEVICE"
TRUSTED_DEVICE: Final = "TRUSTED_DEVICE"
NEW_COUNTRY: Final = "NEW_COUNTRY"
NEW_REGION: Final = "NEW_REGION"
NEW_ASN: Final = "NEW_ASN"
HOSTING_NETWORK: Final = "HOSTING_NETWORK"
RARE_COUNTRY_FOR_SERVICE: Final = "RARE_COUNTRY_FOR_SERVICE"
IMPOSSIBLE_TRAVEL: Final = "IMPOSSIBLE_TRAVEL"
UNUSUAL_HOUR: Final = "UNUSUAL_HOUR"
FAILED_ATTEMPTS_USER: Final = "FAILED_ATTEMPTS_USER"
FAILED_ATTEMPTS_IP: Final = "FAILED_ATTEMPTS_IP"
FAILED_ATTEMPTS_EXCESSIVE: Final = "FAILED_ATTEMPTS_EXCESSIVE"
OTP_ATTEMPTS_EXCEEDED: Final = "OTP_ATTEMPTS_EXCEEDED"
COLD_START: Final = "COLD_START"
GEO_UNKNOWN: Final = "GEO_UNKNOWN"
GEOIP_UNAVAILABLE: Final = "GEOIP_UNAVAILABLE"
ENGINE_DEGRADED: Final = "ENGINE_DEGRADED"
MODEL_SCORE: Final = "MODEL_SCORE"
DEVICE_TOKEN_INVALID: Final = "DEVICE_TOKEN_INVALID"
OTP_LOCKED: Final = "OTP_LOCKED"
PROFILE_RESET: Final = "PROFILE_RESET"
NETWORK_DENYLIST: Final = "NETWORK_DENYLIST"
ANONYMOUS_PROXY: Final = "ANONYMOUS_PROXY"
NEW_UA_VERSION: Final = "NEW_UA_VERSION"
UA_DOWNGRADE: Final = "UA_DOWNGRADE"
NEW_PREFIX: Final = "NEW_PREFIX"
NEW_CITY: Final = "NEW_CITY"
FAR_FROM_USUAL_PLACES: Final = "FAR_FROM_USUAL_PLACES"
RTT_ANOMALY: Final = "RTT_ANOMALY"
DORMANT_ACCOUNT: Final = "DORMANT_ACCOUNT"
# sensitive events (LoginAttempt.event other than "login"): rules of policy.events.<event>
RECOVERY_HIGH_RISK: Final = "RECOVERY_HIGH_RISK"
UNTRUSTED_DEVICE: Final = "UNTRUSTED_DEVICE"
RECENT_NEW_DEVICE: Final = "RECENT_NEW_DEVICE"
RECENT_OTP_FAILURES: Final = "RECENT_OTP_FAILURES"
NO_HISTORY: Final = "NO_HISTORY"
# second-factor sends (``Engine.check_send``: SMS pumping / toll fraud)
SMS_INVALID_NUMBER: Final = "SMS_INVALID_NUMBER"
SMS_PREMIUM_NUMBER: Final = "SMS_PREMIUM_NUMBER"
SMS_PREFIX_VELOCITY: Final = "SMS_PREFIX_VELOCITY"
SMS_USER_VELOCITY: Final = "SMS_USER_VELOCITY"
SMS_LOW_VERIFY_RATIO: Final = "SMS_LOW_VERIFY_RATIO"
SMS_NEW_COUNTRY: Final = "SMS_NEW_COUNTRY"
SMS_MANY_PREFIXES: Final = "SMS_MANY_PREFIXES"
SMS_UNKNOWN_DECISION: Final = "SMS_UNKNOWN_DECISION"

ALL_CODES: Final[tuple[str, ...]] = (
    NEW_DEVICE,
    KNOWN_DEVICE,
    TRUSTED_DEVICE,
    NEW_COUNTRY,
    NEW_REGION,
    NEW_ASN,
    HOSTING_NETWORK,
    RARE_COUNTRY_FOR_SERVICE,
    IMPOSSIBLE_TRAVEL,
    UNUSUAL_HOUR,
    FAILED_ATTEMPTS_USER,
    FAILED_ATTEMPTS_IP,
    FAILED_ATTEMPTS_EXCESSIVE,
    OTP_ATTEMPTS_EXCEEDED,
    COLD_START,
    GEO_UNKNOWN,
    GEOIP_UNAVAILABLE,
    ENGINE_DEGRADED,
    MODEL_SCORE,
    DEVICE_TOKEN_INVALID,
    OTP_LOCKED,
    PROFILE_RESET,
    NETWORK_DENYLIST,
    ANONYMOUS_PROXY,
    NEW_UA_VERSION,
    UA_DOWNGRADE,
    NEW_PREFIX,
    NEW_CITY,
    FAR_FROM_USUAL_PLACES,
    RTT_ANOMALY,
    DORMANT_ACCOUNT,
    RECOVERY_HIGH_RISK,
    UNTRUSTED_DEVICE,
    RECENT_NEW_DEVICE,
    RECENT_OTP_FAILURES,
    NO_HISTORY,
    SMS_INVALID_NUMBER,
    SMS_PREMIUM_NUMBER,
    SMS_PREFIX_VELOCITY,
    SMS_USER_VELOCITY,
    SMS_LOW_VERIFY_RATIO,
    SMS_NEW_COUNTRY,
    SMS_MANY_PREFIXES,
    SMS_UNKNOWN_DECISION,
)

# The sensitive-event rules: each steps a non-login event up (RECOVERY_HIGH_RISK denies) and
# none is skipped by a trusted device. They never fire on a login.
EVENT_RULE_CODES: Final[frozenset[str]] = frozenset(
    {RECOVERY_HIGH_RISK, UNTRUSTED_DEVICE, RECENT_NEW_DEVICE, RECENT_OTP_FAILURES, NO_HISTORY})


SEND_CODES: Final[tuple[str, ...]] = (
    SMS_INVALID_NUMBER, SMS_PREMIUM_NUMBER, SMS_PREFIX_VELOCITY, SMS_USER_VELOCITY,
    SMS_LOW_VERIFY_RATIO, SMS_NEW_COUNTRY, SMS_MANY_PREFIXES, SMS_UNKNOWN_DECISION,
)
"""The codes a :class:`~riskengine.core.sms.SendDecision` carries (plus ``ENGINE_DEGRADED``)."""

# Codes that override a trusted device (the default of ``policy.strong_signals``): the
# trust says "this is my laptop", it does not vouch for a login from a country or region
# the user has never been in (DESIGN.md: both are strong), from another continent an hour
# later, after a password spray, with a device token that does not verify, after a
# support reset, or with a browser/OS older than the user has already run (a fixed attack
# User-Agent: a stolen token replayed by a kit, not the owner's auto-updating browser).
STRONG_CODES: Final[frozenset[str]] = frozenset(
    {NEW_COUNTRY, NEW_REGION, IMPOSSIBLE_TRAVEL, FAILED_ATTEMPTS_USER, FAILED_ATTEMPTS_IP,
     FAILED_ATTEMPTS_EXCESSIVE, OTP_ATTEMPTS_EXCEEDED, OTP_LOCKED, DEVICE_TOKEN_INVALID,
     PROFILE_RESET, UA_DOWNGRADE}
)

BUDGET_FLOOR_CODES: Final[frozenset[str]] = frozenset(
    {NEW_COUNTRY, IMPOSSIBLE_TRAVEL, FAILED_ATTEMPTS_USER, FAILED_ATTEMPTS_IP,
     FAILED_ATTEMPTS_EXCESSIVE, OTP_ATTEMPTS_EXCEEDED, OTP_LOCKED, DEVICE_TOKEN_INVALID,
     PROFILE_RESET, NETWORK_DENYLIST}
)
"""With a step-up budget on, these always challenge whatever the live threshold (the floor)."""
