"""Dashboard page render times on a large audit root (target: < 1 s per page, cold cache, 100M decisions).

Uses ``var/bench/audit`` when it already holds >= 10M decisions (benchmarks/bench_audit.py writes
one there); otherwise writes one itself: two years of decisions with the audit schema, written
column-wise (vectorised) rather than through ``Engine.score`` so it takes a minute, not an hour.

Before measuring, the rollups of closed months are built (what ``riskengine audit compact``
does after merging segments; timed, and skipped with ``--no-rollups`` to measure raw scans).

Two figures per page:
- analytics: the page's calls into ``riskengine.analytics`` including the sidebar's, cold;
- render: the whole page through Streamlit's AppTest with every cache cleared first
  (cold) and again within the cache TTL (warm). Best of ``--repeat`` runs each.

``python benchmarks/bench_dashboard.py [--rows N] [--root DIR] [--no-rollups] [--repeat 3] [--calls] [--explorer]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _util import decision_rows, load_note, table  # noqa: E402

from riskengine.analytics import AuditDB, Filters  # noqa: E402
from riskengine.analytics.rollups import ROLLUPS_ENV, build_rollups  # noqa: E402
from riskengine.audit.events import SCHEMA_VERSION  # noqa: E402
from riskengine.audit.schema import arrow_schema  # noqa: E402

DEFAULT_ROOT = REPO / "var" / "bench" / "audit"
START = datetime(2024, 1, 1, tzinfo=UTC)
SPAN_DAYS = 730
COUNTRIES = np.array(["GB", "FR", "DE", "US", "ES", "IT", "NL", "IN", "BR", "CN"])
COUNTRY_P = np.array([0.35, 0.12, 0.12, 0.15, 0.06, 0.05, 0.05, 0.04, 0.03, 0.03])
DEVICES = np.array(["desktop", "mobile", "tablet"])
BROWSERS = np.array(["Chrome", "Safari", "Firefox", "Edge", "Samsung Internet"])
REASON_SETS = [[], ["NEW_DEVICE"], ["NEW_DEVICE", "NEW_COUNTRY"], ["UNUSUAL_HOUR"], ["FAILED_ATTEMPTS_USER"],
               ["NEW_DEVICE", "IMPOSSIBLE_TRAVEL"], ["COLD_START"], ["NEW_ASN"], ["FAILED_ATTEMPTS_IP", "NEW_DEVICE"]]
REASON_P = np.array([0.62, 0.12, 0.04, 0.05, 0.03, 0.01, 0.08, 0.04, 0.01])
CHANNEL_PATHS = [["whatsapp"], ["whatsapp", "sms"], ["whatsapp", "sms", "voice"], ["sms"], ["totp"], ["passkey"]]
CHANNEL_P = np.array([0.45, 0.15, 0.04, 0.2, 0.1, 0.06])


def _write(root: Path, name: str, frame: pl.DataFrame, chunk: int, batch: int = 0) -> None:
    """Hive-partitioned by year/month like ParquetSink, several segments per month."""
    frame = frame.with_columns(_y=pl.col("event_time").dt.year(), _m=pl.col("event_time").dt.month())
    for (year, month), part in frame.partition_by(["_y", "_m"], as_dict=True).items():
        out = root / name / f"year={year}" / f"month={month:02d}"
        out.mkdir(parents=True, exist_ok=True)
        part = part.drop("_y", "_m")
        for i in range(0, part.height, chunk):
            part.slice(i, chunk).write_parquet(out / f"part-bench-{batch:04d}-{i // chunk:04d}.parquet")


def progress_dir(root: Path) -> Path:
    """Where ``generate`` records finished batches (beside the root, never inside it)."""
    return root.with_name(root.name + ".progress")


def generate(root: Path, rows: int, seed: int = 1, step: int = 2_000_000) -> None:
    """Write ``rows`` decisions in batches of ``step`` (bounded memory: one batch at a time).

    Resumable: every batch draws from its own seeded generator and is recorded as done in
    ``progress_dir(root)`` once its files are written, so an interrupted run picks up at the first
    unfinished batch (whose partial files it removes first) and writes the same data."""
    users = max(1000, rows // 40)
    done_dir = progress_dir(root)
    done_dir.mkdir(parents=True, exist_ok=True)
    print(f"writing {rows:,} decisions for {users:,} users over {SPAN_DAYS} days into {root} …", flush=True)
    for start in range(0, rows, step):
        batch = start // step
        marker = done_dir / f"batch-{batch:04d}.done"
        if marker.exists():
            continue
        for table_name in ("decisions", "challenges"):
            for stale in root.glob(f"{table_name}/*/*/part-bench-{batch:04d}-*.parquet"):
                stale.unlink()
        rng = np.random.default_rng([seed, batch])
        n = min(step, rows - start)
        seconds = rng.uniform(0, SPAN_DAYS * 86400, n)
        event_time = (np.datetime64(START.replace(tzinfo=None), "us")
                      + (seconds * 1e6).astype("timedelta64[us]"))
        user_idx = rng.integers(0, users, n)
        reason_idx = rng.choice(len(REASON_SETS), n, p=REASON_P)
        base = np.array([0.05, 0.45, 0.75, 0.2, 0.5, 0.85, 0.1, 0.25, 0.97])[reason_idx]
        risk = np.clip(base + rng.normal(0, 0.06, n), 0, 1)
        action = np.where(risk >= 0.95, "deny", np.where(risk >= 0.4, "challenge", "allow"))
        d = pl.DataFrame({
            "event_time": pl.Series(event_time).dt.replace_time_zone("UTC"),
            "schema_version": np.full(n, SCHEMA_VERSION, dtype=np.int16),
            "decision_id": pl.Series(np.arange(start, start + n)).cast(pl.Utf8),
            "user_key": pl.Series(user_idx).cast(pl.Utf8).str.zfill(16),
            "session_key": None, "ip_prefix": "81.2.69.0/24",
            "country": COUNTRIES[rng.choice(len(COUNTRIES), n, p=COUNTRY_P)],
            "region": None, "city": None, "asn": rng.integers(1000, 1100, n),
            "device_key": pl.Series(rng.integers(0, users * 2, n)).cast(pl.Utf8),
            "browser_family": BROWSERS[rng.integers(0, len(BROWSERS), n)], "browser_version": "120",
            "os_family": "Windows", "device_type": DEVICES[rng.choice(3, n, p=[0.55, 0.4, 0.05])],
            "risk": risk, "action": action,
            "reasons": pl.Series([REASON_SETS[i] for i in range(len(REASON_SETS))],
                                 dtype=pl.List(pl.Utf8)).gather(reason_idx),
            "factor": np.where(action == "challenge", "whatsapp", ""),
            "policy_version": "rules-v1", "latency_us": rng.gamma(2.0, 10.0, n),
            "user_logins": rng.integers(0, 500, n).astype(np.int32), "cold_start": reason_idx == 6,
            "trusted_device": rng.random(n) < 0.2, "degraded": False,
        }).with_columns(pl.col("factor").replace("", None))
        d = _conform(d, "decisions")
        _write(root, "decisions", d, 250_000, batch)
        ch = d.filter(pl.col("action") == "challenge")
        m = ch.height
        path_idx = rng.choice(len(CHANNEL_PATHS), m, p=CHANNEL_P)
        paths = pl.Series([CHANNEL_PATHS[i] for i in range(len(CHANNEL_PATHS))],
                          dtype=pl.List(pl.Utf8)).gather(path_idx)
        outcome = rng.choice(np.array(["verified", "failed", "expired", "abandoned"]), m, p=[0.8, 0.07, 0.05, 0.08])
        c = pl.DataFrame({
            "event_time": ch["event_time"] + timedelta(seconds=30), "schema_version": ch["schema_version"],
            "decision_id": ch["decision_id"], "user_key": ch["user_key"], "factor": ch["factor"],
            "channels": paths, "final_channel": paths.list.last(), "fallback_used": paths.list.len() > 1,
            "outcome": outcome, "attempts": paths.list.len().cast(pl.Int32),
            "seconds_to_verify": np.where(outcome == "verified", rng.gamma(3.0, 8.0, m), np.nan),
            "trust_device": rng.random(m) < 0.3, "country": ch["country"], "device_type": ch["device_type"],
            "risk": ch["risk"], "reasons": ch["reasons"], "policy_version": ch["policy_version"],
        }).with_columns(pl.col("seconds_to_verify").fill_nan(None))
        c = _conform(c, "challenges")
        _write(root, "challenges", c, 250_000, batch)
        del d, ch, c
        marker.touch()
        print(f"  {start + n:,} decisions; peak RSS {_peak_rss_mb():,.0f} MB", flush=True)
    marker = done_dir / "experiments.done"
    if marker.exists():
        return
    for table_name in ("exposures", "conversions"):
        for stale in root.glob(f"{table_name}/*/*/part-bench-*.parquet"):
            stale.unlink()
    rng = np.random.default_rng([seed, 1_000_000])
    # experiments: one exposure per user, conversions for some
    u = pl.Series(np.arange(users)).cast(pl.Utf8).str.zfill(16)
    variant = np.where(rng.random(users) < 0.5, "control", "mfa_at_signup")
    exposed_at = pl.Series(np.datetime64(START.replace(tzinfo=None), "us")
                           + (rng.uniform(0, SPAN_DAYS * 86400, users) * 1e6).astype("timedelta64[us]")
                           ).dt.replace_time_zone("UTC")
    e = _conform(pl.DataFrame({
        "event_time": exposed_at, "schema_version": np.full(users, SCHEMA_VERSION, dtype=np.int16),
        "experiment": "signup_2fa", "variant": variant, "user_key": u, "control": "control",
    }).with_columns(variants=pl.lit(["control", "mfa_at_signup"]), weights=pl.lit([0.5, 0.5])), "exposures")
    _write(root, "exposures", e, 500_000)
    converted = rng.random(users) < np.where(variant == "control", 0.3, 0.33)
    conv = e.filter(pl.Series(converted)).select(
        pl.col("event_time") + pl.duration(minutes=5), "schema_version", "experiment", "user_key")
    _write(root, "conversions", _conform(conv, "conversions"), 500_000)
    marker.touch()


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _complete(root: Path) -> bool:
    return (progress_dir(root) / "experiments.done").exists()


def _conform(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """Exactly the columns and types of the audit table (absent ones null)."""
    schema = pl.from_arrow(arrow_schema(table).empty_table()).schema
    return frame.select(
        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(dtype).alias(c) for c, dtype in schema.items())


def page_calls(db: AuditDB, f: Filters, user: str = "") -> dict[str, Callable[[], Any]]:
    """The analytics calls each page makes with the default filters, sidebar included
    (mirrors dashboard/app.py, dashboard/common.py and dashboard/views; the Overview's previous
    window and its ``kpis_vs_previous`` are the cached ``kpis`` of both windows). "Audit explorer,
    one user" is the explorer opened on ``/explorer?user=<user>``."""
    names = db.experiment_names()
    prev = f.previous() or f
    span = db.date_range()
    recent = replace(f, since=max(f.since, min(span[1], f.until) - timedelta(days=7))) if (
        span and f.since and f.until) else f

    def sidebar() -> Any:
        return (db.has_data(), db.date_range(), db.segment_values("country"), db.segment_values("device_type"),
                db.segment_values("policy_version"))

    def overview() -> Any:
        now, before = db.kpis(f, users=False), db.kpis(prev, users=False)
        users = db.distinct_users(f, approximate=now["logins"] > 1_000_000)
        return (now, before, users, [db.experiment_readout(n, f) for n in names],
                [db.experiment_readout(n, prev) for n in names[:1]], db.policy_modes(f), db.event_breakdown(f),
                db.kpi_series(f, grain="week"), db.alerts(f))

    grid = tuple(round(0.05 * i, 2) for i in range(1, 20))
    return {
        "Overview": lambda: (sidebar(), overview()),
        "Challenges & channels": lambda: (sidebar(), db.kpis(f, users=False), db.avoidable_challenges(f),
                                          db.pumping_alerts(f), db.send_summary(f),
                                          db.channel_success(f), db.fallback_funnel(f), db.fallback_paths(f),
                                          db.time_to_verify(f, approximate=True), db.breakdown(f, "country")),
        "Experiments": lambda: (sidebar(), db.experiment_names(), [db.experiment_readout(n, f) for n in names]),
        "Risk & signals": lambda: (sidebar(), db.kpis(f, users=False), db.reason_counts(f),
                                   db.risk_histogram(f, bins=20), db.budget_series(recent, grain="hour"),
                                   db.breakdown(f, "country"), db.whatif(f, (*grid, 0.4)), db.feedback_by_reason(f)),
        "Audit explorer": lambda: (sidebar(), db.segment_values("reason"), db.segment_values("country"),
                                   db.events(f, table="decisions", limit=501, offset=0)),
        "Audit explorer, one user": lambda: (sidebar(), db.segment_values("reason"), db.segment_values("country"),
                                             db.events(f.replace(user_key=user), table="decisions", limit=501)),
    }


