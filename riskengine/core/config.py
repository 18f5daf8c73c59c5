"""Every tunable in one place: TOML file + environment → validated settings.

Environment variables override the file: ``RISKENGINE_<SECTION>_<KEY>``, for
example ``RISKENGINE_AUDIT_ROOT=audit/`` or ``RISKENGINE_POLICY_CHALLENGE_THRESHOLD=0.5``.
Section names contain no underscore, so the split is unambiguous.

>>> s = Settings()
>>> s.policy.challenge_threshold
0.4
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from riskengine.core import reasons as R
from riskengine.core.decision import Action, Factor
from riskengine.core.devicetoken import parse_keys
from riskengine.core.enrich.netlists import parse_cidrs
from riskengine.core.enrich.network import DEFAULT_HOSTING_ASNS, DEFAULT_HOSTING_KEYWORDS
from riskengine.core.identity import UserIdNormalization

ENV_PREFIX = "RISKENGINE_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_codes(codes: tuple[str, ...], name: str) -> tuple[str, ...]:
    unknown = [c for c in codes if c not in R.ALL_CODES]
    if unknown:
        raise ValueError(f"{name}: unknown reason codes {unknown} (known: {', '.join(R.ALL_CODES)})")
    return codes


class DeviceSettings(_Section):
    weight: float = Field(0.55, ge=0, le=1)
    """A device not seen in the window is the strongest single signal."""
    window_days: float = Field(30.0, gt=0)
    returning_value: float = Field(0.7, ge=0, le=1)
    """Strength of NEW_DEVICE (1.0 = a device never seen) for a device the user has used
    before but not within ``window_days``. It still fires, and with the defaults it still
    steps up alone (0.55 × 0.75 ≥ the 0.4 challenge threshold); it only ranks below a
    never-seen device, so a threshold tuned for a step-up budget can tell them apart."""
    max_devices: int = Field(8, ge=1, le=64)
    ua_cache_size: int = Field(16384, ge=0)
    new_ua_version_weight: float = Field(0.1, ge=0, le=1)
    """``NEW_UA_VERSION``: a never-seen exact (browser, OS) version pair on a device the user
    has (weak: mostly an auto-update)."""
    ua_downgrade_weight: float = Field(0.5, ge=0, le=1)
    """``UA_DOWNGRADE``: a browser or OS older than the newest this user has shown on that
    family, never seen before (strong: browsers auto-update, attack kits ship a fixed UA)."""
    max_ua_families: int = Field(6, ge=1, le=32)
    """Browser and OS families whose newest version the profile keeps."""
    max_ua_versions: int = Field(8, ge=1, le=64)
    """Exact (browser, OS) version pairs the profile remembers (8-hex digests, newest kept)."""


class GeoSettings(_Section):
    city_db: str | None = "geolite2"
    """Path to a GeoIP2/GeoLite2/DB-IP City mmdb; ``"geolite2"`` = the 2018 GeoLite2-City
    that the ``maxminddb-geolite2`` package ships; empty/None = no City lookups."""
    asn_db: str | None = None
    """Path to a GeoLite2-ASN style mmdb. No redistributable one exists; without it the ASN
    signal uses ``LoginAttempt.asn`` when given and is absent otherwise."""
    cache_size: int = Field(65536, ge=0)
    new_country_weight: float = Field(0.5, ge=0, le=1)
    new_region_weight: float = Field(0.3, ge=0, le=1)
    new_asn_weight: float = Field(0.3, ge=0, le=1)
    """``NEW_ASN`` at full strength (a user who rarely changes network); weighted by habit."""
    impossible_travel_weight: float = Field(0.6, ge=0, le=1)
    hosting_weight: float = Field(0.35, ge=0, le=1)
    """A hosting provider / VPN exit the user has not logged in from before."""
    rare_country_weight: float = Field(0.45, ge=0, le=1)
    """A user with no country history logging in from a country that holds less than
    ``rare_country_share`` of the service's accepted logins (once ``rare_country_min_logins``
    have been seen by this process)."""
    rare_country_share: float = Field(0.005, ge=0, le=1)
    rare_country_min_logins: float = Field(5000, ge=1)
    """Decayed accepted logins the service must have seen before shares mean anything."""
    population_half_life_days: float = Field(30.0, ge=1)
    """Half-life of the service's country counts (the population prior), shared by every
    worker through the profile store and fed only by established users' accepted logins."""
    anonymous_db: str | None = None
    """Path to an anonymous-IP mmdb (MaxMind GeoIP2 Anonymous IP, IPinfo privacy detection or
    IP2Proxy): Tor exits, public/residential proxies and anonymous VPNs give
    ``ANONYMOUS_PROXY``; its hosting flag feeds ``HOSTING_NETWORK``. None = not used."""
    anonymous_weight: float = Field(0.4, ge=0, le=1)
    """The risk ``ANONYMOUS_PROXY`` adds."""
    hosting_asns: tuple[int, ...] = DEFAULT_HOSTING_ASNS
    hosting_keywords: tuple[str, ...] = DEFAULT_HOSTING_KEYWORDS
    """Lower-case substrings of AS organisation names that mean hosting/VPN."""
    max_speed_kmh: float = Field(1000.0, gt=0)
    travel_tolerance_km: float = Field(100.0, ge=0)
    history_days: float = Field(365.0, gt=0)
    max_countries: int = Field(12, ge=1, le=64)
    max_regions: int = Field(12, ge=1, le=64)
    max_asns: int = Field(12, ge=1, le=64)
    novelty_floor: float = Field(0.3, ge=0, le=1)
    """``NEW_REGION``, ``NEW_ASN``, ``NEW_PREFIX`` and ``NEW_CITY`` are weighted by how rarely
    this user shows a new value (``riskengine.core.signals.habit``): strength
    ``clip(log((logins + 1) / distinct) / log(novelty_full_ratio), novelty_floor, 1)``.
    1.0 = every novelty at full strength (the unweighted rule)."""
    novelty_full_ratio: float = Field(20.0, gt=1)
    """A novelty counts in full once the user's logins bring a new value less than once in this
    many (20 logins from one network, 60 from two)."""
    new_prefix_weight: float = Field(0.2, ge=0, le=1)
    """``NEW_PREFIX``: an address block the user has not used, inside a network AS they use."""
    ipv4_prefix: int = Field(24, ge=8, le=32)
    ipv6_prefix: int = Field(48, ge=16, le=128)
    max_prefixes: int = Field(12, ge=1, le=64)
    new_city_weight: float = Field(0.3, ge=0, le=1)
    """``NEW_CITY``: a city the user has not logged in from, inside a region they use."""
    max_cities: int = Field(12, ge=1, le=64)
    far_weight: float = Field(0.25, ge=0, le=1)
    """``FAR_FROM_USUAL_PLACES``: more than ``far_km`` from every usual place (strength 0.5
    there, 1.0 from ``far_full_km``)."""
    far_km: float = Field(300.0, gt=0)
    far_full_km: float = Field(2000.0, gt=0)
    max_usual_places: int = Field(4, ge=1, le=16)
    """Location centroids the profile keeps (the least-used, decayed, goes first)."""
    place_merge_km: float = Field(50.0, gt=0)
    """A login within this distance of a usual place moves that place instead of adding one."""
    place_half_life_days: float = Field(90.0, gt=0)
    travel_between_usual_places: bool = True
    """``IMPOSSIBLE_TRAVEL`` does not fire when this login and the last one are both within
    ``place_merge_km`` of a usual place with at least ``travel_usual_place_days`` (decayed) days
    of logins: a VPN user between home and the VPN's exit is at two of their own places, not two
    parties at once."""
    travel_usual_place_days: float = Field(3.0, ge=1)
    """Days with a login near a place (decayed, ``place_half_life_days``) before it is usual
    enough for ``travel_between_usual_places``."""

    @model_validator(mode="after")
    def _far_ordered(self) -> GeoSettings:
        if self.far_full_km <= self.far_km:
            raise ValueError("geo.far_full_km must be greater than geo.far_km")
        return self


