"""Every window, duration and threshold in config pinned exactly at its boundary and one step
either side, derived from the configured value (a changed default stays pinned) and driven
through the public API with the attempts' own timestamps.

A step is the smallest change the code can see: 1 ms for durations (timestamps are floats
of seconds), one float ULP (``math.nextafter``) for weights, thresholds and coordinates,
one login for counts.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from riskengine import Engine, UnknownDecisionError
from riskengine.analytics import experiments, stats
from riskengine.analytics.experiments import readout
from riskengine.audit.base import MemorySink
from riskengine.core.config import Settings
from riskengine.core.policy import Policy
from riskengine.core.signals.base import SignalResult
from riskengine.core.signals.geo import haversine_km
from riskengine.core.stores.memory import MemoryStore
from riskengine.ops.maintenance import cutoff_for, retain
from riskengine.testing import FIREFOX_MAC, LONDON, establish, make_attempt, offline_settings

DEFAULTS = Settings()
MS = timedelta(milliseconds=1)
STEPS = [pytest.param(-1, id="one-step-inside"), pytest.param(0, id="exactly-at"),
         pytest.param(1, id="one-step-outside")]
"""-1 / 0 / +1: one step on the side the promise still holds, exactly at the boundary, one step past it."""


def _engine(settings: Settings | None = None) -> Engine:
    return Engine(settings if settings is not None else offline_settings(), sink=MemorySink())


# ---------------------------------------------------------------- device window
@pytest.mark.parametrize("step", STEPS)
def test_device_window_is_inclusive_of_its_last_day(step: int) -> None:
    """A device last seen exactly ``device.window_days`` ago is still known; 1 ms later it is new."""
    window = timedelta(days=DEFAULTS.device.window_days)
    with _engine() as engine:
        last = establish(engine)
        d = engine.score(make_attempt(ts=last + window + step * MS))
    fired = "NEW_DEVICE" in d.reason_codes
    assert fired is (step > 0), d
    if not fired:
        assert d.action == "allow", d


# ---------------------------------------------------------------- failed-password window
@pytest.mark.parametrize("step", STEPS)
def test_failure_window_counts_a_failure_exactly_window_minutes_old(step: int) -> None:
    """``failures.user_threshold`` failures step up while the oldest is at most
    ``failures.window_minutes`` old (inclusive); 1 ms older it has left the window."""
    f = DEFAULTS.failures
    window = timedelta(minutes=f.window_minutes)
    with _engine() as engine:
        last = establish(engine)
        login = last + timedelta(days=1)
        oldest = login - window - step * MS
        engine.record_failure("alice", "81.2.69.160", oldest)
        for i in range(f.user_threshold - 1):
            engine.record_failure("alice", "81.2.69.160", login - timedelta(seconds=i + 1))
        d = engine.score(make_attempt(ts=login))
    if step <= 0:
        assert d.action == "challenge" and "FAILED_ATTEMPTS_USER" in d.reason_codes, d
    else:
        assert d.action == "allow" and "FAILED_ATTEMPTS_USER" not in d.reason_codes, d


@pytest.mark.parametrize("count_delta", [-1, 0, 1])
def test_failure_thresholds_step_up_at_user_threshold_and_deny_at_user_deny_threshold(count_delta: int) -> None:
    f = DEFAULTS.failures
    for threshold, expected_at in ((f.user_threshold, "challenge"), (f.user_deny_threshold, "deny")):
        with _engine() as engine:
            last = establish(engine)
            login = last + timedelta(days=1)
            for i in range(threshold + count_delta):
                engine.record_failure("alice", "81.2.69.160", login - timedelta(seconds=i + 1))
            d = engine.score(make_attempt(ts=login))
        below = "allow" if expected_at == "challenge" else "challenge"
        assert d.action == (below if count_delta < 0 else expected_at), (threshold, count_delta, d)


# ---------------------------------------------------------------- challenge / deny thresholds
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("threshold", ["challenge_threshold", "deny_threshold"])
def test_action_thresholds_are_inclusive(threshold: str, step: int) -> None:
    """A risk exactly at ``policy.challenge_threshold`` challenges and exactly at
    ``policy.deny_threshold`` (0.95 by default) denies; one float step below does not.
    The risk is one fired signal (a new device) whose weight is set to the threshold."""
    at = getattr(DEFAULTS.policy, threshold)
    weight = {-1: math.nextafter(at, 2.0), 0: at, 1: math.nextafter(at, -1.0)}[step]
    assert 1.0 - (1.0 - at) == at  # noisy-OR of one signal reproduces the weight exactly
    store = MemoryStore()
    with Engine(offline_settings(), store=store, sink=MemorySink()) as teacher:
        last = establish(teacher)  # learned with the default weights: no cold-start step-up
        with Engine(offline_settings(device={"weight": weight}), store=store, sink=MemorySink()) as engine:
            d = engine.score(make_attempt(ts=last + timedelta(days=1), ua=FIREFOX_MAC))
    assert d.reason_codes == ("NEW_DEVICE",), d
    reached = step <= 0
    expected = {"challenge_threshold": ("challenge", "allow"), "deny_threshold": ("deny", "challenge")}
    assert d.action == expected[threshold][0 if reached else 1], (weight, d)


def test_deny_threshold_pinned_at_exactly_095_by_default() -> None:
    assert DEFAULTS.policy.deny_threshold == 0.95
    policy = Policy(offline_settings(device={"weight": 1.0}))
    assert policy.decide([SignalResult("NEW_DEVICE", 0.95, "x")]).action == "deny"
    assert policy.decide([SignalResult("NEW_DEVICE", math.nextafter(0.95, 0.0), "x")]).action == "challenge"


# ---------------------------------------------------------------- an odd hour never counts alone
def test_an_odd_hour_alone_never_steps_up_even_with_the_full_weight() -> None:
    """At the policy level: UNUSUAL_HOUR at value 1 with ``hour.weight`` = 1 (enough to deny on
    its own if it counted) allows with no reasons; with another signal it adds its weight."""
    policy = Policy(offline_settings(hour={"weight": 1.0}))
    hour = SignalResult("UNUSUAL_HOUR", 1.0, "3 am")
    alone = policy.decide([hour])
    assert (alone.action, alone.risk, alone.reasons) == ("allow", 0.0, ())
    with_other = policy.decide([hour, SignalResult("NEW_ASN", 1.0, "new AS")])
    assert with_other.action == "deny" and with_other.risk == 1.0
    assert {r.code for r in with_other.reasons} == {"UNUSUAL_HOUR", "NEW_ASN"}


def test_an_odd_hour_alone_never_steps_up_through_the_engine() -> None:
    with _engine(offline_settings(hour={"weight": 1.0})) as engine:
        last = establish(engine, days=DEFAULTS.hour.min_logins + 5, hour=9)
        night = last.replace(hour=3) + timedelta(days=1)
        d = engine.score(make_attempt(ts=night))
        assert (d.action, d.reason_codes) == ("allow", ()), d
        # the allowed 3 am login taught hour 3: another odd hour, with a new device this time
        other = engine.score(make_attempt(ts=night.replace(hour=21) + timedelta(days=1), ua=FIREFOX_MAC))
    assert "UNUSUAL_HOUR" in other.reason_codes and "NEW_DEVICE" in other.reason_codes, other


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_unusual_hour_needs_hour_min_logins_of_history(delta: int) -> None:
    """With a new device firing, the odd hour joins only once the user has ``hour.min_logins``
    accepted logins."""
    logins = DEFAULTS.hour.min_logins + delta
    with _engine() as engine:
        last = establish(engine, days=logins, hour=9)
        d = engine.score(make_attempt(ts=last.replace(hour=3) + timedelta(days=1), ua=FIREFOX_MAC))
    assert ("UNUSUAL_HOUR" in d.reason_codes) is (delta >= 0), (logins, d)


# ---------------------------------------------------------------- cold start
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_cold_start_ends_at_coldstart_min_logins(delta: int) -> None:
    logins = DEFAULTS.coldstart.min_logins + delta
    with _engine() as engine:
        last = establish(engine, days=logins) if logins else make_attempt().timestamp - timedelta(days=1)
        d = engine.score(make_attempt(ts=last + timedelta(days=1)))
    assert ("COLD_START" in d.reason_codes) is (delta < 0), (logins, d)


# ---------------------------------------------------------------- impossible travel
def _equator_lon_at(distance_km: float) -> float:
    """The largest longitude on the equator whose haversine distance from (0, 0) is at most
    ``distance_km`` (bisection over floats until the two ends are adjacent)."""
    lo, hi = 0.0, 179.0
    while math.nextafter(lo, hi) < hi:
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if haversine_km(0.0, 0.0, 0.0, mid) <= distance_km:
            lo = mid
        else:
            hi = mid
    return lo


@pytest.mark.parametrize("step", STEPS)
def test_impossible_travel_fires_only_above_max_speed(step: int) -> None:
    """One hour after a login at (0, 0), a login ``travel_tolerance_km + max_speed_kmh`` km
    away is exactly at the limit: plausible. One float step of longitude further: impossible."""
    g = DEFAULTS.geo
    limit_km = g.travel_tolerance_km + g.max_speed_kmh * 1.0
    at = _equator_lon_at(limit_km)
    assert haversine_km(0.0, 0.0, 0.0, at) == limit_km  # an exact boundary exists in floats
    lon = {-1: math.nextafter(at, 0.0), 0: at, 1: math.nextafter(at, 180.0)}[step]
    place = {**LONDON, "latitude": 0.0, "longitude": 0.0}
    with _engine() as engine:
        last = establish(engine, place=place)
        d = engine.score(make_attempt(ts=last + timedelta(hours=1), place={**place, "longitude": lon}))
    assert ("IMPOSSIBLE_TRAVEL" in d.reason_codes) is (step > 0), d


# ---------------------------------------------------------------- challenge expiry
@pytest.mark.parametrize("step", STEPS)
def test_a_pending_challenge_expires_after_otp_session_minutes(step: int) -> None:
    """An outcome reported exactly ``otp.session_minutes`` after the challenge is taken; 1 ms
    later the challenge is gone (UnknownDecisionError)."""
    session = timedelta(minutes=DEFAULTS.otp.session_minutes)
    with _engine() as engine:
        last = establish(engine)
        ts = last + timedelta(days=1)
        d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC))
        assert d.action == "challenge"
        when = ts + session + step * MS
        if step > 0:
            with pytest.raises(UnknownDecisionError, match="expired"):
                engine.record_outcome(d.decision_id, "verified", timestamp=when)
        else:
            engine.record_outcome(d.decision_id, "verified", timestamp=when)
            assert engine.score(make_attempt(ts=when + timedelta(minutes=1), ua=FIREFOX_MAC)).action == "allow"


# ---------------------------------------------------------------- retention cut-off
@pytest.mark.parametrize("step", STEPS)
def test_retention_drops_a_month_exactly_when_it_ends_retention_years_ago(tmp_path: Path, step: int) -> None:
    """``audit.retention_years`` back from ``now``: a month that ended exactly at the cutoff is
    dropped; run 1 µs earlier (the month ends 1 µs after the cutoff) it stays."""
    years = DEFAULTS.audit.retention_years
    older_than = f"{years:g}y"
    month_end = datetime(2026, 2, 1, tzinfo=UTC)  # the end of January 2026
    now = month_end.replace(year=month_end.year + round(years))
    assert cutoff_for(older_than, now) == month_end
    now += {-1: timedelta(microseconds=1), 0: timedelta(0), 1: -timedelta(microseconds=1)}[step]
    for month in (1, 2):
        folder = tmp_path / "decisions" / "year=2026" / f"month={month:02d}"
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"")
    result = retain(tmp_path, older_than, now=now, tables=("decisions",))
    dropped = "decisions/year=2026/month=01" in result.dropped
    assert dropped is (step <= 0), result
    assert (tmp_path / "decisions" / "year=2026" / "month=01").exists() is not dropped
    assert (tmp_path / "decisions" / "year=2026" / "month=02").exists()


# ---------------------------------------------------------------- SRM alpha
def _srm_p(shift: int, half: int = 5000) -> float:
    return stats.srm_test([half + shift, half - shift], [1.0, 1.0])[1]  # what readout() uses


def test_srm_flags_the_first_split_whose_p_value_falls_below_the_configured_alpha() -> None:
    """Scan 50/50 splits of 10,000 users outward: the flag turns on exactly at the first split
    whose p-value is below ``SRM_ALPHA`` (so an alpha of 0.05, or 0.0001, moves it)."""
    shift = 0
    while _srm_p(shift + 1) >= experiments.SRM_ALPHA:
        shift += 1
    assert _srm_p(shift) >= experiments.SRM_ALPHA > _srm_p(shift + 1)
    half = 5000
    inside = readout("x", {"a": (half + shift, 0), "b": (half - shift, 0)}, control="a")
    outside = readout("x", {"a": (half + shift + 1, 0), "b": (half - shift - 1, 0)}, control="a")
    assert (inside.srm_p_value, outside.srm_p_value) == (_srm_p(shift), _srm_p(shift + 1))
    assert (inside.srm_flag, outside.srm_flag) == (False, True)
    # the split is where the chi-square oracle puts it for the configured alpha
    oracle = [scipy_stats.chisquare([half + k, half - k]).pvalue for k in (shift, shift + 1)]
    assert oracle[0] >= experiments.SRM_ALPHA > oracle[1]


@pytest.mark.parametrize("step", STEPS)
def test_srm_alpha_is_a_strict_bound(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """p == alpha is not a mismatch (``p < alpha``); alpha one ULP above p flags it."""
    counts = {"a": (5100, 0), "b": (4900, 0)}
    p = readout("x", counts, control="a").srm_p_value
    alpha = {-1: math.nextafter(p, 1.0), 0: p, 1: math.nextafter(p, 0.0)}[step]
    monkeypatch.setattr(experiments, "SRM_ALPHA", alpha)
    assert readout("x", counts, control="a").srm_flag is (step < 0)


def test_srm_alpha_is_the_documented_strict_bar() -> None:
    """The configured value itself: 0.001 (README/dashboard say so); at 10,000 users a 50/50
    design flags 5,165/4,835 and not 5,164/4,836, the chi-square oracle's split for 0.001."""
    assert experiments.SRM_ALPHA == 0.001
    assert scipy_stats.chisquare([5164, 4836]).pvalue >= 0.001 > scipy_stats.chisquare([5165, 4835]).pvalue
    assert not readout("x", {"a": (5164, 0), "b": (4836, 0)}, control="a").srm_flag
    assert readout("x", {"a": (5165, 0), "b": (4835, 0)}, control="a").srm_flag


