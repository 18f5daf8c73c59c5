"""AuditDB on the hand-built root of conftest.py: every number counted by hand."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskengine.analytics import AuditDB, Filters
from riskengine.audit.parquet import ParquetSink

MARCH = Filters(since=datetime(2026, 3, 1, tzinfo=UTC), until=datetime(2026, 4, 1, tzinfo=UTC))


@pytest.fixture
def db(audit_root: Path) -> AuditDB:
    return AuditDB(audit_root)


def test_kpis_overall(db: AuditDB) -> None:
    k = db.kpis()
    assert (k["logins"], k["challenged"], k["denied"], k["users"]) == (10, 3, 1, 5)
    assert k["challenge_rate"] == pytest.approx(4 / 10)
    assert k["deny_rate"] == pytest.approx(1 / 10)
    assert (k["challenges"], k["verified"], k["failures"]) == (3, 2, 3)
    assert k["challenge_success_rate"] == pytest.approx(2 / 3)
    assert k["fallback_rate"] == pytest.approx(1 / 3)


def test_kpis_march_only_and_partition_pruning(db: AuditDB) -> None:
    k = db.kpis(MARCH)
    assert k["logins"] == 9 and k["challenge_rate"] == pytest.approx(4 / 9)
    files = db._files("decisions", MARCH.since, MARCH.until)
    assert files and all("month=03" in f for f in files)
    assert len(db._files("decisions", None, None)) == len(files) + 1


@pytest.mark.parametrize(("filters", "logins", "stepped", "challenges", "verified", "fallbacks"), [
    (Filters(device_types=("mobile",)), 2, 1, 1, 1, 1),  # d03, d07; challenges via their decision
    (Filters(reasons=("NEW_DEVICE",)), 3, 3, 2, 2, 1),  # d06, d07, d09
    (Filters(countries=("GB",)), 7, 2, 2, 1, 0),  # d01 d02 d03 d05 d06 d08 d10
    (Filters(actions=("deny",)), 1, 1, 0, 0, 0),
    (Filters(factors=("totp",)), 1, 1, 1, 0, 0),
    (Filters(user_key="u1"), 3, 1, 1, 1, 0),
    (Filters(policy_versions=("v2",)), 0, 0, 0, 0, 0),
])
def test_filters(db: AuditDB, filters: Filters, logins: int, stepped: int, challenges: int, verified: int,
                 fallbacks: int) -> None:
    k = db.kpis(filters)
    assert (k["logins"], k["challenged"] + k["denied"], k["challenges"], k["verified"], k["fallbacks"]) == (
        logins, stepped, challenges, verified, fallbacks)


def test_kpis_vs_previous(db: AuditDB) -> None:
    f = Filters(since=datetime(2026, 3, 3, tzinfo=UTC), until=datetime(2026, 3, 6, tzinfo=UTC))
    k = db.kpis_vs_previous(f)
    assert k["logins"] == (5, 4)  # d05..d09 vs d01..d04 (Feb 28 - Mar 3; d10 is Feb 27)
    assert k["challenge_rate"] == (pytest.approx(4 / 5), 0.0)
    assert k["challenge_success_rate"][1] is None


def test_kpi_series_by_day(db: AuditDB) -> None:
    s = db.kpi_series(MARCH, grain="day")
    assert s["bucket"].dt.day().to_list() == [1, 2, 3, 4, 5]
    assert s["logins"].to_list() == [2, 2, 2, 2, 1]
    assert s["challenge_rate"].to_list() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert s["challenges"].to_list() == [0, 0, 1, 2, 0]
    assert s.filter(pl.col("bucket").dt.day() == 4)["challenge_success_rate"].item() == 0.5
    weeks = db.kpi_series(MARCH, grain="week")  # weeks start on Monday: Sun 1 March is in 23 Feb's week
    assert weeks["bucket"].dt.strftime("%Y-%m-%d").to_list() == ["2026-02-23", "2026-03-02"]
    assert weeks["logins"].to_list() == [2, 7]
    assert db.kpi_series(Filters(user_key="u1"), grain="hour")["bucket"].dt.hour().to_list() == [10, 10, 11]
    with pytest.raises(ValueError, match="grain must be one of"):
        db.kpi_series(MARCH, grain="minute")


def test_breakdown_by_country(db: AuditDB) -> None:
    b = db.breakdown(MARCH, by="country")
    rows = {r["key"]: r for r in b.iter_rows(named=True)}
    assert rows["GB"]["logins"] == 6 and rows["GB"]["challenge_rate"] == pytest.approx(2 / 6)
    assert rows["GB"]["challenges"] == 2 and rows["GB"]["challenge_success_rate"] == 0.5
    assert rows["FR"]["logins"] == 2 and rows["FR"]["fallback_rate"] == 1.0
    assert rows["CN"]["deny_rate"] == 1.0 and rows["CN"]["challenges"] == 0
    assert b["key"].to_list()[0] == "GB"


def test_breakdown_by_device_type_and_reason(db: AuditDB) -> None:
    dev = {r["key"]: r for r in db.breakdown(by="device_type").iter_rows(named=True)}
    assert dev["mobile"]["logins"] == 2 and dev["mobile"]["challenges"] == 1
    assert dev["pc"]["challenges"] == 2 and dev["pc"]["challenge_success_rate"] == 0.5
    rea = {r["key"]: r for r in db.breakdown(by="reason").iter_rows(named=True)}
    assert rea["NEW_DEVICE"]["logins"] == 3 and rea["NEW_DEVICE"]["challenges"] == 2
    assert rea["KNOWN_DEVICE"]["challenge_rate"] == 0.0
    with pytest.raises(ValueError, match="cannot break down by 'city'"):
        db.breakdown(by="city")


def test_channel_success(db: AuditDB) -> None:
    rows = {(r["factor"], r["final_channel"]): r for r in db.channel_success().iter_rows(named=True)}
    assert rows[("whatsapp", "sms")]["verified"] == 1
    assert rows[("totp", "totp")]["abandoned"] == 1 and rows[("totp", "totp")]["success_rate"] == 0.0


def test_fallback_funnel_and_paths(db: AuditDB) -> None:
    funnel = db.fallback_funnel()
    got = {(r["step"], r["channel"]): (r["reached"], r["verified_here"], r["dropped_here"])
           for r in funnel.iter_rows(named=True)}
    assert got == {(1, "sms"): (1, 1, 0), (1, "whatsapp"): (1, 0, 0), (1, "totp"): (1, 0, 1),
                   (2, "sms"): (1, 1, 0)}
    paths = db.fallback_paths()
    assert paths.rows() == [("whatsapp", "sms", "whatsapp → sms", 1, 1.0, 1.0)]


def test_time_to_verify(db: AuditDB) -> None:
    t = {r["factor"]: r for r in db.time_to_verify().iter_rows(named=True)}
    assert set(t) == {"sms", "whatsapp"}
    assert t["whatsapp"]["n"] == 1 and t["whatsapp"]["p50"] == 60.0 and t["sms"]["p99"] == 20.0


def test_avoidable_challenges(db: AuditDB) -> None:
    a = db.avoidable_challenges()
    assert a["challenged"] == 3 and a["trusted_device"] == 1 and a["known_device_home_country"] == 1
    assert a["trusted_device_share"] == pytest.approx(1 / 3)


def test_reason_counts(db: AuditDB) -> None:
    r = {row["reason"]: row for row in db.reason_counts().iter_rows(named=True)}
    assert r["KNOWN_DEVICE"]["decisions"] == 5 and r["KNOWN_DEVICE"]["share"] == 0.5
    assert r["NEW_DEVICE"]["decisions"] == 3 and r["NEW_DEVICE"]["challenge_rate"] == 1.0
    assert r["NEW_COUNTRY"]["decisions"] == 2


def test_risk_histogram(db: AuditDB) -> None:
    h = db.risk_histogram(bins=10)
    assert h.height == 10
    assert h["allow"].to_list() == [2, 3, 1, 0, 0, 0, 0, 0, 0, 0]
    assert h["challenge"].to_list() == [0, 0, 0, 0, 1, 1, 0, 1, 0, 0]
    assert h["deny"].to_list() == [0] * 9 + [1]
    assert h["bin_low"][3] == pytest.approx(0.3)


def test_whatif_with_and_without_labels(db: AuditDB) -> None:
    w = db.whatif(thresholds=[0.5, 0.9])
    assert w["projected_challenge_rate"].to_list() == [0.3, 0.1]
    assert w["current_challenge_rate"].to_list() == [0.4, 0.4]
    assert w["catch_rate"].to_list() == [None, None]
    labels = pl.DataFrame({"decision_id": ["d07", "d08", "d09"], "is_attack": [True, True, True]})
    w = db.whatif(thresholds=[0.5, 0.9], labels=labels)
    assert w["catch_rate"].to_list() == [pytest.approx(2 / 3), pytest.approx(1 / 3)]


def test_events_newest_first(db: AuditDB) -> None:
    e = db.events(limit=2)
    assert e["decision_id"].to_list() == ["d09", "d08"]
    assert "year" not in e.columns
    assert db.events(limit=2, offset=2)["decision_id"].to_list() == ["d07", "d06"]
    assert db.events(table="failures").height == 3
    # the newest month holds 9 decisions: asking for 10 widens the window to February
    assert db.events(limit=10)["decision_id"].to_list()[-1] == "d10"
    assert db.events(limit=5, offset=8)["decision_id"].to_list() == ["d01", "d10"]
    with pytest.raises(ValueError, match="unknown audit table"):
        db.events(table="logins")


def test_experiment_readout(db: AuditDB) -> None:
    assert db.experiment_names() == ["signup_2fa"]
    r = db.experiment_readout("signup_2fa", min_samples=3)
    assert r.control == "progressive" and r.enough_data
    control, mfa = r.variants["progressive"], r.variants["mfa_at_signup"]
    assert (control.n, control.conversions) == (3, 1)  # u2 converted before exposure
    assert (mfa.n, mfa.conversions) == (3, 2)
    assert mfa.lift == pytest.approx(1.0) and control.lift is None
    assert r.srm_p_value == 1.0 and not r.srm_flag
    assert not db.experiment_readout("signup_2fa").enough_data  # default guard: 100 per arm
    with pytest.raises(ValueError, match="no exposures recorded"):
        db.experiment_readout("nope")


def test_old_segments_without_new_columns_still_read(tmp_path: Path) -> None:
    """A segment written before the exposure design columns existed: union_by_name fills NULLs
    and the readout falls back to a variant named control."""
    folder = tmp_path / "exposures" / "year=2026" / "month=03"
    folder.mkdir(parents=True)
    t = datetime(2026, 3, 1, tzinfo=UTC)
    old = pa.table({"event_time": pa.array([t, t], pa.timestamp("us", "UTC")), "schema_version": [1, 1],
                    "experiment": ["x", "x"], "variant": ["treatment", "control"], "user_key": ["a", "b"]})
    pq.write_table(old, folder / "part-old.parquet")
    r = AuditDB(tmp_path).experiment_readout("x", min_samples=1)
    assert r.control == "control" and r.variants["treatment"].n == 1


def test_missing_root_gives_empty_results(tmp_path: Path) -> None:
    db = AuditDB(tmp_path / "nothing-here")
    assert not db.has_data() and db.date_range() is None
    assert db.kpis()["logins"] == 0 and db.kpis()["challenge_success_rate"] is None
    assert db.kpi_series().is_empty() and db.breakdown(by="reason").is_empty()
    assert db.fallback_funnel().is_empty() and db.alerts().is_empty()
    assert db.experiment_names() == [] and db.events().is_empty()
    assert db.risk_histogram(bins=4)["allow"].to_list() == [0, 0, 0, 0]


def test_filters_validate() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Filters(since=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="must be after"):
        Filters(since=datetime(2026, 2, 1, tzinfo=UTC), until=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="tuple of strings"):
        Filters(countries="GB")  # type: ignore[arg-type]
    assert Filters(countries=["GB"]).countries == ("GB",)  # type: ignore[arg-type]


def test_user_values_are_parameters_not_sql(db: AuditDB) -> None:
    assert db.kpis(Filters(countries=("GB'); DROP TABLE x; --",)))["logins"] == 0
    assert db.kpis(Filters(user_key="' OR 1=1 --"))["logins"] == 0


def test_alerts_find_a_failure_burst(tmp_path: Path) -> None:
    with ParquetSink(tmp_path) as sink:
        for hour in range(40):
            n = 200 if hour == 35 else 3
            for i in range(n):
                sink.emit("failures", {"event_time": datetime(2026, 3, 1 + hour // 24, hour % 24, i % 60, tzinfo=UTC),
                                       "schema_version": 1, "user_key": f"u{i}", "ip_prefix": "x", "user_failures": 1})
            for i in range(60):  # logins: 5 % stepped up, except a wave at hour 35
                stepped = i < (40 if hour == 35 else 3)
                sink.emit("decisions", {"event_time": datetime(2026, 3, 1 + hour // 24, hour % 24, i % 60,
                                                               tzinfo=UTC),
                                        "schema_version": 1, "decision_id": f"{hour}-{i}", "user_key": f"u{i}",
                                        "action": "challenge" if stepped else "allow", "risk": 0.5, "reasons": []})
    alerts = AuditDB(tmp_path).alerts(grain="hour", window=24, z=4.0, min_logins=50)
    assert sorted(alerts["metric"].to_list()) == ["challenge_rate", "failures"]
    assert set(alerts["bucket"].dt.hour().to_list()) == {11}  # hour 35 = day 2, 11:00
    assert (alerts["severity"] == "critical").all()


def test_concurrent_queries_from_threads(db: AuditDB) -> None:
    results: list[int] = []

    def work() -> None:
        for _ in range(5):
            results.append(db.kpis()["logins"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [10] * 20


def test_user_events_newest_first_across_months(db: AuditDB) -> None:
    # u1: d06 (03-03), d01 (03-01), d10 (02-27: the February partition)
    assert db.user_events("u1", "decisions", limit=10)["decision_id"].to_list() == ["d06", "d01", "d10"]
    assert db.user_events("u1", "decisions", limit=2)["decision_id"].to_list() == ["d06", "d01"]
    assert db.user_events("u1", "decisions", limit=0).height == 0
    challenges = db.user_events("u1", "challenges")
    assert challenges["decision_id"].to_list() == ["d06"] and challenges["outcome"].to_list() == ["verified"]
    assert db.user_events("nobody", "decisions").height == 0


def test_user_events_admin_table_and_bad_arguments(db: AuditDB) -> None:
    admin = db.user_events("u1", "admin")
    assert admin.height == 0 and {"operation", "actor", "note", "device_key"} <= set(admin.columns)
    with pytest.raises(ValueError, match="no per-user history in table 'failures'"):
        db.user_events("u1", "failures")
    with pytest.raises(ValueError, match="user_key must be a non-empty string"):
        db.user_events("", "decisions")
    with pytest.raises(ValueError, match="limit and offset must be >= 0"):
        db.user_events("u1", "decisions", limit=-1)
