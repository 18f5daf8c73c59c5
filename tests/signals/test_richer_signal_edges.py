"""The richer signals (UA versions, prefix, city, usual places, RTT) at their edges and with
their exact results: code, value and the detail a reviewer reads. Pure functions: inputs in,
SignalResult out."""

from __future__ import annotations

import math

import pytest

from riskengine.core.profile import RttBand, UsualPlace
from riskengine.core.signals.base import SignalResult
from riskengine.core.signals.city import city_key, new_city
from riskengine.core.signals.geo import EARTH_RADIUS_KM
from riskengine.core.signals.prefix import address_prefix, new_prefix
from riskengine.core.signals.rtt import rtt_anomaly
from riskengine.core.signals.ua_version import new_ua_version, ua_downgrade
from riskengine.core.signals.usual_places import far_from_usual_places

DAY = 86400.0
KM_PER_DEG = EARTH_RADIUS_KM * math.pi / 180


# -- UA versions -----------------------------------------------------------------------------

def test_downgrade_names_every_older_part() -> None:
    newest = {"b:Chrome": "121", "o:Windows": "10"}
    r = ua_downgrade("Chrome", (118, 0, 1), "Windows", (8, 1), newest, False)
    assert r == SignalResult("UA_DOWNGRADE", 1.0, "older than this user has shown: browser Chrome 118.0.1 "
                             "(newest seen 121); OS Windows 8.1 (newest seen 10)")
    only_os = ua_downgrade("Chrome", None, "Windows", (8,), newest, False)
    assert only_os.detail == "older than this user has shown: OS Windows 8 (newest seen 10)"
    quiet = SignalResult("UA_DOWNGRADE", 0.0, "no older browser or OS than before")
    assert ua_downgrade("Chrome", (118,), "Windows", (8,), newest, True) == quiet
    assert ua_downgrade("Chrome", (121,), "Windows", (10,), newest, False) == quiet


def test_downgrade_reads_the_family_keys_as_the_profile_writes_them() -> None:
    # the profile keys families as "b:"/"o:" + name, cut at 40 characters
    family = "B" * 50
    newest = {f"b:{family}"[:40]: "100", f"o:{family}"[:40]: "20"}
    assert ua_downgrade(family, (99,), "Linux", None, newest, False).value == 1.0
    assert ua_downgrade("Linux", None, family, (19,), newest, False).value == 1.0
    # a browser and an OS of the same name are different families
    assert ua_downgrade("X", (5,), "X", None, {"o:X": "9"}, False).value == 0.0
    assert ua_downgrade("X", None, "X", (5,), {"b:X": "9"}, False).value == 0.0


def test_new_version_detail_and_missing_halves() -> None:
    assert new_ua_version("Chrome", "122", "Windows", "", False, True) == SignalResult(
        "NEW_UA_VERSION", 1.0, "first login with Chrome 122 on Windows ?")
    assert new_ua_version("Chrome", "", "Windows", "10", False, True) == SignalResult(
        "NEW_UA_VERSION", 1.0, "first login with Chrome ? on Windows 10")
    assert new_ua_version("Chrome", "", "Windows", "", False, True) == SignalResult(
        "NEW_UA_VERSION", 0.0, "browser and OS versions seen before")
    assert new_ua_version("Chrome", "1", "Windows", "1", True, True) == SignalResult(
        "NEW_UA_VERSION", 0.0, "browser and OS versions seen before")
    assert new_ua_version("Chrome", "1", "Windows", "1", False, False) == SignalResult(
        "NEW_UA_VERSION", 0.0, "device not known: versions say nothing more")
    assert new_ua_version("Chrome", "1", "Windows", "1", True, False).detail.startswith("device not known")


# -- prefix ----------------------------------------------------------------------------------

def test_prefix_results_are_exact() -> None:
    assert new_prefix("81.2.69.0", False, {}, DAY, 365) == SignalResult(
        "NEW_PREFIX", 1.0, "first login from address block 81.2.69.0")
    assert new_prefix("81.2.69.0", False, {"81.2.69.0": 0}, DAY, 365) == SignalResult(
        "NEW_PREFIX", 0.0, "address prefix seen before")
    assert new_prefix("81.2.69.0", True, {}, DAY, 365) == SignalResult(
        "NEW_PREFIX", 0.0, "the network AS is new: NEW_ASN says it")
    assert new_prefix(None, True, {}, DAY, 365) == SignalResult("NEW_PREFIX", 0.0, "no address prefix")


