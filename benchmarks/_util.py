"""Small helpers shared by the benchmark scripts: percentiles, table printing, audit roots."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def time_each(fn: Callable[[T], object], items: Iterable[T]) -> tuple[list[int], float]:
    """Call ``fn`` on every item with the garbage collector off; per-call ns and total seconds."""
    samples: list[int] = []
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    try:
        for item in items:
            t = time.perf_counter_ns()
            fn(item)
            samples.append(time.perf_counter_ns() - t)
    finally:
        elapsed = time.perf_counter() - started
        gc.enable()
    return samples, elapsed


def percentiles_us(samples_ns: Sequence[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] / 1000.0

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p99.9": at(0.999),
            "mean": statistics.fmean(ordered) / 1000.0}


def table(rows: list[dict[str, object]], title: str) -> str:
    if not rows:
        return f"{title}: no rows"
    cols = list(rows[0])
    cells = [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = [title, "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def load_note() -> str:
    """How busy the machine was: figures from a loaded VM read differently."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def decision_rows(root: Path) -> int:
    """Decision events in an audit root, from the Parquet footers (no data pages read)."""
    import duckdb

    files = sorted(str(p) for p in (Path(root) / "decisions").glob("*/*/*.parquet"))
    if not files:
        return 0
    with duckdb.connect() as con:
        rows = con.sql("SELECT sum(num_rows) FROM parquet_file_metadata($f)", params={"f": files}).fetchall()
    return int(rows[0][0] or 0)
