"""FAR_FROM_USUAL_PLACES: graded by km from the nearest decayed centroid; the profile's centroids."""

from __future__ import annotations

import math

import pytest

from riskengine.core.profile import EvidenceLimits, UserProfile, UsualPlace
from riskengine.core.signals.base import SignalResult
from riskengine.core.signals.geo import EARTH_RADIUS_KM, haversine_km
from riskengine.core.signals.usual_places import between_usual_places, far_from_usual_places

KM_PER_DEG_LAT = EARTH_RADIUS_KM * math.pi / 180
HOME = UsualPlace(0.0, 0.0, 10.0, 0)


def north(km: float) -> float:
    return km / KM_PER_DEG_LAT


def test_boundaries_at_far_km_and_full_km() -> None:
    assert far_from_usual_places(north(299), 0.0, [HOME], 300, 2000).value == 0.0
    assert far_from_usual_places(north(300), 0.0, [HOME], 300, 2000).value == 0.0
    assert far_from_usual_places(north(301), 0.0, [HOME], 300, 2000).value == pytest.approx(0.5, abs=1e-3)
    assert far_from_usual_places(north(1150), 0.0, [HOME], 300, 2000).value == pytest.approx(0.75, abs=1e-3)
    assert far_from_usual_places(north(1999), 0.0, [HOME], 300, 2000).value == pytest.approx(1.0, abs=1e-3)
    assert far_from_usual_places(north(5000), 0.0, [HOME], 300, 2000).value == 1.0


def test_nearest_of_several_places_counts_not_the_last_one() -> None:
    work = UsualPlace(north(1000), 0.0, 3.0, 0)
    assert far_from_usual_places(north(1100), 0.0, [HOME, work], 300, 2000).value == 0.0
    assert far_from_usual_places(north(1100), 0.0, [HOME], 300, 2000).value > 0.5
    assert far_from_usual_places(None, 0.0, [HOME], 300, 2000).value == 0.0
    assert far_from_usual_places(1.0, 1.0, [], 300, 2000).value == 0.0



def test_the_no_trigonometry_shortcut_never_disagrees_with_haversine() -> None:
    """A place is near when R·(|dlat| + |dlon|) is within far_km, without haversine: an upper
    bound on the great-circle distance. Oracle: haversine itself, on pairs drawn around the
    far_km boundary, at high latitudes (where a degree of longitude is short) and across the
    antimeridian (where |dlon| > 180 must not count as far-but-bounded)."""
    import random

    rng = random.Random(20261207)
    near = far = 0
    for _ in range(20_000):
        lat = rng.uniform(-89.0, 89.0)
        lon = rng.uniform(-180.0, 180.0)
        far_km = rng.choice([1.0, 50.0, 300.0, 1500.0])
        step = far_km / KM_PER_DEG_LAT * rng.uniform(0.0, 2.2)
        angle = rng.uniform(0.0, 2 * math.pi)
        plat = max(-90.0, min(90.0, lat + step * math.sin(angle)))
        plon = lon + step * math.cos(angle) / max(0.05, math.cos(math.radians(lat)))
        plon = (plon + 180.0) % 360.0 - 180.0
        place = UsualPlace(plat, plon, 1.0, 0)
        km = haversine_km(plat, plon, lat, lon)
        fired = far_from_usual_places(lat, lon, [place], far_km, far_km * 5).value > 0.0
        assert fired == (km > far_km), (lat, lon, plat, plon, far_km, km)
        near += not fired
        far += fired
    assert near > 5_000 and far > 5_000  # both sides of the boundary were exercised


def learn(p: UserProfile, now: int, lat: float, lon: float, limits: EvidenceLimits) -> UserProfile:
    return p.learned(now=now, device_key="d", country="GB", region="R", asn=1, latitude=lat, longitude=lon,
                     local_hour=9, limits=limits)