def each_call(db: AuditDB, f: Filters) -> dict[str, Callable[[], Any]]:
    """Every distinct ``AuditDB`` call of the pages above, one by one (the per-call table)."""
    names = db.experiment_names()
    grid = tuple(round(0.05 * i, 2) for i in range(1, 20))
    return {
        "has_data + date_range": lambda: (db.has_data(), db.date_range()),
        "segment_values ×4": lambda: [db.segment_values(c) for c in ("country", "device_type", "policy_version",
                                                                     "reason")],
        "kpis(users=False)": lambda: db.kpis(f, users=False),
        "distinct_users(approximate=True)": lambda: db.distinct_users(f, approximate=True),
        "distinct_users (exact)": lambda: db.distinct_users(f),
        "kpi_series(week)": lambda: db.kpi_series(f, grain="week"),
        "alerts": lambda: db.alerts(f),
        "experiment_readout": lambda: [db.experiment_readout(n, f) for n in names],
        "avoidable_challenges": lambda: db.avoidable_challenges(f),
        "channel_success": lambda: db.channel_success(f),
        "fallback_funnel": lambda: db.fallback_funnel(f),
        "fallback_paths": lambda: db.fallback_paths(f),
        "time_to_verify (exact)": lambda: db.time_to_verify(f),
        "time_to_verify(approximate=True)": lambda: db.time_to_verify(f, approximate=True),
        "breakdown(country)": lambda: db.breakdown(f, "country"),
        "reason_counts": lambda: db.reason_counts(f),
        "risk_histogram(20)": lambda: db.risk_histogram(f, bins=20),
        "whatif(20 thresholds)": lambda: db.whatif(f, (*grid, 0.4)),
        "events(limit 501)": lambda: db.events(f, table="decisions", limit=501, offset=0),
    }


