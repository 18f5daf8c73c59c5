"""Run long batch commands (replay, evaluate, demo…) on transparent huge pages.

Replaying logins walks a heap of hundreds of MB of small Python objects (profiles, caches)
in an order no cache predicts, and on a virtual machine every TLB miss is a two-level page
walk: measured on the 725k-row benchmark, the per-login work was bounded by that, not by any
one function. CPython's own allocator takes 1 MiB arenas from ``mmap`` without asking for huge
pages; glibc's ``malloc`` does when its ``glibc.malloc.hugetlb=1`` tunable is set (glibc 2.35+,
kernel THP in ``madvise`` or ``always`` mode). Both are read only at process start, so the CLI
re-executes itself once with ``PYTHONMALLOC=malloc`` and that tunable.

``RISKENGINE_HUGEPAGES=0`` turns this off; a ``PYTHONMALLOC`` already set is left alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

THP_SETTING: Final = Path("/sys/kernel/mm/transparent_hugepage/enabled")
TUNABLE: Final = "glibc.malloc.hugetlb=1"
SWITCH: Final = "RISKENGINE_HUGEPAGES"


def huge_page_env(env: Mapping[str, str], thp_setting: Path = THP_SETTING) -> dict[str, str] | None:
    """The environment to re-execute with, or None when it would change nothing (turned off,
    an allocator already chosen, not Linux, or the kernel's THP is ``never``/absent).

    >>> huge_page_env({"RISKENGINE_HUGEPAGES": "0"}) is None
    True
    >>> huge_page_env({"PYTHONMALLOC": "pymalloc"}) is None
    True
    """
    if env.get(SWITCH, "1").strip().lower() in ("0", "false", "no", "off") or "PYTHONMALLOC" in env:
        return None
    if not sys.platform.startswith("linux"):
        return None
    try:
        mode = thp_setting.read_text()
    except OSError:
        return None
    if "[always]" not in mode and "[madvise]" not in mode:
        return None
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb=" not in tunables:
        tunables = f"{tunables}:{TUNABLE}" if tunables else TUNABLE
    return {**env, "PYTHONMALLOC": "malloc", "GLIBC_TUNABLES": tunables}


def reexec_on_huge_pages(argv: list[str]) -> None:
    """Replace this process with ``python -m riskengine *argv`` on huge pages, when that
    applies; returns (and the command runs here) otherwise. Only for a real command line:
    never from inside another program that called :func:`riskengine.cli.main`."""
    env = huge_page_env(os.environ)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", "riskengine", *argv], env)
    except OSError:
        return  # cannot re-execute (no executable path?): run as we are
