"""Instruction counts of replay's stages under ``valgrind --tool=callgrind`` (load-proof).

    python benchmarks/bench_prepass.py IN --format rba [--stage import|prepass|replay] [--code DIR]
    python benchmarks/bench_prepass.py IN --format rba --cpu [--code DIR]   # no valgrind

Without ``--stage``: runs each stage in a fresh process under callgrind (polars on one
thread, so the count does not depend on scheduling) and prints the instructions of the
pre-pass (``prepass`` − ``import``) and of the per-user replay (``replay`` − ``prepass``),
per input row. ``--code DIR`` puts another checkout's ``riskengine`` first on the path (to
compare before/after on the same input). ``--cpu``: the CPU seconds (all threads) of the
pre-pass + scatter alone instead, in this process, the UA resolver warmed first — cheap, but
CPU time still suffers from a loaded machine's cache contention. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _stage(stage: str, path: str, fmt: str) -> None:
    from riskengine.offline.parallel import replay_partition, scatter
    from riskengine.offline.replay import _settings

    settings = _settings(None, None, None)
    if stage == "import":
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "in").mkdir()
        (work / "out").mkdir()
        scatter(Path(path), fmt, settings, work, baseline=True, partitions=4, batch_rows=65_536)
        if stage == "replay":
            outcomes = "labels" if fmt == "rba" else "simulated"
            for p in range(4):
                replay_partition(p, str(work), fmt, outcomes, settings, True, 65_536)


def _cpu_seconds(path: str, fmt: str) -> float:
    import time

    from riskengine.core.engine import Engine
    from riskengine.offline.parallel import scatter
    from riskengine.offline.replay import _settings

    settings = _settings(None, None, None)
    with Engine(settings) as engine:
        engine.ua.parse("Mozilla/5.0")  # the resolver's one-off compile, outside the timing
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "in").mkdir()
        (work / "out").mkdir()
        started = time.process_time()
        scatter(Path(path), fmt, settings, work, baseline=True, partitions=16, batch_rows=65_536)
        return time.process_time() - started


def _instructions(stage: str, path: str, fmt: str, code: str | None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        env = dict(os.environ, POLARS_MAX_THREADS="1", PYTHONHASHSEED="0")
        if code:
            env["PYTHONPATH"] = code + os.pathsep + env.get("PYTHONPATH", "")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                        path, "--format", fmt, "--stage", stage], check=True, env=env, capture_output=True)
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path")
    parser.add_argument("--format", default="rba", choices=["rba", "native"])
    parser.add_argument("--stage", choices=["import", "prepass", "replay"])
    parser.add_argument("--code", default=None, help="a checkout whose riskengine to measure")
    parser.add_argument("--cpu", action="store_true", help="CPU seconds of the pre-pass instead (no valgrind)")
    args = parser.parse_args()
    if args.cpu and args.code:
        env = dict(os.environ, PYTHONPATH=args.code + os.pathsep + os.environ.get("PYTHONPATH", ""))
        subprocess.run([sys.executable, __file__, args.path, "--format", args.format, "--cpu"], check=True, env=env)
        return
    if args.cpu:
        print(f"pre-pass + scatter: {_cpu_seconds(args.path, args.format):.2f} CPU s")
        return
    if args.stage:
        _stage(args.stage, args.path, args.format)
        return
    import polars as pl

    scan = pl.scan_csv(args.path) if args.format == "rba" else pl.scan_parquet(args.path)
    rows = scan.select(pl.len()).collect().item()
    counts = {s: _instructions(s, args.path, args.format, args.code) for s in ("import", "prepass", "replay")}
    prepass = counts["prepass"] - counts["import"]
    replay = counts["replay"] - counts["prepass"]
    print(f"{args.path}: {rows:,} rows ({args.code or 'this checkout'})")
    print(f"  pre-pass + scatter  {prepass:>16,} instructions  {prepass / rows:>10,.0f} per row")
    print(f"  partition replay    {replay:>16,} instructions  {replay / rows:>10,.0f} per row")
    print(f"  (import + settings  {counts['import']:>16,})")


if __name__ == "__main__":
    main()
