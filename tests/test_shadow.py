"""Shadow mode: score and audit everything, return allow, keep what enforcement would do."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskengine import Engine, Settings, UnknownDecisionError
from riskengine.analytics import AuditDB
from riskengine.analytics.report import format_summary
from riskengine.audit.base import MemorySink
from riskengine.audit.schema import TABLES
from riskengine.testing import CHANGCHUN, FIREFOX_MAC, PARIS, establish, make_attempt, offline_settings


def shadow_engine(sink: MemorySink | None = None, **sections: dict[str, object]) -> Engine:
    """A shadow-mode engine; without a sink, a MemorySink unless ``audit`` names a root."""
    if sink is None and "audit" not in sections:
        sink = MemorySink()
    return Engine(offline_settings(policy={"mode": "shadow"}, **sections), sink=sink)


def test_mode_comes_from_config_and_environment() -> None:
    assert Settings().policy.mode == "enforce"
    assert Settings.load(env={"RISKENGINE_POLICY_MODE": "shadow"}).policy.mode == "shadow"
    with pytest.raises(ValueError, match="mode"):
        Settings.load(env={"RISKENGINE_POLICY_MODE": "audit"})


def test_shadow_returns_allow_and_carries_the_enforced_action() -> None:
    with Engine(offline_settings(), sink=MemorySink()) as enforce, shadow_engine() as shadow:
        for e in (enforce, shadow):
            establish(e)
        ts = make_attempt().timestamp + timedelta(days=30)
        hard = make_attempt(ts=ts, place=PARIS, ua=FIREFOX_MAC)
        enforced, shadowed = enforce.score(hard), shadow.score(hard)
    assert enforced.action == "challenge" and enforced.shadow_action is None
    assert shadowed.action == "allow" and shadowed.shadow_action == "challenge"
    assert shadowed.factor is None
    assert shadowed.risk == enforced.risk and shadowed.reason_codes == enforced.reason_codes
    assert shadowed.to_dict()["shadow_action"] == "challenge"


def test_shadow_allow_of_a_familiar_login_says_allow() -> None:
    with shadow_engine() as e:
        last = establish(e)
        d = e.score(make_attempt(ts=last + timedelta(days=1)))
    assert (d.action, d.shadow_action) == ("allow", "allow")


def test_would_be_deny_is_allowed_too() -> None:
    with shadow_engine() as e:
        last = establish(e)
        for i in range(12):
            e.record_failure("alice", "81.2.69.160", last + timedelta(hours=1, seconds=i))
        d = e.score(make_attempt(ts=last + timedelta(hours=1, minutes=1)))
    assert (d.action, d.shadow_action) == ("allow", "deny")


def test_shadow_allowed_logins_teach_the_profile_and_park_nothing() -> None:
    with shadow_engine() as e:
        last = establish(e)
        first = e.score(make_attempt(ts=last + timedelta(days=1), ua=FIREFOX_MAC))
        assert first.shadow_action == "challenge" and "NEW_DEVICE" in first.reason_codes
        with pytest.raises(UnknownDecisionError):  # no challenge was issued
            e.record_outcome(first.decision_id, "verified")
        again = e.score(make_attempt(ts=last + timedelta(days=1, hours=1), ua=FIREFOX_MAC))
    # the device was learnt from the shadow allow, exactly as an enforced allow would have
    assert "NEW_DEVICE" not in again.reason_codes
    assert again.shadow_action == "allow"


def test_audit_rows_record_both_actions() -> None:
    sink = MemorySink()
    with shadow_engine(sink) as e:
        last = establish(e)
        e.score(make_attempt(ts=last + timedelta(days=1), place=CHANGCHUN, ua=FIREFOX_MAC))
    row = sink.rows("decisions")[-1]
    assert row["action"] == "allow" and row["shadow_action"] in ("challenge", "deny")
    with Engine(offline_settings(), sink=sink) as enforce:
        enforce.score(make_attempt(user_id="bob"))
    assert sink.rows("decisions")[-1]["shadow_action"] is None


def test_audit_db_reads_shadow_rates_beside_old_segments(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    with shadow_engine(None, audit={"root": str(root)}) as e:
        last = establish(e, days=5)  # 5 would-be allows (the first three are cold start)
        e.score(make_attempt(ts=last + timedelta(days=1), place=CHANGCHUN, ua=FIREFOX_MAC))
        for i in range(3):  # failed passwords step up whatever else
            e.record_failure("newcomer", "81.2.69.161", last + timedelta(days=1, minutes=i))
        e.score(make_attempt(ts=last + timedelta(days=1, minutes=10), place=PARIS, user_id="newcomer"))
    # an old segment, written before shadow_action existed, in the same month
    old_schema = pa.schema([f for f in pa.schema(list(TABLES["decisions"].items()))
                            if f.name != "shadow_action"])
    folder = next((root / "decisions").rglob("*.parquet")).parent
    old = {name: [None] for name in old_schema.names}
    old.update(event_time=[make_attempt().timestamp], decision_id=["legacy"], action=["challenge"],
               reasons=[["NEW_DEVICE"]], policy_version=["rules-v1"], risk=[0.6])
    pq.write_table(pa.table(old, schema=old_schema), folder / "legacy-0.parquet")

    db = AuditDB(root)
    try:
        summary = db.shadow_summary()
        modes = {r["mode"]: r for r in db.policy_modes().iter_rows(named=True)}
        reasons = {r["reason"]: r for r in db.shadow_reason_counts().iter_rows(named=True)}
        report = db.report()
    finally:
        db.close()
    stepped = summary["would_be_challenged"] + summary["would_be_denied"]
    assert summary["shadow_logins"] == 7 and stepped == 2
    assert summary["would_be_challenge_rate"] == pytest.approx(2 / 7)
    assert summary["policy_versions"] == ["rules-v1"]
    assert modes["enforce"]["decisions"] == 1 and modes["enforce"]["challenge_rate"] == 1.0
    assert modes["shadow"]["challenge_rate"] == pytest.approx(2 / 7)
    assert reasons["NEW_DEVICE"]["would_be_challenge_rate"] > 0
    assert report["shadow"] == summary
    assert report["challenge_rate"] == pytest.approx(1 / 8)  # only the legacy row was enforced
    assert "would-be challenge rate" in format_summary(report)
