"""NEW_CITY: a city never seen, only inside a region the user uses."""

from __future__ import annotations

from riskengine.core.signals.city import city_key, new_city

DAY = 86400.0


def test_new_city_in_a_known_region_fires_and_a_seen_one_does_not() -> None:
    seen = {"GB/England/London": 0}
    assert new_city(city_key("GB", "England", "Leeds"), False, seen, DAY, 365).value == 1.0
    assert new_city(city_key("GB", "England", "London"), False, seen, DAY, 365).value == 0.0


def test_city_names_are_keyed_within_their_region() -> None:
    # Perth, Scotland is not Perth, Western Australia
    seen = {city_key("GB", "Scotland", "Perth") or "": 0}
    assert new_city(city_key("AU", "Western Australia", "Perth"), False, seen, DAY, 365).value == 1.0


def test_history_window_boundary_and_quiet_cases() -> None:
    seen = {"GB/England/Leeds": 0}
    assert new_city("GB/England/Leeds", False, seen, 365 * DAY, 365).value == 0.0
    assert new_city("GB/England/Leeds", False, seen, 365 * DAY + 1, 365).value == 1.0
    assert new_city("GB/Wales/Cardiff", True, seen, DAY, 365).value == 0.0  # NEW_REGION says it
    assert new_city(None, False, seen, DAY, 365).value == 0.0
    assert len(city_key("GB", "R" * 100, "C" * 100) or "") == 64
