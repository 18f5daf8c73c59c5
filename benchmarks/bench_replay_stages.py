"""Where a one-worker replay's CPU goes, stage by stage (CPU seconds of this process).

    python benchmarks/bench_replay_stages.py IN [--no-wrap]

Runs what ``riskengine replay IN --format rba --out OUT --workers 1`` runs (the same
``replay_partitioned``, in this process), with ``time.process_time()`` accumulators around
its stages: the imports, the pre-pass and scatter, each partition's engine set-up, reading
chunks and writing outputs, the per-login loop and, inside it, ``Engine.score_validated``;
then the gather and the budget post-pass. The per-call accumulator around
``score_validated`` costs about a microsecond per login itself (``--no-wrap`` leaves it out:
the loop's total is then the clean figure). Printed, never asserted; print ``uptime`` with it.
"""

from __future__ import annotations

import time

_T0 = time.process_time()

import argparse  # noqa: E402
import functools  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from riskengine.core.engine import Engine  # noqa: E402
from riskengine.offline import parallel, replay  # noqa: E402

IMPORTS = time.process_time() - _T0
spent: dict[str, float] = defaultdict(float)


def timed(owner: Any, name: str, label: str) -> None:
    fn: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] += time.process_time() - t

    setattr(owner, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--no-wrap", action="store_true", help="no accumulator around each score_validated")
    args = ap.parse_args()
    timed(parallel, "scatter", "pre-pass + scatter")
    timed(parallel, "replay_partition", "partitions (all)")
    timed(replay.Replayer, "run_batch", "run_batch")
    timed(replay.Replayer, "_run_rba", "per-login loop")
    timed(parallel, "gather", "gather")
    timed(parallel, "budget_post_pass", "budget post-pass")
    timed(Engine, "__init__", "engine set-up")
    if not args.no_wrap:
        timed(Engine, "score_validated", "score_validated")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.process_time()
        stats, _ = parallel.replay_partitioned(args.path, "rba", Path(tmp) / "o.parquet", workers=1)
        whole = time.process_time() - t
    n = stats.logins
    print(f"{stats.rows} rows, {n} logins; CPU s (µs per login)")
    print(f"  imports                 {IMPORTS:7.2f}")
    print(f"  replay_partitioned      {whole:7.2f}  ({whole / n * 1e6:6.1f})")
    for label in ("pre-pass + scatter", "partitions (all)", "engine set-up", "run_batch", "per-login loop",
                  "score_validated", "gather", "budget post-pass"):
        if label in spent:
            print(f"  {label:22s}  {spent[label]:7.2f}  ({spent[label] / n * 1e6:6.1f})")
    loop = spent["per-login loop"]
    if "score_validated" in spent:
        print(f"  loop minus score        {loop - spent['score_validated']:7.2f}  "
              f"({(loop - spent['score_validated']) / n * 1e6:6.1f})")
    parts = spent["partitions (all)"] - spent["run_batch"]
    print(f"  partitions minus batches {parts:6.2f}  (engine set-up, chunk reads, output writes)")
    print(f"  run_batch minus loop    {spent['run_batch'] - loop:7.2f}  (columns to lists, output arrays)")
    print(f"  rest of replay_partitioned {whole - spent['pre-pass + scatter'] - spent['partitions (all)']:5.2f}")


if __name__ == "__main__":
    sys.exit(main())
