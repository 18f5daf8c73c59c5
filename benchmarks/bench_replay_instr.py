"""A one-worker replay's CPU instructions per login (valgrind): a figure other jobs on a shared
machine cannot move, for A/B of two checkouts on the same input.

    PYTHONPATH=<checkout> python benchmarks/bench_replay_instr.py IN [--fixed FIXED]

Counts ``riskengine replay IN --format rba --out … --workers 1`` under ``valgrind
--tool=callgrind`` (hash randomisation off, polars and Arrow on one thread), and the same for
the first 10 rows of IN (the imports, engine set-ups and file handling, which a real replay
pays once); prints both and the difference per login. ``--fixed N`` reuses a known count for
the 10-row run. IN should be a few thousand rows with whole user histories (e.g. every 64th
user of a file): valgrind runs ~50× slower than the replay. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def instructions(path: Path, work: Path) -> tuple[int, int]:
    env = {**os.environ, "PYTHONHASHSEED": "0", "POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m", "riskengine",
         "replay", str(path), "--format", "rba", "--out", str(work / "o.parquet"), "--workers", "1",
         "--no-progress", "--json"], env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(found.group(1)), int(json.loads(out.stdout)["logins"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", type=Path)
    ap.add_argument("--fixed", type=int, help="the 10-row run's count, if already known")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tiny = work / "tiny.csv"
        with open(args.path, encoding="utf-8") as src, open(tiny, "w", encoding="utf-8") as dst:
            for k, line in enumerate(src):
                if k > 10:
                    break
                dst.write(line)
        whole, logins = instructions(args.path, work)
        fixed = args.fixed if args.fixed is not None else instructions(tiny, work)[0]
    print(f"whole run {whole:,} instructions, 10-row run {fixed:,}, {logins:,} logins: "
          f"{(whole - fixed) / logins:,.0f} instructions per login")


if __name__ == "__main__":
    main()