def explorer_calls(db: AuditDB, f: Filters, user: str) -> dict[str, Callable[[], Any]]:
    """The explorer's filters one by one (``events(limit=501)``, all dates unless said), and the
    support lookup of one user (``user_events``); ``user`` is a user key the log holds."""
    week = f.replace(since=datetime(2024, 6, 10, tzinfo=UTC), until=datetime(2024, 6, 17, tzinfo=UTC))
    return {
        "none (newest 501)": lambda: db.events(f, limit=501),
        "action = deny": lambda: db.events(f.replace(actions=("deny",)), limit=501),
        "reason = IMPOSSIBLE_TRAVEL": lambda: db.events(f.replace(reasons=("IMPOSSIBLE_TRAVEL",)), limit=501),
        "country = CN": lambda: db.events(f.replace(countries=("CN",)), limit=501),
        "one week in June 2024": lambda: db.events(week, limit=501),
        "page 3 (offset 1,000)": lambda: db.events(f, limit=501, offset=1000),
        "one user key": lambda: db.events(f.replace(user_key=user), limit=501),
        "one user key, absent": lambda: db.events(f.replace(user_key="no-such-user"), limit=501),
        "one user key, challenges": lambda: db.events(f.replace(user_key=user), table="challenges", limit=501),
        "one user key, exposures": lambda: db.events(f.replace(user_key=user), table="exposures", limit=501),
        "challenges, reason = NEW_DEVICE": lambda: db.events(f.replace(reasons=("NEW_DEVICE",)),
                                                             table="challenges", limit=501),
        "user_events (support, decisions)": lambda: db.user_events(user, limit=20),
    }


