"""UA version signals: NEW_UA_VERSION (weak) and UA_DOWNGRADE (strong), at their boundaries."""

from __future__ import annotations

from riskengine.core.enrich.useragent import classify
from riskengine.core.enrich.versions import parse_version
from riskengine.core.signals.ua_version import new_ua_version, ua_downgrade

NEWEST = {"b:Chrome": "121.0.6167", "o:Windows": "10"}


def test_one_step_either_side_of_the_newest_version() -> None:
    below = ua_downgrade("Chrome", (121, 0, 6166), "Windows", (10,), NEWEST, False)
    equal = ua_downgrade("Chrome", (121, 0, 6167), "Windows", (10,), NEWEST, False)
    above = ua_downgrade("Chrome", (121, 0, 6168), "Windows", (10,), NEWEST, False)
    assert (below.value, equal.value, above.value) == (1.0, 0.0, 0.0)
    assert below.code == "UA_DOWNGRADE"
    assert "Chrome 121.0.6166 (newest seen 121.0.6167)" in below.detail


def test_an_older_os_is_a_downgrade_too() -> None:
    r = ua_downgrade("Chrome", (121,), "Windows", (8, 1), NEWEST, False)
    assert r.value == 1.0 and "OS Windows 8.1" in r.detail


def test_a_version_pair_accepted_before_is_no_downgrade() -> None:
    # the user's second, not-yet-updated laptop of the same family
    assert ua_downgrade("Chrome", (118,), "Windows", (10,), NEWEST, True).value == 0.0


def test_other_families_and_unparseable_versions_never_fire() -> None:
    assert ua_downgrade("Firefox", (100,), "Windows", (10,), NEWEST, False).value == 0.0
    assert ua_downgrade("Chrome", parse_version("beta"), "Windows", None, NEWEST, False).value == 0.0
    assert ua_downgrade("Chrome", (118,), "Windows", (10,), {"b:Chrome": "not.a.version"}, False).value == 0.0


def test_new_version_fires_only_on_a_known_device_and_an_unseen_pair() -> None:
    assert new_ua_version("Chrome", "122", "Windows", "10", seen=False, device_known=True).value == 1.0
    assert new_ua_version("Chrome", "122", "Windows", "10", seen=True, device_known=True).value == 0.0
    assert new_ua_version("Chrome", "122", "Windows", "10", seen=False, device_known=False).value == 0.0
    assert new_ua_version("Other", "", "Other", "", seen=False, device_known=True).value == 0.0


def test_versions_are_parsed_once_per_user_agent() -> None:
    ua = classify("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0.6099.109 Safari/537.36")
    assert ua.browser_version_key == (120, 0, 6099) and ua.os_version_key == (10,)
    assert len(ua.version_digest) == 8


def test_parse_version_rejects_non_versions_and_bogus_sizes() -> None:
    assert parse_version("1.2.3.4.5.6") == (1, 2, 3, 4)
    assert parse_version("10.0.0") == (10,)
    for bad in ("", "x", "1..2", "-1", "1e9", "١٢٣", "99999999", "1.2.3 beta"):
        assert parse_version(bad) is None, bad
