"""Detection quality of a labelled replay: ``riskengine evaluate --decisions … --labels …``.

- *Legitimate step-up rate*: share of legitimate logins that were challenged or denied —
  overall, for established users (≥ 5 earlier logins) and for cold-start users.
- *Catch rate* per attack family: share of the attackers' password-correct logins that
  were challenged or denied.
- *Trade-off curve*: for every risk threshold ``t``, "stepped up" means ``risk ≥ t`` (one
  definition, :func:`riskengine.offline.metrics.stepped_up`, shared with the model metrics); the
  established users' legitimate step-up rate against the catch rate of each family. A
  login the engine allowed because of a trusted device (``TRUSTED_DEVICE`` override) counts
  as not stepped up at any threshold, as in production. The same curve is drawn for the
  Freeman et al. baseline score when the decisions carry one (``baseline_score``).
- *Operating point*: the lowest threshold whose established-user step-up rate is within
  ``--target-stepup``, and the catch rates there — ours and the baseline's side by side.
- *Per-family catch table* (:func:`per_family_table`, stable keys :data:`PER_FAMILY_COLUMNS`):
  for each attack family, the share caught by the rules as configured, by the rules at the
  target step-up rate, and by the Freeman baseline at the *same* established-user step-up
  rate as each of those (the configured one as realised, and the target); with ``--model``,
  also the model alone and the blend at the target.

Only password-correct logins (rows with a decision) are evaluated, and none of the warm-up
(labels flagged ``warmup``: the simulator's legitimate traffic before its window). Warm-up
logins were replayed, so the profiles learned from them — a deployment that learns in shadow
mode before it enforces — and they count towards a user's earlier logins (``established``),
but no rate, curve or baseline figure includes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from riskengine._extras import extra

with extra("sim", feature="riskengine evaluate"):
    import numpy as np
    import polars as pl

from riskengine.offline.metrics import Curve, curve

ESTABLISHED_MIN_LOGINS: Final = 5
STEPPED: Final = ("challenge", "deny")
PER_FAMILY_COLUMNS: Final = (
    "family", "logins", "rules_configured", "freeman_at_configured_rate", "rules_at_target",
    "freeman_at_target", "model_at_target", "blend_at_target")
"""The per-family table's columns (``riskengine evaluate --json``: ``per_family``), in order.
Catch rates are shares in [0, 1]; a scorer that was not run (no baseline score, no model) is
null."""


def load_labels(path: str | Path) -> pl.DataFrame:
    """``index, is_attack, attack_family, established, warmup`` from labels.parquet or an RBA CSV.

    For an RBA CSV, ``is_attack`` is ``Is Account Takeover`` (family ``account_takeover``) and
    ``established`` counts the user's earlier successful logins in file order. The RBA layout
    has no warm-up flag (every row counts): evaluate a simulation with its labels.parquet.
    ``warmup`` is false where a labels file has no such column.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"labels not found: {path}")
    if path.suffix == ".parquet":
        labels = pl.read_parquet(path)
        missing = [c for c in ("index", "is_attack") if c not in labels.columns]
        if missing:
            raise ValueError(f"{path}: labels need columns {missing}")
        if "attack_family" not in labels.columns:
            labels = labels.with_columns(
                pl.when(pl.col("is_attack")).then(pl.lit("attack")).otherwise(None).alias("attack_family"))
        if "established" not in labels.columns:
            raise ValueError(f"{path}: labels need an 'established' column (≥5 earlier logins)")
        return labels.select(pl.col("index").cast(pl.Int64), "is_attack", "attack_family", "established",
                             _warmup_column(labels))
    want = ["index", "User ID", "Login Successful", "Is Account Takeover"]
    head = pl.read_csv(path, n_rows=0)
    missing = [c for c in want if c not in head.columns]
    if missing:
        raise ValueError(f"{path}: not an RBA-layout CSV with labels, missing {missing}")
    csv = pl.scan_csv(path, schema_overrides={"User ID": pl.Utf8}).select(want).collect()
    ok = pl.col("Login Successful").cast(pl.Int32)
    return csv.select(
        pl.col("index").cast(pl.Int64),
        pl.col("Is Account Takeover").fill_null(False).alias("is_attack"),
        pl.when(pl.col("Is Account Takeover")).then(pl.lit("account_takeover")).otherwise(None)
        .alias("attack_family"),
        ((ok.cum_sum().over("User ID") - ok) >= ESTABLISHED_MIN_LOGINS).alias("established"),
        pl.lit(False).alias("warmup"),
    )


