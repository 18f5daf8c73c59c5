"""Installed size of each install profile, measured in fresh virtual environments.

    python scripts/install_sizes.py [--out DIR] [--profiles core,redis,...]

Builds the wheel (``pip wheel --no-deps``), then for each profile creates a fresh venv,
installs that wheel with the profile's extras (dependencies from the package index) and
measures ``du`` of its site-packages. Prints a Markdown table for docs/install-sizes.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROFILES: dict[str, str] = {
    "core": "",
    "core+redis": "[redis]",
    "audit": "[audit]",
    "analytics": "[analytics]",
    "dashboard": "[dashboard]",
    "all": "[all]",
}
"""Profile name → extras, installed as ``<wheel file>[extras]`` (never a riskengine from the index)."""
BOOTSTRAP = ("pip", "setuptools", "_distutils_hack", "distutils-precedence.pth")
"""What ``python -m venv`` puts in every site-packages (not riskengine's doing)."""
HEAVY = ("polars", "pyarrow", "duckdb", "scikit-learn", "scipy", "streamlit", "numpy", "pandas", "matplotlib")


def build_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)], check=True)
    (wheel,) = out.glob("riskengine-*.whl")
    return wheel


def du_bytes(path: Path) -> int:
    """Disk usage like ``du -sb`` (apparent sizes, each file once)."""
    out = subprocess.run(["du", "-sb", str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


@dataclass(frozen=True)
class Measured:
    profile: str
    requirement: str
    total: int
    without_bootstrap: int
    distributions: int
    heavy: tuple[str, ...]


def measure(profile: str, extras: str, wheel: Path, work: Path) -> Measured:
    env = work / profile
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    python = env / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{wheel}{extras}"],
                   check=True)
    (site,) = (env / "lib").glob("python3*/site-packages")
    total = du_bytes(site)
    bootstrap = sum(du_bytes(p) for p in site.iterdir() if p.name.split("-")[0] in BOOTSTRAP)
    listing = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                             check=True, capture_output=True, text=True).stdout.split()
    names = sorted(line.split("==")[0].lower() for line in listing)
    dists = [n for n in names if n not in ("pip", "setuptools")]
    heavy = tuple(h for h in HEAVY if h in names)
    return Measured(profile, f"riskengine{extras}", total, total - bootstrap, len(dists), heavy)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="folder for the venvs (default: a temporary folder)")
    parser.add_argument("--profiles", default=",".join(PROFILES),
                        help=f"comma-separated profiles (default {','.join(PROFILES)})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="riskengine-sizes-") as tmp:
        work = Path(args.out) if args.out else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        wheel_dir = work / "wheel"
        wheel_dir.mkdir(exist_ok=True)
        for old in wheel_dir.glob("*.whl"):
            old.unlink()
        wheel = build_wheel(wheel_dir)
        print(f"Python {sys.version.split()[0]}")
        print("| profile | `pip install` | site-packages | without pip/setuptools | distributions | heavy packages |")
        print("|---|---|---:|---:|---:|---|")
        for profile in args.profiles.split(","):
            r = measure(profile, PROFILES[profile], wheel, work)
            print(f"| {profile} | `{r.requirement}` | {r.total / 1e6:.0f} MB | {r.without_bootstrap / 1e6:.0f} MB "
                  f"| {r.distributions} | {', '.join(r.heavy) or 'none'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
