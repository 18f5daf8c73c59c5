"""Rollups give exactly the numbers the raw segments give, for every query that reads them.

A generated root spans January–April 2026 in several segments per month, with challenge
rows written before they carried their decision's columns (legacy) next to current ones.
Rollups are built as of mid-April (January–March closed), then a late segment lands in
February: February (and March, whose legacy challenges look decisions up in February) must be
answered from raw segments again, and numbers stay equal.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from riskengine.analytics import BREAKDOWNS, AuditDB, Filters
from riskengine.analytics.exp_rollups import EXPERIMENT_DIR, build_experiment_rollup, current_experiment_rollups
from riskengine.analytics.rollups import (
    RISK_STEPS,
    ROLLUP_DIR,
    bucket_quantile,
    build_rollups,
    current_rollups,
    hll_estimate,
    hll_sql,
    risk_step_sql,
    verify_bucket_sql,
)
from riskengine.audit.layout import maintenance_lock
from riskengine.audit.parquet import ParquetSink
from riskengine.ops.maintenance import compact

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 4, 15, tzinfo=UTC)
COUNTRIES = ("GB", "FR", "DE", "CN")
DEVICES = ("pc", "mobile", "tablet")
REASONS = ([], ["NEW_DEVICE"], ["NEW_DEVICE", "NEW_COUNTRY"], ["UNUSUAL_HOUR"], ["IMPOSSIBLE_TRAVEL", "NEW_DEVICE"])
PATHS = (["sms"], ["whatsapp", "sms"], ["whatsapp", "sms", "voice"], ["totp"])


def _write(root: Path, rng: random.Random, start: datetime, days: int, n: int, tag: str, legacy_share: float) -> None:
    with ParquetSink(root, flush_seconds=60) as sink:
        for i in range(n):
            t = start + timedelta(seconds=rng.uniform(0, days * 86400))
            risk = rng.random()
            action = "deny" if risk > 0.9 else "challenge" if risk > 0.5 else "allow"
            reasons = rng.choice(REASONS)
            did = f"{tag}{i:05d}"
            decision: dict[str, Any] = {
                "event_time": t, "schema_version": 1, "decision_id": did, "user_key": f"u{rng.randrange(60):03d}",
                "country": rng.choice(COUNTRIES), "device_type": rng.choice(DEVICES),
                "browser_family": rng.choice(("Chrome", "Firefox")), "risk": risk, "action": action,
                "reasons": reasons,
                "factor": rng.choice(("sms", "whatsapp", "totp")) if action == "challenge" else None,
                "policy_version": "p1" if t < datetime(2026, 2, 20, tzinfo=UTC) else "p2",
                "cold_start": rng.random() < 0.1, "trusted_device": rng.random() < 0.2, "degraded": False,
            }
            if i % 5 == 1:  # a sensitive event; the other rows predate the column: logins
                decision["schema_version"] = 2
                decision["event"] = ("recovery", "factor_change", "password_reset")[i % 3]
            shadow = i % 7 == 3 and decision["policy_version"] == "p2"  # p2 also ran in shadow mode
            if shadow:  # allowed, with what enforcement would have done: no challenge follows
                decision.update(shadow_action=action, action="allow")
            sink.emit("decisions", decision)
            if action == "challenge" and rng.random() < 0.9:
                path = rng.choice(PATHS)
                challenge: dict[str, Any] = {
                    "event_time": t + timedelta(seconds=rng.uniform(5, 7200)), "schema_version": 1,
                    "decision_id": did, "user_key": decision["user_key"], "factor": decision["factor"],
                    "channels": path, "final_channel": path[-1], "fallback_used": len(path) > 1,
                    "outcome": rng.choice(("verified", "verified", "failed", "expired", "abandoned", None)),
                    "attempts": 1, "country": decision["country"],
                }
                if challenge["outcome"] == "verified":  # not from rng: the other draws stay as they were
                    challenge["seconds_to_verify"] = 0.5 + (i * 7919 % 6007) / 10
                if rng.random() >= legacy_share:  # written after challenges carried their decision's columns
                    challenge.update(device_type=decision["device_type"], reasons=reasons,
                                     policy_version=decision["policy_version"])
                if not shadow:
                    sink.emit("challenges", challenge)
            if rng.random() < 0.15:
                sink.emit("failures", {"event_time": t, "schema_version": 1, "user_key": decision["user_key"],
                                       "user_failures": 1})
            if i % 700 == 699:
                sink.flush()  # several segments per month


EXPERIMENTS = {"exp_a": ("control", "treat"), "exp_b": ("off", "on", "more")}


def _write_experiments(root: Path, rng: random.Random, start: datetime, days: int, n: int, users: range,
                       conversion_share: float = 0.4) -> None:
    """Exposures (a user may be exposed again, in another variant) and conversions (before,
    after or without an exposure) of two experiments."""
    with ParquetSink(root, flush_seconds=60) as sink:
        for i in range(n):
            t = start + timedelta(seconds=rng.uniform(0, days * 86400))
            name = rng.choice(sorted(EXPERIMENTS))
            user = f"u{rng.choice(users):03d}"
            variants = EXPERIMENTS[name]
            if rng.random() >= conversion_share:
                sink.emit("exposures", {"event_time": t, "schema_version": 1, "experiment": name, "user_key": user,
                                        "variant": rng.choice(variants), "control": variants[0],
                                        "variants": list(variants), "weights": [1.0] * len(variants)})
            else:
                sink.emit("conversions", {"event_time": t, "schema_version": 1, "experiment": name,
                                          "user_key": user})
            if i % 150 == 149:
                sink.flush()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rollups")
    rng = random.Random(11)
    _write(path, rng, START, 90, 4000, "a", legacy_share=0.3)   # January–March
    _write(path, rng, datetime(2026, 4, 1, tzinfo=UTC), 10, 500, "b", legacy_share=0.0)  # April: still open
    xrng = random.Random(12)  # experiments draw apart, so the decisions above stay as they were
    _write_experiments(path, xrng, START, 90, 900, range(60), conversion_share=0.15)
    # April: users first exposed now (u060–u079) and earlier users exposed or converting again
    _write_experiments(path, xrng, datetime(2026, 4, 1, tzinfo=UTC), 10, 300, range(30, 80), conversion_share=0.6)
    compact(path, small_bytes=1)  # merge nothing (every segment is "big"), then build rollups as `audit compact` does
    with maintenance_lock(path):
        res = build_rollups(path, now=NOW)
    assert sorted(res.built) == ["2026-01", "2026-02", "2026-03"]
    assert sorted(current_rollups(path)) == [202601, 202602, 202603]
    assert res.experiments == ["2026-03", "2026-02"]
    prefixes = current_experiment_rollups(path)
    assert [p.month for p in prefixes] == [202603, 202602] and prefixes[0].months == {202601, 202602, 202603}
    _write(path, rng, datetime(2026, 2, 10, tzinfo=UTC), 5, 300, "c", legacy_share=0.5)  # a late segment
    _write_experiments(path, random.Random(13), datetime(2026, 2, 10, tzinfo=UTC), 5, 60, range(60))
    assert current_experiment_rollups(path) == []  # a segment up to their months changed: raw again
    # February is raw again until recompaction, and so is March: its legacy challenge rows took
    # their decision's columns from decisions that may be in February
    assert sorted(current_rollups(path)) == [202601]
    return path


LATER = datetime(2026, 5, 15, tzinfo=UTC)  # April closed too: every month of the data can be rolled up
ALL_MONTHS = [202601, 202602, 202603, 202604]


@pytest.fixture(scope="module")
def current_root(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``root`` with the rollup of every month current, so each comparison below
    reads rollups for every month it covers (``root`` itself keeps its stale months)."""
    path = tmp_path_factory.mktemp("rollups-current") / "audit"
    shutil.copytree(root, path)
    build_rollups(path, now=LATER)
    assert sorted(current_rollups(path)) == ALL_MONTHS
    return path


