"""``Scoring._decide`` and ``score_validated`` through ``Engine.score`` / the public API: what the
model hook is handed and how its answer counts, the GeoIP problem reasons, and the budget's
bookkeeping (issue #16: these pin behaviour mutation testing found unpinned). Figures come
from ``Settings()``; none of these tests writes Parquet (they run under mutmut)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.attempt import Attempt
from riskengine.core.budget import COUNT_KEY, FORCED_KEY, bin_of, decay_weight, era_key, era_of, of_era
from riskengine.core.config import Settings
from riskengine.core.decision import Reason
from riskengine.core.engine.scoring import CrossUser
from riskengine.core.enrich.geoip import GeoInfo
from riskengine.core.profile import UserProfile
from riskengine.core.signals.base import SignalResult
from riskengine.core.stores.memory import MemoryStore
from riskengine.core.typing import Snapshot
from riskengine.testing import (
    EDINBURGH,
    FIREFOX_MAC,
    LONDON,
    MANCHESTER,
    PARIS,
    T0,
    establish,
    make_attempt,
    offline_settings,
)

S = Settings()


class RecordingModel:
    """A :class:`~riskengine.core.typing.RiskModel` that answers a fixed contribution and
    keeps what each call was handed (the seam under test is the engine's call, not a model)."""

    def __init__(self, risk: float, reasons: list[Reason]) -> None:
        self.risk = risk
        self.reasons = reasons
        self.calls: list[dict[str, Any]] = []

    def contribution(
        self, attempt: Attempt, geo: GeoInfo, dkey: str, hour: int | None, profile: UserProfile,
        signals: Sequence[SignalResult], user_failures: int, ip_failures: int,
        now: float | None = None,
    ) -> tuple[float, list[Reason]]:
        self.calls.append({"attempt": attempt, "geo": geo, "dkey": dkey, "hour": hour, "profile": profile,
                           "signals": [s.code for s in signals], "user_failures": user_failures,
                           "ip_failures": ip_failures, "now": now})
        return self.risk, list(self.reasons)


def _engine(**sections: dict[str, object]) -> Engine:
    return Engine(offline_settings(**sections), sink=MemorySink())


def test_the_model_hook_is_handed_the_login_and_its_answer_counts_in_the_risk() -> None:
    with _engine() as e:
        last = establish(e)
        ts = last + timedelta(hours=1)
        e.record_failure("alice", "198.51.100.4", ts - timedelta(minutes=1))
        e.record_failure("bob", "81.2.69.160", ts - timedelta(minutes=1))
        e.record_failure("carol", "81.2.69.160", ts - timedelta(seconds=30))
        quiet = e.score(make_attempt(ts=ts))
        model = RecordingModel(0.5, [Reason("MODEL_SCORE", 0.5, "model says so")])
        e.model = model
        attempt = make_attempt(ts=ts + timedelta(seconds=1))
        d = e.score(attempt)
    assert quiet.action == "allow" and "MODEL_SCORE" not in quiet.reason_codes
    assert len(model.calls) == 1
    call = model.calls[0]
    assert call["attempt"].user_id == "alice" and call["attempt"].timestamp == attempt.timestamp
    assert call["geo"].country == "GB" and call["geo"].city == "London"
    assert call["dkey"] == d.device_key
    assert call["hour"] == 10  # 10:00 UTC on a March Monday is 10:00 in London (GMT)
    assert call["profile"].logins == 21  # 20 days and the quiet login
    assert call["user_failures"] == 1 and call["ip_failures"] == 2
    assert call["now"] == attempt.timestamp.timestamp()
    assert call["signals"][0] == "KNOWN_DEVICE"  # the signals computed so far, the device first
    # the model's term joins the noisy-OR: a familiar login at risk ~0 is stepped up by 0.5 alone
    assert d.risk >= 0.5 > quiet.risk
    assert d.action == ("challenge" if 0.5 < S.policy.deny_threshold else "deny")
    assert "MODEL_SCORE" in d.reason_codes


def test_a_model_contributing_nothing_leaves_the_decision_as_it_was() -> None:
    with _engine() as e:
        last = establish(e)
        e.model = RecordingModel(0.0, [])
        d = e.score(make_attempt(ts=last + timedelta(hours=1)))
    assert d.action == "allow" and d.risk == 0.0


def test_geoip_unavailable_is_reported_with_its_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mmdb"
    with _engine(geo={"city_db": str(missing)}) as e:
        d = e.score(make_attempt(place={}))  # no caller geo: GeoIP is asked, and it is down
        problems = e.health()["geoip_problems"]
    (reason,) = [r for r in d.reasons if r.code == "GEOIP_UNAVAILABLE"]
    assert "GEO_UNKNOWN" not in d.reason_codes
    assert reason.weight == 0.0  # informational: it never adds risk by itself
    assert reason.detail == problems[0] and str(missing) in reason.detail


def test_an_address_the_geoip_database_does_not_know_is_geo_unknown(maxmind: Callable[[str], Path]) -> None:
    with _engine(geo={"city_db": str(maxmind("GeoIP2-City-Test.mmdb"))}) as e:
        d = e.score(make_attempt(place={}, ip="8.8.8.8"))
        known = e.score(make_attempt(place={}, ip="81.2.69.160", ts=T0 + timedelta(minutes=1)))
    (reason,) = [r for r in d.reasons if r.code == "GEO_UNKNOWN"]
    assert "GEOIP_UNAVAILABLE" not in d.reason_codes
    assert reason.weight == 0.0 and reason.detail == "IP not in the GeoIP database"
    assert not {"GEO_UNKNOWN", "GEOIP_UNAVAILABLE"} & set(known.reason_codes)


def test_a_failed_lookup_in_an_open_database_is_geoip_unavailable(tmp_path: Path,
                                                                   maxmind: Callable[[str], Path]) -> None:
    with _engine(geo={"city_db": str(maxmind("MaxMind-DB-test-broken-pointers-24.mmdb"))}) as e:
        assert e.health()["geoip_problems"] == []  # it opened: the lookups are what fail
        failed = [e.score(make_attempt(user_id=f"u{i}", place={}, ip=ip))
                  for i, ip in enumerate(("1.1.1.1", "1.1.1.3", "1.1.1.16", "1.1.1.32"))]
    reasons = [r for d in failed for r in d.reasons if r.code in ("GEOIP_UNAVAILABLE", "GEO_UNKNOWN")]
    lookup_failed = [r for r in reasons if "failed" in r.detail]
    assert lookup_failed, reasons
    assert all(r.code == "GEOIP_UNAVAILABLE" for r in lookup_failed)


def test_caller_geo_never_reports_a_geoip_problem(tmp_path: Path) -> None:
    with _engine(geo={"city_db": str(tmp_path / "missing.mmdb")}) as e:
        d = e.score(make_attempt())  # LONDON with coordinates: GeoIP is not needed
    assert not {"GEO_UNKNOWN", "GEOIP_UNAVAILABLE"} & set(d.reason_codes)


def _budget_settings() -> dict[str, object]:
    return {"target_stepup_rate": 0.1, "budget_warmup_logins": 10}


def test_the_budget_tap_records_established_exempt_and_floor_per_login() -> None:
    established_at = S.policy.budget_established_logins
    with _engine(policy=_budget_settings()) as e:
        tap = e.defer_budget()
        assert tap is not None
        last = establish(e, days=established_at + 2)
        first = tap[0]
        enough = tap[established_at]
        ts = last + timedelta(hours=1)
        c = e.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
        token = e.record_outcome(c.decision_id, "verified", trust_device=True, timestamp=ts)
        assert token is not None
        trusted = e.score(make_attempt(ts=ts + timedelta(hours=1), ua=FIREFOX_MAC, device_token=token))
        forged = e.score(make_attempt(ts=ts + timedelta(hours=2), ua=FIREFOX_MAC, device_token=token + "x"))
    assert first == (False, False, False)  # a first login: not established, no token, no floor
    assert enough == (True, False, False)
    assert trusted.action == "allow" and tap[-2] == (True, True, False)
    # a token that does not verify fires DEVICE_TOKEN_INVALID, a budget floor signal
    assert "DEVICE_TOKEN_INVALID" in forged.reason_codes and tap[-1] == (True, False, True)
    assert len(tap) == established_at + 2 + 3


@pytest.mark.parametrize("event", ["password_reset"])
def test_a_sensitive_event_never_feeds_the_budget_tap(event: str) -> None:
    with _engine(policy=_budget_settings()) as e:
        tap = e.defer_budget()
        assert tap is not None
        last = establish(e, days=3)
        before = len(tap)
        d = e.score(make_attempt(ts=last + timedelta(hours=1), event=event))
    assert d.event == event and d.threshold == e.policy.events[event].challenge_threshold
    assert len(tap) == before  # a sensitive event is decided at its own threshold: no budget


def test_replays_shared_counts_replace_the_stores_failures_and_population_prior() -> None:
    f = S.failures
    with _engine() as e:
        last = establish(e)
        ts = last + timedelta(hours=1)
        for i in range(f.ip_threshold):  # the store counts failures from the login's address...
            e.record_failure(f"other{i}", "81.2.69.160", ts - timedelta(seconds=10 + i))
        own = e.score(make_attempt(ts=ts))
        # ... which replay's pre-pass replaces with the count across every partition
        quiet = e.score_validated(make_attempt(ts=ts + timedelta(seconds=1)), shared=CrossUser(0, 0.0, 1.0))
        loud = e.score_validated(make_attempt(ts=ts + timedelta(seconds=2)),
                                 shared=CrossUser(f.ip_deny_threshold, 0.0, 1.0))
        # a user with no country history: the prior in effect comes from `shared` too
        rare = e.score_validated(make_attempt("newbie", ts=ts), shared=CrossUser(0, 0.0, 1e30))
        common = e.score_validated(make_attempt("newbie2", ts=ts), shared=CrossUser(0, 1e30, 1e30))
        local = e.score(make_attempt("newbie3", ts=ts))  # the store's prior: far too little data
    assert "FAILED_ATTEMPTS_IP" in own.reason_codes
    assert not any(c.startswith("FAILED_ATTEMPTS") for c in quiet.reason_codes) and quiet.action == "allow"
    assert "FAILED_ATTEMPTS_EXCESSIVE" in loud.reason_codes and loud.action == "deny"
    assert "RARE_COUNTRY_FOR_SERVICE" in rare.reason_codes
    assert "RARE_COUNTRY_FOR_SERVICE" not in common.reason_codes
    assert "RARE_COUNTRY_FOR_SERVICE" not in local.reason_codes
    assert rare.risk > common.risk


def test_score_validated_without_started_times_the_call_itself(sink: MemorySink) -> None:
    import time

    with Engine(offline_settings(), sink=sink) as e:
        began = time.perf_counter()
        e.score_validated(make_attempt())
        elapsed_us = (time.perf_counter() - began) * 1e6
        # a caller's start (replay's batch, the web handler's) is what the latency counts from
        e.score_validated(make_attempt(ts=T0 + timedelta(minutes=1)), started=began - 5.0)
    own, given = (r["latency_us"] for r in sink.rows("decisions"))
    assert 0.0 < own <= elapsed_us
    assert given >= 5e6


class LandsDuringTheReadStore(MemoryStore):
    """A real in-memory store whose profile writes wait until the next snapshot has been read,
    then land before that snapshot is returned: the write-behind race ``score_validated``
    guards against (the lesson was pending when the login started, the store's answer is older
    than it, and by the time the answer arrives the lesson has left ``pending``)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.engine: Engine | None = None

    def update(self, user_id: str, fn: Any) -> UserProfile | None:
        self.gate.wait(5.0)
        return super().update(user_id, fn)

    def snapshot(self, user_id: str, ip: str, since: float, **windows: Any) -> Snapshot:
        snap = super().snapshot(user_id, ip, since, **windows)
        self.gate.set()
        if self.engine is not None and self.engine._writer is not None:
            self.engine._writer.flush()  # the lesson lands, and leaves `pending`
        self.gate.clear()
        return snap


def test_a_lesson_that_lands_during_the_read_is_still_scored_against() -> None:
    store = LandsDuringTheReadStore()
    with Engine(offline_settings(store={"write_behind": True}), store=store, sink=MemorySink()) as behind:
        store.engine = behind
        first = behind.score(make_attempt())
        assert behind._writer is not None and behind._writer.pending  # the lesson is queued
        second = behind.score(make_attempt(ts=T0 + timedelta(hours=1)))
        assert behind._writer.pending["alice"].logins == 2  # the second lesson builds on the first
        store.gate.set()  # later writes land at once
    with Engine(offline_settings(), sink=MemorySink()) as through:
        expected = [through.score(make_attempt(ts=T0 + timedelta(hours=h))) for h in (0, 1)]
    assert first.reason_codes == expected[0].reason_codes
    assert second.reason_codes == expected[1].reason_codes
    assert (second.action, second.risk) == (expected[1].action, expected[1].risk)


def test_a_finer_place_counts_only_below_a_coarser_one_already_known() -> None:
    g = S.geo
    with _engine() as e:
        last = establish(e)  # London, AS2856, 81.2.69.0/24
        same_region = e.score(make_attempt(ts=last + timedelta(hours=1), place=MANCHESTER, ip="86.1.2.3"))
        new_region = e.score(make_attempt(ts=last + timedelta(hours=2), place=EDINBURGH, ip="81.2.69.161"))
        new_asn = e.score(make_attempt(ts=last + timedelta(hours=3), place=dict(LONDON, asn=3215), ip="86.9.9.9"))
    # the region and the AS are known: the new city and the new address block both count
    assert {r.code: r.detail for r in same_region.reasons if r.code in ("NEW_CITY", "NEW_PREFIX")} == {
        "NEW_CITY": "first login from Manchester", "NEW_PREFIX": "first login from address block 86.1.2.0"}
    assert not {"NEW_REGION", "NEW_ASN", "NEW_COUNTRY"} & set(same_region.reason_codes)
    # a new region is the evidence; its new city is not counted again
    region = {r.code: r for r in new_region.reasons}
    assert "NEW_CITY" not in region and region["NEW_REGION"].detail == "first login from region GB/Scotland"
    assert region["NEW_REGION"].weight == g.new_region_weight
    # a new AS likewise hides its new address block
    asn = {r.code: r for r in new_asn.reasons}
    assert "NEW_PREFIX" not in asn and asn["NEW_ASN"].detail == "first login from network AS 3215"


def test_what_the_live_budget_learns_per_login() -> None:
    """Established users' logins that are not denied, each once: at its risk, at 0 when a
    trusted device allowed it on weak evidence, as forced when a floor signal fired."""
    settings = offline_settings(policy={**_budget_settings(), "budget_user_cap": 1000},
                                network={"deny_cidrs": ["198.51.100.0/24"]})
    days = S.policy.budget_established_logins + 2
    with Engine(settings, sink=MemorySink()) as e:
        last = establish(e, days=days)
        ts = last + timedelta(hours=1)
        new_device = e.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
        token = e.record_outcome(new_device.decision_id, "verified", trust_device=True, timestamp=ts)
        assert token is not None
        trusted = e.score(make_attempt(ts=ts + timedelta(hours=1), ua=FIREFOX_MAC, device_token=token,
                                       place=MANCHESTER, ip="86.1.2.3"))
        denied = e.score(make_attempt(ts=ts + timedelta(hours=2), ip="198.51.100.5"))
        forged = e.score(make_attempt(ts=ts + timedelta(hours=3), ua=FIREFOX_MAC, device_token=token + "x"))
        assert e._budget is not None
        merged = e.store.budget_merge(e._budget.take_delta())
        era = of_era(merged, era_of(ts.timestamp(), e._budget.cfg.half_life_s))
    assert new_device.action == "challenge" and denied.action == "deny"
    assert trusted.action == "allow" and trusted.risk > 0.0  # NEW_CITY/NEW_PREFIX: weak evidence
    assert not set(trusted.reason_codes) & e.policy.strong
    assert "DEVICE_TOKEN_INVALID" in forged.reason_codes
    # counted: the logins from the one at `budget_established_logins` on, the new device, the
    # trusted one and the forged token's; not the first logins, not the denied one
    assert era["n"] == days - S.policy.budget_established_logins + 3
    assert set(era) == {"n", str(bin_of(0.0)), str(bin_of(new_device.risk)), FORCED_KEY}


def test_the_rule_reasons_carry_their_details_and_weights() -> None:
    with _engine(network={"deny_cidrs": ["198.51.100.0/24"]}) as e:
        last = establish(e, days=6)
        denied = e.score(make_attempt(ts=last + timedelta(hours=1), ip="198.51.100.5"))
        e.reset_user("alice", actor="support-1", reason="locked out")
        reset = e.score(make_attempt(ts=last + timedelta(hours=2)))
    deny = {r.code: r for r in denied.reasons}["NETWORK_DENYLIST"]
    assert (deny.weight, deny.detail) == (1.0, "address in network.deny_cidrs")  # the policy's weight
    assert denied.risk == 1.0
    was_reset = {r.code: r for r in reset.reasons}["PROFILE_RESET"]
    assert (was_reset.weight, was_reset.detail) == (
        0.0, "profile reset by support: logins step up until a challenge is verified")
    assert reset.action == "challenge" and reset.risk == S.policy.challenge_threshold


def test_a_revoked_device_token_says_so() -> None:
    with _engine() as e:
        last = establish(e)
        ts = last + timedelta(hours=1)
        c = e.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
        token = e.record_outcome(c.decision_id, "verified", trust_device=True, timestamp=ts)
        assert token is not None
        assert e.untrust("alice", actor="support-1", reason="lost phone", now=ts) >= 1
        d = e.score(make_attempt(ts=ts + timedelta(hours=1), ua=FIREFOX_MAC, device_token=token))
    invalid = {r.code: r for r in d.reasons}["DEVICE_TOKEN_INVALID"]
    assert invalid.detail == "device token revoked: its device is no longer trusted by this profile"
    assert d.action == "challenge"


def test_hosting_network_names_the_as_and_its_organisation(maxmind: Callable[[str], Path]) -> None:
    # Cogent (AS174) is no default hosting AS: only the configured keyword matches its name
    assert 174 not in S.geo.hosting_asns
    asn_db = str(maxmind("GeoLite2-ASN-Test.mmdb"))
    with _engine(geo={"asn_db": asn_db, "hosting_keywords": ["cogent"]}) as e:
        d = e.score(make_attempt(place={}, ip="38.0.0.1"))
    hosting = {r.code: r for r in d.reasons}["HOSTING_NETWORK"]
    assert hosting.detail == "login from a hosting/VPN network (AS174, Cogent Communications)"


def test_a_hosting_network_the_user_logs_in_from_is_not_new() -> None:
    hosted = dict(LONDON, asn=14061)  # DigitalOcean: a default hosting AS
    assert 14061 in S.geo.hosting_asns
    with _engine() as e:
        first = e.score(make_attempt(place=hosted))
        assert "HOSTING_NETWORK" in first.reason_codes
        e.record_outcome(first.decision_id, "verified", timestamp=T0)
        again = e.score(make_attempt(ts=T0 + timedelta(days=1), place=hosted))
    assert "HOSTING_NETWORK" not in again.reason_codes


def test_an_anonymous_vpn_on_the_users_own_as_is_not_flagged(maxmind: Callable[[str], Path]) -> None:
    vpn = "1.2.0.1"  # an anonymous VPN in MaxMind's test database
    with _engine(geo={"anonymous_db": str(maxmind("GeoIP2-Anonymous-IP-Test.mmdb"))}) as e:
        last = establish(e, ip="2.125.160.216")  # LONDON: AS2856
        own = e.score(make_attempt(ts=last + timedelta(hours=1), ip=vpn))
        other = e.score(make_attempt(ts=last + timedelta(hours=2), ip=vpn, place=dict(LONDON, asn=5607)))
    assert "ANONYMOUS_PROXY" not in own.reason_codes and own.action == "allow"
    proxy = {r.code: r for r in other.reasons}["ANONYMOUS_PROXY"]
    assert proxy.detail == "login through: anonymous VPN" and other.action == "challenge"


def test_a_short_history_weighs_novelty_less_and_names_what_was_counted() -> None:
    days = 6  # log(7) / log(novelty_full_ratio) < 1: every novelty signal is scaled down
    with _engine() as e:
        last = establish(e, days=days)
        region = e.score(make_attempt(ts=last + timedelta(hours=1), place=EDINBURGH, ip="81.2.69.161"))
        network = e.score(make_attempt(ts=last + timedelta(hours=2), place=dict(LONDON, asn=3215), ip="81.2.69.162"))
        city = e.score(make_attempt(ts=last + timedelta(hours=3), place=MANCHESTER, ip="86.1.2.3"))
    details = {r.code: r.detail for d in (region, network, city) for r in d.reasons}
    assert re.fullmatch(r"first login from region GB/Scotland; \d+ regions in \d+ logins: .+", details["NEW_REGION"])
    assert re.fullmatch(r"first login from network AS 3215; \d+ networks in \d+ logins: .+", details["NEW_ASN"])
    assert re.fullmatch(r"first login from Manchester; \d+ cities in \d+ logins: .+", details["NEW_CITY"])
    assert re.fullmatch(r"first login from address block 86.1.2.0; \d+ address blocks in \d+ logins: .+",
                        details["NEW_PREFIX"])


def test_one_earlier_login_is_enough_history_for_a_new_country() -> None:
    with _engine() as e:
        e.score(make_attempt())
        d = e.score(make_attempt(ts=T0 + timedelta(days=1), place=PARIS, ip="90.1.2.3"))
    assert {r.code: r.detail for r in d.reasons}["NEW_COUNTRY"] == "first login from country FR"


def test_without_any_as_history_a_new_address_block_still_counts() -> None:
    no_as = dict(LONDON, asn=None)
    with _engine() as e:
        last = establish(e, place=no_as)
        d = e.score(make_attempt(ts=last + timedelta(hours=1), place=no_as, ip="86.1.2.3"))
    assert "NEW_PREFIX" in d.reason_codes and "NEW_ASN" not in d.reason_codes


def test_an_allowlisted_network_is_no_new_address_block() -> None:
    with _engine(network={"allow_cidrs": ["203.0.113.0/24"]}) as e:
        last = establish(e)
        listed = e.score(make_attempt(ts=last + timedelta(hours=1), ip="203.0.113.9"))
        unlisted = e.score(make_attempt(ts=last + timedelta(hours=2), ip="192.0.2.9"))
    assert "NEW_PREFIX" not in listed.reason_codes and listed.action == "allow"
    assert "NEW_PREFIX" in unlisted.reason_codes


@pytest.mark.parametrize("moved", ["latitude", "longitude"])
def test_travel_along_one_coordinate_is_still_travel(moved: str) -> None:
    # ~2,000 km north, or ~1,400 km east, of London an hour after a login there
    far = dict(LONDON, **{moved: LONDON[moved] + 20.0})
    with _engine() as e:
        last = establish(e)
        d = e.score(make_attempt(ts=last + timedelta(hours=1), place=far))
    assert "IMPOSSIBLE_TRAVEL" in d.reason_codes


def test_a_sensitive_event_after_too_few_logins_has_no_history() -> None:
    events = [name for name in ("recovery", "factor_change", "password_reset")
              if getattr(S.policy.events, name).challenge_no_history]
    assert events and S.coldstart.min_logins > 2
    with _engine() as e:
        last = establish(e, days=2)  # some history, but a cold start still
        decided = {name: e.score(make_attempt(ts=last + timedelta(hours=1 + i), event=name))
                   for i, name in enumerate(events)}
    for name, d in decided.items():
        detail = {r.code: r.detail for r in d.reasons}["NO_HISTORY"]
        assert detail == f"2 earlier logins: too little history to allow a {name}"
        assert d.action != "allow"


def test_the_live_budget_threshold_holds_established_users_only() -> None:
    """Once warm, the budget may be laxer than the fixed threshold: established users are held
    to it (from ``budget_established_logins`` logins on), newer accounts never to more than
    the fixed ``challenge_threshold``."""
    fixed = S.policy.challenge_threshold
    established_at = S.policy.budget_established_logins
    settings = offline_settings(policy={**_budget_settings(), "budget_user_cap": 1000,
                                        "budget_refresh_seconds": 60.0})
    with Engine(settings, sink=MemorySink()) as e:
        for u in range(4):
            last = establish(e, user_id=f"u{u}", days=20)
        ts = last + timedelta(hours=1)
        lax = e.score(make_attempt("u0", ts=ts, place=MANCHESTER, ip="86.1.2.3"))
        establish(e, user_id="newer", days=established_at - 1)
        newer = e.score(make_attempt("newer", ts=ts + timedelta(minutes=5), place=MANCHESTER, ip="86.1.2.3"))
        establish(e, user_id="just", days=established_at)
        just = e.score(make_attempt("just", ts=ts + timedelta(minutes=6), place=MANCHESTER, ip="86.1.2.3"))
    assert lax.threshold is not None and lax.threshold > fixed
    assert fixed < lax.risk < lax.threshold and lax.action == "allow"  # the fixed policy would step up
    assert newer.threshold == fixed
    assert just.threshold is not None and just.threshold > fixed


def test_a_user_the_budget_does_not_measure_is_judged_by_the_fixed_threshold_when_the_live_one_is_lower() -> None:
    """The other side: established users' risks ran low, so the live threshold (0.25, the
    clamp's bottom) is stricter than the fixed one. A newer account is judged by the fixed
    policy, not the live threshold: its login from a new city and address block (0.25) is
    not stepped up because established users happen to be quiet."""
    fixed = S.policy.challenge_threshold
    store = MemoryStore()
    settings = offline_settings(policy={"target_stepup_rate": 0.01, "budget_warmup_logins": 10,
                                        "budget_refresh_seconds": 60.0})
    with Engine(settings, store=store, sink=MemorySink()) as e:
        last = establish(e, user_id="old", days=20)
        establish(e, user_id="young", days=S.policy.budget_established_logins - 1)
        ts = last + timedelta(hours=1)
        # a merged sketch from other workers: 99 % of established logins at 0, 1 % at 0.25
        t = ts.timestamp()
        era, w = era_of(t, settings.policy.budget_half_life_hours * 3600.0), \
            decay_weight(t, settings.policy.budget_half_life_hours * 3600.0)
        store.budget_merge({era_key(era, str(bin_of(0.0))): 9900 * w, era_key(era, str(bin_of(0.25))): 100 * w,
                            era_key(era, COUNT_KEY): 10000.0})
        young = e.score(make_attempt("young", ts=ts, place=MANCHESTER, ip="86.1.2.3"))
        old = e.score(make_attempt("old", ts=ts + timedelta(seconds=1), ua=FIREFOX_MAC))  # same refresh period
    assert old.threshold == 0.25 < fixed
    assert young.threshold == fixed
    assert old.threshold <= young.risk < fixed and young.action == "allow"


def test_without_a_budget_the_fixed_threshold_decides() -> None:
    with _engine(policy={"target_stepup_rate": 0.0}) as e:
        last = establish(e)
        d = e.score(make_attempt(ts=last + timedelta(hours=1), place=MANCHESTER, ip="86.1.2.3"))
        assert e.health()["degraded"] == 0
    assert d.threshold == S.policy.challenge_threshold
    assert d.action == ("challenge" if d.risk >= S.policy.challenge_threshold else "allow")


class DownStore(MemoryStore):
    """A real in-memory store whose read for scoring fails (an outage)."""

    def snapshot(self, user_id: str, ip: str, since: float, **windows: Any) -> Snapshot:
        raise ConnectionError("profile store down")


def test_a_store_outage_under_replays_shared_counts_is_the_fail_mode() -> None:
    with Engine(offline_settings(), store=DownStore(), sink=MemorySink()) as e:
        d = e.score_validated(make_attempt(), shared=CrossUser(3, 1.0, 10.0))
        plain = e.score(make_attempt(ts=T0 + timedelta(minutes=1)))
    for decision in (d, plain):
        (reason,) = decision.reasons
        assert reason.code == "ENGINE_DEGRADED" and decision.action == S.policy.fail_mode
        assert reason.detail == f"profile store unavailable (ConnectionError); fail mode {S.policy.fail_mode}"


def test_a_model_sees_no_history_signals_for_a_user_without_history() -> None:
    with _engine() as e:
        model = RecordingModel(0.0, [])
        e.model = model
        e.score(make_attempt())
    (call,) = model.calls
    # nothing to travel from and no hours to compare with: those signals are not computed at all
    assert call["profile"].logins == 0
    assert not {"IMPOSSIBLE_TRAVEL", "UNUSUAL_HOUR", "NEW_COUNTRY", "NEW_REGION", "NEW_ASN"} & set(call["signals"])
    assert call["signals"][0] == "NEW_DEVICE"


def test_without_a_budget_a_floor_signal_is_weighed_not_forced() -> None:
    """The budget's floor (``budget_floor_signals`` challenged whatever the threshold) exists
    only with a budget: without one, a weak floor signal is weighed like any other."""
    weak = {"trust": {"invalid_token_weight": 0.05}}
    assert "DEVICE_TOKEN_INVALID" in S.policy.budget_floor_signals
    with _engine(policy={"target_stepup_rate": 0.0}, **weak) as off, \
            _engine(policy=_budget_settings(), **weak) as on:
        decided = []
        for e in (off, on):
            last = establish(e)
            decided.append(e.score(make_attempt(ts=last + timedelta(hours=1), device_token="not-a-token")))
    without, with_budget = decided
    assert "DEVICE_TOKEN_INVALID" in without.reason_codes and without.risk < S.policy.challenge_threshold
    assert without.action == "allow"
    assert with_budget.action == "challenge"