# ---------------------------------------------------------------- trust duration
HOSTING_EXIT = {**LONDON, "asn": 16509}  # an AWS exit in the user's own city


def _trusted_token(engine: Engine) -> tuple[str, datetime]:
    """Alice, established, verifies a challenge on a new device and trusts it. Returns the
    device token and the outcome's timestamp (whole seconds: the token stores epoch seconds)."""
    last = establish(engine)
    ts = (last + timedelta(days=1)).replace(hour=3)  # an odd hour: with a hosting exit, a challenge
    d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC, device_id="new-laptop"))
    assert d.action == "challenge", d
    verified_at = ts + timedelta(minutes=1)
    token = engine.record_outcome(d.decision_id, "verified", trust_device=True, timestamp=verified_at)
    assert token is not None
    return token, verified_at


@pytest.mark.parametrize("days", [DEFAULTS.trust.days, 7.0], ids=["default", "seven"])
@pytest.mark.parametrize("step", STEPS)
def test_a_device_token_is_trusted_until_exactly_trust_days_after_the_verified_challenge(
        days: float, step: int) -> None:
    """The token and the profile's trust both end exactly ``trust.days`` after the verified
    challenge (inclusive); 1 ms later the token is refused (DEVICE_TOKEN_INVALID) and the login
    through a hosting exit at 3 am is challenged instead of TRUSTED_DEVICE."""
    with _engine(offline_settings(trust={"days": days})) as engine:
        token, verified_at = _trusted_token(engine)
        when = verified_at + timedelta(days=days) + step * MS
        # at 3 am through a hosting exit: a challenge unless the device is trusted
        d = engine.score(make_attempt(ts=when, place=HOSTING_EXIT, ua=FIREFOX_MAC, device_id="new-laptop",
                                      device_token=token))
    if step <= 0:
        assert d.action == "allow" and "TRUSTED_DEVICE" in d.reason_codes, d
        assert "DEVICE_TOKEN_INVALID" not in d.reason_codes, d
    else:
        assert "TRUSTED_DEVICE" not in d.reason_codes and "DEVICE_TOKEN_INVALID" in d.reason_codes, d
        assert d.action == "challenge", d