class RttSettings(_Section):
    """Round-trip time per network (``LoginAttempt.rtt_ms``, the RBA layout's ``Round-Trip Time [ms]``)."""

    weight: float = Field(0.35, ge=0, le=1)
    """``RTT_ANOMALY``: the RTT lies far outside the user's band on this network AS."""
    min_samples: int = Field(5, ge=1)
    """Samples on a network before its band means anything."""
    k: float = Field(3.0, gt=0)
    """Band half-width in decayed mean absolute deviations of log(RTT)."""
    min_factor: float = Field(1.6, gt=1)
    """The band is never narrower than ×/÷ this around the centre."""
    slack_ms: float = Field(25.0, ge=0)
    """Beyond the band by at least this many ms (jitter on a 10 ms line is not news)."""
    alpha: float = Field(0.2, gt=0, le=1)
    """Weight of a new sample once ``1/alpha`` have been seen (recent conditions count most)."""
    max_asns: int = Field(3, ge=1, le=16)
    """Networks whose band the profile keeps (the most-sampled)."""
    young_factor: float = Field(3.0, ge=0)
    """A user none of whose networks has ``min_samples`` yet (a young account): ``RTT_ANOMALY``
    fires for a login more than this many times slower than the slowest of the few samples so
    far (and beyond ``slack_ms``); graded 0.5 there to 1.0 at its square. 0 (or ≤ 1) = off: no
    evidence before ``min_samples`` (docs/signals.md, "Round-trip time of a young account")."""
    known_prefix_value: float = Field(0.3, ge=0, le=1)
    """Strength of ``RTT_ANOMALY`` when the login comes from an address block (``geo.ipv4_prefix``
    / ``geo.ipv6_prefix``) the user has logged in from within ``geo.history_days``: a relay's
    exit is almost never inside the user's own block, so an RTT excursion there is congestion.
    1.0 = the same strength everywhere."""


