"""Decisions per event (issue #17): engine → Parquet audit → AuditDB.event_breakdown, with a
segment written before the audit log had the ``event`` column (its rows count as logins)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from riskengine import Engine
from riskengine.analytics import AuditDB, Filters
from riskengine.audit.parquet import ParquetSink
from riskengine.testing import CHANGCHUN, FIREFOX_MAC, establish, make_attempt, offline_settings


def _old_segment(root: Path) -> None:
    """Schema version 1: no ``event`` column. Two allows and a challenge."""
    folder = root / "decisions" / "year=2026" / "month=01"
    folder.mkdir(parents=True)
    t = datetime(2026, 1, 3, 12, tzinfo=UTC)
    old = pa.table({
        "event_time": pa.array([t, t, t], pa.timestamp("us", "UTC")), "schema_version": pa.array([1, 1, 1], pa.int16()),
        "decision_id": ["o1", "o2", "o3"], "user_key": ["a", "b", "c"], "risk": [0.0, 0.1, 0.6],
        "action": ["allow", "allow", "challenge"], "reasons": [[], [], ["NEW_DEVICE"]],
    })
    pq.write_table(old, folder / "part-old.parquet")


def test_event_breakdown_counts_each_event_and_reads_old_rows_as_logins(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    _old_segment(root)
    expected: dict[str, list[str]] = {"login": ["allow", "allow", "challenge"]}
    with ParquetSink(root) as sink, Engine(offline_settings(), sink=sink) as engine:
        last = establish(engine, days=5)  # 5 allowed logins in January
        expected["login"] += ["allow"] * 5
        ts = last + timedelta(days=1)
        moves: list[tuple[str, dict[str, object]]] = [
            ("recovery", {}), ("recovery", {"place": CHANGCHUN, "ua": FIREFOX_MAC}),
            ("factor_change", {}), ("password_reset", {}), ("login", {"ua": FIREFOX_MAC})]
        for i, (event, where) in enumerate(moves):
            d = engine.score(make_attempt(ts=ts + timedelta(minutes=i), event=event, **where))
            expected.setdefault(event, []).append(d.action)
    got = AuditDB(root).event_breakdown()
    rows = {r["event"]: r for r in got.iter_rows(named=True)}
    assert set(rows) == set(expected)
    assert rows["recovery"]["denied"] == 1  # the never-seen device in a never-seen country
    for event, actions in expected.items():
        n = len(actions)
        stepped = sum(a != "allow" for a in actions)
        r = rows[event]
        assert (r["decisions"], r["challenged"], r["denied"]) == (
            n, actions.count("challenge"), actions.count("deny")), event
        assert r["challenge_rate"] == stepped / n and r["deny_rate"] == actions.count("deny") / n
    # the headline KPIs count every decision, whatever its event (the breakdown splits them)
    assert AuditDB(root).kpis()["logins"] == sum(len(a) for a in expected.values())


def test_event_breakdown_of_an_empty_window_is_empty(tmp_path: Path) -> None:
    _old_segment(tmp_path)
    f = Filters(since=datetime(2025, 1, 1, tzinfo=UTC), until=datetime(2025, 2, 1, tzinfo=UTC))
    assert AuditDB(tmp_path).event_breakdown(f).is_empty()
