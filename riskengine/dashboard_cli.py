"""``riskengine dashboard --root DIR [--port N] [--labels PATH] [--config TOML]``: start the Streamlit app.

The app lives in the repository's top-level ``dashboard/`` folder (beside the package, not
inside it), so this command works from a source checkout or an editable install
(``pip install -e .``), which is how the project is run. A wheel installed elsewhere has no
``dashboard/`` and gets a clear error naming the path it looked for.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import riskengine

DEFAULT_PORT = 8501
APP_ENV = "RISKENGINE_DASHBOARD_APP"


def app_path() -> Path:
    """``<repo>/dashboard/app.py`` next to the ``riskengine`` package (or ``$RISKENGINE_DASHBOARD_APP``)."""
    override = os.environ.get(APP_ENV)
    path = Path(override) if override else Path(riskengine.__file__).resolve().parents[1] / "dashboard" / "app.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"dashboard app not found at {path}: `riskengine dashboard` runs from a source checkout or an "
            f"editable install (pip install -e .), or set {APP_ENV} to the path of dashboard/app.py")
    return path


def build_command(root: str, port: int = DEFAULT_PORT, labels: str | None = None,
                  address: str = "127.0.0.1", config: str | None = None) -> list[str]:
    """The ``python -m streamlit run …`` argv; arguments after ``--`` reach the app itself."""
    if not 0 < port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {port}")
    if labels is not None and not Path(labels).is_file():
        raise FileNotFoundError(f"--labels file not found: {labels}")
    if config is not None and not Path(config).is_file():
        raise FileNotFoundError(f"--config file not found: {config}")
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.port", str(port), "--server.headless", "true", "--server.address", address,
        "--browser.gatherUsageStats", "false",
        "--", "--root", str(Path(root).expanduser().resolve()),
    ]
    if labels is not None:
        command += ["--labels", str(Path(labels).expanduser().resolve())]
    if config is not None:
        command += ["--config", str(Path(config).expanduser().resolve())]
    return command


def _run(args: argparse.Namespace) -> int:
    command = build_command(args.root, args.port, args.labels, args.address, args.config)
    if not Path(args.root).exists():
        print(f"riskengine dashboard: note: {args.root} does not exist yet; the dashboard shows an empty "
              "state until the engine writes there", file=sys.stderr)
    print(f"riskengine dashboard: http://{args.address}:{args.port}/", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)  # replaces this process: Ctrl-C goes straight to Streamlit


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dashboard", help="start the Streamlit dashboard on an audit root",
        description="Start the Streamlit dashboard (Overview, Challenges & channels, Experiments, "
                    "Risk & signals, Audit explorer) on an audit root.")
    parser.add_argument("--root", required=True, help="audit log root folder (Engine audit.root)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port")
    parser.add_argument("--labels", default=None,
                        help="optional labels file (CSV/Parquet: decision_id, is_attack) for the what-if catch rate "
                             "(default: none)")
    parser.add_argument("--config", default=None,
                        help="riskengine TOML the engine runs with: the what-if slider starts at its "
                             "policy.challenge_threshold (default: built-in settings + RISKENGINE_* env)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="interface to listen on (0.0.0.0 exposes the audit data to the network)")
    parser.set_defaults(func=_run)
