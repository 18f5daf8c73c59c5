"""The audit log on object storage (threat model, "Audit log"): whoever can read the bucket
cannot re-identify users — the pseudonymisation key is never in the bucket and an ``s3://`` root
without an explicit key is refused at start-up; the AWS credentials are in no object either.
Against a real S3-compatible server (moto in server mode on loopback)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from riskengine import Engine
from riskengine.audit.objectstore import S3Root
from riskengine.testing import make_attempt, offline_settings


def test_an_s3_root_without_an_explicit_key_is_refused(s3_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKENGINE_AUDIT_KEY", raising=False)
    with pytest.raises(ValueError, match="is on object storage: set the pseudonymisation key"):
        Engine(offline_settings(audit={"root": s3_root}))


def test_nothing_in_the_bucket_holds_the_key_the_credentials_or_a_raw_user_id(
        s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKENGINE_AUDIT_KEY", raising=False)
    key_file = tmp_path / "pseudonym.key"
    users = [f"victim{i}@example.com" for i in range(5)]
    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    with Engine(offline_settings(audit={"root": s3_root, "key_file": str(key_file)})) as engine:
        for i in range(25):
            engine.score(make_attempt(users[i % 5], t0 + timedelta(minutes=i)))
    key = key_file.read_bytes().strip()
    assert len(key) >= 32 and (key_file.stat().st_mode & 0o077) == 0
    store = S3Root.parse(s3_root)
    objects = store.objects("", recursive=True)
    assert any(name.startswith("decisions/") for name, _ in objects)
    secrets = [key, os.environ["AWS_SECRET_ACCESS_KEY"].encode(), *(u.encode() for u in users)]
    for name, _size in objects:
        body = store.get(name)
        for secret in secrets:
            assert secret not in body, f"{name} holds {secret[:12]!r}"
