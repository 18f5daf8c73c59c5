"""The Engine: ``score`` / ``record_failure`` / ``record_outcome`` (and experiments).

Everything expensive happens in the constructor (open GeoIP readers, compile the policy,
open the store and the audit sink). ``score()`` is lookups and arithmetic, is
thread-safe, and never raises because a dependency is degraded: it returns the
configured fail-mode decision with reason ``ENGINE_DEGRADED`` instead.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from types import TracebackType
from typing import Any

from riskengine import reasons as R
from riskengine.audit.base import AuditSink, NullSink
from riskengine.audit.events import SCHEMA_VERSION, Pseudonymizer, resolve_key
from riskengine.config import Settings
from riskengine.decision import Action, Channel, Decision, Factor, Outcome, Reason
from riskengine.devicetoken import DeviceTokens, parse_keys
from riskengine.enrich.geoip import EMPTY_GEO, GeoInfo, GeoIP
from riskengine.enrich.netlists import AnonymousIP, NetworkLists
from riskengine.enrich.network import HostingClassifier
from riskengine.enrich.timezone import local_hour_at
from riskengine.enrich.useragent import ParsedUA, UAParser, device_key
from riskengine.health import ping_store
from riskengine.identity import checked, normalizer
from riskengine.metrics import observer_for
from riskengine.models import Attempt, ChallengeOutcome, FailedPassword, LoginAttempt
from riskengine.policy import Policy
from riskengine.profile import UserProfile, region_key
from riskengine.ratelimit import RateLimitedLog
from riskengine.shadow import shadowed
from riskengine.signals.anonymous import anonymous_proxy
from riskengine.signals.base import SignalResult
from riskengine.signals.device import device_novelty, is_trusted
from riskengine.signals.failures import failed_attempts
from riskengine.signals.geo import impossible_travel, novelty
from riskengine.signals.network import hosting_network
from riskengine.signals.population import rare_country_for_service
from riskengine.signals.time_of_day import unusual_hour
from riskengine.stores import MemoryStore, ProfileStore, open_store
from riskengine.stores.base import Updater
from riskengine.writeback import WriteBehind

log = logging.getLogger(__name__)

_SECONDS_PER_DAY = 86400.0
_POPULATION_LANDMARK = 1_735_689_600.0
"""2025-01-01 UTC: forward decay weighs a login at ``t`` by 2^((t − landmark)/half-life), so
decaying every count is dividing by the weight of "now" when reading (Cormode et al., ICDE 2009)."""
_POPULATION_FLUSH_ADDS = 256
_POPULATION_FLUSH_S = 1.0
_POPULATION_CACHE_S = 2.0
TRUST_KEYS_ENV = "RISKENGINE_TRUST_SECRET_KEYS"
PARKED_VERSION = 2
"""Format of a parked challenge's context (``record_outcome`` reads every earlier one too)."""


