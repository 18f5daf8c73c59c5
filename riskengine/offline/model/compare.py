"""Rules-only vs model-only vs blended vs the Freeman baseline, on the same logins.

- *rules*: the engine's risk with no model (the replay that also records features);
- *model*: the trained model's calibrated probability on those same logins' features;
- *blended*: the risk of a second replay with ``policy.model`` set — the model's term in
  the noisy-OR, its decisions feeding back into what profiles learn, as in production;
- *freeman2016*: the Freeman et al. likelihood ratio computed in the first replay.

Scored with :func:`riskengine.offline.metrics.curve` (as ``riskengine evaluate``) so every row means exactly what
``riskengine evaluate`` means. Logins the model was fitted or calibrated on are excluded by
default: on the very file the model was trained on (its SHA-256 is saved with the model),
``since`` = the model's first test instant; any other file counts from its first login.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from riskengine._extras import extra

with extra("model", feature="model training (riskengine model)"):
    import numpy as np
    import polars as pl

from riskengine.core.config import Settings
from riskengine.core.model.features import FEATURE_NAMES, FeatureConfig
from riskengine.core.model.inference import MODEL_FILE, LoadedModel
from riskengine.offline.metrics import curve, pr_auc, stepped_up_rate
from riskengine.offline.model.dataset import LABEL_COLUMNS, build_dataset, read_labels
from riskengine.offline.model.train import file_fingerprint
from riskengine.offline.replay import replay


@dataclass(frozen=True, slots=True)
class Comparison:
    table: pl.DataFrame
    """One row per scorer: threshold, established step-up rate, catch per family, PR-AUC."""
    rows: pl.DataFrame
    """Per login: index, event_time, labels and each scorer's score (for curves, notebooks)."""
    since: datetime | None


def score_logins(
    events: str | Path, model_dir: str | Path, *, fmt: str = "native", labels: str | Path | None = None,
    config: str | Path | Settings | None = None,
) -> pl.DataFrame:
    """Per scored login: ``rules``, ``model``, ``blended``, ``freeman2016`` scores (+ labels)."""
    settings = config if isinstance(config, Settings) else Settings.load(config)
    model = LoadedModel.load(model_dir, weight=settings.policy.model_weight, odds=settings.policy.model_odds)
    fcfg = FeatureConfig.from_json(model.document["feature_config"])
    frame = build_dataset(events, fmt=fmt, labels=labels, config=settings, feature_config=fcfg)
    probs = model.predict(frame.select(FEATURE_NAMES).to_numpy().tolist())
    blended_settings = settings.with_overrides(policy={"model": str(model_dir)}, audit={"root": None})
    blended = replay(events, fmt, config=blended_settings, baseline=False).filter(pl.col("decision") != "")
    trusted = pl.col("rules_decision").eq("allow") & pl.col("rules_reasons").list.contains("TRUSTED_DEVICE")
    return frame.select(
        "index", "event_time", *(c for c in LABEL_COLUMNS if c in frame.columns),
        # a trusted-device allow is never stepped up, at any threshold (as evaluate counts it)
        pl.when(trusted).then(-np.inf).otherwise(pl.col("rules_risk")).alias("rules"),
        pl.Series("model", probs, dtype=pl.Float64),
        pl.col("baseline_score").fill_null(-np.inf).alias("freeman2016"),
    ).join(
        blended.select(
            "index",
            pl.when(pl.col("decision").eq("allow") & pl.col("reasons").list.contains("TRUSTED_DEVICE"))
            .then(-np.inf).otherwise(pl.col("risk_score")).alias("blended")),
        on="index", how="left", maintain_order="left")


def compare_scorers(
    events: str | Path, labels: str | Path | None, model_dir: str | Path, *, fmt: str = "native",
    config: str | Path | Settings | None = None, target_stepup: float = 0.02,
    since: datetime | str | None = "auto",
) -> Comparison:
    """The side-by-side table ``riskengine evaluate --model`` prints."""
    if labels is None and fmt == "rba":
        labels = events
    if labels is None:
        raise ValueError("comparing scorers needs labels")
    read_labels(Path(labels))  # clear error before two replays
    rows = score_logins(events, model_dir, fmt=fmt, labels=labels, config=config)
    cutoff: datetime | None
    if since == "auto":
        cutoff = _auto_cutoff(json.loads(_model_file(model_dir).read_text()), events)
        if cutoff is not None and rows["event_time"].min() >= cutoff:  # type: ignore[operator]
            cutoff = None  # fresh data: nothing here was used in training
    elif isinstance(since, str):
        cutoff = datetime.fromisoformat(since)
    else:
        cutoff = since
    if cutoff is not None:
        rows = rows.filter(pl.col("event_time") >= cutoff)
    if "warmup" in rows.columns:  # replayed so profiles learn, but never counted (as evaluate)
        rows = rows.filter(~pl.col("warmup").fill_null(False))
    if rows.height == 0 or not rows["is_attack"].any():
        raise ValueError("no attack logins to compare on (after leaving out the training weeks)")
    attack = rows["is_attack"].to_numpy().astype(bool)
    est = rows["established"].to_numpy().astype(bool)
    family = rows["attack_family"].to_list()
    families = sorted({f for f in family if f})
    out: list[dict[str, Any]] = []
    for name in ("rules", "model", "blended", "freeman2016"):
        score = rows[name].fill_null(-np.inf).to_numpy().astype(np.float64)
        t, rate, caught = curve(score, attack, est, family, families).at_target(target_stepup)
        finite = np.where(np.isfinite(score), score, -1e300)
        out.append({"scorer": name, "threshold": t, "legit_stepup_established": rate,
                    **{f"catch_{f}": v for f, v in caught.items()},
                    "catch_all": float(stepped_up_rate(score[attack], [t])[0]),
                    "pr_auc": pr_auc(finite, attack)})
    return Comparison(pl.DataFrame(out), rows, cutoff)


def _auto_cutoff(document: dict[str, Any], events: str | Path) -> datetime | None:
    """Where the logins the model never saw begin in ``events``: the model's test weeks when
    ``events`` is the file it was trained on (or, for a model without a training fingerprint,
    any file: dates alone cannot tell), else nothing — another file is unseen from its first
    login, even when its dates overlap the training window (a simulation with another seed)."""
    trained_on = document.get("training_data", {}).get("sha256")
    if trained_on is not None and trained_on != file_fingerprint(events):
        return None
    start = document.get("training_window", {}).get("test_start")
    return datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None


def _model_file(model_dir: str | Path) -> Path:
    p = Path(model_dir)
    return p / MODEL_FILE if p.is_dir() else p


def format_comparison(c: Comparison, target_stepup: float) -> str:
    head = f"scorers side by side at ≤ {target_stepup:.1%} step-ups of established users' legitimate logins"
    if c.since is not None:
        head += f" (logins from {c.since.isoformat()} on: the model's test weeks)"
    cols = c.table.columns
    widths = [max(len(col), 11) for col in cols]
    lines = [head, "  " + " | ".join(col.rjust(w) for col, w in zip(cols, widths, strict=True))]
    for r in c.table.iter_rows():
        lines.append("  " + " | ".join(
            v.rjust(w) if isinstance(v, str) else f"{v:>{w}.4g}" for v, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


__all__ = ["Comparison", "compare_scorers", "format_comparison", "score_logins"]
