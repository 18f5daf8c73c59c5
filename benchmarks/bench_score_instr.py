"""score() per call in CPU instructions (valgrind): a figure the other jobs on a shared machine
cannot move, for comparing two commits when wall-clock and CPU-time medians are noise.

Same engine and login mix as bench_score.py (memory store, null sink), 1,000 users (6 days of
history, 500 warm-up logins), then N probe calls. The figure is the difference of two runs
under ``valgrind --tool=callgrind`` (N = 4,000 and N = 0) divided by 4,000: the import,
set-up and history are the same in both and cancel out. Hash randomisation is off so both
runs do the same dict work. About 2 CPU minutes per commit (valgrind runs ~50× slower).

    PYTHONPATH=<checkout> python benchmarks/bench_score_instr.py            # the figure
    PYTHONPATH=<checkout> python benchmarks/bench_score_instr.py --calls N  # one run, no valgrind
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

USERS = 1_000
PROBE = 4_000


def run(calls: int) -> None:
    import bench_score as b

    from riskengine import LoginAttempt

    b.USERS = USERS  # the probe's logins are drawn from the same users as the history
    engine = b.build("memory://")
    for day in range(6):
        for u in range(USERS):
            engine.score(LoginAttempt(user_id=f"user-{u}", timestamp=b.T0 + timedelta(days=day, seconds=u),
                                      ip=b.IPS[u % len(b.IPS)], user_agent=b.UAS[u % 3]))
    for a in b.attempts(random.Random(8), 500, day=6):
        engine.score(a)
    probe = b.attempts(random.Random(7), PROBE, day=7)
    score = engine.score
    for a in probe[:calls]:
        score(a)
    engine.close()


def instructions(calls: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0",
           "RISKENGINE_TRUST_SECRET_KEYS": os.environ.get("RISKENGINE_TRUST_SECRET_KEYS", "k" * 40)}
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--calls", str(calls)], env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="one run of N probe calls (what valgrind runs)")
    args = parser.parse_args()
    if args.calls is not None:
        run(args.calls)
        return
    if shutil.which("valgrind") is None:
        print("bench_score_instr: needs valgrind (apt-get install valgrind); skipped")
        return
    base, full = instructions(0), instructions(PROBE)
    print(f"score(): {(full - base) / PROBE:,.0f} instructions per call "
          f"({USERS:,} users, {PROBE:,} calls; callgrind totals {base:,} / {full:,})")


if __name__ == "__main__":
    main()
