"""Optional features name their extra when it is missing; the core imports none of them.

The "missing" installs are simulated in a subprocess whose import system refuses the heavy
packages (a ``sys.meta_path`` blocker), so these tests run in the normal suite; the real
core-only install is proven by tests/packaging/test_wheel.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from riskengine._extras import EXTRAS, MissingExtraError, extra, missing, require

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("polars", "pyarrow", "duckdb", "sklearn", "streamlit", "altair", "scipy", "numpy", "redis", "tqdm",
         "mmdb_writer", "netaddr", "matplotlib", "pandas")

BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys
    BLOCKED = set({list(HEAVY)!r})

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
""")


def run_without_extras(code: str) -> dict[str, object]:
    """Run ``code`` (which sets ``result``) where none of the heavy packages can be imported."""
    script = BLOCKER + textwrap.dedent(code) + "\nimport json\nprint(json.dumps(result))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_require_names_the_extra_and_the_missing_module() -> None:
    with pytest.raises(MissingExtraError) as caught:
        require("riskengine_no_such_module", extra="analytics", feature="the audit database")
    exc = caught.value
    assert exc.extra == "analytics" and exc.name == "riskengine_no_such_module"
    assert str(exc) == ("the audit database needs the 'riskengine_no_such_module' package, which is not "
                        'installed: pip install "riskengine[analytics]"')
    assert isinstance(exc, ImportError)  # callers catching ImportError keep working


def test_require_passes_when_installed_and_rejects_unknown_extras() -> None:
    require("json", "sqlite3", extra="audit")
    with pytest.raises(ValueError, match="unknown extra 'analytic'"):
        require("json", extra="analytic")
    with pytest.raises(ValueError, match="unknown extra"):
        missing("nope")


def test_extra_block_converts_a_missing_third_party_module() -> None:
    with pytest.raises(MissingExtraError, match=r'riskengine\[sim\]') as caught:
        with extra("sim", feature="the simulator"):
            import riskengine_missing_dep.sub  # type: ignore[import-not-found]  # noqa: F401
    assert caught.value.name == "riskengine_missing_dep"
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_extra_block_leaves_a_missing_riskengine_module_alone() -> None:
    # a missing module of our own is a packaging bug, not an extra to install
    with pytest.raises(ModuleNotFoundError) as caught:
        with extra("sim"):
            import riskengine.no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert not isinstance(caught.value, MissingExtraError)


def test_all_is_the_union_of_the_extras() -> None:
    others = {name for key, names in EXTRAS.items() if key != "all" for name in names}
    assert set(EXTRAS["all"]) == others


def test_several_extras_are_named_as_pip_spells_them() -> None:
    assert missing("dashboard,sim") == []  # this checkout's environment has everything
    with pytest.raises(MissingExtraError, match=r'pip install "riskengine\[dashboard,sim\]"'):
        require("riskengine_no_such_module", extra="dashboard,sim")
    with pytest.raises(ValueError, match="unknown extra 'simulator'"):
        require("json", extra="dashboard,simulator")


def test_core_scores_and_audits_to_memory_without_any_heavy_package() -> None:
    result = run_without_extras("""
        from datetime import UTC, datetime
        from riskengine import Engine, LoginAttempt
        from riskengine.audit import MemorySink
        from riskengine.core.stores import open_store
        import tempfile, os
        sink = MemorySink()
        engine = Engine(sink=sink)
        d = engine.score(LoginAttempt(user_id="alice", ip="81.2.69.142", user_agent="Mozilla/5.0 (X11; Linux x86_64) "
                                      "AppleWebKit/537.36 Chrome/120 Safari/537.36", timestamp=datetime.now(UTC)))
        db = os.path.join(tempfile.mkdtemp(), "p.db")
        sqlite_store = type(open_store("sqlite:///" + db)).__name__
        result = {"action": d.action, "rows": len(sink.rows("decisions")),
                  "columns": sorted(sink.rows("decisions")[0]), "sqlite": sqlite_store,
                  "loaded": sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)}
    """)
    assert result["action"] in ("allow", "challenge", "deny")
    assert result["rows"] == 1
    assert "event_time" in result["columns"] and "reasons" in result["columns"]  # type: ignore[operator]
    assert result["sqlite"] == "SqliteStore"
    assert result["loaded"] == []


