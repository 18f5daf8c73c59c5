"""AuditDB on an ``s3://`` root: how DuckDB should read object storage without httpfs (printed,
never asserted).

A synthetic audit root (bench_audit.generate: the real schema, 20 months) is uploaded to a
moto S3 server on loopback. Then the same queries run three ways:

- ``local``: read_parquet over the local files (the reference);
- ``fsspec``: what AuditDB does on s3:// roots: pyarrow's S3 client wrapped in fsspec and
  registered with DuckDB (``duckdb.register_filesystem``), read_parquet over the object paths;
- ``arrow``: a pyarrow dataset over the same objects (pyarrow's S3 client), scanned by DuckDB
  as an Arrow object (filter and projection pushdown into the Arrow scanner).

and every dashboard query through AuditDB, local root vs s3 root, each from raw segments only
and with the rollups ``riskengine audit compact`` builds (``build_rollups``, on the local root
and on the bucket, timed; a column "rollups" says whether the planner answered the query from
them on S3). moto is a Python server:
absolute figures over real S3 differ (network latency per request, much higher bandwidth
per connection); the comparison between the access paths is what this measures.

With ``--cold``, instead of the medians: each query once on a new AuditDB over the S3 root
(what the first render of a page pays: manifests and rollup parts fetched, objects opened),
raw and with rollups.

``python benchmarks/bench_s3.py [--rows N] [--repeat K] [--skip-access-paths] [--cold]``
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _util import load_note, table  # noqa: E402
from bench_audit import dashboard_queries, generate  # noqa: E402

from riskengine.analytics import AuditDB, Filters  # noqa: E402
from riskengine.analytics._objectstore import duck_path, register  # noqa: E402
from riskengine.analytics.rollups import build_rollups  # noqa: E402
from riskengine.audit.objectstore import S3Root  # noqa: E402


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="median of this many runs per query")
    parser.add_argument("--skip-access-paths", action="store_true",
                        help="skip the local / fsspec / Arrow dataset comparison (first table)")
    parser.add_argument("--cold", action="store_true",
                        help="time each query once on a new AuditDB over the S3 root (raw, rollups)")
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_EC2_METADATA_DISABLED": "true"})
    local = REPO / "var" / "bench" / f"s3-audit-{args.rows}"
    if not (local / "decisions").is_dir():  # generated once, kept under var/ (not committed)
        t = time.perf_counter()
        generate(local, args.rows)
        print(f"generated {args.rows:,} decisions in {time.perf_counter() - t:.1f} s; {load_note()}")
    import pyarrow.fs as pafs

    pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True).create_dir("bench")
    store = S3Root.parse("s3://bench/audit")
    t = time.perf_counter()
    size = 0
    rels = []
    for path in sorted(local.rglob("*.parquet")):
        rel = path.relative_to(local).as_posix()
        if not rel.startswith("_"):
            data = path.read_bytes()
            store.put(rel, data)
            size += len(data)
            rels.append(rel)
    print(f"uploaded {len(rels)} objects, {size / 1e6:.0f} MB, in {time.perf_counter() - t:.1f} s")

    dec = [r for r in rels if r.startswith("decisions/")]
    month = [r for r in dec if "year=2025/month=06" in r]
    user = duckdb.sql(f"SELECT user_key FROM read_parquet('{local / dec[0]}') LIMIT 1").fetchall()[0]
    sqls = {
        "count by action, all": "SELECT action, count(*) FROM {src} GROUP BY action",
        "count by action, 1 month": "SELECT action, count(*) FROM {src} GROUP BY action",
        "one user's rows": f"SELECT * FROM {{src}} WHERE user_key = '{user[0]}' ORDER BY event_time DESC LIMIT 50",
    }
    files = {"count by action, all": dec, "count by action, 1 month": month, "one user's rows": dec}
    import pyarrow.dataset as ds

    rows = []
    for name, sql in sqls.items() if not args.skip_access_paths else ():
        rel = files[name]
        con = duckdb.connect()
        register(con, store)
        local_src = "read_parquet([" + ", ".join(f"'{local / r}'" for r in rel) + "])"
        s3_src = "read_parquet([" + ", ".join(f"'{duck_path(store, r)}'" for r in rel) + "])"
        dataset = ds.dataset([store.path(r) for r in rel], filesystem=store.fs, format="parquet")  # noqa: F841
        con.register("arrow_src", dataset)
        results = {}
        for how, src in (("local", local_src), ("fsspec", s3_src), ("arrow", "arrow_src")):
            results[how] = median_seconds(lambda src=src, con=con, sql=sql: con.execute(sql.format(src=src)).fetchall(),
                                          args.repeat)
        rows.append({"query": name, "files": len(rel), **{f"{k} s": v for k, v in results.items()}})
        con.close()
    if rows:
        print(table(rows, "DuckDB over the same Parquet objects: local files, fsspec-registered S3, Arrow dataset"))

    for where, root in (("local", local), ("s3", store)):
        t = time.perf_counter()
        built = build_rollups(root)
        print(f"rollups on {where}: built {len(built.built)} months ({built.current} already current) "
              f"in {time.perf_counter() - t:.1f} s", flush=True)
    f = Filters()
    if args.cold:
        cold = []
        for qname in dashboard_queries(AuditDB(local), f):
            row_c: dict[str, object] = {"query": qname}
            for how, use in (("s3 raw", False), ("s3 rollups", True)):
                db = AuditDB(store)
                db.use_rollups = use
                t = time.perf_counter()
                dashboard_queries(db, f)[qname]()
                row_c[f"{how} cold s"] = time.perf_counter() - t
                db.close()
            cold.append(row_c)
            print(row_c, flush=True)
        print(table(cold, f"AuditDB on S3, first call on a new reader, {args.rows:,} decisions; {load_note()}"))
        server.stop()
        return 0
    out = []
    dbs = {"local raw": AuditDB(local), "local rollups": AuditDB(local), "s3 raw": AuditDB(store),
           "s3 rollups": AuditDB(store)}
    for how, db in dbs.items():
        db.use_rollups = how.endswith("rollups")
    names = list(dashboard_queries(dbs["local raw"], f))
    for qname in names:
        row: dict[str, object] = {"query": qname}
        for how, db in dbs.items():
            before = db.rollup_plans
            row[f"{how} s"] = median_seconds(dashboard_queries(db, f)[qname], args.repeat)
            if how == "s3 rollups":
                row["rollups"] = "yes" if db.rollup_plans > before else "no"
        out.append(row)
        print(row, flush=True)
    print(table(out, f"AuditDB, whole range, raw segments and with rollups, {args.rows:,} decisions; {load_note()}"))
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