def test_prefix_history_is_measured_in_days() -> None:
    seen = {"p": 0}
    assert new_prefix("p", False, seen, 2.0 * DAY, 2.0).value == 0.0
    assert new_prefix("p", False, seen, 2.0 * DAY + 1, 2.0).value == 1.0
    assert new_prefix("p", False, {"p": 1000}, 1000 + 2.0 * DAY, 2.0).value == 0.0  # from the last time, not 0


def test_default_prefix_lengths_are_the_configured_ones() -> None:
    from riskengine.core.config import Settings

    geo = Settings().geo
    for ip in ("81.2.69.160", "81.2.69.127", "2001:db8:abcd:8000::1", "2001:db8:abcd:7fff::1"):
        assert address_prefix(ip) == address_prefix(ip, geo.ipv4_prefix, geo.ipv6_prefix)
    assert address_prefix("2001:db8:abcd:8000::1") == "2001:db8:abcd::"  # bit 49 set: dropped at /48
    assert address_prefix("81.2.69.128") == "81.2.69.0"  # bit 25 set: dropped at /24


def test_ipv6_and_mapped_prefixes() -> None:
    assert address_prefix("2001:db8:abcd:12::1", 8, 32) == "2001:db8::"
    assert address_prefix("::ffff:81.2.69.160", 16, 128) == "81.2.0.0"  # mapped: the IPv4 length applies
    assert address_prefix("2001:db8::1", 24, 128) == "2001:db8::1"
    assert address_prefix("81.2.69.160", 32, 1) == "81.2.69.160"
    assert address_prefix("") is None


# -- city ------------------------------------------------------------------------------------

def test_city_keys_fill_unknown_country_and_region() -> None:
    assert city_key(None, None, "Leeds") == "??/?/Leeds"
    assert city_key("", "", "Leeds") == "??/?/Leeds"
    assert city_key("GB", None, "Leeds") == "GB/?/Leeds"
    assert city_key(None, "ENG", "Leeds") == "??/ENG/Leeds"
    assert city_key("GB", "ENG", "") is None


def test_city_results_are_exact_and_name_only_the_city() -> None:
    assert new_city("GB/ENG/Leeds", False, {}, DAY, 365) == SignalResult("NEW_CITY", 1.0, "first login from Leeds")
    assert new_city("US/?/Washington/DC", False, {}, DAY, 365).detail == "first login from DC"
    assert new_city("GB/ENG/Leeds", False, {"GB/ENG/Leeds": 0}, DAY, 365) == SignalResult(
        "NEW_CITY", 0.0, "city seen before")
    assert new_city("GB/ENG/Leeds", True, {}, DAY, 365) == SignalResult(
        "NEW_CITY", 0.0, "the region is new: NEW_REGION says it")
    assert new_city(None, True, {}, DAY, 365) == SignalResult("NEW_CITY", 0.0, "city unknown")
    seen = {"k": 1000}
    assert new_city("k", False, seen, 1000 + 3 * DAY, 3.0).value == 0.0
    assert new_city("k", False, seen, 1000 + 3 * DAY + 1, 3.0).value == 1.0


# -- usual places ----------------------------------------------------------------------------

def test_far_from_usual_places_result_and_grading() -> None:
    home = UsualPlace(0.0, 0.0, 5.0, 0)
    r = far_from_usual_places(1000.0 / KM_PER_DEG, 0.0, [home, UsualPlace(0.0, 90.0, 1.0, 0)], 300, 2000)
    assert r == SignalResult("FAR_FROM_USUAL_PLACES", round(0.5 + 0.5 * 700 / 1700, 4),
                             "1000 km from the nearest of the user's 2 usual places")
    assert far_from_usual_places(10.0, 10.0, [home], 5000, 9000) == SignalResult(
        "FAR_FROM_USUAL_PLACES", 0.0, "near one of the user's usual places")
    assert far_from_usual_places(10.0, None, [home], 300, 2000) == SignalResult(
        "FAR_FROM_USUAL_PLACES", 0.0, "no usual places yet or location unknown")
    assert far_from_usual_places(10.0, 10.0, [], 300, 2000).detail == "no usual places yet or location unknown"


def test_exactly_far_km_from_the_nearest_place_is_still_near() -> None:
    from riskengine.core.signals.geo import haversine_km

    home = UsualPlace(51.5, -0.1, 5.0, 0)
    d = haversine_km(51.5, -0.1, 53.8, -1.55)
    assert far_from_usual_places(53.8, -1.55, [home], d, 2000) == SignalResult(
        "FAR_FROM_USUAL_PLACES", 0.0, "near one of the user's usual places")
    assert far_from_usual_places(53.8, -1.55, [home], d * (1 - 1e-12), 2000).value == 0.5