def test_trust_days_zero_issues_no_token() -> None:
    with _engine(offline_settings(trust={"days": 0})) as engine:
        last = establish(engine)
        d = engine.score(make_attempt(ts=last + timedelta(days=1), ua=FIREFOX_MAC))
        assert d.action == "challenge"
        assert engine.record_outcome(d.decision_id, "verified", trust_device=True,
                                     timestamp=last + timedelta(days=1, minutes=1)) is None


# ---------------------------------------------------------------- second-factor limits
def _otp_engine(**otp: float) -> Engine:
    """Failed second factors also count as failed passwords; lift those limits so only the
    second-factor limits under test can deny."""
    return _engine(offline_settings(failures={"user_threshold": 10_000, "user_deny_threshold": 10_000},
                                    otp=otp))


def _challenge(engine: Engine, ts: datetime, session: str) -> str:
    d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC, session_id=session))
    assert d.action == "challenge", d
    return d.decision_id


def _otp_denial(engine: Engine, ts: datetime, session: str) -> set[str]:
    """The OTP reason codes of the next login (deny), or the empty set (not denied by them)."""
    d = engine.score(make_attempt(ts=ts, ua=FIREFOX_MAC, session_id=session))
    codes = {c for c in d.reason_codes if c.startswith("OTP_")}
    assert (d.action == "deny") is bool(codes), d
    return codes


