"""Audit sink throughput and AuditDB query times on 10M decisions (printed, never asserted).

1. ParquetSink alone: realistic decision rows emitted from one thread as fast as possible,
   timed until ``close()`` returns (every row durable in Parquet), through ``emit(dict)``
   and through the engine's ``emit_values(tuple)`` path.
2. The Engine scoring at full speed (memory store, pre-resolved geo): no sink, a sink that
   drops rows (what building the audit row costs), and a ParquetSink (logins/s and audit
   events/s that reached Parquet).
3. Every AuditDB query the dashboard uses, on a synthetic root of 10M decisions (plus
   challenges, failures, exposures, conversions), cold (no cache in AuditDB), over the whole
   range and over one month: on raw segments only, then with the rollups that
   ``riskengine audit compact`` builds (built here with ``build_rollups``, timed).

The synthetic root is generated with DuckDB into ``var/bench/audit`` (reused when it already
holds >= --rows decisions; bench_dashboard.py shares it).

``python benchmarks/bench_audit.py [--rows N] [--root DIR] [--skip-sink]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _util import decision_rows, load_note, table  # noqa: E402

from riskengine import Engine  # noqa: E402
from riskengine.analytics import AuditDB, Filters  # noqa: E402
from riskengine.analytics.rollups import build_rollups  # noqa: E402
from riskengine.audit.parquet import ParquetSink  # noqa: E402
from riskengine.testing import CHROME_WIN, IPHONE, LONDON, PARIS, T0, make_attempt, offline_settings  # noqa: E402

DEFAULT_ROOT = REPO / "var" / "bench" / "audit"
START = "2024-05-01"
MONTHS = 20


def decision_row(i: int, when: datetime) -> dict[str, Any]:
    return {
        "event_time": when, "schema_version": 1, "decision_id": f"{i:016x}", "user_key": f"{i % 50_000:016x}",
        "session_key": None, "ip_prefix": "81.2.69.0/24", "country": "GB", "region": "England",
        "city": "London", "asn": 2856, "device_key": f"dev{i % 70_000}", "browser_family": "Chrome",
        "browser_version": "120", "os_family": "Windows", "device_type": "pc", "risk": 0.12,
        "action": "allow", "reasons": ["KNOWN_DEVICE"], "factor": None, "policy_version": "p1",
        "latency_us": 21.5, "user_logins": 40, "cold_start": False, "trusted_device": False,
        "degraded": False,
    }


def bench_sink(n: int = 500_000, values: bool = False, one_core: bool = False) -> dict[str, object]:
    rows = [decision_row(i, T0 + timedelta(seconds=i)) for i in range(n)]
    tuples = [tuple(r.values()) for r in rows]  # decision_row lists the columns in TABLES order
    cpus = os.sched_getaffinity(0)
    if one_core:  # the whole process (emitting thread, flusher, Arrow/Parquet threads) on one CPU
        os.sched_setaffinity(0, {min(cpus)})
    try:
        return _bench_sink(rows, tuples, values, one_core)
    finally:
        os.sched_setaffinity(0, cpus)


def _bench_sink(rows: list[dict[str, Any]], tuples: list[tuple[Any, ...]], values: bool,
                one_core: bool) -> dict[str, object]:
    n = len(rows)
    with tempfile.TemporaryDirectory() as root:
        sink = ParquetSink(root)
        time.sleep(1.5)  # let the flusher finish pyarrow's one-off warm-up, as in a long-lived engine
        started = time.perf_counter()
        if values:
            for t in tuples:
                sink.emit_values("decisions", t)
        else:
            for r in rows:
                sink.emit("decisions", r)
        emitted = time.perf_counter() - started
        sink.close()
        total = time.perf_counter() - started
        how = "emit_values(tuple)" if values else "emit(dict)"
        where = "one core" if one_core else "2 cores"
        return {"case": f"ParquetSink alone, {how} + flush to disk, {where}", "events": n,
                "emit us/event": emitted / n * 1e6, "events/s to Parquet": n / total,
                "segments": sink.segments, "dropped": sink.dropped}


class DiscardSink:
    """Takes rows on the engine's fast path and drops them: what building the row costs."""

    dropped = 0

    def emit(self, table: str, row: dict[str, Any]) -> None:
        pass

    def emit_values(self, table: str, values: tuple[Any, ...]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def bench_engine(n: int = 60_000) -> list[dict[str, object]]:
    attempts = [make_attempt(f"user{i % 2000}", T0 + timedelta(seconds=i * 7),
                             place=PARIS if i % 50 == 0 else LONDON, ua=IPHONE if i % 9 == 0 else CHROME_WIN)
                for i in range(n)]
    out: list[dict[str, object]] = []
    for label in ("no audit sink", "row built, then discarded", "ParquetSink"):
        with tempfile.TemporaryDirectory() as root:
            settings = offline_settings(audit={"root": root} if label == "ParquetSink" else {})
            engine = Engine(settings, sink=DiscardSink()) if label.startswith("row") else Engine(settings)
            time.sleep(1.5)
            for a in attempts[:2000]:  # warm caches
                engine.score(a)
            started = time.perf_counter()
            for a in attempts:
                engine.score(a)
            scored = time.perf_counter() - started
            engine.close()
            total = time.perf_counter() - started
            dropped = getattr(engine.sink, "dropped", 0)
            written = getattr(engine.sink, "written", 0)
            out.append({"case": f"Engine.score at full speed, {label}", "events": n,
                        "logins/s": n / scored, "us/login": scored / n * 1e6,
                        "events/s to Parquet": (written - 2000) / total if written else 0.0,
                        "dropped": dropped})
    return out


def generate(root: Path, rows: int) -> None:
    """Synthetic audit tables with the real schema, straight from DuckDB (seconds, not hours)."""
    root.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'").fetchall()
    con.execute("SELECT setseed(0.42)").fetchall()
    span_s = (datetime(2024, 5, 1, tzinfo=UTC).replace(year=2026, month=1) - datetime(2024, 5, 1, tzinfo=UTC))
    span = int(span_s.total_seconds())
    part = "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (year, month), OVERWRITE_OR_IGNORE, " \
           "FILENAME_PATTERN 'part-bench-{uuid}')"
    con.execute(f"""
        CREATE TEMP TABLE d AS
        SELECT i, TIMESTAMPTZ '{START} 00:00:00+00' + to_seconds((random() * {span})::BIGINT) AS event_time,
               random() AS r1, random() AS r2, random() AS r3
          FROM range({rows}) t(i)""").fetchall()
    decisions = """
        SELECT event_time, 1::SMALLINT AS schema_version, printf('%016x', i) AS decision_id,
               printf('%016x', hash(i % 400000)) AS user_key, NULL::VARCHAR AS session_key,
               '10.' || (i % 250) || '.0.0/24' AS ip_prefix,
               ['GB','GB','GB','FR','DE','US','US','ES','IT','NL','IN','BR','CN'][1 + (i % 13)::INTEGER] AS country,
               'region' || (i % 7) AS region, 'city' || (i % 40) AS city, (1000 + i % 300)::BIGINT AS asn,
               printf('%08x', hash(i % 600000)) AS device_key,
               ['Chrome','Chrome','Safari','Firefox','Edge','Mobile Safari'][1 + (i % 6)::INTEGER] AS browser_family,
               '120' AS browser_version, ['Windows','Mac OS X','iOS','Android'][1 + (i % 4)::INTEGER] AS os_family,
               CASE WHEN r2 < 0.55 THEN 'pc' WHEN r2 < 0.92 THEN 'mobile' ELSE 'tablet' END AS device_type,
               least(1.0, r1 * r1 * r1 * 1.2) AS risk,
               CASE WHEN r1 * r1 * r1 * 1.2 >= 0.85 THEN 'deny' WHEN r1 * r1 * r1 * 1.2 >= 0.4 THEN 'challenge'
                    ELSE 'allow' END AS action,
               CASE WHEN r1 * r1 * r1 * 1.2 < 0.4 THEN ['KNOWN_DEVICE']
                    WHEN r3 < 0.5 THEN ['NEW_DEVICE']
                    WHEN r3 < 0.7 THEN ['NEW_DEVICE', 'NEW_COUNTRY']
                    WHEN r3 < 0.85 THEN ['UNUSUAL_HOUR', 'NEW_ASN']
                    WHEN r3 < 0.95 THEN ['FAILED_ATTEMPTS_USER']
                    ELSE ['NEW_COUNTRY', 'IMPOSSIBLE_TRAVEL', 'NEW_DEVICE'] END AS reasons,
               CASE WHEN r1 * r1 * r1 * 1.2 >= 0.4 AND r1 * r1 * r1 * 1.2 < 0.85
                    THEN ['whatsapp', 'sms', 'totp', 'passkey'][1 + (i % 4)::INTEGER] END AS factor,
               CASE WHEN event_time < TIMESTAMPTZ '2025-03-01 00:00:00+00' THEN 'p1' ELSE 'p2' END AS policy_version,
               15 + r2 * 40 AS latency_us, (i % 300)::INTEGER AS user_logins, (i % 97 = 0) AS cold_start,
               (r3 < 0.1) AS trusted_device, false AS degraded,
               year(event_time) AS year, lpad(month(event_time)::VARCHAR, 2, '0') AS month
          FROM d"""
    con.execute(f"COPY ({decisions}) TO '{root / 'decisions'}' {part}").fetchall()
    challenges = """
        SELECT event_time + to_seconds((5 + r2 * 100)::BIGINT) AS event_time, 1::SMALLINT AS schema_version,
               printf('%016x', i) AS decision_id, printf('%016x', hash(i % 400000)) AS user_key,
               ['whatsapp', 'sms', 'totp', 'passkey'][1 + (i % 4)::INTEGER] AS factor,
               CASE WHEN i % 4 = 0 AND r3 < 0.25 THEN ['whatsapp', 'sms']
                    WHEN i % 4 = 0 AND r3 < 0.3 THEN ['whatsapp', 'sms', 'voice']
                    WHEN i % 4 = 0 THEN ['whatsapp'] WHEN i % 4 = 1 AND r3 < 0.1 THEN ['sms', 'voice']
                    WHEN i % 4 = 1 THEN ['sms'] WHEN i % 4 = 2 THEN ['totp'] ELSE ['passkey'] END AS channels,
               NULL::VARCHAR AS final_channel, NULL::BOOLEAN AS fallback_used,
               CASE WHEN r2 < 0.78 THEN 'verified' WHEN r2 < 0.88 THEN 'failed' WHEN r2 < 0.94 THEN 'expired'
                    ELSE 'abandoned' END AS outcome,
               (1 + i % 3)::INTEGER AS attempts, CASE WHEN r2 < 0.78 THEN 8 + r3 * 50 END AS seconds_to_verify,
               (r3 < 0.3) AS trust_device,
               ['GB','GB','GB','FR','DE','US','US','ES','IT','NL','IN','BR','CN'][1 + (i % 13)::INTEGER] AS country,
               CASE WHEN r2 < 0.55 THEN 'pc' WHEN r2 < 0.92 THEN 'mobile' ELSE 'tablet' END AS device_type,
               least(1.0, r1 * r1 * r1 * 1.2) AS risk,
               CASE WHEN r3 < 0.5 THEN ['NEW_DEVICE'] WHEN r3 < 0.7 THEN ['NEW_DEVICE', 'NEW_COUNTRY']
                    WHEN r3 < 0.85 THEN ['UNUSUAL_HOUR', 'NEW_ASN'] WHEN r3 < 0.95 THEN ['FAILED_ATTEMPTS_USER']
                    ELSE ['NEW_COUNTRY', 'IMPOSSIBLE_TRAVEL', 'NEW_DEVICE'] END AS reasons,
               CASE WHEN event_time < TIMESTAMPTZ '2025-03-01 00:00:00+00' THEN 'p1' ELSE 'p2' END AS policy_version
          FROM d WHERE r1 * r1 * r1 * 1.2 >= 0.4 AND r1 * r1 * r1 * 1.2 < 0.85"""
    con.execute(f"""COPY (SELECT * REPLACE (channels[len(channels)] AS final_channel,
                                           len(channels) > 1 AS fallback_used),
                                 year(event_time) AS year, lpad(month(event_time)::VARCHAR, 2, '0') AS month
                            FROM ({challenges})) TO '{root / 'challenges'}' {part}""").fetchall()
    con.execute(f"""COPY (SELECT event_time, 1::SMALLINT AS schema_version,
                                 printf('%016x', hash(i % 400000)) AS user_key, '10.0.0.0/24' AS ip_prefix,
                                 1::INTEGER AS user_failures,
                                 year(event_time) AS year, lpad(month(event_time)::VARCHAR, 2, '0') AS month
                            FROM d WHERE r3 < 0.05) TO '{root / 'failures'}' {part}""").fetchall()
    con.execute(f"""COPY (SELECT event_time, 1::SMALLINT AS schema_version, 'signup_2fa' AS experiment,
                                 CASE WHEN hash(i) % 2 = 0 THEN 'progressive' ELSE 'mfa_at_signup' END AS variant,
                                 printf('%016x', i) AS user_key, 'progressive' AS control,
                                 ['progressive', 'mfa_at_signup'] AS variants, [0.5, 0.5] AS weights,
                                 year(event_time) AS year, lpad(month(event_time)::VARCHAR, 2, '0') AS month
                            FROM d WHERE i < 300000) TO '{root / 'exposures'}' {part}""").fetchall()
    con.execute(f"""COPY (SELECT event_time + INTERVAL 1 HOUR AS event_time, 1::SMALLINT AS schema_version,
                                 'signup_2fa' AS experiment, printf('%016x', i) AS user_key,
                                 year(event_time + INTERVAL 1 HOUR) AS year,
                                 lpad(month(event_time + INTERVAL 1 HOUR)::VARCHAR, 2, '0') AS month
                            FROM d WHERE i < 300000
                             AND r2 < CASE WHEN hash(i) % 2 = 0 THEN 0.30 ELSE 0.28 END)
                 TO '{root / 'conversions'}' {part}""").fetchall()
    con.close()


def dashboard_queries(db: AuditDB, f: Filters) -> dict[str, Callable[[], object]]:
    return {
        "date_range": db.date_range,
        "kpis": lambda: db.kpis(f),
        "kpis(users=False)": lambda: db.kpis(f, users=False),
        "distinct_users(approximate)": lambda: db.distinct_users(f, approximate=True),
        "segment_values(device_type)": lambda: db.segment_values("device_type"),
        "kpis_vs_previous": lambda: db.kpis_vs_previous(f),
        "kpi_series(day)": lambda: db.kpi_series(f, "day"),
        "kpi_series(hour)": lambda: db.kpi_series(f, "hour"),
        "breakdown(country)": lambda: db.breakdown(f, "country"),
        "breakdown(device_type)": lambda: db.breakdown(f, "device_type"),
        "breakdown(reason)": lambda: db.breakdown(f, "reason"),
        "breakdown(factor)": lambda: db.breakdown(f, "factor"),
        "breakdown(policy_version)": lambda: db.breakdown(f, "policy_version"),
        "channel_success": lambda: db.channel_success(f),
        "fallback_funnel": lambda: db.fallback_funnel(f),
        "fallback_paths": lambda: db.fallback_paths(f),
        "time_to_verify": lambda: db.time_to_verify(f),
        "avoidable_challenges": lambda: db.avoidable_challenges(f),
        "reason_counts": lambda: db.reason_counts(f),
        "risk_histogram": lambda: db.risk_histogram(f, 20),
        "whatif(9 thresholds)": lambda: db.whatif(f, [0.1 * k for k in range(1, 10)]),
        "events(limit 500)": lambda: db.events(f, limit=500),
        "alerts(hour)": lambda: db.alerts(f, "hour"),
        "experiment_readout": lambda: db.experiment_readout("signup_2fa", f),
        "kpis(country=FR, mobile)": lambda: db.kpis(f.replace(countries=("FR",), device_types=("mobile",))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--skip-sink", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="take the best of this many runs per query")
    parser.add_argument("--rebuild-rollups", action="store_true")
    args = parser.parse_args()

    if not args.skip_sink:
        sink_rows = [max((bench_sink(values=v, one_core=c) for _ in range(args.repeat)),
                         key=lambda r: r["events/s to Parquet"])  # type: ignore[arg-type,return-value]
                     for c in (True, False) for v in (False, True)]
        print(table(sink_rows, f"Audit sink throughput (one process; the flusher shares the GIL), best of "
                               f"{args.repeat}; {load_note()}"), flush=True)
        print(table(bench_engine(), "\nEngine.score at full speed, one thread, memory store"), flush=True)

    root: Path = args.root
    have = decision_rows(root)
    if have < args.rows:
        if have:
            root = root.with_name(f"{root.name}-{args.rows}")
            have = decision_rows(root)
        if have < args.rows:
            t0 = time.perf_counter()
            generate(root, args.rows)
            print(f"\ngenerated {args.rows:,} decisions into {root} in {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"\naudit root {root}: {decision_rows(root):,} decisions, "
          f"{len(list(root.glob('decisions/*/*')))} month partitions", flush=True)
    started = time.perf_counter()
    built = build_rollups(root, rebuild=args.rebuild_rollups)
    print(f"rollups: {len(built.built)} months built ({built.rows:,} rows), {built.current} already current, "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    db = AuditDB(root)
    span = db.date_range()
    assert span is not None
    # whole UTC days, as the dashboard's date picker selects them
    first, last = span[0].astimezone(UTC), span[1].astimezone(UTC)
    everything = Filters(since=datetime(first.year, first.month, first.day, tzinfo=UTC),
                         until=datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1))
    one_month = Filters(since=datetime(last.year, last.month, 1, tzinfo=UTC), until=everything.until)
    out = []
    for name in dashboard_queries(db, everything):
        row: dict[str, object] = {"query": name}
        for label, rollups in (("raw", False), ("rollups", True)):
            db.use_rollups = rollups
            best = {"whole": float("inf"), "month": float("inf")}
            for _ in range(args.repeat):
                for scope, f in (("whole", everything), ("month", one_month)):
                    started = time.perf_counter()
                    dashboard_queries(db, f)[name]()
                    best[scope] = min(best[scope], time.perf_counter() - started)
            row[f"whole range, {label} (s)"] = best["whole"]
            row[f"last month, {label} (s)"] = best["month"]
        row["< 1 s with rollups"] = "yes" if max(row["whole range, rollups (s)"],  # type: ignore[call-overload]
                                                  row["last month, rollups (s)"]) < 1 else "NO"
        out.append(row)
    print(table(out, f"\nAuditDB query wall time, no result cache, best of {args.repeat}, "
                     f"{decision_rows(root):,} decisions (target < 1 s each); {load_note()}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
