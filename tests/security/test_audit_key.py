"""Attacks on the audit log's pseudonyms: whoever can read the audit root (a dashboard host,
an analyst's copy, a backup) must not be able to re-identify users from it, and the key must
never leak into logs, reprs or files."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from riskengine import Engine
from riskengine.apps.cli import main
from riskengine.audit.events import KEY_ENV, KEY_FILE, Pseudonymizer, default_key_file
from riskengine.core.stores.redis_server import free_port
from riskengine.testing import PARIS, T0, establish, make_attempt, offline_settings

SENTINEL_KEY = "sentinel-pseudonym-key-3f9a7c1e5b"
USERS = [f"user{i}@example.com" for i in range(40)]
GUESSES = [f"user{i}@example.com" for i in range(500)]  # the attacker's guess list holds every user


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default: files 0644, folders 0755 unless set explicitly
    try:
        yield
    finally:
        os.umask(old)


def score_users(root: Path, **audit: Any) -> Engine:
    engine = Engine(offline_settings(audit={"root": str(root), **audit}))
    for user in USERS:
        engine.score(make_attempt(user, T0))
    engine.close()
    return engine


def stored_user_keys(root: Path) -> set[str]:
    rows = duckdb.sql(f"SELECT DISTINCT user_key FROM read_parquet('{root}/decisions/**/*.parquet')").fetchall()
    return {r[0] for r in rows}


def re_identified(user_keys: set[str], key: bytes) -> int:
    p = Pseudonymizer(key)
    return sum(p.user(guess) in user_keys for guess in GUESSES)


def test_a_reader_of_the_root_alone_cannot_re_identify_users(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    score_users(root)
    user_keys = stored_user_keys(root)
    assert len(user_keys) == len(USERS)
    key_file = default_key_file(root)
    assert re_identified(user_keys, key_file.read_bytes().strip()) == len(USERS)  # the key does it...
    key = key_file.read_bytes().strip()
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:  # ...and nothing the attacker can read holds it
        content = path.read_bytes()
        assert key not in content, path
        assert re_identified(user_keys, content.strip()) == 0, path


def test_old_layout_key_is_moved_out_and_pseudonyms_stay_stable(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "audit"
    legacy = root / KEY_FILE
    legacy.parent.mkdir(parents=True)
    old_key = b"a" * 64
    legacy.write_bytes(old_key)
    os.chmod(legacy, 0o600)
    with caplog.at_level(logging.WARNING):
        engine = score_users(root)
    assert not legacy.exists()
    moved = default_key_file(root)
    assert moved.read_bytes() == old_key
    assert stat.S_IMODE(moved.stat().st_mode) == 0o600
    assert stored_user_keys(root) == {Pseudonymizer(old_key).user(u) for u in USERS}  # same pseudonyms
    assert any("moved the pseudonymisation key out of the audit root" in p for p in engine.health()["audit_problems"])
    assert "moved the pseudonymisation key" in caplog.text
    assert old_key.decode() not in caplog.text


def test_a_different_key_left_in_the_root_is_moved_beside_the_one_in_use(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    score_users(root)
    in_use = default_key_file(root).read_bytes()
    legacy = root / KEY_FILE
    legacy.parent.mkdir()
    legacy.write_bytes(b"b" * 64)
    engine = score_users(root)
    assert not legacy.exists()
    assert default_key_file(root).read_bytes() == in_use
    aside = list(tmp_path.glob(default_key_file(root).name + ".from-root-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"b" * 64
    assert any(str(aside[0]) in p for p in engine.health()["audit_problems"])


def test_a_key_file_inside_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    with pytest.raises(ValueError, match="audit.key_file .* lies inside audit.root"):
        Engine(offline_settings(audit={"root": str(root), "key_file": str(root / "sub" / "k.key")}))


def test_a_key_file_readable_by_others_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "audit"
    score_users(root)
    key_file = default_key_file(root)
    assert Engine(offline_settings(audit={"root": str(root)})).health()["audit_problems"] == []
    assert main(["report", "--root", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["audit_key_warnings"] == []
    os.chmod(key_file, 0o644)
    problems = Engine(offline_settings(audit={"root": str(root)})).health()["audit_problems"]
    assert len(problems) == 1 and "accessible by group/others (mode 0644)" in problems[0]
    assert main(["report", "--root", str(root)]) == 0
    err = capsys.readouterr().err
    assert f"WARNING: pseudonymisation key file {key_file} is accessible by group/others" in err


def test_report_warns_about_an_old_layout_key_inside_the_root(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "audit"
    score_users(root, key="k" * 32)
    (root / KEY_FILE).parent.mkdir()
    (root / KEY_FILE).write_bytes(b"c" * 64)
    assert main(["report", "--root", str(root), "--json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["audit_key_warnings"]
    assert len(warnings) == 1 and "sits inside the audit root" in warnings[0]


def test_files_are_private_under_the_usual_umask(tmp_path: Path, usual_umask: None) -> None:
    root = tmp_path / "audit"
    score_users(root)
    paths = [root, default_key_file(root), *root.rglob("*")]
    loose = {str(p): f"{stat.S_IMODE(p.stat().st_mode):04o}" for p in paths if p.stat().st_mode & 0o077}
    assert loose == {}


@pytest.mark.parametrize("source", ["env", "config"])
def test_a_configured_key_never_leaks(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    root = tmp_path / "audit"
    audit: dict[str, Any] = {"root": str(root), "flush_seconds": 0.1}
    if source == "env":
        monkeypatch.setenv(KEY_ENV, SENTINEL_KEY)
    else:
        audit["key"] = SENTINEL_KEY
    engine = Engine(offline_settings(audit=audit))
    last = establish(engine, "alice", days=4)
    d = engine.score(make_attempt("alice", last + timedelta(days=1), PARIS))
    assert d.action == "challenge"
    engine.record_outcome(d.decision_id, "verified", timestamp=last + timedelta(days=1, seconds=9))
    engine.record_failure("alice", "203.0.113.9", last + timedelta(days=2))
    engine.untrust("alice", actor="sam", reason="test")
    texts = [repr(engine), repr(engine.settings), str(engine.settings), repr(engine.pseudonymizer),
             repr(engine.sink), json.dumps(engine.health()), repr(vars(engine.pseudonymizer))]
    engine.close()
    # an engine whose store is down logs the store error: the key must not ride along
    degraded = Engine(offline_settings(audit=audit, store={"url": f"redis://127.0.0.1:{free_port()}/0"},
                                       trust={"secret_keys": ["k" * 32]}))
    assert degraded.score(make_attempt("alice")).decision_id
    degraded.close()
    assert "store" in caplog.text.lower()
    texts.append(caplog.text)
    assert not any(SENTINEL_KEY in t for t in texts)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        assert SENTINEL_KEY.encode() not in path.read_bytes(), path
    assert not default_key_file(root).exists()  # a configured key is never written out
    assert not (root / KEY_FILE).exists()