def a_user_key(root: Path) -> str:
    """A user key of the oldest decision segment (deterministic for a given root)."""
    import pyarrow.parquet as pq

    first = min((root / "decisions").glob("*/*/*.parquet"))
    return str(pq.read_table(first, columns=["user_key"]).column(0)[0])


VIEWS = {"Overview": "views/overview.py", "Challenges & channels": "views/challenges.py",
         "Experiments": "views/experiments.py", "Risk & signals": "views/risk.py",
         "Audit explorer": "views/audit_explorer.py", "Audit explorer, one user": "views/audit_explorer.py"}


def render_seconds(root: Path, view: str, params: dict[str, str] | None = None) -> tuple[float, float]:
    """(cold: every cache cleared, warm: the same page again within the cache TTL); ``params``
    are the page's URL query parameters (the explorer's filters)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["RISKENGINE_AUDIT_ROOT"] = str(root)
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=300)
    at.run()  # the default page, so switch_page knows the registered pages
    st.cache_data.clear()
    st.cache_resource.clear()
    at.switch_page(view)
    for name, value in (params or {}).items():
        at.query_params[name] = value
    started = time.perf_counter()
    at.run()
    cold = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"{view}: {at.exception[0].value}")
    started = time.perf_counter()
    at.run()
    return cold, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--no-rollups", action="store_true", help="measure raw scans (ignore any rollups)")
    parser.add_argument("--repeat", type=int, default=3, help="take the best of this many runs")
    parser.add_argument("--calls", action="store_true", help="also time every AuditDB call on its own")
    parser.add_argument("--pages", nargs="*", help="only these pages (default: all)")
    parser.add_argument("--explorer", action="store_true",
                        help="also time each explorer filter (events, user_events) on its own")
    parser.add_argument("--generate-only", action="store_true", help="write (or resume writing) the root, then stop")
    args = parser.parse_args()
    have = decision_rows(args.root)
    if have < args.rows or progress_dir(args.root).exists() and not _complete(args.root):
        if have and not progress_dir(args.root).exists():
            raise SystemExit(f"{args.root} holds {have:,} decisions (< {args.rows:,}); remove it or pass --root")
        t0 = time.perf_counter()
        generate(args.root, args.rows)
        print(f"generated in {time.perf_counter() - t0:.0f} s, peak RSS {_peak_rss_mb():,.0f} MB", flush=True)
        have = decision_rows(args.root)
    if args.generate_only:
        print(f"{args.root}: {have:,} decisions")
        return 0
    if args.no_rollups:
        os.environ[ROLLUPS_ENV] = "0"
    else:
        started = time.perf_counter()
        built = build_rollups(args.root)
        print(f"rollups: {len(built.built)} months built, {built.current} already current, "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    db = AuditDB(args.root)
    span = db.date_range()
    assert span is not None
    first, last = span[0].astimezone(UTC).date(), span[1].astimezone(UTC).date()
    f = Filters(since=datetime.combine(first, datetime.min.time(), UTC),
                until=datetime.combine(last, datetime.min.time(), UTC) + timedelta(days=1))
    if args.calls:
        crows = []
        for name in each_call(db, f):
            best = float("inf")
            for _ in range(args.repeat):
                fresh = AuditDB(args.root)  # no per-instance caches carried over
                started = time.perf_counter()
                each_call(fresh, f)[name]()
                best = min(best, time.perf_counter() - started)
                fresh.close()
            crows.append({"AuditDB call": name, "s": round(best, 2)})
            print(f"  {name}: {best:.2f} s", flush=True)
        print(table(crows, f"AuditDB calls, {have:,} decisions, all dates, "
                           f"{'raw' if args.no_rollups else 'rollups'}; {load_note()}"))
    if args.explorer:
        user = a_user_key(args.root)
        erows = []
        for name in explorer_calls(db, f, user):
            best, best_cpu, found = float("inf"), float("inf"), 0
            for _ in range(args.repeat):
                fresh = AuditDB(args.root)
                started, cpu = time.perf_counter(), time.process_time()
                found = explorer_calls(fresh, f, user)[name]().height
                best, best_cpu = min(best, time.perf_counter() - started), min(best_cpu, time.process_time() - cpu)
                reads = fresh.explorer_reads
                fresh.close()
            erows.append({"explorer": name, "rows": found, "s": round(best, 2), "CPU s": round(best_cpu, 2),
                          "segments read": f"{reads[0]} of {reads[1]}"})
            print(f"  {name}: {best:.2f} s, {best_cpu:.2f} s CPU, {found} rows, segments {reads}", flush=True)
        print(table(erows, f"explorer filters, {have:,} decisions, fresh AuditDB each, best of {args.repeat}; "
                           f"{load_note()}"))
    user = a_user_key(args.root)
    rows = []
    for page in page_calls(db, f, user):
        if args.pages and page not in args.pages:
            continue
        analytics_s = analytics_cpu = cold_s = warm_s = float("inf")
        for _ in range(args.repeat):
            fresh = AuditDB(args.root)  # cold: no listing or probe carried over from another page
            calls = page_calls(fresh, f, user)[page]
            started, cpu = time.perf_counter(), time.process_time()
            calls()
            analytics_s = min(analytics_s, time.perf_counter() - started)
            analytics_cpu = min(analytics_cpu, time.process_time() - cpu)
            fresh.close()
            cold, warm = render_seconds(args.root, VIEWS[page], {"user": user} if page.endswith("one user") else None)
            cold_s, warm_s = min(cold_s, cold), min(warm_s, warm)
        rows.append({"page": page, "analytics calls s (incl. sidebar)": round(analytics_s, 2),
                     "their CPU s (all threads)": round(analytics_cpu, 2),
                     "render s, cold cache": round(cold_s, 2), "render s, warm (< 30 s)": round(warm_s, 2),
                     "cold < 1 s": "ok" if cold_s < 1 else "SLOW"})
    mode = "raw segments only" if args.no_rollups else "with rollups"
    print(table(rows, f"dashboard pages on {have:,} decision events ({first} … {last}, all dates selected), "
                      f"{mode}, best of {args.repeat}; {load_note()}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
