"""The engine's state, set up once: settings, store, sink, GeoIP, UA parser, policy, device
tokens, pseudonymizer, model and the hot-path constants every part of the engine reads.

Everything expensive happens here (open GeoIP readers, compile the policy, open the store
and the audit sink); the parts of :class:`~riskengine.core.engine.Engine` (scoring,
outcomes, experiments, audit rows, population prior, support, lifecycle) are mixins over it.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import secrets
import threading
import time
from functools import lru_cache
from typing import Any, Final

from riskengine.audit import AuditSink, NullSink, Pseudonymizer, resolve_key
from riskengine.core.budget import BudgetConfig, BudgetSketch, DeferredBudget, UserCap
from riskengine.core.config import Settings
from riskengine.core.devicetoken import DeviceTokens, parse_keys
from riskengine.core.enrich.geoip import GeoIP
from riskengine.core.enrich.netlists import AnonymousIP, NetworkLists
from riskengine.core.enrich.network import HostingClassifier
from riskengine.core.enrich.useragent import UAParser
from riskengine.core.identity import normalizer
from riskengine.core.metrics import observer_for
from riskengine.core.model import LoadedModel
from riskengine.core.policy import Policy
from riskengine.core.profile import EvidenceLimits, LearnBounds
from riskengine.core.ratelimit import RateLimitedLog
from riskengine.core.stores import MemoryStore, open_store
from riskengine.core.typing import ProfileStore, RiskModel, ValuesAuditSink
from riskengine.core.writeback import WriteBehind

log = logging.getLogger(__name__)

_SECONDS_PER_DAY = 86400.0
HISTORY_REFRESH_S: Final = 300.0
"""How often a process re-reads the store's history start (``ProfileStore.history_start``):
rarely enough to cost nothing, often enough that a wiped store is noticed."""
TRUST_KEYS_ENV = "RISKENGINE_TRUST_SECRET_KEYS"


class EngineState:
    """What every part of the engine shares; built by the constructor."""

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
                                        s.otp.session_minutes),
                cluster=s.store.cluster)
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
        self._emit_values = self.sink.emit_values if isinstance(self.sink, ValuesAuditSink) else None
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
        self.model: RiskModel | None = None
        if s.policy.model:
            self.model = LoadedModel.load(s.policy.model, weight=s.policy.model_weight,
                                           odds=s.policy.model_odds, cold_logins=s.coldstart.min_logins,
                                           cold_scale=s.coldstart.novelty_scale if s.policy.model_cold_scale is None
                                           else s.policy.model_cold_scale)
        # hot-path constants
        self._window_s = s.device.window_days * _SECONDS_PER_DAY
        self._history_days = s.geo.history_days
        self._novelty = (s.geo.novelty_floor, s.geo.novelty_full_ratio)
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
        self._prefix_bits = (s.geo.ipv4_prefix, s.geo.ipv6_prefix)
        self._far = (s.geo.far_km, s.geo.far_full_km)
        self._rtt = (s.rtt.min_samples, s.rtt.k, s.rtt.min_factor, s.rtt.slack_ms, s.rtt.young_factor)
        self._rtt_known_prefix = s.rtt.known_prefix_value
        self._travel_usual = (s.geo.place_merge_km, s.geo.travel_usual_place_days,
                              s.geo.place_half_life_days * _SECONDS_PER_DAY) \
            if s.geo.travel_between_usual_places else None
        self._evidence_limits = EvidenceLimits(
            s.device.max_ua_families, s.device.max_ua_versions, s.geo.max_prefixes, s.geo.max_cities,
            s.geo.max_usual_places, s.geo.place_merge_km, s.geo.place_half_life_days, s.rtt.max_asns,
            s.rtt.alpha)
        # what every lesson reads
        self._learn_bounds = LearnBounds(s.device.max_devices, s.geo.max_countries,
                                         s.hour.half_life_days * _SECONDS_PER_DAY,
                                         s.geo.max_regions or s.geo.max_countries,
                                         s.geo.max_asns or s.geo.max_countries)
        self._tolerance_km = s.geo.travel_tolerance_km
        self._hour_min_logins = s.hour.min_logins
        self._hour_rare_share = s.hour.rare_share
        self._otp_max = s.otp.max_attempts
        self._rare_weight = s.geo.rare_country_weight
        self._dormant_s = s.coldstart.dormant_days * _SECONDS_PER_DAY
        self._history_start: float | None = None
        """The store's history start (``ProfileStore.history_start``), re-read every
        ``HISTORY_REFRESH_S``: None until read (or while the store cannot say)."""
        self._history_due = 0.0 if self._dormant_s else float("inf")
        self._rare_share = s.geo.rare_country_share
        self._rare_min_logins = s.geo.rare_country_min_logins
        self._population_half_life_s = s.geo.population_half_life_days * _SECONDS_PER_DAY
        self._population_local = isinstance(self.store, MemoryStore)
        self._population_lock = threading.Lock()
        self._population_unsent: dict[str, float] = {}
        self._population_unsent_n = 0
        self._population_sent_at = time.monotonic()
        self._population_cache: tuple[float, dict[str, float]] = (-1e18, {})
        self._budget = budget_sketch(s)
        self._budget_lock = threading.Lock()
        self._budget_established = s.policy.budget_established_logins
        self._budget_tap: list[tuple[bool, bool, bool]] | None = None
        self._scored = itertools.count()
        self._degraded = itertools.count()
        self._store_errors = itertools.count()
        self._signups_learned = itertools.count()
        self._signups_refused = itertools.count()
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
            write_behind = s.store.url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://",
                                                   "rediss+cluster://"))
        self._writer = WriteBehind(self.store) if write_behind else None
        if self.trust_key_ephemeral:
            log.info("no device-token key configured (%s): tokens this process issues die with it",
                        TRUST_KEYS_ENV)

    @staticmethod
    def _default_sink(s: Settings) -> AuditSink:
        if not s.audit.root:
            return NullSink()
        from riskengine.audit import ParquetSink  # pyarrow (extra [audit]): only with an audit root

        sink: AuditSink = ParquetSink(
            s.audit.root, flush_seconds=s.audit.flush_seconds, flush_rows=s.audit.flush_rows,
            buffer_rows=s.audit.buffer_rows, flush_on_sigterm=s.audit.flush_on_sigterm,
            endpoint_url=s.audit.s3_endpoint_url, region=s.audit.s3_region)
        return sink

    def _store_failed(self, what: str, exc: BaseException) -> None:
        """A store call behind a login failed (the login still got its decision): counted in
        ``health()["store_errors"]`` and logged rate-limited, so an outage does not flood the log."""
        next(self._store_errors)
        self.store_error_log.warning("%s: %s", what, exc)

    def defer_budget(self) -> list[tuple[bool, bool, bool]] | None:
        """Replay's seam for the step-up budget (None when the policy has none): from now on
        this engine decides at the fixed ``challenge_threshold`` and learns no sketch, and for
        every decision it makes (not fail-mode ones) it appends ``(established, exempt,
        floor)`` to the returned list — what :func:`riskengine.offline.budget.apply_budget`
        needs to apply the budget afterwards, the same way whatever the number of workers."""
        budget = self._budget
        if budget is None:
            return None
        self._budget = DeferredBudget(budget.cfg, self.policy.challenge_threshold, budget.refresh_s, budget.cap)
        self._budget_tap = []
        return self._budget_tap

    def failure_key(self, ip: str) -> str:
        """The key failed passwords from ``ip`` are counted under: the address itself (IPv4), or
        its ``failures.ipv6_prefix`` network (IPv6: one subscriber gets a whole /64, so counting
        single addresses would let an attacker rotate through them)."""
        if ":" not in ip:
            return ip
        return _ipv6_network(ip, self._ipv6_prefix)


def budget_sketch(s: Settings) -> BudgetSketch | None:
    """The step-up budget's sketch for these settings (None: a fixed policy)."""
    pol = s.policy
    if not pol.target_stepup_rate:
        return None
    # with a model the clamp's top is on the rules' scale (Policy challenges a login whose rules
    # alone reach budget_max_threshold); the live threshold on the blended risk goes up to the
    # point where only such logins step up
    cfg = BudgetConfig(pol.target_stepup_rate, pol.budget_min_threshold, pol.budget_threshold_top(),
                       pol.budget_warmup_logins, pol.budget_half_life_hours * 3600.0)
    return BudgetSketch(cfg, pol.challenge_threshold, pol.budget_refresh_seconds,
                        UserCap(pol.budget_user_cap, pol.budget_user_window_seconds))


@lru_cache(maxsize=65536)
def _ipv6_network(ip: str, prefix: int) -> str:
    try:
        return ipaddress.IPv6Network((ip, prefix), strict=False).with_prefixlen
    except ValueError:
        return ip  # not an IPv6 address after all (an IPv4-mapped form is still one): as given


