"""Fraud feedback: "that wasn't me", confirmed takeovers and false positives, in the audit log.

``engine.report_fraud(decision_id=..., user_id=..., kind=..., actor=...)`` writes one row to
the audit table ``feedback`` (pseudonymised user key, decision id, kind, actor, time, note).
The dashboard's Risk page counts them per reason code and policy version
(:meth:`riskengine.analytics.AuditDB.feedback_by_reason`), and ``riskengine model train``
turns them into labels (:func:`apply_feedback`).

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
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from riskengine.audit.events import SCHEMA_VERSION

if TYPE_CHECKING:
    import polars as pl

    from riskengine.audit.events import Pseudonymizer
    from riskengine.engine import Engine

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


def report_fraud(engine: Engine, *, decision_id: str, user_id: str, kind: str, actor: str,
                 note: str | None = None, timestamp: datetime | None = None) -> None:
    """Validate and write one ``feedback`` row (``user_id`` already normalised by the engine)."""
    if kind not in FEEDBACK_KINDS:
        raise ValueError(f"report_fraud: kind must be one of {', '.join(FEEDBACK_KINDS)}, got {kind!r}")
    did = _text(decision_id, "decision_id")
    who = _text(actor, "actor")
    text = _text(note, "note", required=False)
    at = timestamp or datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("report_fraud: timestamp must be timezone-aware")
    engine.sink.emit("feedback", {
        "event_time": at.astimezone(UTC), "schema_version": SCHEMA_VERSION, "decision_id": did,
        "user_key": engine.pseudonymizer.user(user_id), "kind": kind, "actor": who, "note": text,
    })


def apply_feedback(frame: pl.DataFrame, feedback: pl.DataFrame, pseudonymizer: Pseudonymizer,
                   normalize: Any = None) -> pl.DataFrame:
    """Training rows with feedback labels applied (see the module docstring's precedence).

    ``frame``: rows with ``user_id``, ``event_time`` (and usually ``is_attack``); ``feedback``:
    :meth:`AuditDB.feedback_labels` (``user_key``, ``event_time`` of the decision,
    ``is_attack``). A row matches feedback on its pseudonymised user and its login time (to
    the microsecond, as the audit log stores it). Adds ``label_source``: ``"feedback"`` where
    feedback set the label, else ``"labels"`` (or null without an ``is_attack`` column before).
    """
    import polars as pl

    norm = normalize if normalize is not None else (lambda u: u)
    keys = frame.select(
        pl.col("user_id").cast(pl.Utf8).map_elements(lambda u: pseudonymizer.user(norm(u)), return_dtype=pl.Utf8)
        .alias("_user_key"),
        pl.col("event_time").dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias("_event_time"))
    fb = feedback.select(pl.col("user_key").alias("_user_key"),
                         pl.col("event_time").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
                         .alias("_event_time"),
                         pl.col("is_attack").alias("_fb_attack")).unique(["_user_key", "_event_time"], keep="last")
    joined = pl.concat([frame, keys], how="horizontal").join(
        fb, on=["_user_key", "_event_time"], how="left", maintain_order="left")
    had = "is_attack" in frame.columns
    base = pl.col("is_attack") if had else pl.lit(None, dtype=pl.Boolean)
    return joined.with_columns(
        pl.coalesce(pl.col("_fb_attack"), base).alias("is_attack"),
        pl.when(pl.col("_fb_attack").is_not_null()).then(pl.lit("feedback"))
        .otherwise(pl.lit("labels") if had else pl.lit(None, dtype=pl.Utf8)).alias("label_source"),
    ).drop("_user_key", "_event_time", "_fb_attack")


__all__ = ["ANALYST_KINDS", "ATTACK_KINDS", "FEEDBACK_KINDS", "FeedbackKind", "apply_feedback", "report_fraud"]
