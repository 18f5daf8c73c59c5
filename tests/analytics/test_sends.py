"""Sends, cost and verify ratio per destination country; pumping waves (hand-made series and an
audit root written by a real engine)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from riskengine import Engine
from riskengine.analytics import AuditDB, Filters
from riskengine.analytics.alerts import pumping_waves
from riskengine.testing import PARIS, T0, make_attempt, offline_settings

HOURS = [datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(48)]
GB_MOBILE = "+447400123456"
FR_MOBILE = "+33612345678"
GB_PREMIUM = "+449012345678"


def test_a_quiet_country_does_not_alert() -> None:
    sends = [20, 25, 18, 22] * 12
    assert pumping_waves(HOURS, ["GB"] * 48, sends, [s - 2 for s in sends]).is_empty()


def test_a_wave_that_verifies_is_a_campaign_not_pumping() -> None:
    sends = [20] * 48
    sends[40] = 400
    verified = [18] * 48
    verified[40] = 380
    assert pumping_waves(HOURS, ["GB"] * 48, sends, verified).is_empty()


def test_an_unverified_wave_is_reported_per_country_with_its_size() -> None:
    sends = [20] * 48
    sends[40] = 300
    verified = [18] * 48
    verified[40] = 30
    countries = ["GB"] * 48 + ["UZ"] * 48
    out = pumping_waves(HOURS * 2, countries, sends + [0] * 48, verified + [0] * 48, window=24, z=4.0)
    assert out["dest_country"].to_list() == ["GB"] and out["bucket"].to_list() == [HOURS[40]]
    row = out.row(0, named=True)
    # baseline 20, spread max(0, sqrt(20), 1): z = 280 / sqrt(20)
    assert row["baseline"] == 20 and row["zscore"] == pytest.approx(280 / 20 ** 0.5)
    assert row["verify_ratio"] == pytest.approx(0.1) and row["severity"] == "critical"


def test_a_first_burst_to_a_new_country_alerts_without_history() -> None:
    sends = [0] * 47 + [60]
    out = pumping_waves(HOURS, ["UZ"] * 48, sends, [0] * 48, min_sends=20)
    assert out["dest_country"].to_list() == ["UZ"] and out["severity"].to_list() == ["critical"]
    assert pumping_waves(HOURS, ["UZ"] * 48, [0] * 47 + [19], [0] * 48, min_sends=20).is_empty()


def test_mismatched_series_are_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        pumping_waves(HOURS, ["GB"], [1], [1])


@pytest.fixture
def audit_root(tmp_path: Path) -> Path:
    """A real engine writes: GB 3 sends (2 verified), FR 1 send (not verified), 1 premium blocked,
    then a pumping burst of 40 unverified sends to UZ fresh accounts in one hour."""
    root = tmp_path / "audit"
    s = offline_settings(coldstart={"min_logins": 0}, audit={"root": str(root)},
                         sms={"prefix_max_sends": 1000, "ratio_min_sends": 1000, "user_max_sends": 1000})
    with Engine(s) as e:
        for i, (dest, verify) in enumerate([(GB_MOBILE, True), (GB_MOBILE, True), (GB_MOBILE, False),
                                            (FR_MOBILE, False), (GB_PREMIUM, False)]):
            ts = T0 + timedelta(hours=i)
            did = e.score(make_attempt(f"u{i}", ts)).decision_id
            e.check_send(did, "sms", dest, now=ts)
            if verify:
                e.record_outcome(did, "verified", ["sms"], timestamp=ts + timedelta(seconds=30))
        burst = T0 + timedelta(hours=30)
        for i in range(40):
            ts = burst + timedelta(seconds=30 * i)
            did = e.score(make_attempt(f"fresh{i}", ts)).decision_id
            e.check_send(did, "sms", f"+99890{1234560 + i}", now=ts)
    return root


def test_send_summary_counts_cost_and_verify_ratio_per_country(audit_root: Path) -> None:
    prices = offline_settings().sms.price_per_country
    db = AuditDB(audit_root)
    rows = {r["dest_country"]: r for r in db.send_summary().iter_rows(named=True)}
    totals = db.send_totals()
    assert (rows["GB"]["checks"], rows["GB"]["sent"], rows["GB"]["blocked"], rows["GB"]["verified"]) == (4, 3, 1, 2)
    assert rows["GB"]["verify_ratio"] == pytest.approx(2 / 3)
    assert rows["GB"]["cost"] == pytest.approx(3 * prices["GB"])
    assert rows["GB"]["cost_avoided"] == pytest.approx(prices["GB"])
    assert (rows["FR"]["sent"], rows["FR"]["verified"], rows["FR"]["verify_ratio"]) == (1, 0, 0.0)
    assert rows["UZ"]["sent"] == 40 and rows["UZ"]["cost"] == pytest.approx(40 * prices["UZ"])
    assert totals["sent"] == 44 and totals["verified"] == 2 and totals["blocked"] == 1


def test_the_burst_is_flagged_as_a_pumping_wave(audit_root: Path) -> None:
    waves = AuditDB(audit_root).pumping_alerts(grain="hour")
    assert waves["dest_country"].to_list() == ["UZ"]
    assert waves["sends"].to_list() == [40.0] and waves["verified"].to_list() == [0.0]


def test_the_login_filters_apply_to_sends_through_their_decision(tmp_path: Path) -> None:
    """The sidebar's country (of the login) and other decision filters reach the sends table
    through ``decision_id``: GB logins sent to GB numbers, FR logins to UZ numbers."""
    root = tmp_path / "audit"
    s = offline_settings(coldstart={"min_logins": 0}, audit={"root": str(root)},
                         sms={"prefix_max_sends": 1000, "ratio_min_sends": 1000, "user_max_sends": 1000})
    with Engine(s) as e:
        for i in range(6):
            ts = T0 + timedelta(hours=i)
            paris = i % 2 == 1
            d = e.score(make_attempt(f"u{i}", ts, place=PARIS if paris else None))
            e.check_send(d.decision_id, "sms", f"+99890{1234560 + i}" if paris else GB_MOBILE, now=ts)
            e.record_outcome(d.decision_id, "verified", ["sms"], timestamp=ts + timedelta(seconds=30))
    db = AuditDB(root)
    everything = {r["dest_country"]: r["sent"] for r in db.send_summary().iter_rows(named=True)}
    assert everything == {"GB": 3, "UZ": 3}
    fr = db.send_summary(Filters(countries=("FR",)))
    assert fr["dest_country"].to_list() == ["UZ"] and fr["sent"].to_list() == [3] and fr["verified"].to_list() == [3]
    window = Filters(since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=6), countries=("GB",))
    assert db.send_totals(window)["sent"] == 2  # GB logins at hours 2 and 4
    assert db.send_summary(Filters(countries=("DE",))).is_empty()