@pytest.mark.parametrize("count_delta", [-1, 0, 1])
def test_session_limit_denies_only_past_otp_max_attempts_in_one_outcome(count_delta: int) -> None:
    """``otp.max_attempts`` failed codes in a session are allowed; one more denies the session."""
    o = DEFAULTS.otp
    assert o.max_attempts + 1 <= o.user_max_failures  # the per-user limit stays out of the way
    with _otp_engine() as engine:
        ts = establish(engine) + timedelta(days=1)
        d = _challenge(engine, ts, "s1")
        engine.record_outcome(d, "failed", attempts=o.max_attempts + count_delta, timestamp=ts + timedelta(seconds=20))
        codes = _otp_denial(engine, ts + timedelta(minutes=1), "s1")
        # another session of the same user is not denied by this session's count
        other = _otp_denial(engine, ts + timedelta(minutes=1), "s2")
    assert codes == ({"OTP_ATTEMPTS_EXCEEDED"} if count_delta > 0 else set())
    assert other == set()


@pytest.mark.parametrize("count_delta", [-1, 0, 1])
def test_session_failures_accumulate_across_outcomes(count_delta: int) -> None:
    """One wrong code per challenge, several challenges in one session: the count is the sum."""
    o = DEFAULTS.otp
    with _otp_engine() as engine:
        ts = establish(engine) + timedelta(days=1)
        for i in range(o.max_attempts + count_delta):
            at = ts + timedelta(seconds=30 * i)
            engine.record_outcome(_challenge(engine, at, "s1"), "failed", attempts=1,
                                  timestamp=at + timedelta(seconds=10))
        codes = _otp_denial(engine, ts + timedelta(minutes=10), "s1")
    assert codes == ({"OTP_ATTEMPTS_EXCEEDED"} if count_delta > 0 else set())


