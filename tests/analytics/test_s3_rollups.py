"""Rollups on an ``s3://`` audit root, against a real S3-compatible server (moto in server mode
on loopback): built there, they give exactly the raw answers and the planner takes them; a
month that gets a segment after its rollup is answered raw; a builder that dies between
storing the parts and publishing the manifest leaves readers on the raw path.

The segments are written by the sink into a local folder, then stored under the same keys on
the server, so the local root is an independent reference for every number.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from riskengine.analytics import AuditDB, Filters
from riskengine.analytics._objectstore import PREFIX
from riskengine.analytics.rollups import PARTS, ROLLUP_DIR, build_rollups, builds, current_rollups, published
from riskengine.audit.objectstore import S3Root
from riskengine.audit.parquet import ParquetSink

START = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 5, 15, tzinfo=UTC)  # January-April closed
ALL_MONTHS = [202601, 202602, 202603, 202604]
PATHS = (["sms"], ["whatsapp", "sms"], ["totp"])


def _write(root: Path, rng: random.Random, start: datetime, days: int, n: int, tag: str) -> None:
    with ParquetSink(root, flush_seconds=60) as sink:
        for i in range(n):
            t = start + timedelta(seconds=rng.uniform(0, days * 86400))
            risk = rng.random()
            action = "deny" if risk > 0.9 else "challenge" if risk > 0.5 else "allow"
            reasons = rng.choice(([], ["NEW_DEVICE"], ["NEW_DEVICE", "NEW_COUNTRY"], ["UNUSUAL_HOUR"]))
            did = f"{tag}{i:05d}"
            decision: dict[str, Any] = {
                "event_time": t, "schema_version": 1, "decision_id": did, "user_key": f"u{rng.randrange(50):03d}",
                "country": rng.choice(("GB", "FR", "CN")), "device_type": rng.choice(("pc", "mobile")),
                "risk": risk, "action": action, "reasons": reasons,
                "factor": rng.choice(("sms", "totp")) if action == "challenge" else None,
                "policy_version": "p1" if t < datetime(2026, 2, 20, tzinfo=UTC) else "p2",
                "cold_start": rng.random() < 0.1, "trusted_device": rng.random() < 0.2, "degraded": False,
            }
            sink.emit("decisions", decision)
            if action == "challenge":
                path = rng.choice(PATHS)
                challenge: dict[str, Any] = {
                    "event_time": t + timedelta(seconds=rng.uniform(5, 3600)), "schema_version": 1,
                    "decision_id": did, "user_key": decision["user_key"], "factor": decision["factor"],
                    "channels": path, "final_channel": path[-1], "fallback_used": len(path) > 1,
                    "outcome": rng.choice(("verified", "verified", "failed", "abandoned")), "attempts": 1,
                    "country": decision["country"], "seconds_to_verify": 1.0 + i % 90,
                }
                if rng.random() < 0.7:  # the others predate the decision columns on challenges
                    challenge.update(device_type=decision["device_type"], reasons=reasons,
                                     policy_version=decision["policy_version"])
                sink.emit("challenges", challenge)
            if rng.random() < 0.15:
                sink.emit("failures", {"event_time": t, "schema_version": 1, "user_key": decision["user_key"],
                                       "user_failures": 1})
            if i % 400 == 399:
                sink.flush()  # several segments per month


def _upload(local: Path, store: S3Root) -> None:
    """Store every segment of ``local`` not yet on the server, under the same key."""
    have = {name for name, _size in store.objects("", recursive=True)}
    for path in sorted(local.rglob("*.parquet")):
        rel = path.relative_to(local).as_posix()
        if not rel.startswith(("_", ".")) and rel not in have:
            store.put(rel, path.read_bytes())


@pytest.fixture
def roots(s3_root: str, tmp_path: Path) -> tuple[Path, S3Root]:
    """January-April 2026 in several segments a month, on disk and (the same objects) on S3."""
    local = tmp_path / "audit"
    _write(local, random.Random(5), START, 118, 1600, "a")
    store = S3Root.parse(s3_root)
    _upload(local, store)
    return local, store


def _late_february(local: Path, store: S3Root) -> None:
    """A segment lands in February after its rollup was built."""
    _write(local, random.Random(9), datetime(2026, 2, 10, tzinfo=UTC), 5, 120, "late")
    _upload(local, store)


def _same(raw: Any, rolled: Any) -> None:
    if isinstance(raw, pl.DataFrame):
        assert_frame_equal(raw, rolled, check_exact=True)
    else:
        assert raw == rolled


def _calls(db: AuditDB, f: Filters) -> dict[str, Callable[[], Any]]:
    return {
        "kpis": lambda: db.kpis(f),
        "series day": lambda: db.kpi_series(f, "day"),
        "reason_counts": lambda: db.reason_counts(f),
        "breakdown country": lambda: db.breakdown(f, "country"),
        "breakdown policy": lambda: db.breakdown(f, "policy_version"),
        "alerts hour": lambda: db.alerts(f, grain="hour", window=6, z=2.0, min_logins=1),
        "histogram": lambda: db.risk_histogram(f, bins=20),
        "users estimate": lambda: db.distinct_users(f, approximate=True),
        "channel_success": lambda: db.channel_success(f),
        "time_to_verify": lambda: db.time_to_verify(f, approximate=True),
    }


def _raw_and_rolled(db: AuditDB, call: Callable[[], Any]) -> tuple[Any, Any, int]:
    """The call answered from raw segments only, then with rollups, and how many of the second
    call's queries the planner answered from rollups."""
    before = db.rollup_plans
    db.use_rollups = False
    raw = call()
    assert db.rollup_plans == before, "a raw-only call used rollups"
    db.use_rollups = True
    rolled = call()
    return raw, rolled, db.rollup_plans - before


