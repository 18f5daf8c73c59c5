"""UserProfile through its public methods, at every boundary its learning has: the hour
histogram's decay and rebase, device bookkeeping and caps, last location, the day-resolution
evidence (prefixes, cities, version pairs), newest versions, usual places, RTT bands, trust,
merge of the richer evidence, and the serialised form. Inputs in, profile out: nothing here
reads a private helper, so the internals may change freely."""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import pytest

from riskengine.core.enrich.versions import ua_version_digest
from riskengine.core.profile import (
    HOURS,
    MAX_MAJOR_JUMP,
    DeviceSeen,
    EvidenceLimits,
    LoginTraits,
    RttBand,
    UserProfile,
    UsualPlace,
    region_key,
)
from riskengine.core.signals.geo import EARTH_RADIUS_KM

DAY = 86400
T = 1_700_000_000
KM_PER_DEG = EARTH_RADIUS_KM * math.pi / 180


def login(p: UserProfile, now: int, **kw: Any) -> UserProfile:
    """One accepted login with nothing but what ``kw`` names."""
    args: dict[str, Any] = {"device_key": "d", "country": None, "region": None, "asn": None,
                            "latitude": None, "longitude": None, "local_hour": None}
    args.update(kw)
    return p.learned(now=now, **args)


# -- hours ---------------------------------------------------------------------------------

def test_hour_share_smooths_one_hour_either_side_and_wraps_midnight() -> None:
    hours = [0.0] * HOURS
    hours[23], hours[0], hours[1] = 2.0, 4.0, 2.0
    p = UserProfile(hours=tuple(hours))
    total = 8.0
    assert p.hour_share(0) == pytest.approx((2.0 * 0.5 + 4.0 + 2.0 * 0.5) / (2 * total))
    assert p.hour_share(23) == pytest.approx((0.0 * 0.5 + 2.0 + 4.0 * 0.5) / (2 * total))
    assert p.hour_share(1) == pytest.approx((4.0 * 0.5 + 2.0 + 0.0) / (2 * total))
    assert p.hour_share(22) == pytest.approx(2.0 * 0.5 / (2 * total))
    assert p.hour_share(12) == 0.0
    assert sum(p.hour_share(h) for h in range(HOURS)) == pytest.approx(1.0)
    assert UserProfile().hour_share(9) == 0.0
    # a long-decayed histogram (weights far below 1 after a rebase) still has shares
    faint = [0.0] * HOURS
    faint[9] = 0.004
    assert UserProfile(hours=tuple(faint)).hour_share(9) == pytest.approx(0.5)


def test_hour_weights_grow_by_half_lives_and_rebase_only_past_eight() -> None:
    hl_days = 2.0
    hl = int(hl_days * DAY)
    p = login(UserProfile(), T, local_hour=9, half_life_days=hl_days)
    assert p.hours[9] == 1.0 and p.hours_at == T and sum(p.hours) == 1.0
    p = login(p, T + hl, local_hour=10, half_life_days=hl_days)
    assert p.hours[10] == 2.0 and p.hours_at == T  # one half-life later weighs twice, no rebase
    at_limit = login(p, T + 8 * hl, local_hour=11, half_life_days=hl_days)
    assert at_limit.hours_at == T and at_limit.hours[11] == 256.0  # exactly 8 half-lives: no rebase
    past = login(p, T + 8 * hl + 1, local_hour=11, half_life_days=hl_days)
    assert past.hours_at == T + 8 * hl + 1  # rebased to now: the new login weighs 1
    assert past.hours[11] == 1.0
    assert past.hours[9] == round(1.0 * 0.5 ** ((8 * hl + 1) / hl), 3) == 0.004
    assert past.hours[10] == round(2.0 * 0.5 ** ((8 * hl + 1) / hl), 3) == 0.008
    # no local hour: the histogram is untouched
    same = login(p, T + 20 * hl, half_life_days=hl_days)
    assert (same.hours, same.hours_at) == (p.hours, p.hours_at)


def test_the_first_hour_starts_the_histogram_at_its_own_time() -> None:
    # even when `now` is within 8 half-lives of the epoch: the first login always weighs 1
    p = login(UserProfile(), 10 * DAY, local_hour=7, half_life_days=90.0)
    assert p.hours_at == 10 * DAY and p.hours[7] == 1.0
    q = login(p, 100 * DAY, local_hour=7, half_life_days=90.0)
    assert q.hours_at == 10 * DAY and q.hours[7] == 3.0