@pytest.mark.parametrize("count_delta", [-1, 0, 1])
def test_failed_tries_before_a_verified_outcome_count(count_delta: int) -> None:
    """``attempts=n, outcome="verified"``: the n-1 tries before the right code were wrong and
    count toward the session's limit (e.g. attempts=3 counts 2)."""
    o = DEFAULTS.otp
    with _otp_engine() as engine:
        ts = establish(engine) + timedelta(days=1)
        d = _challenge(engine, ts, "s1")
        failed = o.max_attempts + count_delta
        engine.record_outcome(d, "verified", attempts=failed + 1, timestamp=ts + timedelta(seconds=20))
        codes = _otp_denial(engine, ts + timedelta(minutes=1), "s1")
    assert codes == ({"OTP_ATTEMPTS_EXCEEDED"} if count_delta > 0 else set())


@pytest.mark.parametrize(("max_attempts", "denied"), [(2, False), (1, True)])
def test_attempts_3_verified_counts_exactly_2(max_attempts: int, denied: bool) -> None:
    """A verified ``attempts=3`` is 2 wrong codes: within a limit of 2, past a limit of 1."""
    with _otp_engine(max_attempts=max_attempts) as engine:
        ts = establish(engine) + timedelta(days=1)
        engine.record_outcome(_challenge(engine, ts, "s1"), "verified", attempts=3,
                              timestamp=ts + timedelta(seconds=20))
        codes = _otp_denial(engine, ts + timedelta(minutes=1), "s1")
    assert codes == ({"OTP_ATTEMPTS_EXCEEDED"} if denied else set())


