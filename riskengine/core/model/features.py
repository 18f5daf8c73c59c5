"""The model's features: ONE definition, used online (engine hot path) and offline (training).

Online, :class:`riskengine.core.model.inference.LoadedModel` calls :meth:`FeatureExtractor.vector`
from inside ``Engine._decide`` with the values the engine already holds (profile, geo,
device key, local hour, failure counts). Offline, :class:`FeatureRecorder` sits in the very
same hook (``engine.model``) while logins stream through a rules-only Engine, so every
training row is built by the same function from the profile as it stood at that moment —
history grows exactly as in production and there is no second definition to drift.

Everything the features depend on beyond the engine's values (the novelty windows, the
travel tolerance, the hosting-ASN list) is in :class:`FeatureConfig`, which is saved with a
trained model and restored with it, so a production config change cannot silently change
what a model sees.

>>> from riskengine.core.profile import UserProfile
>>> fx = FeatureExtractor(FeatureConfig())
>>> v = fx.vector(0.0, "Mozilla/5.0", EMPTY_GEO, "abc", 9, UserProfile(), 0, 0)
>>> dict(zip(FEATURE_NAMES, v))["new_user"]
1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Final

from riskengine.core import reasons as R
from riskengine.core.attempt import Attempt
from riskengine.core.config import Settings
from riskengine.core.enrich.geoip import EMPTY_GEO, GeoInfo
from riskengine.core.enrich.network import DEFAULT_HOSTING_ASNS, DEFAULT_HOSTING_KEYWORDS, HostingClassifier
from riskengine.core.enrich.useragent import classify
from riskengine.core.profile import UserProfile, region_key
from riskengine.core.signals.base import SignalResult
from riskengine.core.signals.geo import haversine_km

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "new_user",
    "history_logins_log",
    "account_age_days_log",
    "days_since_last_login_log",
    "device_new",
    "device_idle_days_log",
    "device_logins_log",
    "devices_known",
    "device_trusted",
    "country_new",
    "region_new",
    "asn_new",
    "geo_unknown",
    "distance_km_log",
    "speed_kmh_log",
    "hour_rarity",
    "user_failures_log",
    "ip_failures_log",
    "hosting_asn",
    "device_mobile",
    "device_tablet",
    "device_pc",
    "device_other",
    # the richer evidence: the value of the engine's own signal (one definition: the signal
    # functions in riskengine.core.signals, handed to the model hook with the login)
    "ua_new_version",
    "ua_downgrade",
    "prefix_new",
    "city_new",
    "far_from_usual_places",
    "rtt_anomaly",
    # what the user is doing: a sensitive event (recovery, factor change, password reset) is
    # where a takeover finishes; the login's own value, no second definition
    "event_sensitive",
)
"""Column order of every feature vector (and of the saved model's weights)."""

FEATURE_HELP: Final[dict[str, str]] = {
    "new_user": "no accepted login yet",
    "history_logins_log": "log(1 + accepted logins)",
    "account_age_days_log": "log(1 + days since the first accepted login)",
    "days_since_last_login_log": "log(1 + days since the last accepted login)",
    "device_new": "device unseen (or idle past the device window)",
    "device_idle_days_log": "log(1 + days since this device was last seen)",
    "device_logins_log": "log(1 + accepted logins from this device)",
    "devices_known": "devices in the profile",
    "device_trusted": "device trusted after a verified challenge",
    "country_new": "country not in the user's history",
    "region_new": "region not in the user's history",
    "asn_new": "network AS not in the user's history",
    "geo_unknown": "no country for the address",
    "distance_km_log": "log(1 + km from the last accepted login)",
    "speed_kmh_log": "log(1 + km/h needed from the last accepted login)",
    "hour_rarity": "how rare this local hour is for the user (0 usual … 1 never)",
    "user_failures_log": "log(1 + failed passwords for the user in the window)",
    "ip_failures_log": "log(1 + failed passwords from the IP in the window)",
    "hosting_asn": "address belongs to a hosting / VPN-exit network (riskengine.core.enrich.network)",
    "device_mobile": "phone",
    "device_tablet": "tablet",
    "device_pc": "desktop or laptop",
    "device_other": "bot or unrecognised client",
    "ua_new_version": "NEW_UA_VERSION signal value (never-seen browser/OS version pair on a known device)",
    "ua_downgrade": "UA_DOWNGRADE signal value (browser or OS older than the newest seen)",
    "prefix_new": "NEW_PREFIX signal value (address block not used before, in a known AS)",
    "city_new": "NEW_CITY signal value (city not used before, in a known region)",
    "far_from_usual_places": "FAR_FROM_USUAL_PLACES signal value (graded by km from every usual place)",
    "rtt_anomaly": "RTT_ANOMALY signal value (round-trip time outside the user's band on this AS)",
    "event_sensitive": "the attempt is a sensitive event (LoginAttempt.event other than login)",
}

_SECONDS_PER_DAY: Final = 86400.0
_DEVICE_TYPES: Final = {"mobile": 19, "tablet": 20, "pc": 21}  # anything else: 22 (device_other)
_SIGNAL_FEATURES: Final = {R.NEW_UA_VERSION: 23, R.UA_DOWNGRADE: 24, R.NEW_PREFIX: 25, R.NEW_CITY: 26,
                           R.FAR_FROM_USUAL_PLACES: 27, R.RTT_ANOMALY: 28}
_N_FEATURES: Final = len(FEATURE_NAMES)
assert _N_FEATURES == 30 and FEATURE_NAMES[19:23] == ("device_mobile", "device_tablet", "device_pc",
                                                            "device_other")


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """The knobs features depend on; saved with a model so online == offline.

    Defaults for windows and tolerances come from the engine's settings at training time
    (:meth:`from_settings`).
    """

    device_window_days: float = 30.0
    history_days: float = 365.0
    travel_tolerance_km: float = 100.0
    hour_min_logins: int = 8
    hosting_asns: tuple[int, ...] = DEFAULT_HOSTING_ASNS
    hosting_keywords: tuple[str, ...] = DEFAULT_HOSTING_KEYWORDS
    names: tuple[str, ...] = field(default=FEATURE_NAMES)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> FeatureConfig:
        base = cls(
            device_window_days=settings.device.window_days, history_days=settings.geo.history_days,
            travel_tolerance_km=settings.geo.travel_tolerance_km,
            hour_min_logins=settings.hour.min_logins, hosting_asns=tuple(settings.geo.hosting_asns),
            hosting_keywords=tuple(settings.geo.hosting_keywords))
        return cls.from_json({**base.to_json(), **overrides})

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["hosting_asns"] = list(self.hosting_asns)
        out["hosting_keywords"] = list(self.hosting_keywords)
        out["names"] = list(self.names)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown feature settings {sorted(unknown)}")
        names = tuple(data.get("names", FEATURE_NAMES))
        if names != FEATURE_NAMES:
            raise ValueError(
                f"model was trained on features {list(names)}; this riskengine computes "
                f"{list(FEATURE_NAMES)} — retrain the model")
        return cls(
            device_window_days=float(data.get("device_window_days", 30.0)),
            history_days=float(data.get("history_days", 365.0)),
            travel_tolerance_km=float(data.get("travel_tolerance_km", 100.0)),
            hour_min_logins=int(data.get("hour_min_logins", 8)),
            hosting_asns=tuple(int(a) for a in data.get("hosting_asns", DEFAULT_HOSTING_ASNS)),
            hosting_keywords=tuple(str(k).lower() for k in data.get("hosting_keywords",
                                                                    DEFAULT_HOSTING_KEYWORDS)),
            names=names,
        )


class FeatureExtractor:
    """Builds one login's feature vector (a list of floats in :data:`FEATURE_NAMES` order).

    Set-up (hosting lookups, the device-type cache) happens here so ``vector`` is arithmetic.
    """

    def __init__(self, config: FeatureConfig, ua_cache_size: int = 16384) -> None:
        self.config = config
        self._window_s = config.device_window_days * _SECONDS_PER_DAY
        self._history_s = config.history_days * _SECONDS_PER_DAY
        # the same classifier the engine's HOSTING_NETWORK signal uses, with the model's lists
        self.hosting = HostingClassifier(config.hosting_asns, config.hosting_keywords).is_hosting
        self._device_type = lru_cache(maxsize=ua_cache_size)(_device_type_slot)

    def vector(
        self, now: float, user_agent: str, geo: GeoInfo, dkey: str, hour: int | None,
        profile: UserProfile, user_failures: int, ip_failures: int,
        signals: Sequence[SignalResult] = (), event: str = "login",
    ) -> list[float]:
        """The features of one login, from the profile as it stood before this login (and, for
        the richer evidence, the values of the signals the engine computed for it)."""
        p = profile
        x = [0.0] * _N_FEATURES
        if event != "login":
            x[29] = 1.0
        for sig in signals:
            slot = _SIGNAL_FEATURES.get(sig.code)
            if slot is not None:
                x[slot] = sig.value
        logins = p.logins
        log1p = math.log1p
        if logins == 0:
            x[0] = 1.0
        else:
            x[1] = log1p(logins)
            if p.created and now > p.created:
                x[2] = log1p((now - p.created) / _SECONDS_PER_DAY)
            if p.last_ts and now > p.last_ts:
                x[3] = log1p((now - p.last_ts) / _SECONDS_PER_DAY)
        seen = p.devices.get(dkey)
        if seen is None:
            x[4] = 1.0
        else:
            idle = now - seen.last_seen
            if idle > self._window_s:
                x[4] = 1.0
            if idle > 0:
                x[5] = log1p(idle / _SECONDS_PER_DAY)
            x[6] = math.log1p(seen.count)
            if seen.trusted_until >= now:
                x[8] = 1.0
        x[7] = float(len(p.devices))
        history_s = self._history_s
        country = geo.country
        if country is None:
            x[12] = 1.0
        else:
            last = p.countries.get(country)
            if last is None or now - last > history_s:
                x[9] = 1.0
            rkey = region_key(country, geo.region) if geo.region else None
            if rkey is not None:
                last = p.regions.get(rkey)
                if last is None or now - last > history_s:
                    x[10] = 1.0
        if geo.asn is not None:
            last = p.asns.get(geo.asn)
            if last is None or now - last > history_s:
                x[11] = 1.0
        lat, lon = geo.latitude, geo.longitude
        # the same place as the last login is distance 0 and speed 0: both features stay 0
        if lat is not None and lon is not None and p.last_lat is not None and p.last_lon is not None \
                and p.last_ts and (lat != p.last_lat or lon != p.last_lon):
            distance = haversine_km(p.last_lat, p.last_lon, lat, lon)
            x[13] = math.log1p(distance)
            excess = distance - self.config.travel_tolerance_km
            if excess > 0:
                hours = max(now - p.last_ts, 60.0) / 3600.0
                x[14] = math.log1p(excess / hours)
        if hour is not None and logins >= self.config.hour_min_logins:
            rarity = 1.0 - 24.0 * p.hour_share(hour)
            if rarity > 0.0:
                x[15] = rarity
        if user_failures > 0:
            x[16] = math.log1p(user_failures)
        if ip_failures > 0:
            x[17] = math.log1p(ip_failures)
        if geo.asn is not None or geo.asn_org:
            if self.hosting(geo.asn, geo.asn_org):
                x[18] = 1.0
        x[self._device_type(user_agent)] = 1.0
        return x


def _device_type_slot(user_agent: str) -> int:
    return _DEVICE_TYPES.get(classify(user_agent).device_type, 22)


class FeatureRecorder:
    """Offline twin of the model hook: records every login's features, adds no risk.

    Put it where the engine keeps its model (``engine.model = FeatureRecorder(cfg)``) and
    stream logins through ``score()``: decisions are exactly the rules-only ones (the hook
    contributes 0), and ``rows`` holds one feature vector per scored login, in order.
    """

    def __init__(self, config: FeatureConfig) -> None:
        self.extractor = FeatureExtractor(config)
        self.rows: list[list[float]] = []
        self.users: list[str] = []

    def contribution(
        self, attempt: Attempt, geo: GeoInfo, dkey: str, hour: int | None, profile: UserProfile,
        signals: Sequence[SignalResult], user_failures: int, ip_failures: int,
        now: float | None = None,
    ) -> tuple[float, list[Any]]:
        self.rows.append(self.extractor.vector(
            attempt.timestamp.timestamp() if now is None else now, attempt.user_agent, geo, dkey, hour,
            profile, user_failures, ip_failures, signals, attempt.event))
        self.users.append(attempt.user_id)
        return 0.0, []


__all__ = ["EMPTY_GEO", "FEATURE_HELP", "FEATURE_NAMES", "FeatureConfig", "FeatureExtractor",
           "FeatureRecorder"]
