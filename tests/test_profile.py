from __future__ import annotations

import json

import pytest

from riskengine.core.profile import FORMAT_VERSION, DeviceSeen, EvidenceLimits, LoginTraits, UserProfile

DAY = 86400


def rich_profile() -> UserProfile:
    """A heavy but realistic user: 8 devices, 12 countries/regions/ASNs, a year of hours."""
    p = UserProfile()
    for i in range(400):
        p = p.learned(now=1_700_000_000 + i * DAY // 2, device_key=f"{i % 8:012x}",
                      country=["GB", "FR", "DE", "ES", "IT", "US", "NL", "BE", "PT", "IE", "SE",
                               "DK", "NO"][i % 13],
                      region=f"Region number {i % 15}", asn=60000 + i % 14,
                      latitude=51.5 + (i % 7) / 10, longitude=-0.1, local_hour=(8 + i) % 24)
    return p.trusted(f"{3:012x}", 1_800_000_000).trusted("t:" + "ab" * 16, 1_800_000_000, now=1_700_100_000)


def test_round_trip_and_size_bound() -> None:
    p = rich_profile()
    raw = p.to_bytes()
    assert UserProfile.from_bytes(raw) == p
    assert len(raw) <= 1024, len(raw)
    # docs/signals.md quotes 488 bytes for this profile (468 in format 1; +20 for its usual places):
    # a format change that grows (or shrinks) it by more than a few bytes must update that page too
    assert 482 <= len(raw) <= 494, len(raw)
    assert len(p.devices) == 8 and len(p.countries) == 12 and len(p.asns) == 12


def test_bad_serialised_profile_is_rejected() -> None:
    with pytest.raises(ValueError, match="format version"):
        UserProfile.from_bytes(b'{"v": 99}')


def test_learning_is_pure() -> None:
    p = UserProfile()
    q = p.learned(now=100, device_key="d", country="GB", region="England", asn=1, latitude=1.0,
                  longitude=2.0, local_hour=9)
    assert p.logins == 0 and q.logins == 1 and q.devices["d"].count == 1
    assert q.regions == {"GB/England": 100}


def test_merge_keeps_union_and_latest() -> None:
    base = UserProfile()
    a = base.learned(now=100, device_key="laptop", country="GB", region=None, asn=1, latitude=None,
                     longitude=None, local_hour=9)
    b = base.learned(now=200, device_key="phone", country="FR", region=None, asn=2, latitude=48.0,
                     longitude=2.0, local_hour=20)
    m = a.merge(b)
    assert set(m.devices) == {"laptop", "phone"}
    assert m.countries == {"GB": 100, "FR": 200}
    assert (m.last_ts, m.last_lat) == (200, 48.0)
    assert m == b.merge(a)


def test_merge_combines_every_field_of_two_concurrent_versions() -> None:
    """Field by field: devices union (earliest first seen, latest last seen, larger count and
    trust), the later version's last location, earliest non-zero creation, larger login count,
    places by larger count, hours by larger weight, latest decay time and reset mark."""
    hours_a = tuple(float(i == 9) for i in range(24))
    hours_b = tuple(0.5 if i in (9, 20) else 0.0 for i in range(24))
    a = UserProfile(created=0, logins=7, devices={"d": DeviceSeen(10, 500, 3, 0), "a": DeviceSeen(5, 50, 1, 900)},
                    countries={"GB": 300, "FR": 10}, regions={"GB/E": 30}, asns={1: 40}, hours=hours_a,
                    hours_at=400, last_ts=500, last_lat=51.5, last_lon=-0.1, reset_at=0)
    b = UserProfile(created=20, logins=5, devices={"d": DeviceSeen(20, 400, 9, 800), "b": DeviceSeen(60, 60, 1, 0)},
                    countries={"GB": 100, "FR": 200, "IT": 0}, regions={"GB/E": 60}, asns={1: 20, 2: 2}, hours=hours_b,
                    hours_at=450, last_ts=499, last_lat=48.8, last_lon=2.3, reset_at=77)
    for m in (a.merge(b), b.merge(a)):
        assert m.devices == {"d": DeviceSeen(10, 500, 9, 800), "a": DeviceSeen(5, 50, 1, 900),
                             "b": DeviceSeen(60, 60, 1, 0)}
        assert (m.last_ts, m.last_lat, m.last_lon) == (500, 51.5, -0.1)  # a is later
        assert m.created == 20 and m.logins == 7
        assert m.countries == {"GB": 300, "FR": 200, "IT": 0} and m.regions == {"GB/E": 60} and m.asns == {1: 40, 2: 2}
        assert m.hours == tuple(1.0 if i == 9 else 0.5 if i == 20 else 0.0 for i in range(24))
        assert m.hours_at == 450 and m.reset_at == 77
    assert UserProfile().merge(UserProfile()).created == 0
    assert UserProfile(created=5).merge(UserProfile(created=3)).created == 3
    # equal last_ts: the other version's location (a tie is broken one way, consistently)
    tie = UserProfile(last_ts=1, last_lat=1.0).merge(UserProfile(last_ts=1, last_lat=2.0))
    assert tie.last_lat == 2.0


