"""Training rows: stream logins through the Engine (as replay does) and record the features.

Design: the audit log records decisions, not the profile each decision was made against, so
features cannot be rebuilt from it without a second implementation of the profile logic.
Instead the logins themselves (``events.parquet`` from ``riskengine simulate``/your own
export in the native layout, or an RBA-layout CSV) are replayed through a rules-only Engine
by :class:`riskengine.offline.replay.Replayer` — failed passwords, challenge outcomes and all — with
a :class:`~riskengine.core.model.features.FeatureRecorder` in the engine's model hook. Each
scored login yields its feature vector (built from the profile as it stood then), the
rules' decision and risk, and the Freeman baseline score; labels are joined on ``index``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from riskengine._extras import extra

with extra("model", feature="model training (riskengine model)"):
    import polars as pl

from riskengine.core.config import Settings
from riskengine.core.engine import Engine
from riskengine.core.model.features import FEATURE_NAMES, FeatureConfig, FeatureRecorder
from riskengine.offline.baseline import FreemanBaseline
from riskengine.offline.formats import infer_format
from riskengine.offline.prepass import SharedPass
from riskengine.offline.replay import Replayer, native_batches, prepass_batch, rba_batches

LABEL_COLUMNS: Final = ("is_attack", "attack_family", "established", "warmup")
ESTABLISHED_MIN_LOGINS: Final = 5
"""Without an ``established`` label column: users with at least this many accepted logins."""


def _settings(config: str | Path | Settings | None, asn_db: str | Path | None) -> Settings:
    settings = config if isinstance(config, Settings) else Settings.load(config)
    settings = settings.with_overrides(policy={"model": None}, audit={"root": None})
    if asn_db is not None:
        if not Path(asn_db).exists():
            raise FileNotFoundError(f"ASN database not found: {asn_db}")
        settings = settings.with_overrides(geo={"asn_db": str(asn_db)})
    return settings


def _batches(path: Path, fmt: str, batch_rows: int) -> Iterator[pl.DataFrame]:
    if fmt == "native":
        return native_batches(path, batch_rows)
    return rba_batches(path, batch_rows)


def resolve_inputs(root: str | Path | None, events: str | Path | None,
                   labels: str | Path | None) -> tuple[Path, str, Path | None]:
    """``--root DIR`` (a ``riskengine simulate`` output) or ``--events FILE``; returns
    (events path, format, labels path)."""
    if events is None:
        if root is None:
            raise ValueError("give --root (a simulated data directory) or --events (logins file)")
        base = Path(root)
        if not base.is_dir():
            raise FileNotFoundError(f"data root not found: {base}")
        for name, fmt in (("events.parquet", "native"), ("logins_rba.csv", "rba")):
            if (base / name).exists():
                events_path, found_fmt = base / name, fmt
                break
        else:
            raise FileNotFoundError(f"{base}: no events.parquet or logins_rba.csv (run riskengine simulate)")
        if labels is None and (base / "labels.parquet").exists():
            labels = base / "labels.parquet"
    else:
        events_path = Path(events)
        found_fmt = infer_format(events_path, "logins file")  # also: missing, empty, a directory
    if found_fmt == "rba" and labels is None:
        labels = events_path  # the RBA layout carries "Is Account Takeover"
    return events_path, found_fmt, Path(labels) if labels is not None else None


def read_labels(path: Path) -> pl.DataFrame:
    """``index`` + ``is_attack`` (+ ``attack_family``, ``established`` when present)."""
    if not path.exists():
        raise FileNotFoundError(f"labels file not found: {path}")
    frame = pl.read_csv(path, infer_schema_length=10000) if path.suffix.lower() == ".csv" \
        else pl.read_parquet(path)
    if "Is Account Takeover" in frame.columns and "is_attack" not in frame.columns:
        frame = frame.select(
            "index",
            pl.col("Is Account Takeover").cast(pl.Boolean).alias("is_attack"),
            pl.when(pl.col("Is Account Takeover").cast(pl.Boolean)).then(pl.lit("takeover"))
            .otherwise(None).alias("attack_family"))
    missing = [c for c in ("index", "is_attack") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: labels need columns index and is_attack; missing {missing}")
    keep = ["index", *(c for c in LABEL_COLUMNS if c in frame.columns)]
    return frame.select(keep).with_columns(pl.col("index").cast(pl.Int64),
                                           pl.col("is_attack").cast(pl.Boolean))


def build_dataset(
    events: str | Path, *, fmt: str = "native", labels: str | Path | None = None,
    config: str | Path | Settings | None = None, outcomes: str | None = None,
    feature_config: FeatureConfig | None = None, asn_db: str | Path | None = None,
    batch_rows: int = 65_536, progress: Callable[[int], None] | None = None,
    feedback: str | Path | None = None,
) -> pl.DataFrame:
    """One row per scored login, in stream order: ``index``, ``event_time``, ``user_id``,
    ``rules_decision``, ``rules_risk``, ``rules_reasons``, ``baseline_score``, the
    :data:`FEATURE_NAMES` columns and (with labels) ``is_attack``, ``attack_family``,
    ``established``. ``progress(rows)`` is called after each batch of input rows.
    ``feedback``: an audit root whose ``feedback`` table (``engine.report_fraud``) overrides
    the labels of the logins it names (precedence in :mod:`riskengine.core.feedback`; column
    ``label_source`` says which rows it labelled); the pseudonymisation key comes from
    ``config``'s ``[audit]`` settings, as the writing engine's did.

    >>> build_dataset("missing.parquet")
    Traceback (most recent call last):
    ...
    FileNotFoundError: logins file not found: missing.parquet
    """
    path = Path(events)
    if not path.exists():
        raise FileNotFoundError(f"logins file not found: {path}")
    if fmt not in ("native", "rba"):
        raise ValueError(f"format must be native or rba, got {fmt!r}")
    if asn_db is None and fmt == "native" and (path.parent / "asn.mmdb").exists():
        asn_db = path.parent / "asn.mmdb"
    loaded = config if isinstance(config, Settings) else Settings.load(config)
    settings = _settings(loaded, asn_db)
    fcfg = feature_config or FeatureConfig.from_settings(settings)
    if outcomes is None:
        outcomes = "simulated" if fmt == "native" else "labels"
    recorder = FeatureRecorder(fcfg)
    pieces: list[pl.DataFrame] = []
    with Engine(settings) as engine:
        engine.model = recorder
        replayer = Replayer(engine, fmt, outcomes, FreemanBaseline())
        shared = SharedPass(engine, fmt, baseline=True)  # the cross-user pre-pass replay uses
        for batch in _batches(path, fmt, batch_rows):
            before = len(recorder.rows)
            out = pl.from_arrow(replayer.run_batch(prepass_batch(shared, batch)))
            assert isinstance(out, pl.DataFrame)
            times = batch["event_time"] if fmt == "native" else batch["Login Timestamp"].str.to_datetime(
                time_zone="UTC")
            users = batch["user_id"] if fmt == "native" else batch["User ID"].cast(pl.Utf8)
            out = out.with_columns(times.alias("event_time"), users.alias("user_id"))
            scored = out.filter(pl.col("decision") != "")
            vectors = recorder.rows[before:]
            if len(vectors) != scored.height:
                raise RuntimeError(f"feature recorder saw {len(vectors)} logins, replay scored "
                                   f"{scored.height}: a login failed before the model hook")
            feats = pl.DataFrame(vectors, schema=list(FEATURE_NAMES), orient="row") if vectors else \
                pl.DataFrame(schema=dict.fromkeys(FEATURE_NAMES, pl.Float64))
            pieces.append(pl.concat([scored.select(
                "index", "event_time", "user_id", pl.col("decision").alias("rules_decision"),
                pl.col("risk_score").alias("rules_risk"), pl.col("reasons").alias("rules_reasons"),
                "outcome", "baseline_score"), feats], how="horizontal"))
            del recorder.rows[:], recorder.users[:]
            if progress is not None:
                progress(batch.height)
    frame = pl.concat(pieces) if pieces else pl.DataFrame()
    if frame.height == 0:
        raise ValueError(f"{path}: no successful logins to learn from")
    frame = frame.with_columns(pl.col("event_time").dt.convert_time_zone("UTC"))
    if labels is not None:
        lab = read_labels(Path(labels))
        frame = frame.join(lab, on="index", how="left", maintain_order="left")
        if frame["is_attack"].null_count() == frame.height:
            raise ValueError(f"labels {labels}: no label matches a login's index")
        frame = frame.with_columns(pl.col("is_attack").fill_null(False))
    if feedback is not None:
        frame = _with_feedback(frame, Path(feedback), loaded)
    if "established" not in frame.columns:
        frame = frame.with_columns(
            (pl.col("history_logins_log") >= math.log1p(ESTABLISHED_MIN_LOGINS)).alias("established"))
    return frame


def _with_feedback(frame: pl.DataFrame, root: Path, settings: Settings) -> pl.DataFrame:
    from riskengine.analytics import AuditDB
    from riskengine.audit.events import Pseudonymizer, resolve_key
    from riskengine.core.identity import normalizer
    from riskengine.offline.model.feedback import apply_feedback

    if not root.is_dir():
        raise FileNotFoundError(f"feedback audit root not found: {root}")
    db = AuditDB(root)
    try:
        labels = db.feedback_labels()
    finally:
        db.close()
    if labels.height == 0:
        return frame
    key = resolve_key(str(root), settings.audit.key, settings.audit.key_file).key
    return apply_feedback(frame, labels, Pseudonymizer(key, settings.audit.pseudonymize),
                          normalizer(settings.identity.normalize_user_id))


def feature_matrix(frame: pl.DataFrame) -> list[list[float]]:
    """The feature columns as row lists (what the online path computes per login)."""
    missing = [c for c in FEATURE_NAMES if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks feature columns {missing}")
    return [list(r) for r in frame.select(FEATURE_NAMES).iter_rows()]