class HourSettings(_Section):
    weight: float = Field(0.2, ge=0, le=1)
    """Only counts together with another signal: an odd hour alone never steps up."""
    min_logins: int = Field(8, ge=1)
    rare_share: float = Field(0.02, ge=0, le=1)
    """An hour (±1 h smoothed) holding less than this share of the user's logins is unusual."""
    half_life_days: float = Field(90.0, gt=0)


class FailureSettings(_Section):
    window_minutes: float = Field(30.0, gt=0)
    user_threshold: int = Field(3, ge=1)
    user_deny_threshold: int = Field(10, ge=1)
    ip_threshold: int = Field(20, ge=1)
    ip_deny_threshold: int = Field(200, ge=1)
    user_weight: float = Field(0.6, ge=0, le=1)
    """The risk ``FAILED_ATTEMPTS_USER`` adds; it steps up regardless of the total."""
    ip_weight: float = Field(0.6, ge=0, le=1)
    """The risk ``FAILED_ATTEMPTS_IP`` adds; it steps up regardless of the total."""
    excessive_weight: float = Field(1.0, ge=0, le=1)
    """The risk ``FAILED_ATTEMPTS_EXCESSIVE`` adds; it denies regardless of the total, except
    for a login presenting a valid trusted device token, which it challenges (the attacker
    who fails passwords for a username cannot lock its owner out of a trusted device)."""
    ipv6_prefix: int = Field(64, ge=32, le=128)
    """Failed passwords from IPv6 addresses are counted per prefix of this length (a /64 is one
    subscriber's network: rotating addresses inside it does not reset the count)."""