def _warmup_column(labels: pl.DataFrame) -> pl.Expr:
    if "warmup" not in labels.columns:
        return pl.lit(False).alias("warmup")
    return pl.col("warmup").fill_null(False).cast(pl.Boolean)


@dataclass(slots=True)
class Evaluation:
    logins: int
    legit: int
    attacks: dict[str, int]
    stepup_overall: float
    stepup_established: float
    stepup_cold: float
    catch: dict[str, float]
    catch_established: dict[str, float]
    target: float
    ours: Curve
    baseline: Curve | None
    table: pl.DataFrame = field(default_factory=pl.DataFrame)
    warmup_excluded: int = 0
    """Warm-up logins replayed (profiles learned from them) but left out of every figure."""
    per_family: pl.DataFrame = field(default_factory=pl.DataFrame)
    """:func:`per_family_table` without the model columns filled (see :func:`with_model`)."""

    def summary(self) -> str:
        lines = [
            f"logins evaluated: {self.logins:,} ({self.legit:,} legitimate, "
            + ", ".join(f"{f} {n:,}" for f, n in self.attacks.items()) + ")",
            f"warm-up logins excluded: {self.warmup_excluded:,} (replayed: profiles learned from them)",
            "engine as configured:",
            f"  legitimate step-up rate: overall {self.stepup_overall:.2%}, established "
            f"{self.stepup_established:.2%}, cold start {self.stepup_cold:.2%}",
            "  catch rate: " + ", ".join(
                f"{f} {c:.1%} (established victims {self.catch_established[f]:.1%})"
                for f, c in self.catch.items()),
            "",
            f"at ≤ {self.target:.1%} step-ups of established users' legitimate logins:",
            _format_table(self.table),
            "",
            format_per_family(self.per_family, self.stepup_established, self.target),
        ]
        return "\n".join(lines)


def per_family_table(catch_configured: dict[str, float], logins: dict[str, int], configured_rate: float,
                     target: float, ours: Curve, baseline: Curve | None) -> pl.DataFrame:
    """One row per attack family (:data:`PER_FAMILY_COLUMNS`).

    ``freeman_at_configured_rate`` puts the baseline at the established-user step-up rate the
    rules realised as configured, ``freeman_at_target`` at the rules' target: every comparison
    is at equal cost to legitimate users.
    """
    _, _, rules_t = ours.at_target(target)
    base_cfg = baseline.at_target(configured_rate)[2] if baseline is not None else None
    base_t = baseline.at_target(target)[2] if baseline is not None else None
    rows = [{
        "family": f, "logins": logins.get(f, 0), "rules_configured": catch_configured[f],
        "freeman_at_configured_rate": None if base_cfg is None else base_cfg[f],
        "rules_at_target": rules_t[f], "freeman_at_target": None if base_t is None else base_t[f],
        "model_at_target": None, "blend_at_target": None} for f in sorted(catch_configured)]
    schema: dict[str, Any] = {c: pl.Float64 for c in PER_FAMILY_COLUMNS}
    schema.update(family=pl.Utf8, logins=pl.Int64)
    return pl.DataFrame(rows, schema=schema)


def with_model(per_family: pl.DataFrame, comparison: pl.DataFrame) -> pl.DataFrame:
    """Fill ``model_at_target`` / ``blend_at_target`` from ``compare_scorers``' table (one row per
    scorer, ``catch_<family>`` columns at the same target)."""
    def column(scorer: str) -> list[float | None]:
        row = comparison.filter(pl.col("scorer") == scorer)
        if row.height == 0:
            return [None] * per_family.height
        values = row.row(0, named=True)
        return [values.get(f"catch_{f}") for f in per_family["family"]]

    return per_family.with_columns(pl.Series("model_at_target", column("model"), dtype=pl.Float64),
                                   pl.Series("blend_at_target", column("blended"), dtype=pl.Float64))


