"""When the CLI re-executes itself on huge pages, and with what."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from riskengine import cli
from riskengine.hugepages import huge_page_env


def _thp(tmp_path: Path, mode: str) -> Path:
    path = tmp_path / "enabled"
    path.write_text(mode + "\n")
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and THP are Linux")
def test_env_asks_glibc_for_huge_pages_when_the_kernel_offers_them(tmp_path: Path) -> None:
    for mode in ("always [madvise] never", "[always] madvise never"):
        env = huge_page_env({"PATH": "/bin"}, _thp(tmp_path, mode))
        assert env == {"PATH": "/bin", "PYTHONMALLOC": "malloc", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    kept = huge_page_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, _thp(tmp_path, "[madvise]"))
    assert kept is not None and kept["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    mine = huge_page_env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, _thp(tmp_path, "[madvise]"))
    assert mine is not None and mine["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0"  # the user's choice


def test_env_changes_nothing_when_off_chosen_or_unavailable(tmp_path: Path) -> None:
    madvise = _thp(tmp_path, "always [madvise] never")
    assert huge_page_env({"RISKENGINE_HUGEPAGES": "0"}, madvise) is None
    assert huge_page_env({"RISKENGINE_HUGEPAGES": "off"}, madvise) is None
    assert huge_page_env({"PYTHONMALLOC": "pymalloc"}, madvise) is None  # also: no re-exec loop
    assert huge_page_env({}, _thp(tmp_path, "always madvise [never]")) is None
    assert huge_page_env({}, tmp_path / "no-such-file") is None


def test_only_a_real_command_line_for_a_batch_command_re_executes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def execve(path: str, args: list[str], env: dict[str, str]) -> Any:
        calls.append((path, args, env))
        raise OSError("stop here")  # the CLI then runs in this process, as documented

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr("riskengine.hugepages.huge_page_env", lambda env: {"PYTHONMALLOC": "malloc"})
    monkeypatch.setattr(sys, "argv", ["riskengine", "-v", "replay", "--help"])
    with pytest.raises(SystemExit):  # --help, after the (failed) re-exec
        cli.main()
    assert calls == [(sys.executable, [sys.executable, "-m", "riskengine", "-v", "replay", "--help"],
                      {"PYTHONMALLOC": "malloc"})]
    calls.clear()
    with pytest.raises(SystemExit):
        cli.main(["replay", "--help"])  # called by a program: never replaces that program
    monkeypatch.setattr(sys, "argv", ["riskengine", "report", "--help"])
    with pytest.raises(SystemExit):
        cli.main()  # not a long batch command
    assert calls == []


def test_a_re_executed_replay_runs_to_the_end(tmp_path: Path) -> None:
    csv = tmp_path / "logins.csv"
    csv.write_text(
        "index,Login Timestamp,User ID,IP Address,User Agent String,Login Successful,Country\n"
        "7,2026-03-02 09:00:00,u1,81.2.69.160,Mozilla/5.0,True,GB\n"
        "8,2026-03-02 09:05:00,u1,81.2.69.160,Mozilla/5.0,True,GB\n")
    out = tmp_path / "d.parquet"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONMALLOC", "RISKENGINE_HUGEPAGES")}
    done = subprocess.run([sys.executable, "-m", "riskengine", "replay", str(csv), "--format", "rba",
                           "--out", str(out), "--no-baseline", "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "replayed 2 rows" in done.stdout
    assert out.exists()
