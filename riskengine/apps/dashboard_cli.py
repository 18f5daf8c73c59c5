"""``riskengine dashboard --root DIR [--port N] [--labels PATH] [--config TOML]``: start the Streamlit app.

The app's source is the repository's top-level ``dashboard/`` folder; the wheel ships it as
the package ``riskengine.dashboard_app`` (mapped at build time), so the command works from a
source checkout, an editable install and ``pip install "riskengine[dashboard]"`` alike. It
needs the ``[dashboard]`` extra (Streamlit, Altair and the analytics layer).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import riskengine
from riskengine._extras import require

INSTALLED_PACKAGE = "riskengine.dashboard_app"
"""Where the wheel puts the ``dashboard/`` folder."""

DEFAULT_PORT = 8501
APP_ENV = "RISKENGINE_DASHBOARD_APP"


def app_path() -> Path:
    """The Streamlit entry point: ``$RISKENGINE_DASHBOARD_APP`` if set; else ``dashboard/app.py``
    of the source checkout this ``riskengine`` package belongs to; else the installed
    ``riskengine/dashboard_app/app.py``."""
    override = os.environ.get(APP_ENV)
    if override:
        path = Path(override)
    else:
        package = Path(riskengine.__file__).resolve().parent
        checkout = package.parent
        if (checkout / "pyproject.toml").is_file() and (checkout / "dashboard" / "app.py").is_file():
            path = checkout / "dashboard" / "app.py"
        else:
            path = package / "dashboard_app" / "app.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"dashboard app not found at {path}: reinstall riskengine (pip install \"riskengine[dashboard]\") "
            f"or set {APP_ENV} to the path of dashboard/app.py")
    return path


def app_module(name: str, near: str | os.PathLike[str]) -> ModuleType:
    """Import module ``name`` of the dashboard app that the file ``near`` belongs to (the app or
    one of its ``views/``): ``dashboard.<name>`` from a source checkout (its folder put on
    ``sys.path``), ``riskengine.dashboard_app.<name>`` from an installed wheel.

    The app's pages run as Streamlit scripts, not as package modules, so they cannot use
    relative imports; this keeps one spelling for both layouts.
    """
    folder = Path(near).resolve().parent
    if not (folder / "app.py").is_file():
        folder = folder.parent
    if folder == Path(riskengine.__file__).resolve().parent / "dashboard_app":
        return importlib.import_module(f"{INSTALLED_PACKAGE}.{name}")
    if str(folder.parent) not in sys.path:
        sys.path.insert(0, str(folder.parent))
    return importlib.import_module(f"{folder.name}.{name}")


def build_command(root: str, port: int = DEFAULT_PORT, labels: str | None = None,
                  address: str = "127.0.0.1", config: str | None = None) -> list[str]:
    """The ``python -m streamlit run …`` argv; arguments after ``--`` reach the app itself."""
    if not 0 < port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {port}")
    require(extra="dashboard", feature="riskengine dashboard")
    if labels is not None and not Path(labels).is_file():
        raise FileNotFoundError(f"--labels file not found: {labels}")
    if config is not None and not Path(config).is_file():
        raise FileNotFoundError(f"--config file not found: {config}")
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.port", str(port), "--server.headless", "true", "--server.address", address,
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
        "--", "--root", str(Path(root).expanduser().resolve()),
    ]
    if labels is not None:
        command += ["--labels", str(Path(labels).expanduser().resolve())]
    if config is not None:
        command += ["--config", str(Path(config).expanduser().resolve())]
    return command


def exposure_warning(address: str, config: str | None) -> str | None:
    """A warning when the dashboard would listen beyond loopback with no sign-in configured."""
    from riskengine.core.config import DashboardSettings

    if address in ("127.0.0.1", "::1", "localhost"):
        return None
    try:
        auth = DashboardSettings.load(config).auth
    except (OSError, ValueError):
        return None  # the app itself reports unreadable settings, and stays closed
    if auth != "none":
        return None
    return (f"riskengine dashboard: warning: listening on {address} with [dashboard] auth = \"none\": anyone "
            "who can reach this port sees the audit data; set auth = \"oidc\" or \"header\" (docs/dashboard.md)")


def _run(args: argparse.Namespace) -> int:
    command = build_command(args.root, args.port, args.labels, args.address, args.config)
    warning = exposure_warning(args.address, args.config)
    if warning:
        print(warning, file=sys.stderr)
    if not args.root.startswith("s3://") and not Path(args.root).exists():
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
    parser.add_argument("--root", required=True,
                        help="audit log root folder or s3://bucket/prefix (Engine audit.root)")
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
