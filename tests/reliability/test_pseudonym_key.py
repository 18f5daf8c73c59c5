"""Security: the pseudonymisation key never leaks (repr, health, logs, audit files) and a
generated key file is private. Core install only: no Flask, no example service."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from riskengine import Engine
from riskengine.stores.redis_server import free_port
from riskengine.testing import PARIS, establish, make_attempt, offline_settings

SENTINEL_KEY = "sentinel-pseudonym-key-3f9a7c1e5b"


# -- pseudonymisation key ---------------------------------------------------------------------
@pytest.mark.parametrize("source", ["env", "config"])
def test_pseudonymisation_key_never_leaks(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    root = tmp_path / "audit"
    audit: dict[str, Any] = {"root": str(root), "flush_seconds": 0.1}
    if source == "env":
        monkeypatch.setenv("RISKENGINE_AUDIT_KEY", SENTINEL_KEY)
    else:
        audit["key"] = SENTINEL_KEY
    dead_store = f"redis://127.0.0.1:{free_port()}/0"
    engine = Engine(offline_settings(audit=audit))
    last = establish(engine, "alice", days=4)
    d = engine.score(make_attempt("alice", last + timedelta(days=1), PARIS))
    engine.record_outcome(d.decision_id, "verified", timestamp=last + timedelta(days=1, seconds=9))
    engine.record_failure("alice", "203.0.113.9", last + timedelta(days=2))
    engine.untrust("alice", actor="sam", reason="test")
    texts = [repr(engine), repr(engine.settings), str(engine.settings), repr(engine.pseudonymizer),
             repr(engine.sink), json.dumps(engine.health()), repr(vars(engine.pseudonymizer))]
    engine.close()
    degraded = Engine(offline_settings(audit=audit, store={"url": dead_store}))
    degraded.score(make_attempt("alice"))  # logs a warning with the store error
    degraded.close()
    texts.append(caplog.text)
    assert not any(SENTINEL_KEY in t for t in texts)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        assert SENTINEL_KEY.encode() not in path.read_bytes(), path
    assert not (root / "_meta" / "pseudonym.key").exists()  # a configured key is never written out


def test_generated_key_file_is_private(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    with Engine(offline_settings(audit={"root": str(root)})) as engine:
        engine.score(make_attempt("alice"))
    key_file = root / "_meta" / "pseudonym.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