WINDOWS = {
    "everything": Filters(),
    "partial days across months": Filters(since=datetime(2026, 1, 10, 13, 30, tzinfo=UTC),
                                          until=datetime(2026, 3, 20, 8, 15, tzinfo=UTC)),
}


def test_rollups_built_on_s3_give_the_raw_numbers_and_the_planner_reads_them(roots: tuple[Path, S3Root]) -> None:
    local, store = roots
    res = build_rollups(store, now=LATER)
    assert res.built == ["2026-01", "2026-02", "2026-03", "2026-04"] and res.current == 0
    current = current_rollups(store)
    assert sorted(current) == ALL_MONTHS
    for rollup in current.values():  # read from the store, through the registered file system
        assert rollup.location.startswith(PREFIX) and set(PARTS) <= rollup.parts
    remote, reference = AuditDB(store), AuditDB(local)
    reference.use_rollups = False  # the same segments on disk, raw: an independent answer
    try:
        for window, f in WINDOWS.items():
            months = {202601, 202602, 202603} if window != "everything" else set(ALL_MONTHS)
            for name, call in _calls(remote, f).items():
                raw, rolled, plans = _raw_and_rolled(remote, call)
                assert plans > 0, f"{name} was not answered from rollups ({window})"
                assert remote.last_plan_months == months, (name, window)
                _same(raw, rolled)
                _same(_calls(reference, f)[name](), rolled)
        assert remote.kpis()["logins"] == 1600
    finally:
        remote.close()
        reference.close()
    again = build_rollups(store, now=LATER)  # nothing changed: nothing rebuilt
    assert again.built == [] and again.current == 4


def test_a_rollup_is_not_used_once_its_month_gets_a_new_segment(roots: tuple[Path, S3Root]) -> None:
    local, store = roots
    build_rollups(store, now=LATER)
    first = {k: r.location for k, r in current_rollups(store).items()}
    _late_february(local, store)
    # February is raw again; so is March, whose older challenge rows take their decision's
    # columns from decisions that may be in February
    assert sorted(current_rollups(store)) == [202601, 202604]
    db = AuditDB(store)
    try:
        for name, call in _calls(db, Filters()).items():
            raw, rolled, plans = _raw_and_rolled(db, call)
            assert plans > 0 and db.last_plan_months == {202601, 202604}, name
            _same(raw, rolled)
        assert db.kpis()["logins"] == 1600 + 120
        res = build_rollups(store, now=LATER)  # the next compaction rebuilds the stale months only
        assert res.built == ["2026-02", "2026-03"] and res.current == 2
        rebuilt = {k: r.location for k, r in current_rollups(store).items()}
        assert sorted(rebuilt) == ALL_MONTHS
        assert [rebuilt[k] == first[k] for k in ALL_MONTHS] == [True, False, False, True]
        assert all(len(b) == 1 for b in builds(store).values())  # the replaced builds are gone
        raw, rolled, plans = _raw_and_rolled(db, db.kpis)
        assert plans == 1 and db.last_plan_months == set(ALL_MONTHS) and raw == rolled
    finally:
        db.close()


class Crash(Exception):
    pass


def _crash_at(when: str) -> Callable[[str, str], None]:
    def step(name: str, prefix: str) -> None:
        if name == when:
            raise Crash(prefix)

    return step