def test_the_weight_of_a_login_is_rounded_to_three_decimals() -> None:
    p = login(UserProfile(), T, local_hour=3, half_life_days=1.0)
    q = login(p, T + DAY // 3, local_hour=3, half_life_days=1.0)
    assert q.hours[3] == round(1.0 + 2.0 ** (1 / 3), 3) == 2.26


# -- devices, counts, last location ---------------------------------------------------------

def test_a_known_device_keeps_first_seen_and_trust_and_counts_up() -> None:
    p = UserProfile(devices={"d": DeviceSeen(100, 500, 4, 9_999)}, created=50, logins=7, last_ts=500)
    q = login(p, 800)
    assert q.devices["d"] == DeviceSeen(100, 800, 5, 9_999)
    assert (q.created, q.logins) == (50, 8)
    late = login(p, 300)  # an older event arriving late: last seen does not go back
    assert late.devices["d"] == DeviceSeen(100, 500, 5, 9_999)
    assert late.last_ts == 500


def test_a_first_login_creates_the_profile_at_now() -> None:
    q = login(UserProfile(), T, device_key="laptop")
    assert q.created == T and q.logins == 1 and q.devices == {"laptop": DeviceSeen(T, T, 1, 0)}
    assert q.reset_at == 0


def test_new_devices_past_the_cap_evict_the_least_recently_seen() -> None:
    p = UserProfile(devices={"a": DeviceSeen(1, 300, 9), "b": DeviceSeen(1, 100, 9), "c": DeviceSeen(1, 200, 9)})
    q = login(p, 400, device_key="new", max_devices=3)
    assert set(q.devices) == {"a", "c", "new"}
    assert set(login(p, 400, device_key="new", max_devices=4).devices) == {"a", "b", "c", "new"}
    # a known device never evicts anything
    assert set(login(p, 400, device_key="b", max_devices=3).devices) == {"a", "b", "c"}


def test_last_location_moves_only_forward_and_only_with_a_location() -> None:
    p = UserProfile(last_ts=1000, last_lat=51.5, last_lon=-0.1)
    q = login(p, 2000, latitude=48.8, longitude=2.3)
    assert (q.last_ts, q.last_lat, q.last_lon) == (2000, 48.8, 2.3)
    same_time = login(p, 1000, latitude=48.8, longitude=2.3)  # at the same second: newer wins
    assert (same_time.last_lat, same_time.last_lon) == (48.8, 2.3)
    older = login(p, 999, latitude=48.8, longitude=2.3)
    assert (older.last_ts, older.last_lat, older.last_lon) == (1000, 51.5, -0.1)
    unknown = login(p, 2000)  # no GeoIP answer: the last known location stays
    assert (unknown.last_ts, unknown.last_lat, unknown.last_lon) == (2000, 51.5, -0.1)
    assert login(p, 2000, latitude=48.8, longitude=None).last_lon == -0.1
    assert login(p, 2000, latitude=None, longitude=2.3).last_lat == 51.5


def test_a_reset_mark_survives_learning() -> None:
    assert login(UserProfile.reset_marker(T), T + 5).reset_at == T


# -- countries, regions, networks ----------------------------------------------------------

def test_seen_maps_keep_the_latest_time_and_the_most_recent_entries() -> None:
    p = UserProfile(countries={"GB": 500, "FR": 100, "DE": 300})
    assert login(p, 400, country="GB").countries["GB"] == 500   # older than known: unchanged
    assert login(p, 600, country="GB").countries["GB"] == 600
    assert login(p, 600, country="IT", max_places=3).countries == {"GB": 500, "DE": 300, "IT": 600}
    assert login(p, 600, country="IT", max_places=4).countries == {"GB": 500, "FR": 100, "DE": 300, "IT": 600}
    assert login(p, 600).countries == p.countries


def test_regions_are_keyed_by_country_and_have_their_own_cap() -> None:
    assert region_key("GB", "Scotland") == "GB/Scotland"
    assert region_key(None, "Scotland") == "??/Scotland"
    assert region_key("GB", None) is None and region_key("GB", "") is None
    assert len(region_key("GB", "R" * 100) or "") == 48
    p = UserProfile(regions={"GB/A": 1, "GB/B": 2}, asns={1: 1, 2: 2})
    q = login(p, 10, country="GB", region="C", asn=3, max_places=12, max_regions=2, max_asns=2)
    assert q.regions == {"GB/B": 2, "GB/C": 10} and q.asns == {2: 2, 3: 10}
    wide = login(p, 10, country="GB", region="C", asn=3, max_places=3)  # no own cap: max_places
    assert len(wide.regions) == 3 and len(wide.asns) == 3
    assert login(p, 10, country="GB", region="").regions == p.regions


# -- day-resolution evidence: prefixes, cities, version pairs -------------------------------

def test_prefixes_and_cities_are_touched_once_a_day() -> None:
    traits = LoginTraits(prefix="81.2.69.0", city="GB/ENG/Leeds")
    p = login(UserProfile(), T, traits=traits)
    assert p.prefixes == {"81.2.69.0": T} and p.cities == {"GB/ENG/Leeds": T}
    within = login(p, T + DAY - 1, traits=traits)
    assert within.prefixes == {"81.2.69.0": T} and within.cities == {"GB/ENG/Leeds": T}
    next_day = login(p, T + DAY, traits=traits)
    assert next_day.prefixes == {"81.2.69.0": T + DAY} and next_day.cities == {"GB/ENG/Leeds": T + DAY}
    assert login(p, T + 2 * DAY).prefixes == p.prefixes  # no prefix: nothing learned


def test_prefix_and_city_caps_keep_the_most_recent() -> None:
    limits = EvidenceLimits(max_prefixes=2, max_cities=2)
    p = UserProfile(prefixes={"a": 10, "b": 20}, cities={"x": 20, "y": 10})
    q = login(p, 30, traits=LoginTraits(prefix="c", city="z"), limits=limits)
    assert q.prefixes == {"b": 20, "c": 30} and q.cities == {"x": 20, "z": 30}


def test_version_pairs_are_learned_by_digest_when_a_version_is_known() -> None:
    traits = LoginTraits("Chrome", "120.0.1", "Windows", "10")
    p = login(UserProfile(), T, traits=traits)
    assert p.ua_seen == {ua_version_digest("Chrome", "120.0.1", "Windows", "10"): T}
    given = login(UserProfile(), T, traits=traits._replace(ua_digest="cafef00d"))
    assert given.ua_seen == {"cafef00d": T}  # the parser's digest is used as given
    only_os = login(UserProfile(), T, traits=LoginTraits("Chrome", "", "Windows", "10"))
    assert len(only_os.ua_seen) == 1
    assert login(UserProfile(), T, traits=LoginTraits("Chrome", "", "Windows", "")).ua_seen == {}
    assert login(UserProfile(), T, traits=LoginTraits(None, "1", "Windows", "10")).ua_seen == {}
    capped = UserProfile()
    for i in range(5):
        capped = login(capped, T + i * DAY, traits=LoginTraits("Chrome", str(100 + i), "Windows", "10"),
                       limits=EvidenceLimits(max_ua_versions=3))
    assert sorted(capped.ua_seen.values()) == [T + 2 * DAY, T + 3 * DAY, T + 4 * DAY]


# -- newest versions ------------------------------------------------------------------------

def newest_after(p: UserProfile, browser: str | None, version: str, os: str | None = None,
                 os_version: str = "", limits: EvidenceLimits | None = None) -> dict[str, str]:
    q = login(p, T, traits=LoginTraits(browser, version, os, os_version), limits=limits or EvidenceLimits())
    return dict(q.ua_newest)


def test_unknown_families_never_become_a_newest_version() -> None:
    assert newest_after(UserProfile(), "Other", "5", "Other", "5") == {}
    assert newest_after(UserProfile(), "", "5", "", "5") == {}
    assert newest_after(UserProfile(), None, "5", None, "5") == {}
    assert newest_after(UserProfile(), "Chrome", "5", "Windows", "") == {"b:Chrome": "5"}
    assert newest_after(UserProfile(), None, "", "Windows", "10") == {"o:Windows": "10"}
    long = "F" * 60
    assert newest_after(UserProfile(), long, "5") == {f"b:{long}"[:40]: "5"}
    assert newest_after(UserProfile(), None, "", long, "5") == {f"o:{long}"[:40]: "5"}


def test_a_jump_of_more_than_max_major_jump_releases_is_not_learned() -> None:
    p = UserProfile(ua_newest={"b:Chrome": "100.5"})
    assert newest_after(p, "Chrome", str(100 + MAX_MAJOR_JUMP))["b:Chrome"] == str(100 + MAX_MAJOR_JUMP)
    assert newest_after(p, "Chrome", str(101 + MAX_MAJOR_JUMP))["b:Chrome"] == "100.5"
    assert newest_after(p, "Chrome", "100.6")["b:Chrome"] == "100.6"
    assert newest_after(p, "Chrome", "100.5.0")["b:Chrome"] == "100.5"  # equal: the stored string stays
    assert newest_after(p, "Chrome", "100.4")["b:Chrome"] == "100.5"
    # an unparseable stored version is replaced by the first parseable one
    assert newest_after(UserProfile(ua_newest={"b:Chrome": "beta"}), "Chrome", "7")["b:Chrome"] == "7"
    assert newest_after(UserProfile(), "Chrome", "beta") == {}


def test_past_the_family_cap_the_family_learned_first_goes() -> None:
    limits = EvidenceLimits(max_ua_families=2)
    p = UserProfile(ua_newest={"b:A": "1", "b:B": "1"})
    assert newest_after(p, "C", "1", limits=limits) == {"b:B": "1", "b:C": "1"}
    assert newest_after(p, "A", "2", limits=limits) == {"b:A": "2", "b:B": "1"}  # known family: no eviction
    assert newest_after(p, "C", "1", "D", "1", limits=limits) == {"b:C": "1", "o:D": "1"}


def test_merge_takes_the_newer_parseable_version_per_family() -> None:
    a = UserProfile(ua_newest={"b:Chrome": "121", "b:Firefox": "beta", "o:Windows": "10"})
    b = UserProfile(ua_newest={"b:Chrome": "121.0.1", "b:Firefox": "115", "o:Windows": "junk", "o:iOS": "17"})
    assert dict(a.merge(b).ua_newest) == {"b:Chrome": "121.0.1", "b:Firefox": "115", "o:Windows": "10",
                                          "o:iOS": "17"}
    assert dict(b.merge(a).ua_newest)["b:Chrome"] == "121.0.1"
    same = UserProfile(ua_newest={"b:Chrome": "121.0"}).merge(UserProfile(ua_newest={"b:Chrome": "121"}))
    assert same.ua_newest["b:Chrome"] == "121.0"  # equal versions: the first one's string stays


def test_merge_bounds_the_richer_evidence_by_its_own_limits() -> None:
    limits = EvidenceLimits(max_ua_versions=2, max_prefixes=2, max_cities=1)
    a = UserProfile(ua_seen={"aa": 5, "ab": 1}, prefixes={"p1": 1, "p2": 9}, cities={"c1": 3})
    b = UserProfile(ua_seen={"bb": 6}, prefixes={"p3": 5}, cities={"c2": 2})
    for m in (a.merge(b, limits=limits), b.merge(a, limits=limits)):
        assert m.ua_seen == {"aa": 5, "bb": 6} and m.prefixes == {"p2": 9, "p3": 5} and m.cities == {"c1": 3}


def test_merge_counts_come_from_both_versions_not_the_later_one() -> None:
    later = UserProfile(last_ts=100, logins=3, ua_seen={"x": 1})
    earlier = UserProfile(last_ts=50, logins=9, ua_seen={"y": 2})
    for m in (later.merge(earlier), earlier.merge(later)):
        assert m.logins == 9 and m.last_ts == 100 and m.ua_seen == {"x": 1, "y": 2}


def test_the_profiles_default_caps_are_the_configured_defaults() -> None:
    from riskengine.core.config import Settings

    s = Settings()
    many = UserProfile(devices={f"d{i}": DeviceSeen(i, i, 1) for i in range(s.device.max_devices + 1)},
                       countries={f"C{i}": i for i in range(s.geo.max_countries + 1)})
    m = many.merge(UserProfile())
    assert len(m.devices) == s.device.max_devices and len(m.countries) == s.geo.max_countries
    assert len(UserProfile().merge(many).devices) == s.device.max_devices
    p = UserProfile()
    for i in range(s.device.max_devices + 1):
        p = login(p, T + i, device_key=f"d{i}", country=f"C{i}", region="R", asn=i)
    assert len(p.devices) == s.device.max_devices
    for i in range(s.device.max_devices + 1, s.geo.max_countries + 2):
        p = login(p, T + i, device_key="d1", country=f"C{i}", region=f"R{i}", asn=i)
    assert len(p.countries) == s.geo.max_countries
    assert len(p.regions) == s.geo.max_regions and len(p.asns) == s.geo.max_asns
    # the hour histogram's default half-life: one half-life later a login weighs twice
    h = login(UserProfile(), T, local_hour=1)
    h = login(h, T + int(s.hour.half_life_days * DAY), local_hour=2)
    assert (h.hours[1], h.hours[2]) == (1.0, 2.0)
    lim = EvidenceLimits()
    assert (lim.max_ua_families, lim.max_ua_versions) == (s.device.max_ua_families, s.device.max_ua_versions)
    assert (lim.max_prefixes, lim.max_cities, lim.max_usual_places, lim.place_merge_km, lim.place_half_life_days) == (
        s.geo.max_prefixes, s.geo.max_cities, s.geo.max_usual_places, s.geo.place_merge_km, s.geo.place_half_life_days)
    assert (lim.max_rtt_asns, lim.rtt_alpha) == (s.rtt.max_asns, s.rtt.alpha)


def test_merge_keeps_the_band_with_more_samples_and_the_later_places() -> None:
    a = UserProfile(last_ts=10, rtt={1: RttBand(3.0, 0.1, 9), 2: RttBand(4.0, 0.1, 2)},
                    places=(UsualPlace(1.0, 1.0, 1.0, 10),))
    b = UserProfile(last_ts=20, rtt={1: RttBand(3.5, 0.2, 4), 2: RttBand(4.5, 0.2, 2), 3: RttBand(5.0, 0.3, 1)},
                    places=(UsualPlace(2.0, 2.0, 1.0, 20),))
    m = a.merge(b)
    assert m.rtt == {1: RttBand(3.0, 0.1, 9), 2: RttBand(4.5, 0.2, 2), 3: RttBand(5.0, 0.3, 1)}
    assert m.places == b.places and a.merge(b).places == b.merge(a).places


# -- usual places ---------------------------------------------------------------------------

def places_after(places: tuple[UsualPlace, ...], now: int, lat: float, lon: float,
                 limits: EvidenceLimits) -> tuple[UsualPlace, ...]:
    return login(UserProfile(places=places), now, latitude=lat, longitude=lon, limits=limits).places


def test_a_login_within_the_merge_distance_moves_the_place_by_its_weight() -> None:
    limits = EvidenceLimits(place_merge_km=50.0, place_half_life_days=10.0)
    home = UsualPlace(0.0, 0.0, 3.0, 0)
    north = 49.0 / KM_PER_DEG  # 49 km north: merged
    (moved,) = places_after((home,), 10 * DAY, north, 0.0, limits)
    w = 3.0 * 0.5  # one half-life of decay
    assert moved == UsualPlace(round(north / (w + 1), 3), 0.0, round(w + 1, 3), 10 * DAY)
    far = places_after((home,), 10 * DAY, 51.0 / KM_PER_DEG, 0.0, limits)  # 51 km: a new place
    assert far == (home, UsualPlace(round(51.0 / KM_PER_DEG, 3), 0.0, 1.0, 10 * DAY))


def test_a_heavy_place_decays_by_exactly_one_half_life() -> None:
    limits = EvidenceLimits(place_half_life_days=90.0)
    heavy = UsualPlace(10.0, 10.0, 1000.0, 0)
    (moved,) = places_after((heavy,), 90 * DAY, 10.0, 10.0, limits)
    assert moved.weight == 501.0  # 1000 halved, plus this visit


def test_a_login_exactly_the_merge_distance_away_merges() -> None:
    # the distance along a meridian is exact here: half a degree of latitude
    merge_km = (6371.0088 * math.pi / 180.0) * 0.5
    limits = EvidenceLimits(place_merge_km=merge_km)
    (moved,) = places_after((UsualPlace(0.0, 0.0, 1.0, 0),), DAY, 0.5, 0.0, limits)
    assert moved.weight > 1.5
    assert len(places_after((UsualPlace(0.0, 0.0, 1.0, 0),), DAY, 0.5, 0.0,
                            limits._replace(place_merge_km=merge_km * 0.999))) == 2


def test_a_new_place_is_kept_to_three_decimals() -> None:
    out = places_after((), DAY, 48.85661, 2.35222, EvidenceLimits())
    assert out == (UsualPlace(48.857, 2.352, 1.0, DAY),)


def test_the_nearest_place_within_reach_is_the_one_that_moves() -> None:
    limits = EvidenceLimits(place_merge_km=50.0)
    a = UsualPlace(0.0, 0.0, 1.0, 0)
    b = UsualPlace(40.0 / KM_PER_DEG, 0.0, 1.0, 0)
    c = UsualPlace(0.0, 30.0, 1.0, 0)  # far away: never a candidate
    out = places_after((a, b, c), 5 * DAY, 25.0 / KM_PER_DEG, 0.0, limits)  # 25 km from a, 15 from b
    assert out[0] == a and out[2] == c and out[1] != b and out[1].weight > 1.0
    out = places_after((a, b, c), 5 * DAY, 15.0 / KM_PER_DEG, 0.0, limits)  # 15 from a, 25 from b
    assert out[0] != a and out[1] == b and out[2] == c


def test_a_place_counts_once_a_day() -> None:
    limits = EvidenceLimits()
    home = UsualPlace(10.0, 10.0, 2.0, 100 * DAY)
    assert places_after((home,), 101 * DAY - 1, 10.0, 10.0, limits) == (home,)
    assert places_after((home,), 100 * DAY, 10.0, 10.0, limits) == (home,)  # the same second
    assert places_after((home,), 101 * DAY, 10.0, 10.0, limits)[0].at == 101 * DAY
    # a late login (before the place's time) moves it without dating it back
    late = places_after((home,), 99 * DAY, 10.0, 10.0, limits)
    assert late[0].at == 100 * DAY and late[0].weight == pytest.approx(3.0)


def test_a_place_near_the_antimeridian_moves_across_it_not_around_the_world() -> None:
    """Bug fixed with this test: 179.95°E and 179.9°W are 16 km apart, but the centroid was the
    plain average of the longitudes: a user in Fiji got a usual place in the Gulf of Guinea."""
    limits = EvidenceLimits(place_merge_km=50.0, place_half_life_days=90.0)
    w = 0.5 ** (1 / 90)  # the place's weight after one day
    east = UsualPlace(0.0, 179.95, 1.0, 0)
    (moved,) = places_after((east,), DAY, 0.0, -179.9, limits)
    assert moved.weight == round(w + 1.0, 3)
    assert moved.lon == round((179.95 * w + 180.1) / (w + 1.0) - 360.0, 3)  # just west of 180: -179.97x
    west = UsualPlace(0.0, -179.95, 1.0, 0)
    (moved,) = places_after((west,), DAY, 0.0, 179.9, limits)
    assert moved.lon == round((-179.95 * w - 180.1) / (w + 1.0) + 360.0, 3)
    (moved,) = places_after((UsualPlace(0.0, 179.8, 1.0, 0),), DAY, 0.0, -179.95, limits)
    assert moved.lon == round((179.8 * w + 180.05) / (w + 1.0), 3)  # stays east of 180
    assert places_after((east,), DAY, 0.0, -179.9, limits)[0].lat == 0.0
    # near the pole, 180.5° apart eastwards is 179.5° westwards: the centroid stays on that side
    (polar,) = places_after((UsualPlace(89.9, -90.25, 1.0, 0),), DAY, 89.9, 90.25, limits)
    assert abs(polar.lon) > 179.0
    (polar,) = places_after((UsualPlace(89.9, 90.25, 1.0, 0),), DAY, 89.9, -90.25, limits)
    assert abs(polar.lon) > 179.0


def test_longitude_distance_wraps_at_the_antimeridian() -> None:
    limits = EvidenceLimits(place_merge_km=50.0)
    east = UsualPlace(0.0, 179.9, 1.0, 0)
    assert len(places_after((east,), DAY, 0.0, -179.9, limits)) == 1  # 22 km across the date line
    assert len(places_after((UsualPlace(0.0, -179.9, 1.0, 0),), DAY, 0.0, 179.9, limits)) == 1
    # at high latitude a degree of longitude is shorter: 0.5° at 60°N is ~28 km, merged
    north = UsualPlace(60.0, 10.0, 1.0, 0)
    assert len(places_after((north,), DAY, 60.0, 10.5, limits)) == 1
    assert len(places_after((north,), DAY, 60.0, 11.0, limits)) == 2  # 1° at 60°N: ~56 km, apart
    mid = UsualPlace(45.0, 10.0, 1.0, 0)
    assert len(places_after((mid,), DAY, 45.0, 10.6, limits)) == 1  # 0.6° at 45°N: ~47 km, merged
    assert len(places_after((mid,), DAY, 45.0, 10.65, limits)) == 2  # ~51 km
    assert len(places_after((north,), DAY, 60.0 + 49.0 / KM_PER_DEG, 10.0, limits)) == 1  # 49 km: merged
    assert len(places_after((UsualPlace(0.0, 10.0, 1.0, 0),), DAY, 0.0, 10.5, limits)) == 2  # ~56 km


def test_past_the_cap_the_place_with_the_least_decayed_weight_goes() -> None:
    limits = EvidenceLimits(max_usual_places=2, place_half_life_days=10.0)
    a = UsualPlace(0.0, 0.0, 4.0, 0)          # at 20 days: 1.0
    b = UsualPlace(20.0, 20.0, 1.5, 20 * DAY)  # at 20 days: 1.5
    out = places_after((a, b), 20 * DAY, -40.0, -40.0, limits)
    assert out == (b, UsualPlace(-40.0, -40.0, 1.0, 20 * DAY))
    out = places_after((b, a), 10 * DAY, -40.0, -40.0, limits)  # at 10 days: a 2.0, b 1.5 (not decayed yet)
    assert out == (a, UsualPlace(-40.0, -40.0, 1.0, 10 * DAY))
    assert places_after((a,), 20 * DAY, -40.0, -40.0, limits) == (a, UsualPlace(-40.0, -40.0, 1.0, 20 * DAY))


def test_usual_place_weight_decays_from_its_own_time_only() -> None:
    p = UsualPlace(0.0, 0.0, 8.0, 100)
    assert p.weight_at(100 + 30, 10.0) == pytest.approx(1.0)
    assert p.weight_at(50, 10.0) == 8.0  # before its time: not grown


# -- RTT bands ------------------------------------------------------------------------------

def rtt_after(bands: dict[int, RttBand], asn: int | None, rtt: float | None,
              limits: EvidenceLimits | None = None) -> dict[int, RttBand]:
    q = login(UserProfile(rtt=bands), T, asn=asn, traits=LoginTraits(rtt_ms=rtt), limits=limits or EvidenceLimits())
    return dict(q.rtt)


def test_an_rtt_needs_a_network_and_a_positive_time() -> None:
    assert rtt_after({}, None, 40.0) == {}
    assert rtt_after({}, 1, None) == {}
    assert rtt_after({}, 1, 0.0) == {}
    assert rtt_after({}, 1, -5.0) == {}
    assert rtt_after({}, 1, 40.0) == {1: RttBand(round(math.log(40.0), 4), 0.0, 1)}
    assert rtt_after({}, 1, 0.5) == {1: RttBand(round(math.log(0.5), 4), 0.0, 1)}  # sub-millisecond (a LAN)


def test_rtt_mean_and_deviation_follow_the_running_then_exponential_rate() -> None:
    limits = EvidenceLimits(rtt_alpha=0.25, rtt_max_samples=1000)
    x0, x1 = math.log(40.0), math.log(80.0)
    band = RttBand(x0, 0.1, 2)  # third sample: rate 1/3 > alpha
    (b,) = rtt_after({7: band}, 7, 80.0, limits).values()
    assert b == RttBand(round(x0 + (x1 - x0) / 3, 4), round(0.1 + (abs(x1 - x0) - 0.1) / 3, 4), 3)
    band = RttBand(x0, 0.1, 10)  # eleventh: 1/11 < alpha, the rate is alpha
    (b,) = rtt_after({7: band}, 7, 80.0, limits).values()
    assert b == RttBand(round(x0 + 0.25 * (x1 - x0), 4), round(0.1 + 0.25 * (abs(x1 - x0) - 0.1), 4), 11)
    # a faster sample lowers the mean but widens the deviation the same way (absolute)
    (b,) = rtt_after({7: RttBand(x1, 0.0, 10)}, 7, 40.0, limits).values()
    assert b.log_mean == round(x1 - 0.25 * (x1 - x0), 4) and b.log_dev == round(0.25 * (x1 - x0), 4)


def test_rtt_sample_count_is_capped() -> None:
    limits = EvidenceLimits(rtt_alpha=0.0001, rtt_max_samples=50)
    x0, x1 = math.log(40.0), math.log(80.0)
    (b,) = rtt_after({7: RttBand(x0, 0.0, 50)}, 7, 80.0, limits).values()
    assert b.n == 50 and b.log_mean == round(x0 + (x1 - x0) / 50, 4)  # rate 1/cap
    (b,) = rtt_after({7: RttBand(x0, 0.0, 49)}, 7, 80.0, limits).values()
    assert b.n == 50 and b.log_mean == round(x0 + (x1 - x0) / 50, 4)


def test_a_new_network_past_the_cap_evicts_the_band_with_fewest_samples_not_itself() -> None:
    limits = EvidenceLimits(max_rtt_asns=2)
    bands = {1: RttBand(3.0, 0.1, 5), 2: RttBand(3.0, 0.1, 9)}
    assert sorted(rtt_after(bands, 3, 40.0, limits)) == [2, 3]
    assert sorted(rtt_after(bands, 3, 40.0, EvidenceLimits(max_rtt_asns=3))) == [1, 2, 3]
    assert rtt_after(bands, 1, 40.0, limits).keys() == {1, 2}


# -- trust ---------------------------------------------------------------------------------

def test_trusting_a_known_device_sets_only_its_trust() -> None:
    p = UserProfile(devices={"a": DeviceSeen(1, 2, 3, 0), "b": DeviceSeen(4, 5, 6, 7)}, logins=9)
    q = p.trusted("a", 1000)
    assert q.devices == {"a": DeviceSeen(1, 2, 3, 1000), "b": DeviceSeen(4, 5, 6, 7)} and q.logins == 9
    assert p.devices["a"].trusted_until == 0  # pure


def test_trusting_an_unknown_device_adds_it_only_with_a_time() -> None:
    p = UserProfile(devices={"a": DeviceSeen(1, 200, 3), "b": DeviceSeen(1, 100, 3)})
    assert p.trusted("t:new", 1000) is p
    q = p.trusted("t:new", 1000, now=300)
    assert q.devices["t:new"] == DeviceSeen(300, 300, 1, 1000) and set(q.devices) == {"a", "b", "t:new"}
    capped = p.trusted("t:new", 1000, now=300, max_devices=2)
    assert set(capped.devices) == {"a", "t:new"}


def test_verified_clears_only_a_reset_mark() -> None:
    p = UserProfile(reset_at=77, logins=3)
    assert p.verified() == UserProfile(reset_at=0, logins=3)
    plain = UserProfile(logins=3)
    assert plain.verified() is plain


# -- serialised form ------------------------------------------------------------------------

def test_small_profiles_stay_plain_json_and_large_ones_are_compressed() -> None:
    def sized(n: int) -> UserProfile:
        return UserProfile(devices={"k": DeviceSeen(1, 1, 1)}, countries={"C" * n: 1})

    lengths = {n: len(sized(n).to_bytes()) for n in range(400, 800)}
    plain = [n for n, size in lengths.items() if not sized(n).to_bytes().startswith(b"z")]
    biggest_plain = max(plain)
    assert len(sized(biggest_plain).to_bytes()) == 640  # exactly at the limit: still plain JSON
    assert sized(biggest_plain + 1).to_bytes()[:1] == b"z"
    for n in (biggest_plain, biggest_plain + 1):
        assert UserProfile.from_bytes(sized(n).to_bytes()) == sized(n)
    assert zlib.decompress(sized(700).to_bytes()[1:]).startswith(b'{"v":2,')


def test_the_serialised_fields_are_the_documented_keys() -> None:
    p = UserProfile(created=1, logins=2, devices={"k": DeviceSeen(1, 2, 3, 4)}, countries={"GB": 5},
                    regions={"GB/E": 6}, asns={7: 8}, hours_at=9, last_ts=10, last_lat=1.5, last_lon=-2.5)
    assert p.to_json() == {"v": 2, "c": 1, "n": 2, "d": {"k": [1, 2, 3, 4]}, "co": {"GB": 5}, "r": {"GB/E": 6},
                           "a": {"7": 8}, "h": [], "ha": 9, "l": [10, 1.5, -2.5]}
    rich = p._replace(reset_at=3, ua_newest={"b:X": "1"}, ua_seen={"ab": 1}, prefixes={"p": 2}, cities={"c": 3},
                      places=(UsualPlace(1.0, 2.0, 3.0, 4),), rtt={5: RttBand(1.0, 0.5, 6)},
                      hours=tuple(1.0 if i == 0 else 0.0 for i in range(24)))
    j = rich.to_json()
    assert (j["x"], j["uv"], j["us"], j["p"], j["ci"], j["pl"], j["rt"]) == (
        3, {"b:X": "1"}, {"ab": 1}, {"p": 2}, {"c": 3}, [[1.0, 2.0, 3.0, 4]], {"5": [1.0, 0.5, 6]})
    assert j["h"][0] == 1.0 and len(j["h"]) == 24
    assert UserProfile.from_bytes(rich.to_bytes()) == rich
    assert UserProfile.from_bytes(json.dumps(rich.to_json())) == rich  # str input
    assert UserProfile.from_bytes(p.to_bytes().decode()) == p


def test_bad_serialised_profiles_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unsupported profile format version 3"):
        UserProfile.from_json({"v": 3})
    with pytest.raises(ValueError, match="unsupported profile format version None"):
        UserProfile.from_json({})
    good = UserProfile(logins=1).to_json()
    with pytest.raises(ValueError, match="^profile hour histogram must have 24 bins$"):
        UserProfile.from_json({**good, "h": [1.0] * 23})
    assert UserProfile.from_json({**good, "v": 1}).logins == 1
