"""The analysts' notebooks run end to end on a small generated root and assert their results.

Each notebook reads its parameters from environment variables (``RISKENGINE_NB_DATA``,
``RISKENGINE_NB_AUDIT``) in its ``parameters`` cell, so the same notebooks run on an
analyst's own data. The root: ``riskengine.model.sample`` logins with labelled attacks and
signups to the ``signup_2fa`` experiment, replayed once into an audit log.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from riskengine.model.sample import write_sample
    from riskengine.replay import replay_to_file

    data = tmp_path_factory.mktemp("nbroot")
    write_sample(data, users=120, days=42, seed=5, visitors=4000, signup_drop=0.10)
    replay_to_file(data / "events.parquet", "native", data / "decisions.parquet", audit_root=data / "audit")
    return data


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_threshold_tuning", "02_experiment_readout", "03_model"])
def test_notebook_runs_and_its_assertions_hold(root: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    path = NOTEBOOKS / f"{name}.ipynb"
    book = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), "commit without outputs"
    assert "parameters" in book.cells[1].metadata.get("tags", []), "second cell is the parameters cell"
    monkeypatch.setenv("RISKENGINE_NB_DATA", str(root))
    monkeypatch.setenv("RISKENGINE_NB_AUDIT", str(root / "audit"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(root)}})
    client.execute(env=dict(os.environ))