def test_logins_near_a_place_move_it_and_the_cap_evicts_the_least_used() -> None:
    limits = EvidenceLimits(max_usual_places=2, place_merge_km=50.0, place_half_life_days=90.0)
    p = UserProfile()
    for i in range(10):
        p = learn(p, i * 86400, 51.5 + (0.1 if i % 2 else 0.0), -0.1, limits)  # 11 km apart: one place
    p = learn(p, 9 * 86400 + 3600, 51.5, -0.1, limits)  # the same day again: one visit, not two
    assert len(p.places) == 1 and p.places[0].weight == pytest.approx(9.7, abs=0.05)  # 9 days of decay
    assert 51.5 < p.places[0].lat < 51.6
    p = learn(p, 10 * 86400, 53.8, -1.55, limits)      # Leeds: a second place
    p = learn(p, 11 * 86400, 40.7, -74.0, limits)      # New York: past the cap, Leeds (weight 1) goes
    assert len(p.places) == 2
    assert [round(x.lat) for x in p.places] == [52, 41]
    assert min(haversine_km(x.lat, x.lon, 51.55, -0.1) for x in p.places) < 10


def test_a_decayed_place_loses_to_a_fresh_one() -> None:
    limits = EvidenceLimits(max_usual_places=2, place_half_life_days=10.0)
    old = UsualPlace(10.0, 10.0, 8.0, 0)
    recent = UsualPlace(20.0, 20.0, 2.0, 100 * 86400)
    p = UserProfile(places=(old, recent))
    q = learn(p, 100 * 86400, -30.0, -30.0, limits)     # old: 8 × 2⁻¹⁰ < 1 → evicted
    assert [x.lat for x in q.places] == [20.0, -30.0]


# -- impossible travel between two usual places ----------------------------------------------

TRAVEL = SignalResult("IMPOSSIBLE_TRAVEL", 1.0, "1000 km in 0.1 h since the last login")
FAR = UsualPlace(north(1000), 0.0, 3.0, 0)  # a VPN exit, three days of logins
ARGS = (50.0, 3.0, 90 * 86400.0, 0.0)  # radius_km (place_merge_km), min_days, half-life, now


def test_travel_between_two_usual_places_does_not_fire() -> None:
    r = between_usual_places(TRAVEL, 0.0, 0.0, north(1000), 0.0, [HOME, FAR], *ARGS)
    assert r.value == 0.0 and "usual places" in r.detail
    # either end not a usual place: the travel stands
    assert between_usual_places(TRAVEL, 0.0, 0.0, north(1000), 0.0, [HOME], *ARGS) is TRAVEL
    assert between_usual_places(TRAVEL, north(2000), 0.0, north(1000), 0.0, [HOME, FAR], *ARGS) is TRAVEL
    assert between_usual_places(TRAVEL, None, None, north(1000), 0.0, [HOME, FAR], *ARGS) is TRAVEL
    quiet = SignalResult("IMPOSSIBLE_TRAVEL", 0.0, "plausible")
    assert between_usual_places(quiet, 0.0, 0.0, north(1000), 0.0, [HOME, FAR], *ARGS) is quiet


@pytest.mark.parametrize(("km", "exempt"), [(49.9, True), (50.1, False)])
def test_the_radius_is_place_merge_km(km: float, exempt: bool) -> None:
    r = between_usual_places(TRAVEL, north(km), 0.0, north(1000), 0.0, [HOME, FAR], *ARGS)
    assert (r.value == 0.0) == exempt


@pytest.mark.parametrize(("days", "exempt"), [(2.999, False), (3.0, True)])
def test_a_place_is_usual_from_travel_usual_place_days(days: float, exempt: bool) -> None:
    r = between_usual_places(TRAVEL, 0.0, 0.0, north(1000), 0.0, [HOME, FAR._replace(weight=days)], *ARGS)
    assert (r.value == 0.0) == exempt


def test_a_place_stops_being_usual_as_its_days_decay() -> None:
    half_life = 90 * 86400.0
    exit_ = FAR._replace(weight=6.0)  # six days, then one half-life without a login: three
    assert between_usual_places(TRAVEL, 0.0, 0.0, north(1000), 0.0, [HOME, exit_], 50.0, 3.0, half_life,
                                half_life).value == 0.0
    assert between_usual_places(TRAVEL, 0.0, 0.0, north(1000), 0.0, [HOME, exit_], 50.0, 3.0, half_life,
                                half_life + 3600).value == 1.0