def test_a_full_distance_at_or_below_the_far_distance_grades_over_one_km() -> None:
    home = UsualPlace(0.0, 0.0, 5.0, 0)
    assert far_from_usual_places(300.5 / KM_PER_DEG, 0.0, [home], 300, 300).value == pytest.approx(0.75, abs=1e-3)
    assert far_from_usual_places(300.5 / KM_PER_DEG, 0.0, [home], 300, 100).value == pytest.approx(0.75, abs=1e-3)
    assert far_from_usual_places(300.5 / KM_PER_DEG, 0.0, [home], 300, 302).value == pytest.approx(
        0.5 + 0.5 * 0.5 / 2, abs=1e-3)
    assert far_from_usual_places(302.0 / KM_PER_DEG, 0.0, [home], 300, 300).value == 1.0


# -- RTT -------------------------------------------------------------------------------------

K, MIN_FACTOR, SLACK = 3.0, 1.6, 25.0


def anomaly(rtt: float | None, asn: int | None, bands: dict[int, RttBand], min_samples: int = 5) -> SignalResult:
    return rtt_anomaly(rtt, asn, bands, min_samples, K, MIN_FACTOR, SLACK)


def test_the_band_is_the_wider_of_k_deviations_and_the_minimum_factor() -> None:
    narrow = {1: RttBand(math.log(100.0), 0.01, 50)}   # 3 × 0.01 < log 1.6: the factor sets it
    wide = {1: RttBand(math.log(100.0), 0.3, 50)}      # 3 × 0.3 = 0.9 > log 1.6
    high_narrow, high_wide = 100.0 * MIN_FACTOR, 100.0 * math.exp(0.9)
    assert anomaly(high_narrow + SLACK + 1, 1, narrow).value > 0.5
    assert anomaly(high_narrow + SLACK + 1, 1, wide).value == 0.0
    assert anomaly(high_wide + SLACK + 1, 1, wide).value == pytest.approx(
        0.5 + 0.5 * math.log((high_wide + SLACK + 1) / high_wide) / 0.9, abs=1e-4)


def test_above_the_band_result_and_the_slack_boundary() -> None:
    bands = {3320: RttBand(math.log(90.0), 0.0, 50)}
    width = math.log(MIN_FACTOR)
    high = 90.0 * MIN_FACTOR  # 144 ms (low: 56.25 ms)
    assert anomaly(high + SLACK, 3320, bands) == SignalResult(
        "RTT_ANOMALY", 0.0, "round-trip time within the user's band")
    r = anomaly(high + SLACK + 0.01, 3320, bands)
    expected = round(0.5 + 0.5 * (math.log(high + SLACK + 0.01) - (math.log(90.0) + width)) / width, 4)
    assert r == SignalResult("RTT_ANOMALY", expected, "round-trip 169 ms, usual on AS3320 56–144 ms")
    assert anomaly(90.0 * MIN_FACTOR ** 2 + 1, 3320, bands).value == 1.0
    assert anomaly(90.0 * MIN_FACTOR ** 1.9, 3320, bands).value == round(0.5 + 0.5 * 0.9, 4)


def test_below_the_band_needs_the_slack_too() -> None:
    slow = {9: RttBand(math.log(200.0), 0.0, 50)}
    width = math.log(MIN_FACTOR)
    low = 200.0 / MIN_FACTOR  # 125 ms
    assert anomaly(low - SLACK, 9, slow).value == 0.0
    r = anomaly(low - SLACK - 0.01, 9, slow)
    assert r.value == round(0.5 + 0.5 * ((math.log(200.0) - width) - math.log(low - SLACK - 0.01)) / width, 4)
    assert r.detail == "round-trip 100 ms, usual on AS9 125–320 ms"
    # inside the band but far from the centre in ms: quiet
    assert anomaly(low + 1, 9, slow).value == 0.0 and anomaly(200.0 * MIN_FACTOR - 1, 9, slow).value == 0.0
    # beyond the band by less than the slack, on the low side
    tight = {9: RttBand(math.log(40.0), 0.0, 50)}  # low 25 ms: 1 ms is 24 below it, within the slack
    assert anomaly(1.0, 9, tight).value == 0.0