def test_merge_bounds_devices_by_last_seen_and_places_by_count() -> None:
    a = UserProfile(devices={f"a{i}": DeviceSeen(i, 100 + i, 1) for i in range(3)}, countries={"GB": 5, "FR": 1})
    b = UserProfile(devices={f"b{i}": DeviceSeen(i, 200 + i, 1) for i in range(3)}, countries={"DE": 3, "ES": 9})
    m = a.merge(b, max_devices=4, max_places=2)
    assert set(m.devices) == {"b0", "b1", "b2", "a2"}  # the most recently seen four
    assert m.countries == {"ES": 9, "GB": 5}  # the two most used


def test_untrusting_one_device_keeps_the_others_trust() -> None:
    p = UserProfile(devices={"a": DeviceSeen(1, 2, 1, 900), "b": DeviceSeen(1, 2, 1, 800)})
    assert p.untrusted("a").devices == {"a": DeviceSeen(1, 2, 1, 0), "b": DeviceSeen(1, 2, 1, 800)}
    assert {d.trusted_until for d in p.untrusted().devices.values()} == {0}


def test_reset_marker_is_never_zero() -> None:
    """reset_at 0 means "never reset": a reset at epoch 0 (or a negative clock) still marks."""
    assert UserProfile.reset_marker(0).reset_at == 1
    assert UserProfile.reset_marker(1_700_000_000) == UserProfile(reset_at=1_700_000_000)


def test_hour_histogram_decays() -> None:
    p = UserProfile().learned(now=0, device_key="d", country=None, region=None, asn=None,
                              latitude=None, longitude=None, local_hour=9)
    q = p.learned(now=90 * DAY, device_key="d", country=None, region=None, asn=None,
                  latitude=None, longitude=None, local_hour=20, half_life_days=90)
    assert q.hours[9] == pytest.approx(0.5) and q.hours[20] == 1.0


def rich_profile_v2() -> UserProfile:
    """The same heavy user with everything format 2 learns: 3 browsers, a dozen version pairs,
    prefixes and cities, places and RTT bands at their caps."""
    p = UserProfile()
    browsers = [("Chrome", "Windows"), ("Firefox", "Mac OS X"), ("Mobile Safari", "iOS")]
    for i in range(400):
        browser, os_ = browsers[i % 3]
        traits = LoginTraits(browser, f"{100 + i // 30}.0.{i % 7}", os_, f"{10 + i // 100}",
                             f"81.2.{i % 17}.0", f"GB/Region number {i % 15}/City {i % 19}", 30.0 + i % 40)
        p = p.learned(now=1_700_000_000 + i * DAY // 2, device_key=f"{i % 8:012x}",
                      country=["GB", "FR", "DE", "ES", "IT", "US", "NL", "BE", "PT", "IE", "SE",
                               "DK", "NO"][i % 13],
                      region=f"Region number {i % 15}", asn=60000 + i % 14,
                      latitude=51.5 + (i % 7) * 2, longitude=-0.1 + (i % 5) * 3, local_hour=(8 + i) % 24,
                      traits=traits)
    return p


def test_format_2_round_trips_and_stays_bounded() -> None:
    p = rich_profile_v2()
    raw = p.to_bytes()
    assert UserProfile.from_bytes(raw) == p
    assert json.loads(__import__("zlib").decompress(raw[1:]))["v"] == FORMAT_VERSION == 2
    limits = EvidenceLimits()
    assert len(p.ua_newest) == 6 and len(p.ua_seen) == limits.max_ua_versions
    assert len(p.prefixes) == limits.max_prefixes and len(p.cities) == limits.max_cities
    assert len(p.places) == limits.max_usual_places and len(p.rtt) == limits.max_rtt_asns
    # docs/signals.md quotes this size: the richer evidence at every cap stays under 1 KB compressed
    assert len(raw) <= 1024, len(raw)
    assert 831 <= len(raw) <= 843, len(raw)  # docs/signals.md: 837 bytes


