"""The exported names are a contract: this list changes only on purpose."""

from __future__ import annotations

import subprocess
import sys

import riskengine


def test_exported_members() -> None:
    assert sorted(riskengine.__all__) == sorted([
        "Action", "Decision", "Engine", "Factor", "LoginAttempt", "Reason", "SendDecision", "Settings",
        "UnknownDecisionError", "UserProfile", "__version__", "assign_variant",
    ])
    for name in riskengine.__all__:
        assert hasattr(riskengine, name), name


def test_decision_shape() -> None:
    fields = set(riskengine.Decision.__dataclass_fields__)
    assert {"decision_id", "action", "risk", "reasons", "factor"} <= fields
    assert set(riskengine.Reason.__dataclass_fields__) == {"code", "weight", "detail"}


def test_the_scoring_path_imports_no_dashboard_or_dataframe_stack() -> None:
    # DESIGN.md: an import-light hot path. An auth service that scores (audit off) loads
    # neither Streamlit nor the analytics stack; Polars arrives with the Parquet sink only.
    probe = ("import sys\n"
             "from riskengine import Engine, Settings\n"
             "Engine(Settings().with_overrides(geo={'city_db': None})).close()\n"
             "print(sorted(m for m in ('streamlit', 'polars', 'duckdb', 'sklearn', 'pyarrow', 'altair')"
             " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_audit_tables_are_still_importable_where_they_were() -> None:
    from riskengine import audit
    from riskengine.audit import events, schema

    assert audit.TABLES is events.TABLES is schema.TABLES
    assert "decisions" in schema.TABLES