WINDOWS = {
    "everything": Filters(),
    "whole days across months": Filters(since=datetime(2026, 1, 10, tzinfo=UTC),
                                        until=datetime(2026, 4, 5, tzinfo=UTC)),
    "partial days": Filters(since=datetime(2026, 1, 10, 13, 30, tzinfo=UTC),
                            until=datetime(2026, 3, 20, 8, 15, tzinfo=UTC)),
    "one rolled month": Filters(since=datetime(2026, 3, 1, tzinfo=UTC), until=datetime(2026, 4, 1, tzinfo=UTC)),
}
SEGMENTS = {
    "none": {},
    "countries": {"countries": ("GB", "CN")},
    "device types": {"device_types": ("mobile",)},
    "actions": {"actions": ("challenge",)},
    "no challenges": {"actions": ("allow", "deny")},
    "reasons": {"reasons": ("NEW_COUNTRY", "UNUSUAL_HOUR")},
    "factors": {"factors": ("sms",)},
    "policy": {"policy_versions": ("p2",)},
    "user": {"user_key": "u007"},
}


def _both(db: AuditDB, call: Any) -> tuple[Any, Any]:
    db.use_rollups = False
    raw = call()
    db.use_rollups = True
    return raw, call()


def _both_counting(db: AuditDB, call: Any) -> tuple[Any, Any, int]:
    """``_both`` plus how many queries of the rollup-enabled call the planner answered from
    rollups (the raw-only call must have made none)."""
    before = db.rollup_plans
    db.use_rollups = False
    raw = call()
    assert db.rollup_plans == before, "a raw-only call used rollups"
    db.use_rollups = True
    rolled = call()
    return raw, rolled, db.rollup_plans - before