def test_a_band_with_exactly_min_samples_is_the_networks_own() -> None:
    # far below its own band: only the own band can tell (the new-network path sees only "slower")
    bands = {1: RttBand(math.log(200.0), 0.0, 5)}
    assert anomaly(20.0, 1, bands, min_samples=5).value == 1.0
    assert anomaly(20.0, 1, bands, min_samples=6).value == 0.0


def test_the_slack_below_the_band_is_exclusive() -> None:
    width = math.log(MIN_FACTOR)
    bands = {1: RttBand(math.log(200.0), 0.0, 50)}
    low = math.exp(math.log(200.0)) * math.exp(-width)  # ~125 ms: low - 25 is exact in this binade
    assert low - (low - SLACK) == SLACK
    assert anomaly(low - SLACK, 1, bands).value == 0.0
    assert anomaly(low - SLACK - 1e-9, 1, bands).value > 0.5


def test_min_samples_of_the_own_band_and_of_the_others() -> None:
    own_young = {1: RttBand(math.log(40.0), 0.0, 4), 2: RttBand(math.log(40.0), 0.0, 5)}
    # network 1's band is too young: judged against the others (network 2), as a new network
    r = anomaly(500.0, 1, own_young)
    assert r.code == "RTT_ANOMALY" and r.value == 1.0
    assert r.detail == "round-trip 500 ms on AS1, slower than on any of the user's networks (at most 64 ms)"
    assert anomaly(500.0, 1, own_young, min_samples=6).value == 0.0  # no band old enough anywhere
    assert anomaly(500.0, 1, own_young, min_samples=6) == SignalResult(
        "RTT_ANOMALY", 0.0, "no round-trip time, or too few samples on this network")
    assert anomaly(None, 1, own_young) == anomaly(500.0, 1, {})


def test_a_new_network_is_judged_against_the_slowest_band_edge() -> None:
    bands = {1: RttBand(math.log(40.0), 0.0, 9), 2: RttBand(math.log(100.0), 0.3, 9),
             3: RttBand(math.log(300.0), 0.0, 2)}
    edge = math.log(100.0) + 0.9  # network 2's edge; network 3 is too young to count
    high = math.exp(edge)
    assert anomaly(high + SLACK, None, bands) == SignalResult(
        "RTT_ANOMALY", 0.0, "round-trip time within the user's band")
    r = anomaly(high + SLACK + 0.5, None, bands)
    assert r.value == round(0.5 + 0.5 * (math.log(high + SLACK + 0.5) - edge) / 0.9, 4)
    assert r.detail == (f"round-trip {high + SLACK + 0.5:.0f} ms on an unknown network, slower than on any of the "
                        f"user's networks (at most {high:.0f} ms)")
    assert anomaly(math.exp(edge + 0.9) * 1.01, 64500, bands).value == 1.0
    # equal edges: the one with the larger centre decides the width (max of the pairs)
    twins = {1: RttBand(math.log(100.0), 0.3, 9), 2: RttBand(math.log(100.0) + 0.9 - math.log(MIN_FACTOR), 0.0, 9)}
    e = math.log(100.0) + 0.9
    x = math.exp(e + 0.1) + SLACK
    width = e - max(math.log(100.0), math.log(100.0) + 0.9 - math.log(MIN_FACTOR))
    assert anomaly(x, 7, twins).value == min(1.0, round(0.5 + 0.5 * (math.log(x) - e) / width, 4))


def test_fired_means_a_positive_value() -> None:
    assert SignalResult("X", 0.0001, "").fired and not SignalResult("X", 0.0, "").fired


# -- impossible travel -----------------------------------------------------------------------

def test_impossible_travel_value_grows_from_half_at_the_limit_to_one_at_twice() -> None:
    from riskengine.core.signals.geo import impossible_travel

    def at(speed_factor: float) -> SignalResult:
        # 100 km of tolerance + 1,000 km × factor, in exactly one hour, at a limit of 1,000 km/h
        lat = (100.0 + 1000.0 * speed_factor) / KM_PER_DEG
        return impossible_travel(lat, 0.0, 7200.0, 0.0, 0.0, 3600.0, 1000.0, 100.0)

    assert at(1.2).value == pytest.approx(0.6, abs=1e-9)
    assert at(1.5).value == pytest.approx(0.75, abs=1e-9)
    assert at(2.0).value == pytest.approx(1.0, abs=1e-9) and at(3.0).value == 1.0
    assert at(1.2).detail == "1300 km in 1.0 h (1200 km/h) since the last login"
    assert at(0.99).value == 0.0
