"""Scoring: ``score`` / ``score_validated``: geo, signals, the model hook, the policy, and the
fail-mode decision when the store is down."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from riskengine.core import reasons as R
from riskengine.core.attempt import Attempt, LoginAttempt
from riskengine.core.decision import Action, Decision, Event, Reason
from riskengine.core.decision_ids import new_decision_id
from riskengine.core.engine.audit_rows import AuditRows
from riskengine.core.engine.learning import Learning
from riskengine.core.engine.parking import Counted, Parking
from riskengine.core.engine.state import HISTORY_REFRESH_S
from riskengine.core.enrich.geoip import EMPTY_GEO, GeoInfo
from riskengine.core.enrich.timezone import local_hour_at
from riskengine.core.enrich.useragent import ParsedUA, device_key
from riskengine.core.identity import checked
from riskengine.core.profile import LoginTraits, UserProfile, region_key
from riskengine.core.shadow import shadowed
from riskengine.core.signals.anonymous import anonymous_proxy
from riskengine.core.signals.base import SignalResult
from riskengine.core.signals.city import city_key, new_city
from riskengine.core.signals.device import device_novelty, is_trusted
from riskengine.core.signals.dormant import dormant_account
from riskengine.core.signals.failures import failed_attempts
from riskengine.core.signals.geo import impossible_travel, novelty
from riskengine.core.signals.habit import habitual
from riskengine.core.signals.network import hosting_network
from riskengine.core.signals.population import rare_country_for_service
from riskengine.core.signals.prefix import address_prefix, new_prefix, prefix_seen
from riskengine.core.signals.rtt import on_known_prefix, rtt_anomaly
from riskengine.core.signals.time_of_day import unusual_hour
from riskengine.core.signals.ua_version import new_ua_version, ua_downgrade
from riskengine.core.signals.usual_places import between_usual_places, far_from_usual_places
from riskengine.core.typing import Snapshot


class CrossUser(NamedTuple):
    """Cross-user state supplied from outside the engine, for one login (the seam ``riskengine
    replay`` uses: its global pre-pass computes what every partition's engine cannot see —
    the failed passwords from the login's address across all users, and the population prior
    in effect). ``score()`` never gets one: online, the store supplies both."""

    ip_failures: int
    """Failed passwords from the login's address (its failure key) in the failure window."""
    country_count: float
    """The population prior's count for the login's own country, as in effect at the login
    (forward-decayed, as the store keeps it)."""
    population_total: float
    """The sum of all the prior's counts at the same moment."""
    history_start: float | None = None
    """When the store's history began (``ProfileStore.history_start``): in replay, the input's
    first login. None: unknown (no ``DORMANT_ACCOUNT``)."""


class Prepared(NamedTuple):
    """A login before the store is read (what :meth:`Scoring._prepare` worked out)."""

    started: float
    now: float
    user_id: str
    decision_id: str
    geo: GeoInfo
    geo_problem: str | None
    ua: ParsedUA
    device_key: str
    token_key: str | None
    token_problem: str | None
    hour: int | None
    traits: LoginTraits


class Concluded(NamedTuple):
    """The decision and what the lesson, the parked challenge and the audit row need."""

    decision: Decision
    profile: UserProfile | None
    cold: bool
    trusted: bool
    device_key: str
    degraded: bool
    established: bool
    counted: Counted | None = None
    """What the step-up budget's sketch counted for this login (parked with a challenge)."""


