"""Fraud feedback: "that wasn't me", confirmed takeovers and false positives, in the audit log.

``engine.report_fraud(decision_id=..., user_id=..., kind=..., actor=...)`` writes one row to
the audit table ``feedback`` (pseudonymised user key, decision id, kind, actor, time, note).
The dashboard's Risk page counts them per reason code and policy version
(:meth:`riskengine.analytics.AuditDB.feedback_by_reason`), and ``riskengine model train``
turns them into labels (:func:`riskengine.offline.model.feedback.apply_feedback`).

Kinds and the label each gives the decision's login:

- ``confirmed_takeover`` — an analyst confirmed the account was taken over: attack.
- ``false_positive``     — an analyst found the step-up (or deny) unwarranted: not an attack.
- ``not_me``             — the account owner says the login was not theirs: attack, unless an
  analyst's verdict (either of the above) exists for the same decision.

Precedence when labelling training data: an analyst's verdict (the latest one, if several)
beats ``not_me``, and any feedback beats the labels file and what challenge outcomes imply
(a verified challenge is not proof of the owner: SIM swaps verify too).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Literal, get_args

from riskengine.audit import SCHEMA_VERSION

if TYPE_CHECKING:
    from riskengine.audit import AuditSink, Pseudonymizer

FeedbackKind = Literal["not_me", "confirmed_takeover", "false_positive"]
FEEDBACK_KINDS: Final[tuple[str, ...]] = get_args(FeedbackKind)
ATTACK_KINDS: Final = frozenset({"not_me", "confirmed_takeover"})
ANALYST_KINDS: Final = frozenset({"confirmed_takeover", "false_positive"})
_MAX_TEXT = 200


def _text(value: object, name: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"report_fraud: {name} must be a non-empty string, got {value!r}")
    if len(value) > _MAX_TEXT or any(ord(c) < 32 for c in value):
        raise ValueError(f"report_fraud: {name} must be at most {_MAX_TEXT} printable characters")
    return value.strip()


def report_fraud(sink: AuditSink, pseudonymizer: Pseudonymizer, *, decision_id: str, user_id: str,
                 kind: str, actor: str, note: str | None = None, timestamp: datetime | None = None) -> None:
    """Validate and write one ``feedback`` row (``user_id`` already normalised by the engine)."""
    if kind not in FEEDBACK_KINDS:
        raise ValueError(f"report_fraud: kind must be one of {', '.join(FEEDBACK_KINDS)}, got {kind!r}")
    did = _text(decision_id, "decision_id")
    who = _text(actor, "actor")
    text = _text(note, "note", required=False)
    at = timestamp or datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("report_fraud: timestamp must be timezone-aware")
    sink.emit("feedback", {
        "event_time": at.astimezone(UTC), "schema_version": SCHEMA_VERSION, "decision_id": did,
        "user_key": pseudonymizer.user(user_id), "kind": kind, "actor": who, "note": text,
    })


__all__ = ["ANALYST_KINDS", "ATTACK_KINDS", "FEEDBACK_KINDS", "FeedbackKind", "report_fraud"]
