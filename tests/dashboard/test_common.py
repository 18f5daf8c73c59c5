"""dashboard/common.py: the cached wrappers give the library's numbers, and the settings it reads."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from synthetic_audit import START, SyntheticAudit, expected

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `import dashboard` from the checkout

from dashboard import common  # noqa: E402

from riskengine.analytics import AuditDB, Filters  # noqa: E402


def windows() -> list[Filters]:
    week = timedelta(days=7)
    return [
        Filters(since=START + week, until=START + 2 * week),             # the previous week is all data
        Filters(since=START + 2 * week, until=START + 3 * week, countries=("FR",)),
        Filters(since=START, until=START + week),                        # nothing before: zeros, no rates
        Filters(since=START + 10 * timedelta(days=1), until=START + 11 * timedelta(days=1),
                device_types=("desktop",)),
    ]


@pytest.mark.parametrize("f", windows(), ids=repr)
def test_dashboard_kpis_vs_previous_is_the_library_s(synthetic: SyntheticAudit, f: Filters) -> None:
    db = AuditDB(synthetic.root)
    try:
        library = db.kpis_vs_previous(f, users=False)
    finally:
        db.close()
    dashboard = common.kpis_vs_previous(str(synthetic.root), f)
    assert dashboard == library
    assert set(dashboard) >= {"logins", "challenge_rate", "challenge_success_rate", "fallback_rate", "deny_rate"}


def test_kpis_vs_previous_matches_an_independent_count(synthetic: SyntheticAudit) -> None:
    week = timedelta(days=7)
    f = Filters(since=START + week, until=START + 2 * week)
    got = common.kpis_vs_previous(str(synthetic.root), f)
    now = expected(synthetic, (START + week).date(), (START + 2 * week - timedelta(days=1)).date())
    before = expected(synthetic, START.date(), (START + week - timedelta(days=1)).date())
    for key in ("logins", "challenges", "verified"):
        assert got[key] == (now[key], before[key])
    for key in ("challenge_rate", "challenge_success_rate", "fallback_rate", "deny_rate"):
        assert got[key] == (pytest.approx(now[key]), pytest.approx(before[key]))
    assert got["users"] == (None, None)  # distinct users come from active_users, not from here


def test_previous_window_is_the_library_s() -> None:
    f = Filters(since=START + timedelta(days=7), until=START + timedelta(days=10), countries=("FR",))
    assert common.previous_window(f) == f.previous() == Filters(
        since=START + timedelta(days=4), until=START + timedelta(days=7), countries=("FR",))
    assert common.previous_window(Filters(since=START)) is None