def _same(raw: Any, rolled: Any) -> None:
    if isinstance(raw, pl.DataFrame):
        assert_frame_equal(raw, rolled, check_exact=True)
    else:
        assert raw == rolled


# every window unfiltered, and every segment filter with one of the windows in turn
CASES = [(w, "none") for w in WINDOWS] + [
    (list(WINDOWS)[i % len(WINDOWS)], seg) for i, seg in enumerate(SEGMENTS) if seg not in ("none", "user")]


def _months_in(f: Filters) -> set[int]:
    lo = f.since or datetime(2026, 1, 1, tzinfo=UTC)
    hi = f.until or datetime(2026, 5, 1, tzinfo=UTC)
    return {m for m in ALL_MONTHS
            if datetime(m // 100, m % 100, 1, tzinfo=UTC) < hi
            and datetime(m // 100 + (m % 100) // 12, (m % 100) % 12 + 1, 1, tzinfo=UTC) > lo}


def _calls(db: AuditDB, f: Filters) -> dict[str, Any]:
    return {
        "kpis": lambda: db.kpis(f),
        "series day": lambda: db.kpi_series(f, "day"),
        "series week": lambda: db.kpi_series(f, "week"),
        "reason_counts": lambda: db.reason_counts(f),
        "event_breakdown": lambda: db.event_breakdown(f),
        "avoidable": lambda: db.avoidable_challenges(f),
        "alerts hour": lambda: db.alerts(f, grain="hour", window=6, z=2.0, min_logins=1),
        "alerts day": lambda: db.alerts(f, grain="day", window=6, z=2.0, min_logins=1),
        **{f"breakdown {by}": (lambda by=by: db.breakdown(f, by)) for by in BREAKDOWNS if by != "browser_family"},
    }


@pytest.mark.parametrize(("window", "segment"), CASES)
def test_rollups_give_the_raw_numbers(current_root: Path, window: str, segment: str) -> None:
    """Each call is answered once from raw segments only and once by the planner, which must
    actually take the rollup path, for every month the window reads (never raw vs raw)."""
    db = AuditDB(current_root)
    f = WINDOWS[window].replace(**SEGMENTS[segment])
    for name, call in _calls(db, f).items():
        raw, rolled, plans = _both_counting(db, call)
        assert plans > 0, f"{name} was not answered from rollups ({window}, {segment})"
        assert db.last_plan_months == _months_in(f), (name, window, segment)
        try:
            _same(raw, rolled)
        except AssertionError as exc:
            raise AssertionError(f"{name} differs with rollups ({window}, {segment})") from exc
    db.close()


def test_the_planner_declines_what_rollups_cannot_answer(current_root: Path) -> None:
    """Hour-grain series, browsers and one user's rows are not in the rollups: answered raw."""
    db = AuditDB(current_root)
    f = WINDOWS["whole days across months"]
    for call in (lambda: db.kpi_series(f, "hour"), lambda: db.breakdown(f, "browser_family"),
                 lambda: db.kpis(f.replace(user_key="u007"))):
        before = db.rollup_plans
        call()
        assert db.rollup_plans == before
    db.kpis(f)
    assert db.rollup_plans == before + 1
    db.close()


def test_rollups_answer_rolled_months_and_raw_answers_the_rest(root: Path) -> None:
    db = AuditDB(root)
    k = db.kpis()
    assert k["logins"] == 4000 + 500 + 300
    plan = db._plan(Filters())
    assert plan is not None and plan.skip == {202601}  # January's raw decisions are not read at all
    # a rolled-up month whose segments change is no longer answered from its rollup
    january = root / "decisions" / "year=2026" / "month=01"
    hidden = root / "_hidden_january"
    january.rename(hidden)
    try:
        assert sorted(current_rollups(root)) == []  # January no longer matches its segments
        assert db.kpis()["logins"] < k["logins"]
    finally:
        hidden.rename(january)
    assert sorted(current_rollups(root)) == [202601]
    assert db.kpis() == k
    for by in ("country", "device_type", "policy_version", "reason"):
        raw, rolled = _both(db, lambda by=by: db.segment_values(by))
        assert raw == rolled and raw
    db.close()


def test_compaction_rebuilds_stale_rollups_only(root: Path, tmp_path: Path) -> None:
    root = shutil.copytree(root, tmp_path / "audit")  # the module's root keeps its stale months
    res = build_rollups(root, now=NOW)
    assert res.built == ["2026-02", "2026-03"] and res.current == 1
    assert sorted(current_rollups(root)) == [202601, 202602, 202603]
    assert not [p for p in (root / ROLLUP_DIR).iterdir() if p.name.startswith(".")]  # no temp or trash left
    db = AuditDB(root)
    f = Filters(since=datetime(2026, 2, 1, tzinfo=UTC), until=datetime(2026, 3, 1, tzinfo=UTC))
    for by in ("device_type", "reason"):
        raw, rolled = _both(db, lambda by=by: db.breakdown(f, by))
        _same(raw, rolled)
    db.close()


def test_distinct_users_exact_and_estimate(root: Path) -> None:
    db = AuditDB(root)
    exact = db.distinct_users()
    assert exact == db.kpis()["users"] == 60
    assert abs(db.distinct_users(approximate=True) - exact) <= 3
    assert db.kpis(users=False)["users"] is None
    db.close()


# ---------------------------------------------------------------- sketches without segment columns
SKETCH_CASES = [(w, "none") for w in WINDOWS] + [("partial days", "actions"), ("everything", "no challenges"),
                                                 ("partial days", "countries"), ("one rolled month", "factors")]


@pytest.mark.parametrize(("window", "segment"), SKETCH_CASES)
def test_user_sketches_and_risk_steps_give_the_raw_numbers(current_root: Path, window: str, segment: str) -> None:
    """The distinct-user estimate, the risk histogram and the what-if table on the 1/1000 grid,
    and the channel tables are answered from ``users.parquet`` / ``risk.parquet`` /
    ``channels.parquet`` and equal the raw answer exactly."""
    db = AuditDB(current_root)
    f = WINDOWS[window].replace(**SEGMENTS[segment])
    calls: dict[str, Any] = {}
    if segment in ("none", "actions", "no challenges"):
        calls.update({
            "histogram 20": lambda: db.risk_histogram(f, bins=20),
            "histogram 8": lambda: db.risk_histogram(f, bins=8),
            "histogram 1000": lambda: db.risk_histogram(f, bins=1000),
            "whatif grid": lambda: db.whatif(f, (0.05, 0.3, 0.4, 0.5, 0.55, 0.9, 0.999, 1.0, 0.0)),
        })
    if segment == "none":
        calls["users estimate"] = lambda: db.distinct_users(f, approximate=True)
    if segment in ("none", "countries", "factors"):
        calls.update({"time_to_verify ≈": lambda: db.time_to_verify(f, approximate=True),
                      "channel_success": lambda: db.channel_success(f),
                      "fallback_funnel": lambda: db.fallback_funnel(f),
                      "fallback_paths": lambda: db.fallback_paths(f)})
    for name, call in calls.items():
        raw, rolled, plans = _both_counting(db, call)
        assert plans > 0, f"{name} was not answered from rollups ({window}, {segment})"
        assert db.last_plan_months == _months_in(f), (name, window, segment)
        try:
            _same(raw, rolled)
        except AssertionError as exc:
            raise AssertionError(f"{name} differs with rollups ({window}, {segment})") from exc
    db.close()


def test_the_planner_declines_sketches_it_cannot_answer(current_root: Path) -> None:
    """Segment filters (but the action, for risk), bins that do not divide the 1/1000 grid,
    thresholds off it and labels are answered raw — with the same numbers."""
    db = AuditDB(current_root)
    f = WINDOWS["whole days across months"]
    labels = pl.DataFrame({"decision_id": ["a00001", "a00002"], "is_attack": [True, False]})
    declined = {
        "users, country": lambda: db.distinct_users(f.replace(countries=("GB",)), approximate=True),
        "users, action": lambda: db.distinct_users(f.replace(actions=("allow",)), approximate=True),
        "histogram, reasons": lambda: db.risk_histogram(f.replace(reasons=("NEW_DEVICE",))),
        "histogram, 7 bins": lambda: db.risk_histogram(f, bins=7),
        "whatif off the grid": lambda: db.whatif(f, (0.3, 0.33333)),
        "whatif with labels": lambda: db.whatif(f, (0.3, 0.5), labels=labels),
        "channels, device type": lambda: db.channel_success(f.replace(device_types=("mobile",))),
        "funnel, action": lambda: db.fallback_funnel(f.replace(actions=("challenge",))),
        "paths, reasons": lambda: db.fallback_paths(f.replace(reasons=("NEW_DEVICE",))),
        "time to verify ≈, policy": lambda: db.time_to_verify(f.replace(policy_versions=("p2",)), approximate=True),
    }
    for name, call in declined.items():
        raw, rolled, plans = _both_counting(db, call)
        assert plans == 0, f"{name} was answered from rollups"
        _same(raw, rolled)
    assert db.distinct_users(f, approximate=True) > 0 and db.rollup_plans == 1
    db.close()


def test_user_sketches_of_another_hash_are_not_used(current_root: Path, tmp_path: Path) -> None:
    """A rollup whose sketches a DuckDB with another ``hash()`` built (another probe value) is
    not merged: the estimate comes from raw rows, the other rollups still answer counts."""
    root = shutil.copytree(current_root, tmp_path / "audit")
    manifest = root / ROLLUP_DIR / "2026-02" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["hll_probe"] += 1
    manifest.write_text(json.dumps(data))
    db = AuditDB(root)
    raw, rolled, plans = _both_counting(db, lambda: db.distinct_users(approximate=True))
    assert plans == 0 and raw == rolled
    raw, rolled, plans = _both_counting(db, lambda: db.kpis(users=False))
    assert plans == 1 and raw == rolled
    db.close()


def test_compaction_adds_missing_sketches(current_root: Path, tmp_path: Path) -> None:
    """Rollups built before ``users.parquet``/``risk.parquet`` existed answer counts as before,
    not the sketches; the next compaction rebuilds them (and only them)."""
    root = shutil.copytree(current_root, tmp_path / "audit")
    (root / ROLLUP_DIR / "2026-03" / "users.parquet").unlink()
    (root / ROLLUP_DIR / "2026-01" / "risk.parquet").unlink()
    db = AuditDB(root)
    _, _, plans = _both_counting(db, lambda: db.distinct_users(approximate=True))
    assert plans == 0
    _, _, plans = _both_counting(db, lambda: db.risk_histogram())
    assert plans == 0
    res = build_rollups(root, now=LATER)
    assert sorted(res.built) == ["2026-01", "2026-03"] and res.current == 2
    assert all((root / ROLLUP_DIR / m / "channels.parquet").is_file() for m in ("2026-01", "2026-04"))
    raw, rolled, plans = _both_counting(db, lambda: db.distinct_users(approximate=True))
    assert plans == 1 and raw == rolled
    db.close()


def test_hll_estimate_is_within_its_error() -> None:
    """2**14 registers: standard error ≈ 0.8 %; 3 % is about four of them, at sizes on both
    sides of the switch from linear counting to the HyperLogLog formula."""
    reg, rank = hll_sql("k")
    with duckdb.connect() as con:
        for n in (500, 30_000, 400_000):
            ranks = [r for (r,) in con.execute(
                f"SELECT max({rank}) FROM (SELECT 'user-' || i::VARCHAR AS k FROM range({n}) t(i)) "
                f"GROUP BY {reg}").fetchall()]
            est = hll_estimate(ranks)
            assert abs(est - n) <= 0.03 * n, (n, est)
    assert hll_estimate([]) == 0 and hll_estimate([0, 0]) == 0


def test_risk_steps_agree_with_the_threshold_rule() -> None:
    """The step of a risk is the largest k with k/1000 <= risk, exactly, also one ulp either
    side of every grid point (where risk * 1000 rounds across an integer)."""
    risks = [-0.5, 0.0, 1.0, 1.5]
    for k in range(RISK_STEPS + 1):
        g = k / RISK_STEPS
        risks += [g, math.nextafter(g, -1.0), math.nextafter(g, 2.0)]
    with duckdb.connect() as con:
        got = con.execute(f"SELECT r, {risk_step_sql('r')} FROM (SELECT unnest($r) AS r)", {"r": risks}).fetchall()
    for r, step in got:
        want = max((k for k in range(RISK_STEPS + 1) if k / RISK_STEPS <= r), default=-1)
        assert step == want, (r, step, want)


def test_approximate_time_to_verify_is_within_its_bucket(current_root: Path) -> None:
    """Each approximate percentile is within 1 % of a raw value of the same rank neighbourhood:
    between the exact percentile's bucket edges (the estimate is that bucket's midpoint)."""
    db = AuditDB(current_root)
    exact = db.time_to_verify()
    approx = db.time_to_verify(approximate=True)
    assert approx["factor"].to_list() == exact["factor"].to_list()
    assert approx["n"].to_list() == exact["n"].to_list() and exact.height > 0
    for e, a in zip(exact.iter_rows(named=True), approx.iter_rows(named=True), strict=True):
        for p in ("p50", "p90", "p99"):
            assert abs(a[p] - e[p]) <= 0.03 * e[p], (e["factor"], p, e[p], a[p])
    db.close()


def test_bucket_quantile_reads_the_bucket_of_the_rank() -> None:
    with duckdb.connect() as con:
        values = [0.0, 0.5, 1.0, 2.0, 3.0, 10.0, 100.0, 1000.0]
        got = con.execute(f"SELECT v, {verify_bucket_sql('v')} FROM (SELECT unnest($v) AS v)",
                          {"v": values}).fetchall()
    pairs = sorted((b, 1) for _, b in got)
    assert bucket_quantile(pairs, 0.0) == 0.0
    assert bucket_quantile(pairs, 1.0) == pytest.approx(1000.0, rel=0.01)
    assert bucket_quantile(pairs, 0.5) == pytest.approx(2.0, rel=0.01)  # rank 3.5: the 4th value
    assert bucket_quantile([], 0.5) is None
    for v, b in got:
        if v > 0:
            assert 1.02 ** (b - 1) < v <= 1.02 ** b * (1 + 1e-12)


# ---------------------------------------------------------------- experiment readouts
@pytest.fixture(scope="module")
def open_root(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``root`` recompacted as of mid-April: the experiment prefix holds January–March,
    and April (users first exposed there, earlier users converting there) is read raw."""
    path = tmp_path_factory.mktemp("rollups-open") / "audit"
    shutil.copytree(root, path)
    assert build_rollups(path, now=NOW).experiments == ["2026-03", "2026-02"]
    return path


EXPERIMENT_WINDOWS = {
    "everything": Filters(),
    "from before the log to the future": Filters(since=datetime(2025, 12, 1, tzinfo=UTC),
                                                 until=datetime(2026, 6, 1, tzinfo=UTC)),
    "until into the open month": Filters(since=datetime(2026, 1, 1, tzinfo=UTC),
                                         until=datetime(2026, 4, 5, 12, 30, tzinfo=UTC)),
    "until just after March": Filters(until=datetime(2026, 4, 1, tzinfo=UTC)),
    "until inside March": Filters(until=datetime(2026, 3, 20, 6, tzinfo=UTC)),
}
PREFIX_READ: dict[tuple[str, str], int | None] = {  # (root, window) → the prefix the readouts read
    ("open", "everything"): 202603, ("open", "from before the log to the future"): 202603,
    ("open", "until into the open month"): 202603, ("open", "until just after March"): 202603,
    ("open", "until inside March"): 202602,
    ("closed", "everything"): 202604, ("closed", "from before the log to the future"): 202604,
    ("closed", "until into the open month"): 202603, ("closed", "until just after March"): 202603,
    ("closed", "until inside March"): None,  # cuts both kept prefixes (March's and April's): raw
}


def _readouts(db: AuditDB, f: Filters) -> dict[str, Any]:
    return {name: db.experiment_readout(name, f, min_samples=5).to_dict() for name in sorted(EXPERIMENTS)}


@pytest.mark.parametrize("window", list(EXPERIMENT_WINDOWS))
@pytest.mark.parametrize("which", ["open", "closed"])
def test_experiment_prefix_gives_the_raw_readouts(open_root: Path, current_root: Path, window: str,
                                                  which: str) -> None:
    """Whole-history readouts are answered by the newest prefix the window holds (plus the
    months after it raw) and equal the raw path's, arm by arm."""
    path = open_root if which == "open" else current_root
    prefixes = {p.month: p for p in current_experiment_rollups(path)}
    assert sorted(prefixes) == ([202602, 202603] if which == "open" else [202603, 202604])
    month = PREFIX_READ[which, window]
    db = AuditDB(path)
    f = EXPERIMENT_WINDOWS[window]
    raw, rolled, plans = _both_counting(db, lambda: (db.experiment_names(), _readouts(db, f)))
    if month is None:
        assert plans == 1, f"a readout read a prefix it cuts ({window})"  # the names still read one
    else:
        assert plans == 1 + len(EXPERIMENTS), f"not every readout read a prefix ({window})"
        assert db.last_plan_months == prefixes[month].months
    assert raw == rolled
    assert raw[0] == sorted(EXPERIMENTS)
    db.close()


def test_experiment_prefix_rest_covers_new_and_late_converting_users(open_root: Path) -> None:
    """The April rest holds both cases the combination must get right: users first exposed in
    April, and users exposed before April who had not converted and convert in April."""
    con = duckdb.connect()
    prefix = current_experiment_rollups(open_root)[0]
    assert prefix.month == 202603
    april = str(open_root / "{table}" / "year=2026" / "month=04" / "*.parquet")
    fresh, late = con.execute("""
        WITH p AS (SELECT * FROM read_parquet($users)),
             e AS (SELECT DISTINCT experiment, user_key FROM read_parquet($exp)),
             c AS (SELECT DISTINCT experiment, user_key FROM read_parquet($conv))
        SELECT (SELECT count(*) FROM e ANTI JOIN p USING (experiment, user_key)),
               (SELECT count(*) FROM c JOIN p USING (experiment, user_key)
                 WHERE p.last_conversion IS NULL OR p.last_conversion < p.first_seen)""",
        {"users": prefix.users, "exp": april.format(table="exposures"),
         "conv": april.format(table="conversions")}).fetchall()[0]
    con.close()
    assert fresh >= 5 and late >= 5


def test_experiment_prefix_declines_windows_that_cut_it(open_root: Path) -> None:
    """A window starting after the first event, ending before the last event of every prefix,
    or on one user is answered raw (a prefix is a whole-history state)."""
    db = AuditDB(open_root)
    for f in (Filters(since=datetime(2026, 2, 1, tzinfo=UTC)), Filters(until=datetime(2026, 2, 20, tzinfo=UTC)),
              Filters(user_key="u007")):
        before = db.rollup_plans
        db.experiment_readout("exp_a", f, min_samples=5)
        assert db.rollup_plans == before, f
    db.close()


def test_experiment_prefix_is_rebuilt_when_stale_and_old_ones_are_removed(root: Path, tmp_path: Path) -> None:
    path = shutil.copytree(root, tmp_path / "audit")
    assert current_experiment_rollups(path) == []  # the late February segments made both stale
    assert build_experiment_rollup(path, now=NOW) == ["2026-03", "2026-02"]
    assert build_experiment_rollup(path, now=NOW) == []  # current: nothing to do
    assert build_experiment_rollup(path, now=LATER) == ["2026-04"]  # March's is still current
    base = path / ROLLUP_DIR / EXPERIMENT_DIR
    assert sorted(p.name for p in base.iterdir()) == ["2026-03", "2026-04"]  # February's, trash and temp gone
    assert [p.month for p in current_experiment_rollups(path)] == [202604, 202603]
    assert (base.stat().st_mode & 0o777) == 0o700
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in (base / "2026-04").iterdir())


def test_the_rollup_listing_is_reused_until_a_folder_changes(root: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Which rollups are current is worked out once per unchanged set of folder times; a
    segment moved in or out of a partition is seen by the next query of the same AuditDB."""
    import riskengine.analytics._planner as planner

    path = shutil.copytree(root, tmp_path / "audit")
    settled = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

    def age_folders() -> None:
        for folder in [path, *(p for p in path.rglob("*") if p.is_dir())]:
            os.utime(folder, (settled, settled))

    calls: list[int] = []

    def counted(root: Path) -> dict[int, Path]:
        calls.append(1)
        return current_rollups(root)

    monkeypatch.setattr(planner, "current_rollups", counted)
    age_folders()
    db = AuditDB(path)
    first = db.kpis()
    assert db.kpis() == first and db.breakdown(Filters(), "country").height > 0
    assert len(calls) == 1  # three planned queries, one listing
    january = path / "decisions" / "year=2026" / "month=01"
    january.rename(path / "_hidden_january")
    assert db.kpis()["logins"] < first["logins"]  # changed just now: not cached, listed again
    age_folders()  # the same change, once its folder times have settled
    assert db.kpis()["logins"] < first["logins"]
    (path / "_hidden_january").rename(january)
    age_folders()
    assert db.kpis() == first
    db.close()


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("segment", [seg for seg in SEGMENTS if seg != "no challenges"])
def test_policy_modes_from_rollups_give_the_raw_numbers(current_root: Path, window: str, segment: str) -> None:
    """The enforced and would-be (shadow) rates per policy version: from ``shadow.parquet``
    where the filters allow (countries, device types, policy versions, actions), raw otherwise."""
    db = AuditDB(current_root)
    f = WINDOWS[window].replace(**SEGMENTS[segment])
    raw, rolled, plans = _both_counting(db, lambda: db.policy_modes(f))
    if segment in ("reasons", "factors", "user"):
        assert plans == 0
    else:
        assert plans == 1 and db.last_plan_months == _months_in(f)
    _same(raw, rolled)
    if segment == "none":
        assert set(raw["mode"]) == {"enforce", "shadow"} and raw["decisions"].sum() == db.kpis(f)["logins"]
    db.close()


def test_month_sketches_merge_the_daily_ones(current_root: Path, tmp_path: Path) -> None:
    """``users_month.parquet`` is the month's daily sketches merged, and a window holding whole
    months estimates the same with or without it (a rollup lacking it reads the daily ones)."""
    con = duckdb.connect()
    for month, rollup in current_rollups(current_root).items():
        merged = con.execute("SELECT reg, max(rank) FROM read_parquet($p) GROUP BY reg ORDER BY reg",
                             {"p": rollup.file("users.parquet")}).fetchall()
        kept = con.execute("SELECT reg, rank FROM read_parquet($p) ORDER BY reg",
                           {"p": rollup.file("users_month.parquet")}).fetchall()
        assert kept == merged and len(kept) >= 30, month  # 60 users
    con.close()
    f = WINDOWS["whole days across months"]  # February and March whole, January and April in part
    db = AuditDB(current_root)
    with_month = db.distinct_users(f, approximate=True)
    db.close()
    path = shutil.copytree(current_root, tmp_path / "audit")
    for rollup in current_rollups(path).values():
        Path(rollup.file("users_month.parquet")).unlink()
    db = AuditDB(path)
    before = db.rollup_plans
    assert db.distinct_users(f, approximate=True) == with_month and db.rollup_plans == before + 1
    db.close()


def _scanned_span(path: Path) -> tuple[datetime, datetime]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    lo, hi = con.execute("SELECT min(event_time), max(event_time) FROM read_parquet($p)",
                         {"p": str(path / "decisions" / "*" / "*" / "*.parquet")}).fetchall()[0]
    con.close()
    return lo, hi


def test_date_range_from_statistics_is_the_scanned_one(root: Path, tmp_path: Path) -> None:
    """The first and last decision times come from row-group statistics; a segment written
    without statistics is scanned instead, with the same answer."""
    db = AuditDB(root)
    assert db.date_range() == _scanned_span(root)
    db.close()
    import pyarrow.parquet as pq

    path = shutil.copytree(root, tmp_path / "audit")
    newest = sorted((path / "decisions").glob("year=*/month=*/*.parquet"))[-1]
    table = pq.read_table(newest)
    later = table.set_column(0, "event_time", pl.from_arrow(table.column("event_time")).dt.offset_by("1d")
                             .to_arrow().cast(table.schema.field("event_time").type))
    pq.write_table(later, newest.with_name("part-no-stats.parquet"), write_statistics=False)
    con = duckdb.connect()
    assert con.execute("SELECT bool_and(stats_max_value IS NULL) FROM parquet_metadata($p) "
                       "WHERE path_in_schema = 'event_time'",
                       {"p": str(newest.with_name("part-no-stats.parquet"))}).fetchall()[0][0]
    con.close()
    db = AuditDB(path)
    span = db.date_range()
    assert span == _scanned_span(path) and span is not None and span[1] > _scanned_span(root)[1]
    db.close()
