"""Per-module mutmut figures from ``mutants/**/*.meta`` (after ``mutmut run``), as the markdown
table docs/testing.md shows: mutants, killed, survived, not tested, score, and the summed test
time of the module's mutants (with ``--max-children 1`` that is its share of the wall time).

    python scripts/mutation_table.py riskengine/core/profile.py riskengine/core/signals/rtt.py ...

Usage: run from the directory holding ``mutants/``; modules are source paths.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KILLED = {1, 3}
SURVIVED = {0}
NO_TESTS = {5, 33}


def row(module: str) -> str:
    meta = Path("mutants") / f"{module}.meta"
    data = json.loads(meta.read_text())
    codes: dict[str, int | None] = data["exit_code_by_key"]
    durations: dict[str, float] = data.get("durations_by_key", {})
    killed = sum(1 for c in codes.values() if c in KILLED)
    survived = sum(1 for c in codes.values() if c in SURVIVED)
    untested = sum(1 for c in codes.values() if c in NO_TESTS)
    other = len(codes) - killed - survived - untested
    tested = killed + survived
    score = f"{100.0 * killed / tested:.1f} %" if tested else "–"
    seconds = sum(durations.get(k, 0.0) for k in codes)
    extra = f" ({other} not checked/other)" if other else ""
    return (f"| {module.removeprefix('riskengine/core/')} | {len(codes)} | {killed} | {survived}{extra} | "
            f"{untested} | {score} | {seconds / 60:.1f} min |")


def main(modules: list[str]) -> None:
    print("| module | mutants | killed | survived | no tests | score (killed / tested) | test time |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for module in modules:
        print(row(module))


if __name__ == "__main__":
    main(sys.argv[1:])