class UnknownDecisionError(LookupError):
    """``record_outcome`` got a decision id that was never challenged here, or has expired."""


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Engine:
    """Risk-based step-up decisions for logins whose password already checked out.

    >>> from datetime import datetime, timezone
    >>> engine = Engine(Settings().with_overrides(geo={"city_db": None}))
    >>> d = engine.score(LoginAttempt(user_id="u1", timestamp=datetime(2026, 1, 5, 9, tzinfo=timezone.utc),
    ...                               ip="81.2.69.160", country="GB", user_agent="Mozilla/5.0"))
    >>> d.action, d.reason_codes
    ('allow', ('NEW_DEVICE', 'COLD_START'))
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: ProfileStore | None = None,
        sink: AuditSink | None = None,
        geoip: GeoIP | None = None,
        metrics_registry: Any = None,
    ) -> None:
        self.settings = s = settings if settings is not None else Settings()
        self._uid = normalizer(s.identity.normalize_user_id)
        trust_keys = s.trust.secret_keys or parse_keys(os.environ.get(TRUST_KEYS_ENV, ""))
        shared_store = not isinstance(store, MemoryStore) if store is not None \
            else not s.store.url.startswith("memory://")
        if not trust_keys and shared_store:
            raise ValueError(
                "a shared profile store (sqlite/redis) needs a device-token key that every worker "
                f"shares: set [trust] secret_keys or {TRUST_KEYS_ENV} (>= 32 characters each; e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        # the keys are checked here too: the environment variable bypasses Settings' validation
        self.tokens = DeviceTokens([k.encode() for k in trust_keys] or [secrets.token_bytes(32)])
        self.trust_key_ephemeral = not trust_keys
        self.store: ProfileStore = (
            store if store is not None else open_store(
                s.store.url, s.failures.window_minutes * 60, busy_timeout_s=s.store.busy_timeout_ms / 1000.0,
                max_counters=s.store.max_counters,
                retain_s=2 * 60.0 * max(s.failures.window_minutes, s.otp.user_window_minutes,
                                        s.otp.session_minutes))
        )
        self.geoip = geoip if geoip is not None else GeoIP(s.geo.city_db, s.geo.asn_db, s.geo.cache_size)
        self.ua = UAParser(s.device.ua_cache_size)
        self.policy = Policy(s)
        self.hosting = HostingClassifier(s.geo.hosting_asns, s.geo.hosting_keywords)
        self.netlists = NetworkLists(s.network.allow_cidrs, s.network.deny_cidrs)
        self._netlists = self.netlists if self.netlists else None
        self.anonymous = AnonymousIP(s.geo.anonymous_db, s.geo.cache_size) if s.geo.anonymous_db else None
        self.sink: AuditSink = sink if sink is not None else self._default_sink(s)
        # the sink's tuple fast path (ParquetSink), looked up once rather than per event
        self._emit_values: Any = getattr(self.sink, "emit_values", None)
        self.audit_problems: list[str] = []
        try:
            audit_key = resolve_key(s.audit.root, s.audit.key, s.audit.key_file)
            key = audit_key.key
            self.audit_problems.extend(audit_key.warnings)  # key file readable by others, moved out...
        except OSError as exc:
            # An unwritable key location must not keep the auth service from starting: the sink
            # counts every event it cannot store; pseudonyms use a per-process key meanwhile.
            key = os.urandom(32)
            self.audit_problems.append(f"cannot keep the pseudonymisation key file: {exc}")
            log.error("audit degraded: %s", self.audit_problems[-1])
        self.pseudonymizer = Pseudonymizer(key, s.audit.pseudonymize)
        self.model: Any = None
        if s.policy.model:
            from riskengine.model import LoadedModel  # type: ignore[import-not-found,unused-ignore]

            self.model = LoadedModel.load(s.policy.model, weight=s.policy.model_weight)
        # hot-path constants
        self._window_s = s.device.window_days * _SECONDS_PER_DAY
        self._history_days = s.geo.history_days
        self._failure_window_s = s.failures.window_minutes * 60.0
        self._session_s = s.otp.session_minutes * 60.0
        self._otp_user_window_s = s.otp.user_window_minutes * 60.0
        self._otp_user_max = s.otp.user_max_failures
        self._max_pending_per_user = s.otp.max_pending_per_user
        self._ipv6_prefix = s.failures.ipv6_prefix
        self._trust_s = s.trust.days * _SECONDS_PER_DAY
        self._window_days = s.device.window_days
        self._returning_value = s.device.returning_value
        self._cold_min = s.coldstart.min_logins
        self._failure_limits = (s.failures.user_threshold, s.failures.user_deny_threshold,
                                s.failures.ip_threshold, s.failures.ip_deny_threshold,
                                s.failures.window_minutes)
        self._max_speed_kmh = s.geo.max_speed_kmh
        self._tolerance_km = s.geo.travel_tolerance_km
        self._hour_min_logins = s.hour.min_logins
        self._hour_rare_share = s.hour.rare_share
        self._otp_max = s.otp.max_attempts
        self._rare_weight = s.geo.rare_country_weight
        self._rare_share = s.geo.rare_country_share
        self._rare_min_logins = s.geo.rare_country_min_logins
        self._population_half_life_s = s.geo.population_half_life_days * _SECONDS_PER_DAY
        self._population_local = isinstance(self.store, MemoryStore)
        self._population_lock = threading.Lock()
        self._population_unsent: dict[str, float] = {}
        self._population_unsent_n = 0
        self._population_sent_at = time.monotonic()
        self._population_cache: tuple[float, dict[str, float]] = (-1e18, {})
        self._scored = itertools.count()
        self._degraded = itertools.count()
        self._store_errors = itertools.count()
        self._closed = False
        self._shadow = s.policy.mode == "shadow"
        self.degraded_log = RateLimitedLog(log, "degraded decisions", s.metrics.degraded_log_seconds)
        """Degraded decisions are logged once, then counted per interval (clock injectable)."""
        self.store_error_log = RateLimitedLog(log, "store errors", s.metrics.degraded_log_seconds)
        """Store errors behind a decision (parking a challenge, teaching a profile), likewise."""
        # Prometheus ([metrics] prometheus, or a registry) and/or tracing; None when both are off
        self._observer = observer_for(s.metrics.prometheus, metrics_registry)
        if self._observer is not None and self._observer.prometheus is not None:
            self._observer.prometheus.engine_counters.add(self)
        write_behind = s.store.write_behind
        if write_behind is None:
            write_behind = s.store.url.startswith(("redis://", "rediss://", "unix://"))
        self._writer = WriteBehind(self.store) if write_behind else None
        if self.trust_key_ephemeral:
            log.info("no device-token key configured (%s): tokens this process issues die with it",
                        TRUST_KEYS_ENV)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(
        cls, config: str | os.PathLike[str] | Settings | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Engine:
        """From a TOML path, a Settings object or a dict; ``RISKENGINE_*`` env vars override."""
        if isinstance(config, Settings):
            settings = config
        elif isinstance(config, Mapping):
            from riskengine.config import _apply_env

            settings = Settings.model_validate(_apply_env(dict(config), os.environ))
        else:
            settings = Settings.load(config)
        return cls(settings, **kwargs)

    @staticmethod
    def _default_sink(s: Settings) -> AuditSink:
        if not s.audit.root:
            return NullSink()
        from riskengine.audit.parquet import ParquetSink

        sink: AuditSink = ParquetSink(
            s.audit.root, flush_seconds=s.audit.flush_seconds, flush_rows=s.audit.flush_rows,
            buffer_rows=s.audit.buffer_rows, flush_on_sigterm=s.audit.flush_on_sigterm)
        return sink

    # ------------------------------------------------------------------ scoring
    def score(self, attempt: LoginAttempt | Mapping[str, Any]) -> Decision:
        """Allow, challenge or deny this login, with a risk in [0, 1] and the reasons."""
        started = time.perf_counter()
        if not isinstance(attempt, LoginAttempt):
            attempt = LoginAttempt.model_validate(attempt)
        if self._observer is None:
            return self.score_validated(attempt, started)
        return self._observer.scored(self.score_validated, attempt, started)

    def score_validated(self, attempt: Attempt, started: float | None = None) -> Decision:
        """:meth:`score` for an attempt the caller has already validated — a
        :class:`~riskengine.models.ValidatedAttempt` whose columns ``riskengine replay``
        checked in bulk against the model's rules. The same scoring path as ``score()``."""
        if started is None:
            started = time.perf_counter()
        next(self._scored)
        now = attempt.timestamp.timestamp()
        user_id = checked(self._uid, attempt.user_id)
        decision_id = secrets.token_hex(8)  # 64 bits from the OS CSPRNG: not predictable from others
        geo, geo_problem = self._geo(attempt)
        ua = self.ua.parse(attempt.user_agent)
        dkey = device_key(attempt.device_id, ua)
        token_key: str | None = None
        token_problem: str | None = None
        if attempt.device_token is not None:
            check = self.tokens.verify(attempt.device_token, user_id, now)
            token_key, token_problem = check.device_key, check.problem
        hour = local_hour_at(now, attempt.time_zone or geo.time_zone, geo.country)
        profile: UserProfile | None = None
        cold = False
        trusted = False
        degraded = False
        try:
            writer = self._writer
            before = writer.peek(user_id) if writer is not None else None
            snap = self.store.snapshot(
                user_id, self.failure_key(attempt.ip), now - self._failure_window_s,
                session=attempt.session_id or "", otp_since=now - self._otp_user_window_s,
                session_since=now - self._session_s)
            profile = snap.profile if writer is None else writer.overlay(user_id, snap.profile, before)
            decision, cold, trusted, dkey = self._decide(
                attempt, user_id, decision_id, now, geo, geo_problem, dkey, token_key, token_problem,
                hour, profile, snap.user_failures, snap.ip_failures,
                snap.otp_session_failures > self._otp_max, snap.otp_user_failures > self._otp_user_max)
        except Exception as exc:  # noqa: BLE001 - the auth flow must get a decision
            decision = self._fail_mode(decision_id, user_id, dkey, exc)
            degraded = True  # a fail-mode allow teaches nothing: the profile was never read
        if self._shadow:
            decision = shadowed(decision)  # returns allow; what enforcement would do rides along
        if decision.action == "allow" and not degraded:
            self._learn(user_id, now, dkey, geo, hour, scored_against=profile, behind=True,
                        established=profile is not None and not cold)
        elif decision.action == "challenge":
            self._park(decision, attempt, user_id, now, geo, dkey, hour, ua.device_type,
                       trusted_key=dkey if trusted else None, established=profile is not None and not cold)
        latency_us = (time.perf_counter() - started) * 1e6
        self._emit_decision(attempt, user_id, decision, geo, ua, dkey, profile, cold, trusted, latency_us,
                            degraded)
        return decision

    def failure_key(self, ip: str) -> str:
        """The key failed passwords from ``ip`` are counted under: the address itself (IPv4), or
        its ``failures.ipv6_prefix`` network (IPv6: one subscriber gets a whole /64, so counting
        single addresses would let an attacker rotate through them)."""
        if ":" not in ip:
            return ip
        return _ipv6_network(ip, self._ipv6_prefix)

    def _geo(self, attempt: Attempt) -> tuple[GeoInfo, str | None]:
        if attempt.country is not None:
            given = GeoInfo(attempt.country, attempt.region, attempt.city, attempt.latitude,
                            attempt.longitude, attempt.time_zone, attempt.asn, None)
            if attempt.latitude is None or attempt.longitude is None:
                return self._located(given, attempt.ip), None
            return given, None
        found, problem = self.geoip.lookup(attempt.ip)
        geo = found or EMPTY_GEO
        if attempt.asn is not None and geo.asn is None:
            geo = GeoInfo(geo.country, geo.region, geo.city, geo.latitude, geo.longitude,
                          geo.time_zone, attempt.asn, geo.asn_org)
        if found is None and problem is None and self.geoip.configured:
            problem = "IP not in the GeoIP database"
        return geo, problem

    def _located(self, given: GeoInfo, ip: str) -> GeoInfo:
        """Caller-supplied geo without coordinates (an RBA file, a CDN's country header): the
        GeoIP answer's coordinates and time zone, only when it puts the address in the same
        place — same country, and the same region and city wherever both name one — so
        impossible travel and the local hour work. The given columns are never replaced."""
        found, _ = self.geoip.lookup(ip)
        if found is None or found.latitude is None or found.longitude is None \
                or found.country != given.country \
                or not _same_name(given.region, found.region) or not _same_name(given.city, found.city):
            return given
        return given._replace(latitude=found.latitude, longitude=found.longitude,
                              time_zone=given.time_zone or found.time_zone,
                              asn=given.asn if given.asn is not None else found.asn)

    def _decide(
        self, attempt: Attempt, user_id: str, decision_id: str, now: float, geo: GeoInfo,
        geo_problem: str | None, dkey: str, token_key: str | None, token_problem: str | None,
        hour: int | None, profile: UserProfile | None, user_failures: int, ip_failures: int,
        otp_exceeded: bool, otp_locked: bool,
    ) -> tuple[Decision, bool, bool, str]:
        p = profile if profile is not None else _EMPTY_PROFILE
        cold = p.logins < self._cold_min
        trusted = False
        if token_key is not None:
            # the signature says who minted it; the profile says whether the trust still stands
            # (support's untrust, a reset, a device evicted from the bounded profile revoke it)
            if is_trusted(token_key, p.devices, now):
                dkey, trusted = token_key, True
            else:
                token_problem = "device token revoked: its device is no longer trusted by this profile"
        listed = self._netlists.match(attempt.ip) if self._netlists is not None else None
        signals: list[SignalResult] = [
            device_novelty(dkey, p.devices, now, self._window_days, self._returning_value)]
        if listed == "deny":
            signals.append(SignalResult(R.NETWORK_DENYLIST, 1.0, "address in network.deny_cidrs"))
        if token_problem is not None:
            signals.append(SignalResult(R.DEVICE_TOKEN_INVALID, 1.0, token_problem))
        if p.reset_at:
            signals.append(SignalResult(
                R.PROFILE_RESET, 1.0, "profile reset by support: logins step up until a challenge is verified"))
        if user_failures or ip_failures:
            signals.extend(failed_attempts(user_failures, ip_failures, *self._failure_limits))
        asn = geo.asn
        # an allow-listed network skips the network signals (never device/failure/geo ones)
        anon = self.anonymous.lookup(attempt.ip) if self.anonymous is not None and listed != "allow" \
            else _NO_CATEGORIES
        if (asn is not None or geo.asn_org or "hosting" in anon) and listed != "allow":
            signals.append(hosting_network(asn, geo.asn_org,
                                           "hosting" in anon or self.hosting.is_hosting(asn, geo.asn_org), p.asns))
        if anon:
            signals.append(anonymous_proxy(anon, asn, p.asns))
        if not p.countries and self._rare_weight and geo.country is not None:
            counts = self._population_counts()
            signals.append(rare_country_for_service(
                geo.country, counts, sum(counts.values()),
                self._rare_min_logins * self._population_weight(now), self._rare_share))
        if p.logins > 0:
            history_days = self._history_days
            # novelty needs something to be new against: a user whose earlier logins had no
            # known country/region/AS (no GeoIP answer, "-" in an RBA file) gets no signal
            if p.countries:
                signals.append(novelty(R.NEW_COUNTRY, "country", geo.country, p.countries, now, history_days))
            if p.regions:
                signals.append(novelty(R.NEW_REGION, "region", region_key(geo.country, geo.region),
                                       p.regions, now, history_days))
            if p.asns and listed != "allow":
                signals.append(novelty(R.NEW_ASN, "network AS", asn, p.asns, now, history_days))
            if geo.latitude != p.last_lat or geo.longitude != p.last_lon:
                signals.append(impossible_travel(
                    geo.latitude, geo.longitude, now, p.last_lat, p.last_lon, p.last_ts,
                    self._max_speed_kmh, self._tolerance_km))
            # an odd hour only ever adds to other evidence, so it is only worth computing
            # when something else fired (a model computes its own hour rarity from the profile)
            if _any_fired(signals):
                signals.append(unusual_hour(hour, p, self._hour_min_logins, self._hour_rare_share))
        extra: list[Reason] = []
        if geo_problem is not None:
            code = R.GEOIP_UNAVAILABLE if not self.geoip.available or "failed" in geo_problem \
                else R.GEO_UNKNOWN
            extra.append(Reason(code, 0.0, geo_problem))
        extra_risk = 0.0
        if self.model is not None:
            extra_risk, model_reasons = self.model.contribution(attempt, geo, dkey, hour, p, signals,
                                                                user_failures, ip_failures, now=now)
            extra.extend(model_reasons)
        a = self.policy.decide(
            signals, cold_start=cold, trusted=trusted, otp_failures_exceeded=otp_exceeded,
            otp_locked=otp_locked, enrolled=attempt.enrolled_factors, extra_risk=extra_risk,
            extra_reasons=extra)
        decision = Decision(decision_id, a.action, a.risk, a.reasons, a.factor, user_id,
                            dkey, self.policy.version)
        return decision, cold, trusted, dkey

    def _fail_mode(self, decision_id: str, user_id: str, dkey: str, exc: BaseException) -> Decision:
        next(self._degraded)
        self.degraded_log.warning("riskengine degraded, fail-mode decision: %s: %s", type(exc).__name__, exc)
        action: Action = self.settings.policy.fail_mode
        risk = {"allow": 0.0, "challenge": self.policy.challenge_threshold, "deny": 1.0}[action]
        factor = self.policy.recommend_factor(risk, ()) if action == "challenge" else None
        reason = Reason(R.ENGINE_DEGRADED, 0.0,
                        f"profile store unavailable ({type(exc).__name__}); fail mode {action}")
        return Decision(decision_id, action, risk, (reason,), factor, user_id, dkey,
                        self.policy.version)

    def _learn(self, user_id: str, now: float, dkey: str, geo: GeoInfo, hour: int | None,
               trust_key: str | None = None, trust_until: int = 0,
               scored_against: UserProfile | None = None, behind: bool = False,
               established: bool = False, verified: bool = False) -> None:
        """Teach the profile an accepted login (``scored_against``: the profile the login was
        scored against, which write-behind needs to keep reads consistent). ``trust_key``: the
        token device a verified "trust this device" trusts until ``trust_until``."""
        s = self.settings

        def learn(p: UserProfile | None) -> UserProfile:
            base = p if p is not None else UserProfile()
            out = base.learned(
                now=int(now), device_key=dkey, country=geo.country, region=geo.region,
                asn=geo.asn, latitude=geo.latitude, longitude=geo.longitude, local_hour=hour,
                max_devices=s.device.max_devices, max_places=s.geo.max_countries,
                half_life_days=s.hour.half_life_days, max_regions=s.geo.max_regions,
                max_asns=s.geo.max_asns)
            if verified:
                out = out.verified()
            if trust_key is not None:
                out = out.trusted(trust_key, trust_until, now=int(now), max_devices=s.device.max_devices)
            return out

        if established and geo.country is not None:
            # the population prior learns only from users with a history: a fresh account
            # (an attacker's, or a takeover of one) does not get to shape what "common" means
            self._population_add(geo.country, now)
        if behind and self._writer is not None:
            self._writer.submit(user_id, learn, learn(scored_against))
            return
        self._update_profile(user_id, learn, "profile update for a login")

    def _update_profile(self, user_id: str, fn: Updater, what: str) -> None:
        """Every profile write goes through here: with write-behind on it queues behind this
        user's pending lessons (so they apply in order), otherwise it writes through."""
        try:
            if self._writer is not None:
                self._writer.update(user_id, fn)
            else:
                self.store.update(user_id, fn)
        except Exception as exc:  # noqa: BLE001 - a lost lesson must not fail the login
            next(self._store_errors)
            self.store_error_log.warning("%s failed: %s", what, exc)

    def _park(self, decision: Decision, attempt: Attempt, user_id: str, now: float, geo: GeoInfo,
              dkey: str, hour: int | None, device_type: str, *, trusted_key: str | None,
              established: bool) -> None:
        """Keep what record_outcome needs, in the store, so any worker can take the outcome."""
        ctx = {
            "v": PARKED_VERSION,
            "u": user_id, "t": now, "d": dkey, "h": hour, "s": attempt.session_id or "",
            "f": decision.factor, "r": decision.risk, "dt": device_type,
            "rc": [r.code for r in decision.reasons], "pv": decision.policy_version,
            "g": [geo.country, geo.region, geo.city, geo.latitude, geo.longitude, geo.asn],
            "tk": trusted_key, "e": established,
        }
        try:
            self.store.put_pending(decision.decision_id, json.dumps(ctx).encode(),
                                   now + self._session_s, user_id=user_id,
                                   max_per_user=self._max_pending_per_user)
        except Exception as exc:  # noqa: BLE001
            next(self._store_errors)
            self.store_error_log.warning("could not park challenge context: %s", exc)

    # ------------------------------------------------------------------ outcomes
    def record_outcome(
        self,
        decision_id: str,
        outcome: Outcome,
        channels: Sequence[Channel] = (),
        attempts: int = 1,
        trust_device: bool = False,
        *,
        seconds_to_verify: float | None = None,
        timestamp: datetime | None = None,
    ) -> str | None:
        """Report how a challenge ended. A verified challenge teaches the profile; with
        ``trust_device=True`` it also trusts the device and **returns its device token** (an
        opaque URL-safe string: set it as a long-lived HttpOnly cookie and present it as
        ``LoginAttempt.device_token``); otherwise returns None. Failed attempts count toward
        the session's and the user's second-factor limits, atomically in the store.

        Raises :class:`UnknownDecisionError` for an id that was not challenged (or expired);
        a store outage is logged and counted, never raised.
        """
        # channels as given: the model turns a list into a tuple and rejects None or a number
        o = ChallengeOutcome(
            decision_id=decision_id, outcome=outcome, channels=channels, attempts=attempts,
            trust_device=trust_device, seconds_to_verify=seconds_to_verify, timestamp=timestamp)
        now = o.timestamp.timestamp() if o.timestamp is not None else time.time()
        try:
            raw = self.store.pop_pending(o.decision_id, now)
        except Exception as exc:  # noqa: BLE001
            next(self._store_errors)
            log.warning("record_outcome: store unavailable, outcome not applied: %s", exc)
            return None
        if raw is None:
            raise UnknownDecisionError(
                f"decision {o.decision_id!r} was not a pending challenge here (unknown or expired)")
        ctx = json.loads(raw)
        user_id: str = ctx["u"]
        country, region, city, lat, lon, asn = ctx["g"]
        geo = GeoInfo(country, region, city, lat, lon, None, asn, None)
        failed_attempts_n = o.attempts if o.outcome == "failed" else max(0, o.attempts - 1)
        event_ts = now if o.timestamp is not None else ctx["t"]
        if failed_attempts_n:
            try:
                self.store.add_otp_failures(
                    user_id, ctx["s"], failed_attempts_n, event_ts,
                    otp_since=event_ts - self._otp_user_window_s, session_since=event_ts - self._session_s)
            except Exception as exc:  # noqa: BLE001
                next(self._store_errors)
                log.warning("counting second-factor failures failed: %s", exc)
        token: str | None = None
        if o.outcome == "verified":
            trust_key: str | None = None
            until = 0
            if o.trust_device and self._trust_s > 0:
                until = int(event_ts + self._trust_s)
                # a device that presented a valid token keeps its id; any other gets a fresh one
                known: str | None = ctx.get("tk")
                device_id = DeviceTokens.device_id_of(known) if known else None
                if device_id is None:
                    device_id = DeviceTokens.new_device_id()
                trust_key = DeviceTokens.device_key(device_id)
                token = self.tokens.issue(user_id, device_id, issued=int(event_ts), expires=until)
            self._learn(user_id, ctx["t"], ctx["d"], geo, ctx["h"], trust_key=trust_key, trust_until=until,
                        established=bool(ctx.get("e", False)), verified=True)
            try:
                self.store.reset_failures(user_id)
            except Exception as exc:  # noqa: BLE001
                next(self._store_errors)
                log.warning("could not reset failures: %s", exc)
        chans = list(o.channels)
        self._emit("challenges", {
            "event_time": _utc(event_ts),
            "schema_version": SCHEMA_VERSION,
            "decision_id": o.decision_id,
            "user_key": self.pseudonymizer.user(user_id),
            "factor": ctx["f"],
            "channels": chans,
            "final_channel": chans[-1] if chans else None,
            "fallback_used": len(chans) > 1,
            "outcome": o.outcome,
            "attempts": o.attempts,
            "seconds_to_verify": o.seconds_to_verify,
            "trust_device": o.trust_device,
            "country": country,
            "device_type": ctx.get("dt"),
            "risk": ctx["r"],
            "reasons": ctx.get("rc", []),
            "policy_version": ctx.get("pv"),
        })
        if self._observer is not None:
            self._observer.challenge(o.outcome, chans[-1] if chans else None)
        return token

    def record_failure(self, user_id: str, ip: str, ts: datetime | None = None, *,
                       timestamp: datetime | None = None) -> int:
        """A failed password at ``ts`` (DESIGN.md's name; ``timestamp=`` is accepted too, as
        :class:`LoginAttempt` names it). Returns the user's failures in the window (0 if the
        store is down)."""
        if (ts is None) == (timestamp is None):
            raise TypeError("record_failure() takes the failure's time once: ts (or timestamp=)")
        f = FailedPassword(user_id=user_id, ip=ip, timestamp=ts if ts is not None else timestamp)
        uid = checked(self._uid, f.user_id)
        count = 0
        try:
            count = self.store.add_failure(uid, self.failure_key(f.ip), f.timestamp.timestamp())
        except Exception as exc:  # noqa: BLE001
            next(self._store_errors)
            log.warning("record_failure: store unavailable: %s", exc)
        self._emit("failures", {
            "event_time": f.timestamp.astimezone(UTC),
            "schema_version": SCHEMA_VERSION,
            "user_key": self.pseudonymizer.user(uid),
            "ip_prefix": self.pseudonymizer.ip(f.ip),
            "user_failures": count,
        })
        return count

    # ------------------------------------------------------------------ experiments
    def assign(
        self, experiment: str, user_id: str, weights: Mapping[str, float],
        timestamp: datetime | None = None,
    ) -> str:
        """Deterministic hash-based variant for ``user_id``; logs the exposure now.

        The first variant is the control. Same inputs → same variant in every process.
        """
        user_id = checked(self._uid, user_id)
        variant = assign_variant(experiment, user_id, weights)
        ts = timestamp or datetime.now(UTC)
        if ts.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        self._emit("exposures", {
            "event_time": ts.astimezone(UTC), "schema_version": SCHEMA_VERSION,
            "experiment": experiment, "variant": variant,
            "user_key": self.pseudonymizer.user(user_id),
            "control": next(iter(weights)), "variants": list(weights),
            "weights": [float(w) for w in weights.values()],
        })
        return variant

    def record_conversion(self, experiment: str, user_id: str, timestamp: datetime | None = None) -> None:
        """A conversion (e.g. signup completed) for a user exposed to ``experiment``."""
        if not experiment:
            raise ValueError("experiment name must not be empty")
        user_id = checked(self._uid, user_id)
        ts = timestamp or datetime.now(UTC)
        if ts.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        self._emit("conversions", {
            "event_time": ts.astimezone(UTC), "schema_version": SCHEMA_VERSION,
            "experiment": experiment, "user_key": self.pseudonymizer.user(user_id),
        })

    # ------------------------------------------------------------------ audit
    def _emit(self, table: str, row: dict[str, Any] | tuple[Any, ...]) -> None:
        """Hand a row to the sink: a dict, or a tuple in ``TABLES[table]`` column order, which
        goes to ``sink.emit_values`` when the sink has that fast path (ParquetSink) and is
        turned into the dict ``emit`` expects otherwise (UTC ``event_time``, lists not tuples)."""
        try:
            if isinstance(row, dict):
                self.sink.emit(table, row)
                return
            if self._emit_values is not None:
                self._emit_values(table, row)
                return
            from riskengine.audit.columns import COLUMNS  # not .schema: that needs pyarrow

            as_dict = {k: list(v) if type(v) is tuple else v for k, v in zip(COLUMNS[table], row, strict=True)}
            when = as_dict.get("event_time")
            if isinstance(when, datetime):
                as_dict["event_time"] = when.astimezone(UTC)
            self.sink.emit(table, as_dict)
        except Exception as exc:  # noqa: BLE001 - an audit failure never changes a decision
            log.warning("audit emit failed: %s", exc)

    def _emit_decision(
        self, attempt: Attempt, user_id: str, d: Decision, geo: GeoInfo, ua: ParsedUA, dkey: str,
        profile: UserProfile | None, cold: bool, trusted: bool, latency_us: float, degraded: bool,
    ) -> None:
        if isinstance(self.sink, NullSink):
            return
        pz = self.pseudonymizer
        reasons = d.reasons
        # a tuple in TABLES["decisions"] column order: no dict, no per-row UTC conversion (the
        # sink stores aware times as UTC); the pseudonyms come from lru caches
        self._emit("decisions", (
            attempt.timestamp, SCHEMA_VERSION, d.decision_id, pz.user(user_id),
            pz.session(attempt.session_id) if attempt.session_id else None, pz.ip(attempt.ip),
            geo.country, geo.region, geo.city, geo.asn, dkey,
            ua.browser_family, ua.browser_version, ua.os_family, ua.device_type,
            d.risk, d.action, [r.code for r in reasons] if reasons else [], d.factor, d.policy_version,
            latency_us, profile.logins if profile is not None else 0, cold, trusted, degraded,
            d.shadow_action,
        ))

    # ------------------------------------------------------------------ support
    def user_summary(self, user_id: str, *, recent: int = 20,
                     now: datetime | None = None) -> dict[str, Any]:
        """Why was this user challenged? Profile (devices, places, trust, failures) plus recent
        decisions with reasons and support actions from the audit log. See riskengine.support."""
        from riskengine import support

        return support.user_summary(self, checked(self._uid, user_id), recent=recent, now=now)

    def untrust(self, user_id: str, device_key: str | None = None, *, actor: str, reason: str,
                now: datetime | None = None) -> int:
        """Withdraw device trust (one device or all); audited with who and why."""
        from riskengine import support

        return support.untrust(self, checked(self._uid, user_id), device_key, actor=actor, reason=reason,
                               now=now)

    def reset_user(self, user_id: str, *, actor: str, reason: str,
                   now: datetime | None = None) -> bool:
        """Erase the profile (every device token is revoked with it) and mark it reset: the
        next logins are challenged (``PROFILE_RESET``) until one is verified. Audited.
        Lock-outs are :meth:`unlock_user`'s job, not this one's."""
        from riskengine import support

        return support.reset_user(self, checked(self._uid, user_id), actor=actor, reason=reason, now=now)

    def unlock_user(self, user_id: str, *, actor: str, reason: str,
                    now: datetime | None = None) -> None:
        """Clear the user's failed-password and second-factor counters, and nothing else (the
        runbook's answer to a lock-out: the profile and its trust stay). Audited."""
        from riskengine import support

        support.unlock_user(self, checked(self._uid, user_id), actor=actor, reason=reason, now=now)

    def report_fraud(self, *, decision_id: str, user_id: str, kind: str, actor: str,
                     note: str | None = None, timestamp: datetime | None = None) -> None:
        """Record fraud feedback on a decision — ``kind``: ``"not_me"`` (the user),
        ``"confirmed_takeover"`` or ``"false_positive"`` (an analyst) — in the audit table
        ``feedback``. See :mod:`riskengine.feedback` (and how training uses it as labels)."""
        from riskengine import feedback

        feedback.report_fraud(self, decision_id=decision_id, user_id=checked(self._uid, user_id), kind=kind,
                              actor=actor, note=note, timestamp=timestamp)

    # ------------------------------------------------------------------ population prior
    def _population_weight(self, now: float) -> float:
        exponent = (now - _POPULATION_LANDMARK) / self._population_half_life_s
        return float(2.0 ** max(-1000.0, min(1000.0, exponent)))

    def _population_add(self, country: str, now: float) -> None:
        weight = self._population_weight(now)
        if self._population_local:
            self.store.population_add(country, weight)  # in-process: exact and immediate
            return
        with self._population_lock:
            self._population_unsent[country] = self._population_unsent.get(country, 0.0) + weight
            self._population_unsent_n += 1
            due = self._population_unsent_n >= _POPULATION_FLUSH_ADDS or \
                time.monotonic() - self._population_sent_at >= _POPULATION_FLUSH_S
        if due:
            self._population_flush()

    def _population_flush(self) -> None:
        """Send this process's batched population counts to the shared store (networked stores
        get one write per country per second, not one per login)."""
        with self._population_lock:
            batch, self._population_unsent = self._population_unsent, {}
            self._population_unsent_n = 0
            self._population_sent_at = time.monotonic()
        try:
            for country, weight in batch.items():
                self.store.population_add(country, weight)
        except Exception as exc:  # noqa: BLE001 - a lost count shifts a share a little
            next(self._store_errors)
            log.warning("population prior update failed: %s", exc)

    def _population_counts(self) -> Mapping[str, float]:
        if self._population_local:
            return self.store.population()
        read_at, counts = self._population_cache
        if time.monotonic() - read_at > _POPULATION_CACHE_S:
            counts = self.store.population()
            self._population_cache = (time.monotonic(), counts)
        return counts

    def population_logins(self, now: datetime) -> float:
        """The population prior's weight at ``now``: established users' accepted logins, each
        decayed by ``geo.population_half_life_days`` (what ``rare_country_min_logins`` is
        compared with)."""
        self._population_flush()
        counts = self.store.population()
        return sum(counts.values()) / self._population_weight(now.timestamp())

    # ------------------------------------------------------------------ lifecycle
    def health(self) -> dict[str, Any]:
        """Counters an operator wants on a status page, and a real store ping: ``store_ok``
        (the store answered) and ``store_ping_ms`` (how long it took)."""
        self.degraded_log.flush_due()
        self.store_error_log.flush_due()
        store_ok, ping_ms = ping_store(self.store)
        return {
            "store_ok": store_ok,
            "store_ping_ms": ping_ms,
            "scored": _peek(self._scored),
            "degraded": _peek(self._degraded),
            "store_errors": _peek(self._store_errors) + (self._writer.errors if self._writer else 0),
            "audit_dropped": getattr(self.sink, "dropped", 0),
            "audit_problems": list(self.audit_problems),
            "geoip_problems": list(self.geoip.problems) + (
                [self.anonymous.problem] if self.anonymous is not None and self.anonymous.problem else []),
            "trust_key": "ephemeral" if self.trust_key_ephemeral else "configured",
        }

    def counters(self) -> dict[str, int]:
        """The running totals metrics export: degraded decisions, store errors, dropped audit events."""
        return {
            "degraded": _peek(self._degraded),
            "store_errors": _peek(self._store_errors) + (self._writer.errors if self._writer else 0),
            "audit_dropped": int(getattr(self.sink, "dropped", 0)),
        }

    def close(self) -> None:
        """Flush the audit log and release the store and GeoIP readers. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._population_unsent:
                self._population_flush()
            if self._writer is not None:
                self._writer.close()
            self.degraded_log.flush()
            self.store_error_log.flush()
            self.sink.close()
            if self._observer is not None and self._observer.prometheus is not None:
                self._observer.prometheus.engine_counters.retire(self)
        finally:
            self.store.close()
            self.geoip.close()
            if self.anonymous is not None:
                self.anonymous.close()

    def flush(self) -> None:
        """Apply queued profile lessons (write-behind) and write buffered audit events now."""
        if self._population_unsent:
            self._population_flush()
        if self._writer is not None:
            self._writer.flush()
        self.sink.flush()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


_EMPTY_PROFILE = UserProfile()
_NO_CATEGORIES: frozenset[str] = frozenset()


def _any_fired(signals: list[SignalResult]) -> bool:
    for sig in signals:
        if sig.value > 0.0:
            return True
    return False


@lru_cache(maxsize=65536)
def _ipv6_network(ip: str, prefix: int) -> str:
    try:
        return ipaddress.IPv6Network((ip, prefix), strict=False).with_prefixlen
    except ValueError:
        return ip  # not an IPv6 address after all (an IPv4-mapped form is still one): as given


def _same_name(given: str | None, found: str | None) -> bool:
    """A place name the caller gave matches GeoIP's (case-insensitively); no name from the
    caller matches anything."""
    if not given:
        return True
    return found is not None and given.casefold() == found.casefold()


def _peek(counter: itertools.count[int]) -> int:
    # itertools.count's repr is "count(N)": the next value, i.e. how many were taken
    return int(repr(counter)[6:-1])


def assign_variant(experiment: str, user_id: str, weights: Mapping[str, float]) -> str:
    """Hash ``experiment:user_id`` to [0, 1) and walk the cumulative weights.

    >>> assign_variant("signup_2fa", "u1", {"progressive": 0.5, "mfa_at_signup": 0.5}) in \
        ("progressive", "mfa_at_signup")
    True
    """
    if not experiment:
        raise ValueError("experiment name must not be empty")
    if not weights:
        raise ValueError("weights must name at least one variant")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError("variant weights must be non-negative and not all zero")
    digest = hashlib.blake2b(f"{experiment}\x00{user_id}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64 * sum(weights.values())
    cumulative = 0.0
    last = ""
    for name, weight in weights.items():
        cumulative += weight
        last = name
        if point < cumulative:
            return name
    return last


__all__ = ["Engine", "UnknownDecisionError", "assign_variant", "Factor"]
