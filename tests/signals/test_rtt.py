"""RTT_ANOMALY: the round-trip time outside the user's band on this network, and the band."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskengine.core.profile import DEFAULT_LIMITS, EvidenceLimits, LoginTraits, RttBand, UserProfile
from riskengine.core.signals.rtt import on_known_prefix, rtt_anomaly

BAND = {3320: RttBand(math.log(40.0), 0.1, 20)}
ARGS = (5, 3.0, 1.6, 25.0)  # min_samples, k, min_factor, slack_ms (the defaults)


def test_band_edges_one_ms_either_side() -> None:
    width = max(3.0 * 0.1, math.log(1.6))
    high = 40.0 * math.exp(width)
    assert rtt_anomaly(high + 25.0, 3320, BAND, *ARGS).value == 0.0   # beyond the band but within slack
    r = rtt_anomaly(high + 26.0, 3320, BAND, *ARGS)
    assert r.code == "RTT_ANOMALY"
    assert r.value == pytest.approx(0.5 + 0.5 * math.log((high + 26.0) / high) / width, abs=1e-4)
    assert rtt_anomaly(40.0 * math.exp(2 * width) * 1.01, 3320, BAND, *ARGS).value == 1.0
    assert "AS3320" in r.detail


def test_far_below_the_band_fires_when_beyond_the_slack() -> None:
    slow = {1: RttBand(math.log(300.0), 0.05, 50)}
    assert rtt_anomaly(40.0, 1, slow, *ARGS).value > 0.5
    assert rtt_anomaly(40.0, 1, BAND | {1: RttBand(math.log(50.0), 0.05, 50)}, *ARGS).value == 0.0


def test_min_samples_boundary_and_unknowns() -> None:
    assert rtt_anomaly(500.0, 3320, {3320: RttBand(math.log(40.0), 0.1, 4)}, *ARGS).value == 0.0
    assert rtt_anomaly(500.0, 3320, {3320: RttBand(math.log(40.0), 0.1, 5)}, *ARGS).value > 0.0
    assert rtt_anomaly(None, 3320, BAND, *ARGS).value == 0.0
    # a network without a band of its own: only "slower than on every network with a band"
    new = rtt_anomaly(500.0, 7018, BAND, *ARGS)
    assert new.value == 1.0 and "slower than on any of the user's networks" in new.detail
    assert rtt_anomaly(500.0, None, BAND, *ARGS).value == 1.0
    assert rtt_anomaly(20.0, 7018, BAND, *ARGS).value == 0.0  # faster from a new network: normal
    assert rtt_anomaly(500.0, 7018, {3320: RttBand(math.log(40.0), 0.1, 4)}, *ARGS).value == 0.0  # no band yet


def test_a_new_network_fires_only_past_the_slowest_band_and_the_slack() -> None:
    bands = {3320: BAND[3320], 7922: RttBand(math.log(120.0), 0.1, 30)}
    width = max(ARGS[1] * 0.1, math.log(ARGS[2]))
    slowest_edge = 120.0 * math.exp(width)
    assert rtt_anomaly(slowest_edge + ARGS[3] - 0.5, 64500, bands, *ARGS).value == 0.0
    r = rtt_anomaly(slowest_edge + ARGS[3] + 1.0, 64500, bands, *ARGS)
    assert r.value == pytest.approx(0.5 + 0.5 * math.log((slowest_edge + ARGS[3] + 1.0) / slowest_edge) / width,
                                    abs=1e-4)


@pytest.mark.parametrize("value", [0.0, 0.3, 0.999, 1.0])
def test_on_a_known_block_the_anomaly_is_scaled_by_known_prefix_value(value: float) -> None:
    fired = rtt_anomaly(500.0, 3320, BAND, *ARGS)
    assert fired.value == 1.0
    scaled = on_known_prefix(fired, True, value)
    assert scaled.code == "RTT_ANOMALY" and scaled.value == pytest.approx(value)
    if value < 1.0:
        assert "congestion more likely than a relay" in scaled.detail
    else:
        assert scaled is fired  # 1.0: the signal as it was
    assert on_known_prefix(fired, False, value) is fired  # a new block: in full
    quiet = rtt_anomaly(45.0, 3320, BAND, *ARGS)
    assert on_known_prefix(quiet, True, value) is quiet  # nothing fired, nothing to scale


def learn(p: UserProfile, rtt: float, asn: int = 3320, limits: EvidenceLimits = DEFAULT_LIMITS) -> UserProfile:
    return p.learned(now=1, device_key="d", country=None, region=None, asn=asn, latitude=None, longitude=None,
                     local_hour=None, traits=LoginTraits(rtt_ms=rtt), limits=limits)


@given(st.lists(st.floats(5.0, 2000.0), min_size=1, max_size=4))
def test_the_first_samples_are_a_plain_mean_of_log_rtt(samples: list[float]) -> None:
    """Oracle: statistics.fmean of the logs, for the first 1/alpha samples."""
    p = UserProfile()
    for x in samples:
        p = learn(p, x)
    assert p.rtt[3320].log_mean == pytest.approx(statistics.fmean(math.log(x) for x in samples), abs=1e-3)
    assert p.rtt[3320].n == len(samples)


def test_only_the_most_sampled_networks_are_kept() -> None:
    limits = EvidenceLimits(max_rtt_asns=2)
    p = UserProfile()
    for _ in range(3):
        p = learn(p, 40.0, 1, limits)
    p = learn(p, 40.0, 2, limits)
    p = learn(p, 40.0, 3, limits)   # 2 (one sample) goes, 3 just arrived stays
    assert sorted(p.rtt) == [1, 3]


def test_a_proxy_after_a_stable_history_fires() -> None:
    p = UserProfile()
    for i in range(30):
        p = learn(p, 38.0 + (i % 5))
    assert rtt_anomaly(41.0, 3320, p.rtt, *ARGS).value == 0.0
    assert rtt_anomaly(180.0, 3320, p.rtt, *ARGS).value == 1.0


YOUNG = {3320: RttBand(math.log(40.0), 0.05, 2)}


def test_a_young_history_fires_only_past_factor_times_its_slowest_centre_and_the_slack() -> None:
    """``young_factor``: no band has ``min_samples``; the edge is factor × the slowest centre."""
    two = YOUNG | {7922: RttBand(math.log(60.0), 0.05, 1)}
    edge = 3.0 * 60.0  # the slowest centre, not the login's own network's
    assert rtt_anomaly(edge + ARGS[3], 64500, two, *ARGS, young_factor=3.0).value == 0.0  # within the slack
    r = rtt_anomaly(edge + ARGS[3] + 1.0, 3320, two, *ARGS, young_factor=3.0)
    assert r.code == "RTT_ANOMALY" and "too few for a band" in r.detail and "3 sample(s)" in r.detail
    assert r.value == pytest.approx(0.5 + 0.5 * math.log((edge + ARGS[3] + 1.0) / edge) / math.log(3.0), abs=1e-4)
    assert rtt_anomaly(60.0 * 9.0 * 1.01, 64500, two, *ARGS, young_factor=3.0).value == 1.0  # factor² × centre
    assert rtt_anomaly(10.0, 64500, two, *ARGS, young_factor=3.0).value == 0.0  # faster: a better line


@pytest.mark.parametrize("factor", [0.0, 1.0])
def test_young_factor_off_keeps_the_old_rule(factor: float) -> None:
    assert rtt_anomaly(1000.0, 64500, YOUNG, *ARGS, young_factor=factor).value == 0.0
    assert rtt_anomaly(1000.0, 64500, {}, *ARGS, young_factor=3.0).value == 0.0  # no sample at all: no evidence


def test_a_mature_band_anywhere_takes_precedence_over_the_young_rule() -> None:
    """Once one network has ``min_samples``, a login elsewhere is judged against that band's
    edge (the old rule), not against factor × a young band's centre."""
    bands = {3320: RttBand(math.log(40.0), 0.1, 20), 7922: RttBand(math.log(200.0), 0.05, 2)}
    width = max(ARGS[1] * 0.1, math.log(ARGS[2]))
    just_past = 40.0 * math.exp(width) + ARGS[3] + 5.0  # past the mature band, far under 3 × 200
    assert rtt_anomaly(just_past, 64500, bands, *ARGS, young_factor=3.0).value > 0.5
    assert rtt_anomaly(just_past, 64500, bands, *ARGS).value == rtt_anomaly(
        just_past, 64500, bands, *ARGS, young_factor=3.0).value


@given(st.floats(5.0, 500.0), st.floats(1.0, 5000.0), st.floats(1.01, 10.0))
def test_the_young_rule_is_monotone_in_the_rtt(centre: float, rtt: float, factor: float) -> None:
    """A slower login is never less anomalous (value in [0, 1])."""
    bands = {1: RttBand(math.log(centre), 0.05, 1)}
    a = rtt_anomaly(rtt, 2, bands, *ARGS, young_factor=factor).value
    b = rtt_anomaly(rtt * 1.1, 2, bands, *ARGS, young_factor=factor).value
    assert 0.0 <= a <= b <= 1.0