def format_per_family(table: pl.DataFrame, configured_rate: float, target: float) -> str:
    """The per-family table as text (percentages; ``—`` where a scorer was not run)."""
    heads = ("family", "logins", f"rules as configured ({configured_rate:.2%})", "Freeman same rate",
             f"rules at {target:.1%}", f"Freeman at {target:.1%}", f"model at {target:.1%}",
             f"blend at {target:.1%}")
    cells = [[str(r["family"]), f"{r['logins']:,}"] + [
        "—" if r[c] is None else f"{r[c]:.1%}" for c in PER_FAMILY_COLUMNS[2:]]
        for r in table.iter_rows(named=True)]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(heads)]
    lines = ["catch rate per attack family (Freeman et al. 2016 at the same established step-up rate):",
             "  " + " | ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _format_table(table: pl.DataFrame) -> str:
    header = "  " + " | ".join(f"{c:>22s}" for c in table.columns)
    rows = []
    for r in table.iter_rows():
        cells = [f"{v:>22s}" if isinstance(v, str) else f"{v:>22.4g}" for v in r]
        rows.append("  " + " | ".join(cells))
    return "\n".join([header, *rows])


def evaluate(decisions: pl.DataFrame | str | Path, labels: pl.DataFrame | str | Path,
             target_stepup: float = 0.02) -> Evaluation:
    """Join decisions with labels on ``index`` and measure (see the module docstring)."""
    if not 0.0 <= target_stepup <= 1.0:
        raise ValueError(f"--target-stepup must be in [0, 1], got {target_stepup}")
    dec = decisions if isinstance(decisions, pl.DataFrame) else pl.read_parquet(decisions)
    lab = labels if isinstance(labels, pl.DataFrame) else load_labels(labels)
    for name in ("index", "decision", "risk_score"):
        if name not in dec.columns:
            raise ValueError(f"decisions need a {name!r} column")
    rows = dec.filter(pl.col("decision") != "").join(
        lab.select("index", "is_attack", "attack_family", "established", _warmup_column(lab)),
        on="index", how="left")
    if rows["is_attack"].null_count():
        raise ValueError(f"{rows['is_attack'].null_count()} decisions have no label (index not in labels)")
    warmup_excluded = int(rows["warmup"].sum())
    rows = rows.filter(~pl.col("warmup"))
    stepped = rows["decision"].is_in(STEPPED).to_numpy()
    attack = rows["is_attack"].to_numpy().astype(bool)
    est = rows["established"].to_numpy().astype(bool)
    family = rows["attack_family"].to_list()
    families = sorted({f for f in family if f})
    legit = ~attack

    def share(mask: np.ndarray[Any, Any]) -> float:
        return float(stepped[mask].mean()) if mask.any() else 0.0

    fam_arr = np.array([f or "" for f in family], dtype=object)
    catch = {f: share(attack & (fam_arr == f)) for f in families}
    catch_est = {f: share(attack & (fam_arr == f) & est) for f in families}
    trusted_override = (rows["decision"] == "allow").to_numpy() & rows["reasons"].list.contains(
        "TRUSTED_DEVICE").to_numpy() if "reasons" in rows.columns else np.zeros(rows.height, bool)
    risk = rows["risk_score"].to_numpy().astype(np.float64)
    risk = np.where(trusted_override, -np.inf, risk)
    ours = curve(risk, attack, est, family, families)
    base: Curve | None = None
    if "baseline_score" in rows.columns and rows["baseline_score"].null_count() < rows.height:
        b = rows["baseline_score"].fill_null(-np.inf).to_numpy().astype(np.float64)
        base = curve(b, attack, est, family, families)
    table_rows: list[dict[str, Any]] = []
    for name, c in (("riskengine", ours), ("freeman2016", base)):
        if c is None:
            continue
        t, rate, caught = c.at_target(target_stepup)
        table_rows.append({"scorer": name, "threshold": t, "legit_stepup_established": rate,
                           **{f"catch_{f}": v for f, v in caught.items()}})
    attacks = {f: int((fam_arr == f).sum()) for f in families}
    stepup_established = share(legit & est)
    return Evaluation(
        logins=rows.height, legit=int(legit.sum()),
        attacks=attacks,
        stepup_overall=share(legit), stepup_established=stepup_established, stepup_cold=share(legit & ~est),
        catch=catch, catch_established=catch_est, target=target_stepup, ours=ours, baseline=base,
        table=pl.DataFrame(table_rows), warmup_excluded=warmup_excluded,
        per_family=per_family_table(catch, attacks, stepup_established, target_stepup, ours, base))


def plot(ev: Evaluation, path: str | Path) -> Path:
    """Trade-off curves (established users' legitimate step-up rate vs catch rate) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, fam in enumerate(ev.ours.catch):
        color = colors[k % len(colors)]
        ax.plot(ev.ours.legit_established, ev.ours.catch[fam], color=color, label=f"riskengine · {fam}")
        if ev.baseline is not None:
            ax.plot(ev.baseline.legit_established, ev.baseline.catch[fam], color=color, linestyle="--",
                    label=f"Freeman 2016 · {fam}")
    ax.axvline(ev.target, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("legitimate step-up rate, established users")
    ax.set_ylabel("catch rate")
    ax.set_title("Detection trade-off (solid: riskengine, dashed: Freeman et al. 2016)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