@pytest.mark.parametrize("step", STEPS)
def test_session_failures_leave_the_count_after_otp_session_minutes(step: int) -> None:
    """The session's failures are counted over ``otp.session_minutes`` (inclusive): a failure
    exactly that old still counts, 1 ms older it does not."""
    o = DEFAULTS.otp
    session = timedelta(minutes=o.session_minutes)
    with _otp_engine() as engine:
        ts = establish(engine) + timedelta(days=1)
        first = ts + timedelta(seconds=10)
        engine.record_outcome(_challenge(engine, ts, "s1"), "failed", attempts=1, timestamp=first)
        later = first + timedelta(minutes=1)
        engine.record_outcome(_challenge(engine, later, "s1"), "failed", attempts=o.max_attempts,
                              timestamp=later + timedelta(seconds=10))
        codes = _otp_denial(engine, first + session + step * MS, "s1")
    assert codes == ({"OTP_ATTEMPTS_EXCEEDED"} if step <= 0 else set())


@pytest.mark.parametrize("count_delta", [-1, 0, 1])
def test_user_limit_counts_failures_of_every_session(count_delta: int) -> None:
    """``otp.user_max_failures`` wrong codes spread over sessions (each under its own limit)
    are allowed; one more denies the user in any session with OTP_LOCKED."""
    o = DEFAULTS.otp
    with _otp_engine() as engine:
        ts = establish(engine) + timedelta(days=1)
        for i in range(o.user_max_failures + count_delta):
            at = ts + timedelta(seconds=30 * i)
            engine.record_outcome(_challenge(engine, at, f"s{i}"), "failed", attempts=1,
                                  timestamp=at + timedelta(seconds=10))
        codes = _otp_denial(engine, ts + timedelta(minutes=30), "fresh")
    assert codes == ({"OTP_LOCKED"} if count_delta > 0 else set())


@pytest.mark.parametrize("step", STEPS)
def test_user_limit_window_is_otp_user_window_minutes_inclusive(step: int) -> None:
    """``otp.user_max_failures`` + 1 wrong codes: the user is locked while the oldest is at most
    ``otp.user_window_minutes`` old; 1 ms later it has left the window and the lock lifts."""
    o = DEFAULTS.otp
    window = timedelta(minutes=o.user_window_minutes)
    with _otp_engine() as engine:
        ts = establish(engine) + timedelta(days=1)
        oldest = ts + timedelta(seconds=10)
        engine.record_outcome(_challenge(engine, ts, "s-old"), "failed", attempts=1, timestamp=oldest)
        later = ts + window / 2
        for i in range(o.user_max_failures):
            at = later + timedelta(seconds=30 * i)
            engine.record_outcome(_challenge(engine, at, f"s{i}"), "failed", attempts=1,
                                  timestamp=at + timedelta(seconds=10))
        codes = _otp_denial(engine, oldest + window + step * MS, "fresh")
    assert codes == ({"OTP_LOCKED"} if step <= 0 else set())


@pytest.mark.parametrize("count_delta", [-1, 0, 1])
def test_max_pending_per_user_keeps_exactly_that_many_challenges(count_delta: int) -> None:
    """``otp.max_pending_per_user`` open challenges of one user are all kept; one more evicts
    that user's earliest-expiring one (its outcome is then unknown)."""
    cap = DEFAULTS.otp.max_pending_per_user
    with _engine() as engine:
        ts = establish(engine) + timedelta(days=1)
        ids = [engine.score(make_attempt(ts=ts + timedelta(seconds=i), ua=FIREFOX_MAC)).decision_id
               for i in range(cap + count_delta)]
        done = ts + timedelta(minutes=1)
        if count_delta > 0:
            with pytest.raises(UnknownDecisionError):
                engine.record_outcome(ids[0], "failed", timestamp=done)
        else:
            engine.record_outcome(ids[0], "failed", timestamp=done)
        engine.record_outcome(ids[1], "failed", timestamp=done)  # the next oldest always stays
        engine.record_outcome(ids[-1], "verified", timestamp=done)
