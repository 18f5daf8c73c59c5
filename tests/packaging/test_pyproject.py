"""pyproject.toml says what the tree holds: packages, package data, version, extras, licence."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pyarrow as pa

import riskengine
from riskengine._extras import EXTRAS
from riskengine.analytics.rollups import DUCK_TYPES
from riskengine.audit.columns import COLUMNS
from riskengine.audit.schema import ARROW_TYPES, TABLES, arrow_schema

REPO = Path(__file__).resolve().parents[2]
# distribution name → import name, where they differ
IMPORT_NAMES = {"scikit-learn": "sklearn", "mmdb-writer": "mmdb_writer", "prometheus-client": "prometheus_client",
                "opentelemetry-api": "opentelemetry"}


def _pyproject() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~;\s]", r, maxsplit=1)[0].lower() for r in requirements}


def _expand(extras: dict[str, list[str]], name: str) -> set[str]:
    """The distributions extra ``name`` installs, following ``riskengine[...]`` self-references."""
    out: set[str] = set()
    for req in extras[name]:
        self_ref = re.fullmatch(r"riskengine\[([a-z0-9,]+)\]", req)
        if self_ref:
            for inner in self_ref.group(1).split(","):
                out |= _expand(extras, inner)
        else:
            out |= _requirement_names([req])
    return out


def test_every_package_of_the_tree_is_listed_and_the_dashboard_is_mapped() -> None:
    tool = _pyproject()["tool"]["setuptools"]
    in_tree = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "riskengine").rglob("__init__.py")
               if "__pycache__" not in p.parts}
    dashboard = {"riskengine.dashboard_app" + "".join(f".{part}" for part in p.parent.relative_to(
        REPO / "dashboard").parts) for p in (REPO / "dashboard").rglob("*.py") if "__pycache__" not in p.parts}
    assert set(tool["packages"]) == in_tree | dashboard
    assert tool["package-dir"] == {"riskengine.dashboard_app": "dashboard"}


def test_package_data_matches_real_files() -> None:
    tool = _pyproject()["tool"]["setuptools"]
    for package, patterns in tool["package-data"].items():
        folder = REPO / tool["package-dir"].get(package, Path(*package.split(".")))
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"package-data {package}: {pattern} matches no file"


def test_one_version_source_and_the_licence() -> None:
    project = _pyproject()["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "riskengine.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev)?\d*", riskengine.__version__)
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().lstrip().startswith("Apache License\n                           Version 2.0")
    requires = _pyproject()["build-system"]["requires"]
    assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77 for r in requires)


def test_core_dependencies_hold_no_heavy_package() -> None:
    core = _requirement_names(_pyproject()["project"]["dependencies"])
    assert core == {"pydantic", "maxminddb", "maxminddb-geolite2", "user-agents", "ua-parser", "tzdata",
                    "phonenumberslite"}  # Engine.check_send (issue #17): pure Python, 5.5 MB


def test_extras_install_what_the_code_checks_for() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    for name, modules in EXTRAS.items():
        installed = {IMPORT_NAMES.get(d, d) for d in _expand(extras, name)}
        assert set(modules) <= installed, f"[{name}] lacks {set(modules) - installed}"
    assert _expand(extras, "all") >= set().union(*(_expand(extras, e) for e in EXTRAS if e != "all"))
    assert _requirement_names(extras["audit"]) == {"pyarrow"}


def test_audit_schema_is_arrow_types_built_from_the_column_list() -> None:
    assert list(TABLES) == list(COLUMNS)
    for table, columns in COLUMNS.items():
        assert list(TABLES[table]) == list(columns)
        assert all(isinstance(t, pa.DataType) for t in TABLES[table].values())
        assert arrow_schema(table).names == list(columns)
    kinds = {kind for columns in COLUMNS.values() for kind in columns.values()}
    assert kinds <= set(ARROW_TYPES) and kinds <= set(DUCK_TYPES)
    assert TABLES["decisions"]["event_time"] == pa.timestamp("us", tz="UTC")
    assert TABLES["decisions"]["reasons"] == pa.large_list(pa.large_string())
