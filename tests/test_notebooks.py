"""The analysts' notebooks run end to end on a small generated root and assert their results.

Each notebook reads its parameters from environment variables (``RISKENGINE_NB_DATA``,
``RISKENGINE_NB_AUDIT``) in its ``parameters`` cell, so the same notebooks run on an
analyst's own data. The root: ``riskengine.offline.model.sample`` logins with labelled attacks and
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
    from riskengine.offline.model.sample import write_sample
    from riskengine.offline.replay import replay_to_file

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


@pytest.fixture(scope="module")
def bare_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated data directory with no audit root and no decisions file."""
    from riskengine.offline.model.sample import write_sample

    data = tmp_path_factory.mktemp("nbbare")
    write_sample(data, users=120, days=42, seed=5, visitors=4000, signup_drop=0.10)
    return data


@pytest.mark.slow
def test_relative_data_path_resolves_against_the_repo_and_replays_into_a_temp_root(
        bare_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As `RISKENGINE_NB_DATA=<path relative to the repo> jupyter lab notebooks/` runs it: the
    kernel's folder is notebooks/, the path is relative to the repository root, and no audit
    root is given — so the replayed rows must go to a temporary directory, not the data folder."""
    from nbclient import NotebookClient

    repo = NOTEBOOKS.parent
    relative = os.path.relpath(bare_data, repo)
    assert not Path(relative).is_absolute()
    book = nbformat.read(NOTEBOOKS / "02_experiment_readout.ipynb", as_version=4)
    monkeypatch.setenv("RISKENGINE_NB_DATA", relative)
    monkeypatch.delenv("RISKENGINE_NB_AUDIT", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(book, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=dict(os.environ))
    assert not (bare_data / "audit").exists(), "replayed rows were written into the data folder"
    assert not (bare_data / "decisions.parquet").exists()


@pytest.mark.slow
def test_a_missing_audit_root_is_an_error_naming_the_variable(
        bare_data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    book = nbformat.read(NOTEBOOKS / "01_threshold_tuning.ipynb", as_version=4)
    monkeypatch.setenv("RISKENGINE_NB_DATA", str(bare_data))
    monkeypatch.setenv("RISKENGINE_NB_AUDIT", str(tmp_path / "no-such-root"))
    client = NotebookClient(book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError, match="RISKENGINE_NB_AUDIT"):
        client.execute(env=dict(os.environ))
    assert not (tmp_path / "no-such-root").exists()


@pytest.mark.slow
def test_the_readout_notebook_reads_an_s3_audit_root(root: Path, s3_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """RISKENGINE_NB_AUDIT=s3://bucket/prefix: the same audit log, uploaded to a real S3-compatible
    server (moto on loopback), gives the notebook's assertions the same answers."""
    from nbclient import NotebookClient

    from riskengine.audit.objectstore import S3Root

    store = S3Root.parse(s3_root)
    for path in sorted((root / "audit").rglob("*.parquet")):
        rel = path.relative_to(root / "audit").as_posix()
        if not rel.startswith("_"):
            store.put(rel, path.read_bytes())
    book = nbformat.read(NOTEBOOKS / "02_experiment_readout.ipynb", as_version=4)
    monkeypatch.setenv("RISKENGINE_NB_DATA", str(root))
    monkeypatch.setenv("RISKENGINE_NB_AUDIT", s3_root)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(book, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(root)}})
    client.execute(env=dict(os.environ))
