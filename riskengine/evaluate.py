"""Detection quality of a labelled replay: ``riskengine evaluate --decisions … --labels …``.

- *Legitimate step-up rate*: share of legitimate logins that were challenged or denied —
  overall, for established users (≥ 5 earlier logins) and for cold-start users.
- *Catch rate* per attack family: share of the attackers' password-correct logins that
  were challenged or denied.
- *Trade-off curve*: for every risk threshold ``t``, "stepped up" means ``risk ≥ t`` (one
  definition, :func:`riskengine.model.metrics.stepped_up`, shared with the model metrics); the
  established users' legitimate step-up rate against the catch rate of each family. A
  login the engine allowed because of a trusted device (``TRUSTED_DEVICE`` override) counts
  as not stepped up at any threshold, as in production. The same curve is drawn for the
  Freeman et al. baseline score when the decisions carry one (``baseline_score``).
- *Operating point*: the lowest threshold whose established-user step-up rate is within
  ``--target-stepup``, and the catch rates there — ours and the baseline's side by side.

Only password-correct logins (rows with a decision) are evaluated, and none of the warm-up
(labels flagged ``warmup``: the simulator's legitimate traffic before its window). Warm-up
logins were replayed, so the profiles learned from them — a deployment that learns in shadow
mode before it enforces — and they count towards a user's earlier logins (``established``),
but no rate, curve or baseline figure includes them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from riskengine._extras import extra

with extra("sim", feature="riskengine evaluate"):
    import numpy as np
    import polars as pl

from riskengine.cliutil import UsageError, add_json_flag, print_json
from riskengine.formats import FORMATS, check_input_file, check_parquet_file, infer_format
from riskengine.model.metrics import Curve, curve

ESTABLISHED_MIN_LOGINS: Final = 5
STEPPED: Final = ("challenge", "deny")


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
        ]
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
    return Evaluation(
        logins=rows.height, legit=int(legit.sum()),
        attacks={f: int((fam_arr == f).sum()) for f in families},
        stepup_overall=share(legit), stepup_established=share(legit & est), stepup_cold=share(legit & ~est),
        catch=catch, catch_established=catch_est, target=target_stepup, ours=ours, baseline=base,
        table=pl.DataFrame(table_rows), warmup_excluded=warmup_excluded)


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


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate", help="detection quality of a labelled replay (ours vs Freeman et al. 2016)",
        description="Legitimate step-up rates, catch rate per attack family, the trade-off curve and "
                    "the threshold meeting a target step-up rate.")
    p.add_argument("--decisions", required=True, help="decisions.parquet from `riskengine replay`")
    p.add_argument("--labels", required=True,
                   help="labels.parquet (simulate; its warm-up rows are left out) or an RBA-layout CSV")
    p.add_argument("--target-stepup", type=float, default=0.02,
                   help="share of established users' legitimate logins allowed a step-up, in [0, 1]")
    p.add_argument("--out", default=None,
                   help="directory for curve.csv, curve_baseline.csv, tradeoff.png (default: write no files)")
    p.add_argument("--model", default=None,
                   help="trained model dir: also compare rules-only, model-only, blended and Freeman "
                        "side by side (replays --events twice)")
    p.add_argument("--events", default=None, help="the logins the decisions came from (with --model)")
    p.add_argument("--events-format", choices=FORMATS, default=None,
                   help="format of --events (default: inferred from the file)")
    add_json_flag(p, "the evaluation")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.target_stepup <= 1.0:
        raise UsageError(f"--target-stepup must be in [0, 1], got {args.target_stepup}")
    if getattr(args, "model", None) and not args.events:
        raise UsageError("--model needs --events (the logins to replay with and without the model)")
    check_parquet_file(args.decisions, "--decisions")
    check_input_file(args.labels, "--labels")
    ev = evaluate(args.decisions, args.labels, args.target_stepup)
    result: dict[str, Any] = {
        "logins": ev.logins, "legit": ev.legit, "attacks": ev.attacks, "warmup_excluded": ev.warmup_excluded,
        "stepup_overall": ev.stepup_overall, "stepup_established": ev.stepup_established,
        "stepup_cold": ev.stepup_cold, "catch": ev.catch, "catch_established": ev.catch_established,
        "target_stepup": ev.target, "operating_point": ev.table.to_dicts(), "files": []}
    if not args.json:
        print(ev.summary())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        ev.ours.frame().write_csv(out / "curve.csv")
        files = [out / "curve.csv"]
        if ev.baseline is not None:
            ev.baseline.frame().write_csv(out / "curve_baseline.csv")
            files.append(out / "curve_baseline.csv")
        ev.table.write_csv(out / "operating_point.csv")
        files += [out / "operating_point.csv", plot(ev, out / "tradeoff.png")]
        result["files"] = [str(f) for f in files]
        if not args.json:
            print(f"\nwrote {out / 'curve.csv'}, {files[-1]}")
    if getattr(args, "model", None):
        from riskengine.model.compare import compare_scorers, format_comparison

        fmt = getattr(args, "events_format", None) or infer_format(args.events, "--events")
        comparison = compare_scorers(args.events, args.labels, args.model, fmt=fmt,
                                     target_stepup=args.target_stepup)
        result["comparison"] = comparison.table.to_dicts()
        if not args.json:
            print("\n" + format_comparison(comparison, args.target_stepup))
    if args.json:
        print_json(result)
    return 0