class Scoring(AuditRows, Learning, Parking):
    """``score()``: lookups and arithmetic over the state; the fail-mode decision when the store is down."""

    def score(self, attempt: LoginAttempt | Mapping[str, Any]) -> Decision:
        """Allow, challenge or deny this login, with a risk in [0, 1] and the reasons."""
        started = time.perf_counter()
        if not isinstance(attempt, LoginAttempt):
            attempt = LoginAttempt.model_validate(attempt)
        if self._observer is None:
            return self.score_validated(attempt, started)
        return self._observer.scored(self.score_validated, attempt, started)

    def score_validated(self, attempt: Attempt, started: float | None = None,
                        shared: CrossUser | None = None) -> Decision:
        """:meth:`score` for an attempt the caller has already validated — a
        :class:`~riskengine.core.attempt.ValidatedAttempt` whose columns ``riskengine replay``
        checked in bulk against the model's rules. The same scoring path as ``score()``;
        ``shared`` (replay's partitions) replaces the store's per-address failure count and
        the population prior with values computed outside this engine."""
        p = self._prepare(attempt, time.perf_counter() if started is None else started)
        before = self._writer.peek(p.user_id) if self._writer is not None else None
        snap: Snapshot | None = None
        error: Exception | None = None
        try:
            # what _snapshot_args and _snapshot_windows give ascore, without building their tuple and dict
            now = p.now
            snap = self.store.snapshot(p.user_id, self.failure_key(attempt.ip), now - self._failure_window_s,
                                       session=attempt.session_id or "", otp_since=now - self._otp_user_window_s,
                                       session_since=now - self._session_s)
        except Exception as exc:  # noqa: BLE001 - the auth flow must get a decision
            error = exc
        if self._history_due <= p.started and shared is None and self._history_wanted(snap):
            self._read_history_start(now)
        if shared is not None and snap is not None:
            # _make: _replace goes through a kwargs dict and a map over every field
            snap = Snapshot._make((snap.profile, snap.user_failures, shared.ip_failures, snap.otp_user_failures,
                                   snap.otp_session_failures))
        c = self._conclude(p, attempt, snap, error, before, shared)
        if c.decision.action == "allow" and not c.degraded and attempt.event == "login":
            # a sensitive event never teaches the profile (an attacker's allowed recovery must
            # not make their device or place familiar): only logins do
            self._learn(p.user_id, p.now, c.device_key, p.geo, p.hour, scored_against=c.profile, behind=True,
                        established=c.established, traits=p.traits)
        elif c.decision.action == "challenge":
            self._park(c.decision, attempt, p.user_id, p.now, p.geo, c.device_key, p.hour, p.ua.device_type,
                       trusted_key=c.device_key if c.trusted else None, established=c.established,
                       traits=p.traits, counted=c.counted)
        self._finish(p, attempt, c)
        return c.decision

    @staticmethod
    def _history_wanted(snap: Snapshot | None, /) -> bool:
        """Whether a login whose refresh of the store's history start is due should do it: only
        on an account with nothing on record (:attr:`UserProfile.blank`, the one a signup may
        seed), the only kind ``DORMANT_ACCOUNT`` concerns — every other login stays one store
        call."""
        return snap is not None and (snap.profile is None or snap.profile.blank)

    def _read_history_start(self, now: float) -> None:
        """Refresh :attr:`_history_start` from the store (the first call of all sets it), at most
        once per ``HISTORY_REFRESH_S`` per process, so a store that was wiped is noticed. A store
        failure keeps the last value (None: no ``DORMANT_ACCOUNT`` until the store answers)."""
        self._history_due = time.perf_counter() + HISTORY_REFRESH_S
        try:
            self._history_start = self.store.history_start(now)
        except Exception as exc:  # noqa: BLE001 - the login still gets its decision
            self._store_failed("history start read failed", exc)

    # -- the phases score() and ascore() share: everything but the store's I/O ------------------
    def _prepare(self, attempt: Attempt, started: float, scored: bool = True) -> Prepared:
        """Before the store is read: ids, geo, the User-Agent, the device token's signature.
        ``scored`` False: a signup session (``record_signup``) — the same evidence (what its
        lesson learns is what a login's would), not counted as scored, no token checked."""
        if scored:
            next(self._scored)
        now = attempt.timestamp.timestamp()
        user_id = checked(self._uid, attempt.user_id)
        decision_id = new_decision_id()  # 64 bits from the OS CSPRNG: not predictable from others
        geo, geo_problem = self._geo(attempt)
        ua = self.ua.parse(attempt.user_agent)
        token_key: str | None = None
        token_problem: str | None = None
        if attempt.device_token is not None and scored:
            check = self.tokens.verify(attempt.device_token, user_id, now)
            token_key, token_problem = check.device_key, check.problem
        hour = local_hour_at(now, attempt.time_zone or geo.time_zone, geo.country)
        # NamedTuples built with _make: their generated __new__ binds every parameter in Python
        traits = LoginTraits._make((ua.browser_family, ua.browser_version, ua.os_family, ua.os_version,
                                    address_prefix(attempt.ip, *self._prefix_bits),
                                    city_key(geo.country, geo.region, geo.city), attempt.rtt_ms, ua.version_digest))
        return Prepared._make((started, now, user_id, decision_id, geo, geo_problem, ua,
                               device_key(attempt.device_id, ua), token_key, token_problem, hour, traits))

    def _snapshot_args(self, p: Prepared, attempt: Attempt) -> tuple[str, str, float]:
        return p.user_id, self.failure_key(attempt.ip), p.now - self._failure_window_s

    def _snapshot_windows(self, p: Prepared, attempt: Attempt) -> dict[str, Any]:
        return {"session": attempt.session_id or "", "otp_since": p.now - self._otp_user_window_s,
                "session_since": p.now - self._session_s}

    def _conclude(self, p: Prepared, attempt: Attempt, snap: Snapshot | None, error: Exception | None,
                  before: UserProfile | None, shared: CrossUser | None = None) -> Concluded:
        """The decision from what the store returned (or the fail mode when it could not)."""
        profile: UserProfile | None = None
        try:
            if error is not None:
                raise error
            assert snap is not None
            writer = self._writer
            profile = snap.profile if writer is None else writer.overlay(p.user_id, snap.profile, before)
            decision, cold, trusted, dkey, counted = self._decide(
                attempt, p.user_id, p.decision_id, p.now, p.geo, p.geo_problem, p.device_key, p.token_key,
                p.token_problem, p.hour, p.ua, p.traits, profile, snap.user_failures, snap.ip_failures,
                snap.otp_session_failures > self._otp_max, snap.otp_user_failures > self._otp_user_max,
                shared, snap.otp_user_failures)
            degraded = False
        except Exception as exc:  # noqa: BLE001 - the auth flow must get a decision
            decision = self._fail_mode(p.decision_id, p.user_id, p.device_key, exc, attempt.event)
            cold, trusted, dkey, degraded, counted = False, False, p.device_key, True, None
        if self._shadow:
            decision = shadowed(decision)  # returns allow; what enforcement would do rides along
        return Concluded._make((decision, profile, cold, trusted, dkey, degraded, profile is not None and not cold,
                                counted))

    def _finish(self, p: Prepared, attempt: Attempt, c: Concluded) -> None:
        latency_us = (time.perf_counter() - p.started) * 1e6
        self._emit_decision(attempt, p.user_id, c.decision, p.geo, p.ua, c.device_key, c.profile, c.cold,
                            c.trusted, latency_us, c.degraded)

    def _geo(self, attempt: Attempt) -> tuple[GeoInfo, str | None]:
        if attempt.country is not None:
            given = GeoInfo._make((attempt.country, attempt.region, attempt.city, attempt.latitude,
                                   attempt.longitude, attempt.time_zone, attempt.asn, None))
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
        return GeoInfo._make((given.country, given.region, given.city, found.latitude, found.longitude,
                              given.time_zone or found.time_zone,
                              given.asn if given.asn is not None else found.asn, given.asn_org))

    def _decide(
        self, attempt: Attempt, user_id: str, decision_id: str, now: float, geo: GeoInfo,
        geo_problem: str | None, dkey: str, token_key: str | None, token_problem: str | None,
        hour: int | None, ua: ParsedUA, traits: LoginTraits, profile: UserProfile | None,
        user_failures: int, ip_failures: int,
        otp_exceeded: bool, otp_locked: bool, shared: CrossUser | None = None, otp_recent: int = 0,
    ) -> tuple[Decision, bool, bool, str, Counted | None]:
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
            if shared is None:
                counts = self._population_counts()
                total = sum(counts.values())
            else:
                counts, total = {geo.country: shared.country_count}, shared.population_total
            signals.append(rare_country_for_service(
                geo.country, counts, total,
                self._rare_min_logins * self._population_weight(now), self._rare_share))
        samples = p.logins + 1 if p.signup_at else p.logins  # UserProfile.samples, inline (hot path)
        dormant = False
        if samples == 0 and p.blank:
            # nothing on record in all the store's history (the profile a signup may seed; a
            # reset one is not: PROFILE_RESET says it): a dormant account, or one created before
            # the engine and never used, not a new one — no cold-start leniency
            signal = dormant_account(samples, now, self._history_start if shared is None else shared.history_start,
                                     self._dormant_s)
            if signal.value:
                dormant = True
                signals.append(signal)
        if samples > 0:
            # a signup session (record_signup) is history to be new against, never "established"
            history_days = self._history_days
            # novelty needs something to be new against: a user whose earlier logins had no
            # known country/region/AS (no GeoIP answer, "-" in an RBA file) gets no signal
            if p.countries:
                signals.append(novelty(R.NEW_COUNTRY, "country", geo.country, p.countries, now, history_days))
            region_new = asn_new = False
            if p.regions:
                region = novelty(R.NEW_REGION, "region", region_key(geo.country, geo.region),
                                 p.regions, now, history_days)
                region_new = region.value > 0.0
                signals.append(habitual(region, len(p.regions), samples, *self._novelty, "regions")
                               if region_new else region)
            if p.asns and listed != "allow":
                network = novelty(R.NEW_ASN, "network AS", asn, p.asns, now, history_days)
                asn_new = network.value > 0.0
                signals.append(habitual(network, len(p.asns), samples, *self._novelty, "networks")
                               if asn_new else network)
            self._finer(signals, traits, ua, dkey, geo, now, p, region_new, asn_new, listed, samples)
            if geo.latitude != p.last_lat or geo.longitude != p.last_lon:
                travel = impossible_travel(
                    geo.latitude, geo.longitude, now, p.last_lat, p.last_lon, p.last_ts,
                    self._max_speed_kmh, self._tolerance_km)
                if travel.value > 0.0 and self._travel_usual is not None:
                    # home and a VPN exit: the user at two of their own places, not two parties
                    travel = between_usual_places(travel, geo.latitude, geo.longitude, p.last_lat, p.last_lon,
                                                  p.places, *self._travel_usual, now)
                signals.append(travel)
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
        event = attempt.event
        if event != "login":
            signals.extend(self._event_signals(event, dkey, p, geo, now, trusted, cold, otp_recent))
            # a sensitive event has its own fixed thresholds and never feeds the login budget
            budget = None
            threshold = self.policy.events[event].challenge_threshold
        else:
            budget = self._budget
            threshold = self.policy.challenge_threshold if budget is None else self._budget_threshold(now)
            if budget is not None and p.logins < self._budget_established:
                # the budget measures established users only: one it does not measure is judged
                # by the fixed policy (on the scorer's risk, the blend with a model), neither laxer
                # (a takeover of a new account while established users' risks ran high) nor
                # stricter (a new user's second device while they ran low); docs/budget.md
                threshold = self.policy.challenge_threshold
        a = self.policy.decide(
            signals, cold_start=cold and not dormant, trusted=trusted, otp_failures_exceeded=otp_exceeded,
            otp_locked=otp_locked, enrolled=attempt.enrolled_factors, extra_risk=extra_risk,
            extra_reasons=extra, threshold=None if budget is None else threshold, event=event)
        # positional (shadow_action None): a frozen dataclass binds keywords slower
        decision = Decision(decision_id, a.action, a.risk, a.reasons, a.factor, user_id,
                            dkey, self.policy.version, None, threshold, event)
        counted: Counted | None = None
        if budget is not None:
            # what the sketch learns: a login the floor forced counts as stepped up whatever its
            # risk; one a trusted device allows whatever the threshold counts at risk 0
            exempt = trusted and not any(r.code in self.policy.strong for r in a.reasons)
            established = p.logins >= self._budget_established
            if a.action != "deny" and established:
                risk = 0.0 if exempt else a.risk
                with self._budget_lock:
                    if budget.observe(user_id, risk, a.floor, now):
                        counted = (risk, a.floor)  # parked with a challenge: retracted if it fails
            if self._budget_tap is not None:
                self._budget_tap.append((established, exempt, a.floor))
        return decision, cold, trusted, dkey, counted

    def _budget_threshold(self, now: float) -> float:
        """The live threshold; at each refresh boundary of event time, this worker's delta is
        merged into the store and the merged sketch read back. A store failure keeps the last
        good threshold (and the delta, for the next refresh): never an exception."""
        budget = self._budget
        assert budget is not None
        with self._budget_lock:
            if budget.due(now):
                delta = budget.take_delta()
                try:
                    merged = self.store.budget_merge(delta)
                except Exception as exc:  # noqa: BLE001 - the login still gets its decision
                    budget.restore(delta)
                    budget.keep(now)
                    self._store_failed("step-up budget merge failed (last threshold kept)", exc)
                else:
                    budget.install(merged, now)
            return budget.threshold

    def _finer(self, out: list[SignalResult], t: LoginTraits, ua: ParsedUA, dkey: str, geo: GeoInfo, now: float,
               p: UserProfile, region_new: bool, asn_new: bool, listed: str | None, samples: int) -> None:
        """Append the richer evidence of a user with history to ``out``: the User-Agent's
        versions, the address prefix and the city (each only below a coarser level that is
        already known), the distance from the usual places, and the round-trip time on this
        network."""
        history_days = self._history_days
        if p.ua_newest or p.ua_seen:
            seen = ua.version_digest in p.ua_seen
            downgrade = ua_downgrade(ua.browser_family, ua.browser_version_key, ua.os_family, ua.os_version_key,
                                     p.ua_newest, seen)
            out.append(downgrade)
            if p.ua_seen and not downgrade.value:  # a downgrade is also a new version: counted once
                # a device back after more than the device window fires NEW_DEVICE (returning): its
                # browser has updated meanwhile, so a new version says nothing more there
                seen_device = p.devices.get(dkey)
                recent = seen_device is not None and now - seen_device.last_seen <= self._window_s
                out.append(new_ua_version(ua.browser_family, ua.browser_version, ua.os_family, ua.os_version,
                                          seen, recent))
        # habitual() returns a signal that did not fire as it is: the call is skipped then
        if p.prefixes and listed != "allow":
            prefix = new_prefix(t.prefix, asn_new, p.prefixes, now, history_days)
            out.append(habitual(prefix, len(p.prefixes), samples, *self._novelty, "address blocks")
                       if prefix.value > 0.0 else prefix)
        if p.cities:
            city = new_city(t.city, region_new, p.cities, now, history_days)
            out.append(habitual(city, len(p.cities), samples, *self._novelty, "cities")
                       if city.value > 0.0 else city)
        if p.places:
            out.append(far_from_usual_places(geo.latitude, geo.longitude, p.places, *self._far))
        if p.rtt and t.rtt_ms is not None:
            rtt = rtt_anomaly(t.rtt_ms, geo.asn, p.rtt, *self._rtt)
            if rtt.value > 0.0 and self._rtt_known_prefix < 1.0:
                # a relay's exit is not in the user's own address block: there it is congestion
                rtt = on_known_prefix(rtt, prefix_seen(t.prefix, p.prefixes, now, history_days),
                                      self._rtt_known_prefix)
            out.append(rtt)

    def _event_signals(self, event: Event, dkey: str, p: UserProfile, geo: GeoInfo, now: float,
                       trusted: bool, cold: bool, otp_recent: int) -> list[SignalResult]:
        """The rules of ``policy.events.<event>`` for a sensitive event (docs/signals.md)."""
        rule = self.policy.events[event]
        out: list[SignalResult] = []
        seen = p.devices.get(dkey)
        if rule.deny_new_device_and_country and seen is None and geo.country is not None and p.countries \
                and geo.country not in p.countries:
            out.append(SignalResult(
                R.RECOVERY_HIGH_RISK, 1.0,
                f"{event} from a never-seen device in a never-seen country ({geo.country}): "
                "denied, hand to manual review"))
        if rule.challenge_untrusted_device and not trusted:
            out.append(SignalResult(R.UNTRUSTED_DEVICE, 1.0,
                                    f"{event} from a device without a valid device token"))
        if rule.challenge_no_history and (cold or p.logins == 0):
            out.append(SignalResult(R.NO_HISTORY, 1.0,
                                    f"{p.logins} earlier logins: too little history to allow a {event}"))
        if rule.challenge_after_otp_failures and otp_recent > 0:
            out.append(SignalResult(
                R.RECENT_OTP_FAILURES, 1.0,
                f"{otp_recent} failed second factor(s) for this user in the last "
                f"{self._otp_user_window_s / 60:g} min"))
        if rule.recent_device_s > 0.0 and seen is not None and now - seen.first_seen < rule.recent_device_s:
            out.append(SignalResult(
                R.RECENT_NEW_DEVICE, 1.0,
                f"device first seen {(now - seen.first_seen) / 3600:.1f} h ago: a {event} waits "
                f"{rule.recent_device_s / 3600:g} h on a new device"))
        return out

    def _fail_mode(self, decision_id: str, user_id: str, dkey: str, exc: BaseException,
                   event: Event = "login") -> Decision:
        next(self._degraded)
        self.degraded_log.warning("riskengine degraded, fail-mode decision: %s: %s", type(exc).__name__, exc)
        action: Action = self.settings.policy.fail_mode
        if action == "allow" and event != "login":
            action = "challenge"  # a sensitive event is never allowed blind (docs/signals.md)
        threshold = self.policy.challenge_threshold if event == "login" \
            else self.policy.events[event].challenge_threshold
        risk = {"allow": 0.0, "challenge": threshold, "deny": 1.0}[action]
        factor = self.policy.recommend_factor(risk, ()) if action == "challenge" else None
        reason = Reason(R.ENGINE_DEGRADED, 0.0,
                        f"profile store unavailable ({type(exc).__name__}); fail mode {action}")
        return Decision(decision_id, action, risk, (reason,), factor, user_id, dkey,
                        self.policy.version, event=event)

_EMPTY_PROFILE = UserProfile()
_NO_CATEGORIES: frozenset[str] = frozenset()


def _any_fired(signals: list[SignalResult]) -> bool:
    for sig in signals:
        if sig.value > 0.0:
            return True
    return False


def _same_name(given: str | None, found: str | None) -> bool:
    """A place name the caller gave matches GeoIP's (case-insensitively); no name from the
    caller matches anything."""
    if not given:
        return True
    return found is not None and given.casefold() == found.casefold()