# each statement and the extra its error must name
OPTIONAL_AREAS: dict[str, str] = {
    "import riskengine.analytics": "analytics",
    "from riskengine.analytics.db import AuditDB": "analytics",
    "import riskengine.analytics.rollups": "analytics",
    "from riskengine.audit import TABLES": "audit",
    "import riskengine.audit.parquet": "audit",
    "import riskengine.ops.maintenance": "analytics",
    "import riskengine.offline.simulate": "sim",
    "import riskengine.offline.replay": "sim",
    "import riskengine.offline.evaluate": "sim",
    "import riskengine.apps.demo": "dashboard,sim",
    "import riskengine.offline.model.train": "model",
    "import riskengine.offline.model.dataset": "model",
    "import riskengine.core.stores.redis": "redis",
    "from riskengine import Engine; Engine.from_config({'audit': {'root': tempfile.mkdtemp()}})": "audit",
    "from riskengine.core.stores import open_store; open_store('redis://localhost:1/0')": "redis",
    "from riskengine.apps.dashboard_cli import build_command; build_command('root')": "dashboard",
}


def test_each_optional_area_names_its_extra() -> None:
    # one interpreter per statement would cost seconds each: clear riskengine's optional
    # modules from sys.modules between statements instead, so each import starts afresh
    result = run_without_extras(f"""
        import tempfile
        from riskengine._extras import MissingExtraError
        result = {{}}
        for statement in {list(OPTIONAL_AREAS)!r}:
            for name in [m for m in sys.modules if m.startswith(("riskengine.analytics", "riskengine.audit.",
                         "riskengine.offline", "riskengine.ops", "riskengine.apps", "riskengine.core.stores.redis"))]:
                del sys.modules[name]
            try:
                exec(statement)
                result[statement] = None
            except MissingExtraError as exc:
                result[statement] = [exc.extra, str(exc)]
    """)
    for statement, extra_name in OPTIONAL_AREAS.items():
        raised = result[statement]
        assert raised is not None, f"{statement} did not raise MissingExtraError"
        assert raised[0] == extra_name, statement  # type: ignore[index]
        assert f'pip install "riskengine[{extra_name}]"' in raised[1], statement  # type: ignore[index]


def test_each_command_module_names_an_extra_its_help_line_lists() -> None:
    # the CLI's table (COMMANDS: name, module, extras) and the modules' own import boundaries agree
    result = run_without_extras("""
        import importlib
        from riskengine._extras import MissingExtraError
        from riskengine.apps.cli import COMMANDS
        result = {}
        for cmd in COMMANDS:
            try:
                importlib.import_module(cmd.module)
                result[cmd.name] = [list(cmd.extras), None]
            except MissingExtraError as exc:
                result[cmd.name] = [list(cmd.extras), exc.extra]
    """)
    imported_in_core = set()
    for command, (listed, raised) in result.items():  # type: ignore[misc]
        if raised is None:
            imported_in_core.add(command)  # the command's module imports its extra lazily
        else:
            assert set(raised.split(",")) <= set(listed), f"{command}: raises [{raised}], --help lists {listed}"
    assert imported_in_core == {"dashboard", "user", "model"}


def test_cli_says_what_to_install_in_one_line() -> None:
    result = run_without_extras("""
        import contextlib, io
        from riskengine.apps.cli import main
        codes, lines = {}, {}
        for argv in (["report", "--root", "x"], ["replay", "in.csv", "--out", "o.parquet"],
                     ["dashboard", "--root", "x"], ["demo"], ["audit", "compact", "--root", "x"]):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                codes[argv[0]] = main(argv)
            lines[argv[0]] = err.getvalue()
        result = {"codes": codes, "stderr": lines}
    """)
    assert result["codes"] == {"report": 1, "replay": 1, "dashboard": 1, "demo": 1, "audit": 1}
    stderr: dict[str, str] = result["stderr"]  # type: ignore[assignment]
    expected = {"report": "analytics", "replay": "sim", "dashboard": "dashboard", "demo": "dashboard,sim",
                "audit": "analytics"}
    for command, extra_name in expected.items():
        assert stderr[command].count("\n") == 1 and stderr[command].startswith("riskengine: error:"), stderr[command]
        assert f'pip install "riskengine[{extra_name}]"' in stderr[command], stderr[command]
