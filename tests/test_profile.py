from __future__ import annotations

import pytest

from riskengine.profile import UserProfile

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
    # docs/signals.md quotes 468 bytes for this profile: a format change that grows (or shrinks) it
    # by more than a few bytes must update that page too
    assert 462 <= len(raw) <= 474, len(raw)
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


def test_hour_histogram_decays() -> None:
    p = UserProfile().learned(now=0, device_key="d", country=None, region=None, asn=None,
                              latitude=None, longitude=None, local_hour=9)
    q = p.learned(now=90 * DAY, device_key="d", country=None, region=None, asn=None,
                  latitude=None, longitude=None, local_hour=20, half_life_days=90)
    assert q.hours[9] == pytest.approx(0.5) and q.hours[20] == 1.0
