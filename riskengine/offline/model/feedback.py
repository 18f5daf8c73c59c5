"""Fraud feedback as training labels: :func:`apply_feedback` (the precedence is in
:mod:`riskengine.core.feedback`'s docstring: an analyst's latest verdict beats the user's
``not_me``, which beats the labels file and what challenge outcomes imply)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from riskengine.audit import Pseudonymizer


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


__all__ = ["apply_feedback"]