def test_a_crash_between_storing_and_publishing_leaves_readers_on_the_raw_path(roots: tuple[Path, S3Root]) -> None:
    local, store = roots
    with pytest.raises(Crash):  # the first month's parts are stored, its manifest is not
        build_rollups(store, now=LATER, _after_step=_crash_at("uploaded"))
    stored = builds(store)
    assert list(stored) == [202601] and published(stored[202601]) is None
    assert set(PARTS) <= next(iter(stored[202601].values()))  # the parts are there, all of them
    assert current_rollups(store) == {}
    db = AuditDB(store)
    try:
        for name, call in _calls(db, Filters()).items():
            raw, rolled, plans = _raw_and_rolled(db, call)
            assert plans == 0, f"{name} read an unpublished rollup"
            _same(raw, rolled)
        # the same crash while rebuilding a stale month: the old rollup is stale, the new one
        # unpublished, so February (and March) stay raw
        build_rollups(store, now=LATER)
        _late_february(local, store)
        with pytest.raises(Crash):
            build_rollups(store, now=LATER, _after_step=_crash_at("uploaded"))
        assert len(builds(store)[202602]) == 2  # the stale published build and the unpublished one
        assert sorted(current_rollups(store)) == [202601, 202604]
        raw, rolled, plans = _raw_and_rolled(db, db.kpis)
        assert plans == 1 and db.last_plan_months == {202601, 202604} and raw == rolled
        # the next run publishes and removes what the dead one left
        res = build_rollups(store, now=LATER)
        assert res.built == ["2026-02", "2026-03"]
        assert all(len(b) == 1 for b in builds(store).values())
        raw, rolled, plans = _raw_and_rolled(db, db.kpis)
        assert plans == 1 and db.last_plan_months == set(ALL_MONTHS) and raw == rolled
    finally:
        db.close()


def test_a_crash_after_unpublishing_or_publishing_leaves_one_build_in_use(roots: tuple[Path, S3Root]) -> None:
    local, store = roots
    build_rollups(store, now=LATER)
    _late_february(local, store)
    with pytest.raises(Crash):  # February's old build is hidden, the new one not published yet
        build_rollups(store, now=LATER, _after_step=_crash_at("unpublished"))
    february = builds(store)[202602]
    assert len(february) == 2 and not any("manifest.json" in names for names in february.values())
    assert 202602 not in current_rollups(store)
    with pytest.raises(Crash):  # February's new build is published, the older ones not deleted yet
        build_rollups(store, now=LATER, _after_step=_crash_at("published"))
    february = builds(store)[202602]
    assert len(february) == 3 and sum("manifest.json" in names for names in february.values()) == 1
    assert current_rollups(store)[202602].location.endswith(published(february) or "?")
    db = AuditDB(store)
    try:
        f = Filters(since=datetime(2026, 2, 1, tzinfo=UTC), until=datetime(2026, 3, 1, tzinfo=UTC))
        raw, rolled, plans = _raw_and_rolled(db, lambda: db.kpis(f))
        assert plans == 1 and db.last_plan_months == {202602} and raw == rolled
    finally:
        db.close()
    build_rollups(store, now=LATER)
    assert all(len(b) == 1 for b in builds(store).values())


def test_a_manifest_that_is_not_ours_is_not_used(roots: tuple[Path, S3Root]) -> None:
    """A newer build whose manifest is unreadable or of another version hides the older build
    (newest published wins) but is not current itself: its month is answered raw."""
    _local, store = roots
    build_rollups(store, now=LATER)
    prefix = f"{ROLLUP_DIR}/2026-02/99991231T000000000000Z-{'f' * 32}"
    store.put(f"{prefix}/decisions.parquet", b"not parquet")
    store.put(f"{prefix}/manifest.json", json.dumps({"version": 1, "sources": {}}).encode())
    prefix3 = f"{ROLLUP_DIR}/2026-03/99991231T000000000000Z-{'e' * 32}"
    store.put(f"{prefix3}/manifest.json", b"{not json")
    assert sorted(current_rollups(store)) == [202601, 202604]
    db = AuditDB(store)
    try:
        raw, rolled, plans = _raw_and_rolled(db, db.kpis)
        assert plans == 1 and db.last_plan_months == {202601, 202604} and raw == rolled
    finally:
        db.close()
    res = build_rollups(store, now=LATER)  # rebuilt over them, and they are removed
    assert res.built == ["2026-02", "2026-03"] and sorted(current_rollups(store)) == ALL_MONTHS
    assert all(len(b) == 1 for b in builds(store).values())