class TrustSettings(_Section):
    days: float = Field(30.0, ge=0)
    """How long a device token (and the trust behind it) lasts."""
    secret_keys: tuple[str, ...] = Field(default=(), repr=False)
    """Device-token HMAC keys (each >= 32 characters): the first signs, all verify, so a key
    rotates by putting the new one first. Prefer ``RISKENGINE_TRUST_SECRET_KEYS`` (a TOML list
    or comma-separated). Empty: a per-process random key (memory store only; health() says
    so) — a sqlite or redis store without a key is a start-up error. Never logged."""
    invalid_token_weight: float = Field(0.6, ge=0, le=1)
    """The risk ``DEVICE_TOKEN_INVALID`` adds (a forged, foreign, expired or revoked token)."""

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_keys(value)
        return value

    @field_validator("secret_keys")
    @classmethod
    def _long_keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for key in keys:
            if len(key.encode()) < 32:
                raise ValueError("trust.secret_keys: every key must be at least 32 characters "
                                 "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        return keys


class OtpSettings(_Section):
    max_attempts: int = Field(5, ge=1)
    """More failed second-factor attempts than this in one session denies."""
    session_minutes: float = Field(30.0, gt=0)
    """A session's second-factor count window, and how long a parked challenge waits."""
    user_max_failures: int = Field(10, ge=1)
    """More failed second-factor attempts than this for one user within
    ``user_window_minutes``, whatever the session, denies with ``OTP_LOCKED``."""
    user_window_minutes: float = Field(60.0, gt=0)
    max_pending_per_user: int = Field(20, ge=1)
    """Parked challenges one user may have outstanding; past it their own oldest goes first
    (one account cannot evict other users' pending challenges)."""


SendAction = Literal["allow", "block", "switch"]
NumberType = Literal["fixed_line", "mobile", "fixed_line_or_mobile", "toll_free", "premium_rate",
                     "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail", "unknown"]

_DEFAULT_SMS_PRICES: dict[str, float] = {
    # USD per SMS, rough 2026 list prices of a large aggregator: pumping targets the dear ones
    "US": 0.0079, "CA": 0.0079, "GB": 0.04, "IE": 0.07, "FR": 0.08, "DE": 0.09, "ES": 0.07,
    "IT": 0.08, "NL": 0.10, "IN": 0.005, "BR": 0.03, "NG": 0.25, "ID": 0.35, "PK": 0.30,
    "UZ": 0.27, "KG": 0.30, "TJ": 0.32, "AZ": 0.33, "LK": 0.30, "MM": 0.35,
}


class SmsSettings(_Section):
    """``Engine.check_send``: SMS pumping (toll fraud) defence before each OTP send.

    Each check adds a weight; the noisy-OR of the weights is compared with
    ``block_threshold`` and ``switch_threshold``. Windows are rolling, counted in the store."""

    prefix_digits: int = Field(4, ge=1, le=8)
    """Digits of the national number kept after the country code: the destination prefix (the
    carrier / number range) that velocity and verify ratio are counted by, and all the audit
    log keeps of a number."""
    blocked_number_types: tuple[NumberType, ...] = ("premium_rate", "shared_cost", "uan", "unknown")
    premium_weight: float = Field(1.0, ge=0, le=1)
    """Weight of a destination whose number type is in ``blocked_number_types``."""
    prefix_window_minutes: float = Field(60.0, gt=0)
    prefix_max_sends: int = Field(30, ge=1)
    """More sends than this to one prefix in ``prefix_window_minutes`` (all users) → ``SMS_PREFIX_VELOCITY``."""
    prefix_velocity_weight: float = Field(0.9, ge=0, le=1)
    user_window_minutes: float = Field(1440.0, gt=0)
    user_max_sends: int = Field(8, ge=1)
    """More sends than this for one user in ``user_window_minutes`` → ``SMS_USER_VELOCITY``."""
    user_velocity_weight: float = Field(0.6, ge=0, le=1)
    ratio_window_minutes: float = Field(1440.0, gt=0)
    ratio_min_sends: int = Field(20, ge=1)
    """Earlier sends to a prefix in ``ratio_window_minutes`` before its verify ratio is judged."""
    min_verify_ratio: float = Field(0.25, ge=0, le=1)
    """Verified / sent to a prefix below this → ``SMS_LOW_VERIFY_RATIO``."""
    low_ratio_weight: float = Field(0.9, ge=0, le=1)
    new_country_weight: float = Field(0.35, ge=0, le=1)
    """A destination country the user never logged in from (weak alone: travellers, expats)."""
    new_account_logins: int = Field(3, ge=0)
    """Fewer logins than this: a new account, for ``max_prefixes_new_account``."""
    max_prefixes_new_account: int = Field(2, ge=1)
    """More distinct prefixes than this in ``user_window_minutes`` for a new account → ``SMS_MANY_PREFIXES``."""
    many_prefixes_weight: float = Field(0.6, ge=0, le=1)
    switch_threshold: float = Field(0.5, ge=0, le=1)
    block_threshold: float = Field(0.85, ge=0, le=1)
    switch_channel: Factor = "totp"
    """``suggested_channel`` of a ``switch``: a factor nobody can bill (not SMS, voice or WhatsApp)."""
    fail_mode: SendAction = "allow"
    """The store is down: the number checks (validity, type) still apply; the counters cannot,
    so the send is allowed (``ENGINE_DEGRADED``, counted in ``health()["store_errors"]``), or
    switched / blocked if set so."""
    price_per_country: dict[str, float] = Field(default_factory=lambda: dict(_DEFAULT_SMS_PRICES))
    """Price of one SMS by destination country (ISO 3166 alpha-2): the cost in the audit log."""
    default_price: float = Field(0.05, ge=0)

    @field_validator("price_per_country")
    @classmethod
    def _prices(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, p in v.items() if len(k) != 2 or not k.isalpha() or not k.isupper() or p < 0]
        if bad:
            raise ValueError(f"price_per_country: keys must be upper-case ISO country codes with prices >= 0: {bad}")
        return v

    @model_validator(mode="after")
    def _thresholds(self) -> SmsSettings:
        if self.switch_threshold > self.block_threshold:
            raise ValueError("sms.switch_threshold must not exceed sms.block_threshold")
        if self.switch_channel in ("sms", "voice", "whatsapp"):
            raise ValueError(f"sms.switch_channel {self.switch_channel!r} is billed per message: "
                             "use passkey, totp, push or email")
        return self


class IdentitySettings(_Section):
    normalize_user_id: UserIdNormalization = "nfkc_casefold"
    """Applied to the user id of every API call: NFKC + casefold + strip (``"strip"`` or
    ``"none"`` to keep ids as given, e.g. while migrating a store keyed by raw ids)."""


class ColdStartSettings(_Section):
    min_logins: int = Field(3, ge=0)
    """Users with fewer accepted logins than this are in cold start."""
    novelty_scale: float = Field(0.5, ge=0, le=1)
    """Device/geo novelty weights are multiplied by this while in cold start: everything is
    new for a new user, so novelty says little; failures and travel still count in full."""
    weight: float = Field(0.1, ge=0, le=1)
    dormant_days: float = Field(30.0, ge=0)
    """Once the profile store has been learning this long (``ProfileStore.history_start``), a
    login on an account with no login and no signup on record is a dormant account
    (``DORMANT_ACCOUNT``): it gets no cold-start leniency (``novelty_scale``, ``weight``) and
    adds ``dormant_weight``. 0 turns it off. A service that does not call ``record_signup``
    makes every new account look dormant after this long (docs/signals.md)."""
    dormant_weight: float = Field(0.2, ge=0, le=1)
    """Weight of ``DORMANT_ACCOUNT``: with a never-seen device (0.55) it puts the first login
    of a dormant account at 0.64, above the fixed 0.4 that judges users the budget does not
    measure and above a never-seen device alone on an established account."""
    scaled_signals: tuple[str, ...] = ("NEW_DEVICE", "NEW_REGION", "NEW_ASN", "NEW_PREFIX", "NEW_CITY",
                                       "NEW_UA_VERSION")
    """Which signals ``novelty_scale`` applies to. NEW_COUNTRY is deliberately not among them:
    a fresh account suddenly used from abroad is the takeover cold-start leniency must not
    wave through."""

    @field_validator("scaled_signals")
    @classmethod
    def _known_scaled(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        return _known_codes(codes, "coldstart.scaled_signals")


class EventPolicy(_Section):
    """The policy section of one sensitive event (``[policy.events.<event>]``): fixed
    thresholds (a login's streaming budget does not apply) and the event's rules. Each event
    has its own class so a section that sets one key keeps that event's other defaults."""

    challenge_threshold: float = Field(0.25, ge=0, le=1)
    """0.25, not 0.2: a noisy-OR risk of one signal is ``1 − (1 − w)``, which for w = 0.2 is
    0.19999999999999996 and would miss a threshold of 0.2 (0.25 and 0.8 are exact)."""
    deny_threshold: float = Field(0.8, ge=0, le=1)
    deny_new_device_and_country: bool = False
    """A never-seen device AND a never-seen country → deny ``RECOVERY_HIGH_RISK`` (hand the
    request to manual review)."""
    challenge_untrusted_device: bool = False
    """A device without a valid device token → at least challenge (``UNTRUSTED_DEVICE``)."""
    challenge_no_history: bool = True
    """A user in cold start (or with no profile) → at least challenge (``NO_HISTORY``)."""
    challenge_after_otp_failures: bool = True
    """Any failed second factor of the user within ``otp.user_window_minutes`` → at least
    challenge (``RECENT_OTP_FAILURES``)."""
    recent_device_hours: float = Field(24.0, ge=0)
    """A device the profile first saw less than this long ago (it got in through a login that
    was probably challenged) → at least challenge (``RECENT_NEW_DEVICE``); 0 turns it off."""

    @model_validator(mode="after")
    def _ordered(self) -> EventPolicy:
        if self.deny_threshold < self.challenge_threshold:
            raise ValueError("policy.events: deny_threshold must be >= challenge_threshold")
        return self


class RecoveryPolicy(EventPolicy):
    deny_new_device_and_country: bool = True


class FactorChangePolicy(EventPolicy):
    challenge_untrusted_device: bool = True


class PasswordResetPolicy(EventPolicy):
    deny_threshold: float = Field(0.85, ge=0, le=1)
    recent_device_hours: float = Field(0.0, ge=0)


class EventsSettings(_Section):
    """``[policy.events.recovery]``, ``[policy.events.factor_change]``,
    ``[policy.events.password_reset]``: stricter than a login by default."""

    recovery: RecoveryPolicy = RecoveryPolicy()
    factor_change: FactorChangePolicy = FactorChangePolicy()
    password_reset: PasswordResetPolicy = PasswordResetPolicy()


class PolicySettings(_Section):
    version: str = "rules-v1"
    mode: Literal["enforce", "shadow"] = "enforce"
    """``"shadow"``: score and audit every login but return ``allow``; the decision's
    ``shadow_action`` (and the audit log's ``shadow_action`` column) says what enforcement
    would have done. Env ``RISKENGINE_POLICY_MODE``. See docs/operations.md (rollout)."""
    challenge_threshold: float = Field(0.4, ge=0, le=1)
    deny_threshold: float = Field(0.95, ge=0, le=1)
    impossible_travel_action: Action = "challenge"
    fail_mode: Action = "challenge"
    default_factors: tuple[Factor, ...] = ("sms",)
    """Assumed enrolment when the attempt names none."""
    model: str | None = None
    """Path to a trained model directory (``riskengine model train``); None = rules only."""
    model_weight: float = Field(0.5, ge=0, le=1)
    """The most the model's term can add (one more noisy-OR term, ``weight × q``): 0.5 keeps a
    model from denying on its own (deny is at 0.95)."""
    model_odds: float = Field(30.0, ge=1, le=10_000)
    """``q``: the model's calibrated probability with its odds multiplied by this, ``K·p / (1 +
    (K − 1)·p)``. A calibrated probability is on the scale of the training data's attack share
    (a few %), the rules' risk on the scale of signal strengths (0.3–0.55 for one novelty): at
    ``K = 1`` the term is too small to lift an attack over the rules' legitimate mass. 30 was
    chosen on the simulator's default profile (docs/benchmarks.md, "Learned model on the harder
    simulator"); 1 = the probability as calibrated."""
    model_cold_scale: float | None = Field(None, ge=0, le=1)
    """The model's term for a user in cold start (fewer than ``coldstart.min_logins`` accepted
    logins; a user with none gets no term) is multiplied by this. None = ``coldstart.novelty_scale``
    (0.5, as the novelty signals). 0 = cold-start users are judged by the rules alone
    (docs/benchmarks.md, "Session 8, detect8": what each costs and buys)."""
    strong_signals: tuple[str, ...] = tuple(sorted(R.STRONG_CODES))
    """Reason codes that override a trusted device: with one of them fired, a challenge stays
    a challenge on a device the user trusted after a verified challenge."""
    events: EventsSettings = EventsSettings()
    """Per-event sections for sensitive events (``LoginAttempt.event``)."""

    target_stepup_rate: float = Field(0.018, ge=0, le=0.5)
    """The step-up budget (docs/budget.md): the share of established users' logins to step
    up, in (0, 0.5]. The engine sets the live challenge threshold from a streaming quantile
    of recent established users' risks, shared through the store. 0 = a fixed policy at
    ``challenge_threshold``."""
    budget_min_threshold: float = Field(0.25, ge=0, le=1)
    """The live threshold never goes below this (a flood of low-risk logins cannot make
    everyone step up)."""
    budget_max_threshold: float = Field(0.5, ge=0, le=1)
    """...nor above this (a flood of high-risk logins cannot switch step-up off). 0.5: below a
    never-seen device alone (0.55), so no flood of sybil accounts can let a stranger's device in
    unchallenged. It is on the rules' scale: with a ``model`` configured, a login whose rules
    alone reach it is challenged whatever the live threshold, and the live threshold on the
    blended risk may rise to :meth:`budget_threshold_top` (docs/budget.md, "With a model")."""
    budget_established_logins: int = Field(5, ge=1)
    """A user is established (their logins feed the sketch) from this many profile logins:
    ``riskengine evaluate``'s definition (≥ 5 earlier successful logins)."""
    budget_warmup_logins: int = Field(1000, ge=0)
    """Until the shared sketch has merged this many established logins, ``challenge_threshold``."""
    budget_half_life_hours: float = Field(72.0, ge=24, le=24 * 365)
    """Forward decay of the sketch: a login's weight halves every this many hours."""
    budget_refresh_seconds: float = Field(10.0, gt=0)
    """Each worker merges its delta into the store and reads the merged sketch back when the
    event time crosses a multiple of this."""
    budget_user_cap: int = Field(3, ge=1)
    """At most this many logins per user per ``budget_user_window_seconds`` count in the sketch."""
    budget_user_window_seconds: float = Field(3600.0, gt=0)
    budget_floor_signals: tuple[str, ...] = tuple(sorted(R.BUDGET_FLOOR_CODES))
    """With a budget on, a login where one of these fired is challenged whatever the live
    threshold (unless it is denied)."""

    def budget_threshold_top(self) -> float:
        """The top of the live threshold's clamp on the scorer's own scale.

        Rules only: ``budget_max_threshold``. With a model, the risk is the noisy-OR of the
        rules' risk ``r`` and the model's term (at most ``model_weight``), and a login with
        ``r >= budget_max_threshold`` is challenged whatever the threshold (the clamp on the
        rules' scale); every other login has a blended risk below ``1 − (1 −
        budget_max_threshold)(1 − model_weight)``, so a live threshold there means "only what
        the rules alone would step up at the top of their clamp" — the rules-only engine's
        worst case under a flood, never less.

        >>> PolicySettings().budget_threshold_top()
        0.5
        >>> PolicySettings(model="m/", model_weight=0.5).budget_threshold_top()
        0.75
        """
        if self.model is None:
            return self.budget_max_threshold
        top = 1.0 - (1.0 - self.budget_max_threshold) * (1.0 - self.model_weight)
        return min(self.deny_threshold, top)

    @field_validator("strong_signals")
    @classmethod
    def _known_strong(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        return _known_codes(codes, "policy.strong_signals")

    @field_validator("budget_floor_signals")
    @classmethod
    def _known_floor(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        return _known_codes(codes, "policy.budget_floor_signals")

    @model_validator(mode="after")
    def _ordered(self) -> PolicySettings:
        if self.deny_threshold < self.challenge_threshold:
            raise ValueError("policy.deny_threshold must be >= policy.challenge_threshold")
        if self.target_stepup_rate and self.budget_min_threshold > self.budget_max_threshold:
            raise ValueError("policy.budget_min_threshold must be <= policy.budget_max_threshold")
        if self.target_stepup_rate and self.budget_max_threshold > self.deny_threshold:
            raise ValueError("policy.budget_max_threshold must be <= policy.deny_threshold")
        return self


class StoreSettings(_Section):
    url: str = "memory://"
    cluster: bool = False
    """Read a ``redis://`` / ``rediss://`` URL as a Redis Cluster (the same as writing
    ``redis+cluster://host:port[,host:port]``): hash-tagged keys, see docs/operations.md."""
    busy_timeout_ms: float = Field(1000.0, ge=0)
    """sqlite: how long a write waits for another process's write lock before failing (the
    login still gets its decision; the lesson is counted as a store error)."""
    max_counters: int = Field(250_000, ge=1000)
    """memory: live failure / second-factor counters per kind before the oldest is evicted."""
    write_behind: bool | None = None
    """Apply what an allowed login teaches the profile on a background thread, so ``score()``
    makes one store round trip. None = on for networked stores (redis), off for memory and
    sqlite (where the write is local and replays stay strictly sequential)."""


class AuditSettings(_Section):
    root: str | None = None
    """Audit log root: a folder, or ``s3://bucket/prefix`` (S3 and S3-compatible stores; credentials
    from the standard AWS chain); None = no audit log (a null sink)."""
    s3_endpoint_url: str | None = None
    """With an ``s3://`` root: the store's endpoint, e.g. ``http://minio:9000``; None = env
    ``AWS_ENDPOINT_URL`` if set, else AWS itself."""
    s3_region: str | None = None
    """With an ``s3://`` root: the region; None = env ``AWS_REGION`` / ``AWS_DEFAULT_REGION``."""
    pseudonymize: bool = True
    key: str | None = Field(default=None, repr=False)
    """Pseudonymisation key; prefer the env var ``RISKENGINE_AUDIT_KEY``. Never logged."""
    key_file: str | None = None
    """Without ``key``: the file holding the generated key (0600), which must lie OUTSIDE the
    root so that a reader of the audit log cannot re-identify users. None = a sibling of the
    root, ``<root>.pseudonym-key``. A key an older version kept inside the root
    (``<root>/_meta/pseudonym.key``) is moved here on start-up, so pseudonyms stay stable."""
    flush_on_sigterm: bool = False
    """Flush the audit buffer when the process gets SIGTERM (then run the previous handler, or
    exit as SIGTERM would have). Off for library use; the CLI commands that write an audit log
    turn it on, and so should a service: SIGTERM is how process managers stop it."""
    flush_seconds: float = Field(1.0, gt=0)
    flush_rows: int = Field(50_000, ge=1)
    buffer_rows: int = Field(1_000_000, ge=1)
    retention_years: float = Field(4.0, gt=0)


DashboardAuth = Literal["none", "oidc", "header"]


class DashboardSettings(_Section):
    """Who may open the dashboard (it shows who was challenged where) and who may see raw ids."""

    auth: DashboardAuth = "none"
    """``"none"``: no sign-in (the dashboard listens on 127.0.0.1 only); ``"oidc"``: Streamlit's
    built-in OpenID Connect login (``st.login``; the provider goes in ``.streamlit/secrets.toml``
    ``[auth]``); ``"header"``: behind an authenticating reverse proxy that puts the signed-in
    user in ``trusted_user_header``."""
    oidc_provider: str | None = None
    """With ``auth = "oidc"``: the provider's name (``[auth.<name>]`` in secrets.toml); None =
    the single provider configured directly in ``[auth]``."""
    trusted_user_header: str | None = None
    """With ``auth = "header"``: the request header holding the signed-in user, e.g.
    ``X-Forwarded-Email`` (oauth2-proxy) — the proxy must set it on every request and strip it
    from clients; Streamlit must be reachable only through the proxy."""
    allowed_users: tuple[str, ...] = ()
    """Signed-in users allowed in (e-mail addresses, or ``@example.com`` for a whole domain;
    case-insensitive). Empty: everyone the identity provider or proxy signs in — restrict it
    there or here (a public provider such as Google signs in anyone with an account)."""
    pii_viewers: tuple[str, ...] = ()
    """Users (as in ``allowed_users``) offered the raw-identifier toggle; everyone else sees
    pseudonymised ids only. With ``auth = "none"`` nobody is identified, so nobody is offered it."""

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None) -> DashboardSettings:
        """This section alone from a TOML file + ``RISKENGINE_DASHBOARD_*``: the dashboard's access
        gate must not depend on (nor be opened by) a mistake in another section."""
        data: dict[str, Any] = {}
        if path is not None:
            with Path(path).open("rb") as fh:
                data = {"dashboard": tomllib.load(fh).get("dashboard", {})}
        own = {k: v for k, v in (os.environ if env is None else env).items()
               if k.startswith(f"{ENV_PREFIX}DASHBOARD_")}
        return Settings.model_validate(_apply_env(data, own)).dashboard

    @field_validator("allowed_users", "pii_viewers", mode="before")
    @classmethod
    def _split_users(cls, value: Any) -> Any:
        if isinstance(value, str):  # RISKENGINE_DASHBOARD_PII_VIEWERS=a@x.com,b@x.com
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_user_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is not None and not _HEADER_NAME.fullmatch(value):
            raise ValueError(f"dashboard.trusted_user_header: {value!r} is not an HTTP header name")
        return value

    @model_validator(mode="after")
    def _mode_needs_its_setting(self) -> DashboardSettings:
        if self.auth == "header" and not self.trusted_user_header:
            raise ValueError('dashboard.auth = "header" needs dashboard.trusted_user_header '
                             '(the header your reverse proxy sets, e.g. "X-Forwarded-Email")')
        if self.auth != "header" and self.trusted_user_header:
            raise ValueError(f'dashboard.trusted_user_header is only read with dashboard.auth = "header" '
                             f'(auth is "{self.auth}"): set auth = "header" or remove the header')
        if self.auth == "none" and self.allowed_users:
            raise ValueError('dashboard.allowed_users needs sign-in: set dashboard.auth = "oidc" or "header"')
        return self


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class NetworkSettings(_Section):
    allow_cidrs: tuple[str, ...] = ()
    """Networks (CIDR or address) whose logins skip the network signals — NEW_ASN,
    HOSTING_NETWORK, ANONYMOUS_PROXY — but never device, failure or geo signals (an office
    egress, a partner's NAT). Env: a TOML list, e.g. ``'["10.0.0.0/8"]'``."""
    deny_cidrs: tuple[str, ...] = ()
    """Networks whose logins are denied (``NETWORK_DENYLIST``), whatever else; wins over
    ``allow_cidrs``."""

    @field_validator("allow_cidrs", "deny_cidrs", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @model_validator(mode="after")
    def _valid(self) -> NetworkSettings:
        parse_cidrs(self.allow_cidrs, "network.allow_cidrs")
        parse_cidrs(self.deny_cidrs, "network.deny_cidrs")
        return self


class MetricsSettings(_Section):
    prometheus: bool = False
    """Count decisions, reasons, latency, degraded decisions, store errors, dropped audit events
    and challenge outcomes in Prometheus metrics (extra ``[metrics]``) on prometheus_client's
    global registry (``Engine(metrics_registry=...)`` for another). OpenTelemetry spans need no
    setting: they follow the configured tracer provider."""
    degraded_log_seconds: float = Field(60.0, gt=0)
    """Degraded decisions (and the store errors behind decisions: a challenge that cannot be
    parked, a lesson that cannot be written) are logged at WARNING once, then as one count per
    this interval, so an outage does not flood the log."""


class Settings(_Section):
    device: DeviceSettings = DeviceSettings()
    geo: GeoSettings = GeoSettings()
    rtt: RttSettings = RttSettings()
    hour: HourSettings = HourSettings()
    failures: FailureSettings = FailureSettings()
    trust: TrustSettings = TrustSettings()
    otp: OtpSettings = OtpSettings()
    sms: SmsSettings = SmsSettings()
    identity: IdentitySettings = IdentitySettings()
    coldstart: ColdStartSettings = ColdStartSettings()
    policy: PolicySettings = PolicySettings()
    store: StoreSettings = StoreSettings()
    audit: AuditSettings = AuditSettings()
    dashboard: DashboardSettings = DashboardSettings()


    metrics: MetricsSettings = MetricsSettings()
    network: NetworkSettings = NetworkSettings()

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Read a TOML file (optional), then apply ``RISKENGINE_*`` environment overrides."""
        data: dict[str, Any] = {}
        if path is not None:
            with Path(path).open("rb") as fh:
                data = tomllib.load(fh)
        return cls.model_validate(_apply_env(data, os.environ if env is None else env))

    def with_overrides(self, **sections: Mapping[str, Any]) -> Settings:
        """A copy with some keys of some sections replaced (validated)."""
        data = self.model_dump()
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        return Settings.model_validate(data)


_SECTIONS: tuple[str, ...] = tuple(Settings.model_fields)


# variables that share a section's prefix but are not settings (the dashboard's launcher reads them)
_NOT_SETTINGS: frozenset[str] = frozenset({"RISKENGINE_DASHBOARD_CONFIG", "RISKENGINE_DASHBOARD_APP"})


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section, _, key = rest.partition("_")
        if section not in _SECTIONS or not key:
            continue
        fields = Settings.model_fields[section].annotation
        assert fields is not None
        if key not in fields.model_fields:
            raise ValueError(f"unknown setting in environment variable {name}")
        merged.setdefault(section, {})[key] = _parse_env_value(raw)
    return merged


def _parse_env_value(raw: str) -> Any:
    """Env values are strings; TOML syntax gives them types (``0.5``, ``true``, ``["a"]``)."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


FailMode = Literal["allow", "challenge", "deny"]
