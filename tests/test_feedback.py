"""Fraud feedback: report_fraud writes the feedback table; AuditDB joins it to decisions;
model training turns it into labels with its documented precedence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from riskengine import Engine, LoginAttempt, Settings
from riskengine.analytics import AuditDB, Filters
from riskengine.audit.base import MemorySink
from riskengine.audit.events import Pseudonymizer
from riskengine.offline.model.feedback import apply_feedback
from riskengine.testing import CHANGCHUN, FIREFOX_MAC, establish, make_attempt, offline_settings

AUDIT_KEY = "feedback-test-key-" + "x" * 20


def test_report_fraud_writes_a_pseudonymised_row() -> None:
    sink = MemorySink()
    with Engine(offline_settings(), sink=sink) as e:
        d = e.score(make_attempt(user_id="Alice"))
        at = datetime(2026, 3, 9, 12, tzinfo=UTC)
        e.report_fraud(decision_id=d.decision_id, user_id="alice", kind="not_me", actor="user", timestamp=at)
        row = sink.rows("feedback")[0]
        assert row["user_key"] == e.pseudonymizer.user("alice") != "alice"  # ids are normalised first
    assert row["decision_id"] == d.decision_id and row["kind"] == "not_me" and row["actor"] == "user"
    assert row["event_time"] == at and row["note"] is None
    assert sink.rows("decisions")[0]["user_key"] == row["user_key"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "fraud"}, "kind must be one of not_me, confirmed_takeover, false_positive"),
    ({"actor": ""}, "actor must be a non-empty string"),
    ({"decision_id": "  "}, "decision_id must be a non-empty string"),
    ({"note": "a\nb"}, "note must be at most 200 printable characters"),
    ({"timestamp": datetime(2026, 1, 1)}, "timezone-aware"),
])
def test_report_fraud_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"decision_id": "d1", "user_id": "u", "kind": "not_me", "actor": "support:7"}
    args.update(kwargs)
    sink = MemorySink()
    with Engine(offline_settings(), sink=sink) as e, pytest.raises(ValueError, match=message):
        e.report_fraud(**args)  # type: ignore[arg-type]
    assert sink.rows("feedback") == []


def audit_engine(root: Path) -> Engine:
    return Engine(offline_settings(audit={"root": str(root), "key": AUDIT_KEY}))


def test_feedback_by_reason_and_labels(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    with audit_engine(root) as e:
        last = establish(e, days=5)
        ts = last + timedelta(days=1)
        takeover = e.score(make_attempt(ts=ts, place=CHANGCHUN, ua=FIREFOX_MAC))
        fp = e.score(make_attempt(ts=ts + timedelta(hours=1), ua=FIREFOX_MAC))
        disputed = e.score(make_attempt(ts=ts + timedelta(hours=2)))
        e.report_fraud(decision_id=takeover.decision_id, user_id="alice", kind="not_me", actor="user",
                       timestamp=ts + timedelta(days=1))
        e.report_fraud(decision_id=takeover.decision_id, user_id="alice", kind="confirmed_takeover",
                       actor="analyst:1", timestamp=ts + timedelta(days=2))
        e.report_fraud(decision_id=fp.decision_id, user_id="alice", kind="false_positive", actor="analyst:1",
                       timestamp=ts + timedelta(days=2))
        # the user says "not me", then an analyst finds it was them: the analyst wins
        e.report_fraud(decision_id=disputed.decision_id, user_id="alice", kind="not_me", actor="user",
                       timestamp=ts + timedelta(days=1))
        e.report_fraud(decision_id=disputed.decision_id, user_id="alice", kind="false_positive",
                       actor="analyst:2", timestamp=ts + timedelta(days=3))
        # feedback naming another user's decision is not joined to it
        e.report_fraud(decision_id=fp.decision_id, user_id="mallory", kind="confirmed_takeover",
                       actor="analyst:9", timestamp=ts + timedelta(days=3))
    db = AuditDB(root)
    try:
        by_reason = {(r["reason"], r["policy_version"]): r for r in db.feedback_by_reason().iter_rows(named=True)}
        labels = {r["decision_id"]: r for r in db.feedback_labels().iter_rows(named=True)}
    finally:
        db.close()
    country = by_reason[("NEW_COUNTRY", "rules-v1")]
    assert (country["confirmed_takeovers"], country["false_positives"], country["not_me"]) == (1, 0, 1)
    device = by_reason[("NEW_DEVICE", "rules-v1")]
    assert (device["confirmed_takeovers"], device["false_positives"]) == (1, 1)  # takeover + fp both NEW_DEVICE
    none = by_reason[("(none)", "rules-v1")]
    assert (none["false_positives"], none["not_me"]) == (1, 1)
    assert labels[takeover.decision_id]["is_attack"] is True
    assert labels[takeover.decision_id]["kind"] == "confirmed_takeover"
    assert labels[fp.decision_id]["is_attack"] is False
    assert labels[disputed.decision_id]["kind"] == "false_positive"
    assert labels[disputed.decision_id]["event_time"] == ts + timedelta(hours=2)


def test_apply_feedback_overrides_labels_only_where_it_matches() -> None:
    p = Pseudonymizer(b"k" * 32)
    t = datetime(2026, 3, 1, 9, tzinfo=UTC)
    frame = pl.DataFrame({"user_id": ["Alice", "bob", "carol"], "event_time": [t, t, t],
                          "is_attack": [False, True, False]})
    feedback = pl.DataFrame({"user_key": [p.user("alice"), p.user("bob")], "event_time": [t, t],
                             "is_attack": [True, False]})
    out = apply_feedback(frame, feedback, p, str.casefold)
    assert out["is_attack"].to_list() == [True, False, False]
    assert out["label_source"].to_list() == ["feedback", "feedback", "labels"]
    assert out.columns == ["user_id", "event_time", "is_attack", "label_source"]


def test_training_dataset_takes_feedback_labels(tmp_path: Path) -> None:
    from riskengine.offline.model.dataset import build_dataset
    from riskengine.offline.model.sample import write_sample

    events, labels = write_sample(tmp_path / "data")
    plain = build_dataset(events, labels=labels)
    benign = plain.filter(~pl.col("is_attack")).row(0, named=True)
    attack = plain.filter(pl.col("is_attack")).row(0, named=True)
    # the production engine scored those logins and wrote them to its audit log; feedback
    # arrived later (same audit key as the training config)
    root = tmp_path / "audit"
    settings = Settings().with_overrides(audit={"root": str(root), "key": AUDIT_KEY})
    with Engine(settings) as e:
        ids = {}
        for row in (benign, attack):
            d = e.score(LoginAttempt(user_id=row["user_id"], timestamp=row["event_time"], ip="81.2.69.160",
                                     user_agent=FIREFOX_MAC))
            ids[row["index"]] = d.decision_id
        e.report_fraud(decision_id=ids[benign["index"]], user_id=benign["user_id"], kind="confirmed_takeover",
                       actor="analyst")
        e.report_fraud(decision_id=ids[attack["index"]], user_id=attack["user_id"], kind="false_positive",
                       actor="analyst")
    labelled = build_dataset(events, labels=labels, config=settings, feedback=root)
    by_index = {r["index"]: r for r in labelled.iter_rows(named=True)}
    assert by_index[benign["index"]]["is_attack"] is True
    assert by_index[attack["index"]]["is_attack"] is False
    assert by_index[benign["index"]]["label_source"] == "feedback"
    assert labelled["label_source"].value_counts().filter(pl.col("label_source") == "feedback")["count"][0] == 2
    assert labelled.height == plain.height
    # every other label is untouched
    others = labelled.filter(pl.col("label_source") == "labels")
    assert others["is_attack"].to_list() == plain.filter(
        ~pl.col("index").is_in([benign["index"], attack["index"]]))["is_attack"].to_list()


def test_feedback_without_reports_in_the_window_is_empty_with_the_same_columns(tmp_path: Path) -> None:
    """No feedback segment in the window: nothing is joined (no decision is read), and the
    frames keep their columns and types, as with reports."""
    root = tmp_path / "audit"
    with audit_engine(root) as e:
        last = establish(e, days=5)
        d = e.score(make_attempt(ts=last + timedelta(days=1), place=CHANGCHUN, ua=FIREFOX_MAC))
        e.report_fraud(decision_id=d.decision_id, user_id="alice", kind="not_me", actor="user",
                       timestamp=last + timedelta(days=40))  # a month or more later: its own partition
    db = AuditDB(root)
    try:
        before = Filters(until=last + timedelta(days=2))
        for call in (db.feedback_by_reason, db.feedback_labels):
            everything, none = call(), call(before)
            assert everything.height > 0 and none.height == 0
            assert none.schema == everything.schema
    finally:
        db.close()