def test_newest_version_only_goes_up_and_ignores_unparseable_versions() -> None:
    def seen(p: UserProfile, version: str) -> UserProfile:
        return p.learned(now=1, device_key="d", country=None, region=None, asn=None, latitude=None,
                         longitude=None, local_hour=None, traits=LoginTraits("Chrome", version, "Windows", "10"))
    p = seen(seen(seen(UserProfile(), "120.0.1"), "119"), "beta")
    assert p.ua_newest == {"b:Chrome": "120.0.1", "o:Windows": "10"}
    assert seen(p, "121").ua_newest["b:Chrome"] == "121"


def test_a_format_1_profile_still_loads() -> None:
    """What a format-1 worker wrote (rich_profile() as the previous release serialised it)."""
    v1 = {"v": 1, "c": 1_700_000_000, "n": 400,
          "d": {"000000000003": [1_700_000_000, 1_717_236_000, 50, 1_800_000_000]},
          "co": {"GB": 1_717_000_000}, "r": {"GB/England": 1_717_000_000}, "a": {"2856": 1_717_000_000},
          "h": [0.0] * 9 + [12.5] + [0.0] * 14, "ha": 1_700_000_000, "l": [1_717_236_000, 51.5, -0.1],
          "o": {"s1": 2}}
    p = UserProfile.from_bytes(json.dumps(v1).encode())
    assert p.logins == 400 and p.devices["000000000003"].trusted_until == 1_800_000_000
    assert (p.ua_newest, p.ua_seen, p.prefixes, p.cities, p.places, p.rtt) == ({}, {}, {}, {}, (), {})
    # written back as format 2
    assert json.loads(p.to_bytes())["v"] == 2
    again = UserProfile.from_bytes(p.to_bytes())
    assert again == p


def test_merge_keeps_the_newest_version_and_the_union_of_seen_evidence() -> None:
    a = UserProfile(ua_newest={"b:Chrome": "121"}, prefixes={"81.2.69.0": 5}, cities={"GB/E/London": 5})
    b = UserProfile(ua_newest={"b:Chrome": "120", "o:Windows": "10"}, prefixes={"81.2.70.0": 7})
    m = a.merge(b)
    assert m.ua_newest == {"b:Chrome": "121", "o:Windows": "10"}
    assert m.prefixes == {"81.2.69.0": 5, "81.2.70.0": 7}
    assert m.cities == {"GB/E/London": 5}


def test_the_engines_lesson_is_learned_with_the_configured_caps() -> None:
    """The engine works the caps out once (``LearnBounds``) and calls ``learn`` positionally:
    with small caps from the settings, every lesson must equal ``learned()`` given those caps
    by keyword (devices, countries, regions and networks evicted alike; the hour half-life)."""
    from riskengine import Engine
    from riskengine.audit.base import NullSink
    from riskengine.core.config import Settings
    from riskengine.core.enrich.geoip import GeoInfo
    from riskengine.core.stores.memory import MemoryStore

    settings = Settings().with_overrides(device={"max_devices": 2},
                                         geo={"max_countries": 3, "max_regions": 2, "max_asns": 4},
                                         hour={"half_life_days": 5})
    engine = Engine(settings, store=MemoryStore(), sink=NullSink())
    traits = LoginTraits("Chrome", "120.0", "Windows", "10", "81.2.69.0", "GB/ENG/London", 40.0, None)
    mine = keyed = UserProfile()
    for i in range(30):
        now = 1_700_000_000 + i * DAY
        geo = GeoInfo(["GB", "FR", "DE", "ES", "IT"][i % 5], f"R{i % 7}", None, 50.0 + i % 4, 0.0 + i % 3,
                      None, 64_500 + i % 6, None)
        lesson = engine._lesson(now, f"dev-{i % 3}", geo, i % 24, None, 0, False, False, traits)
        mine = lesson(mine)
        keyed = keyed.learned(now=now, device_key=f"dev-{i % 3}", country=geo.country, region=geo.region,
                              asn=geo.asn, latitude=geo.latitude, longitude=geo.longitude, local_hour=i % 24,
                              max_devices=2, max_places=3, half_life_days=5, max_regions=2, max_asns=4,
                              traits=traits, limits=engine._evidence_limits)
        assert mine == keyed, i
    assert (len(mine.devices), len(mine.countries), len(mine.regions), len(mine.asns)) == (2, 3, 2, 4)
    engine.close()
