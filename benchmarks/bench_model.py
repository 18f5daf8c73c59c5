"""Latency of the learned model in the hot path: score() rules-only vs + logistic vs + HGB.

What is measured:
1. ``Engine.score()`` with the memory store, exactly as ``bench_score.py`` (10,000
   established users, 50,000 calls, 95 % familiar / 5 % new-device logins, GeoIP through the
   real reader, null audit sink), with ``policy.model`` unset, set to a logistic-regression
   model and set to a histogram-gradient-boosting model (both calibrated, weight 0.5);
2. the model hook alone (``LoadedModel.contribution``: features + probability + reasons
   when it contributes) per call, and scikit-learn's ``predict_proba`` on a one-row array —
   what the extraction avoids.

The models are trained on a simulated root (``--root``; default: simulated on first use into
``$TMPDIR/riskengine-bench-model``, which takes ~2 min the first time because the simulator
samples GeoLite2 networks once). ``--model DIR`` measures that trained model instead (rules
only vs that model), e.g. the one docs/benchmarks.md evaluates.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import percentiles_us, table, time_each  # noqa: E402
from bench_score import CALLS, USERS, attempts  # noqa: E402

from riskengine import Engine, LoginAttempt, Settings  # noqa: E402
from riskengine.audit.base import NullSink  # noqa: E402
from riskengine.core.enrich.geoip import GeoInfo  # noqa: E402
from riskengine.core.model.features import FEATURE_NAMES, FeatureConfig  # noqa: E402
from riskengine.core.model.inference import LoadedModel  # noqa: E402
from riskengine.core.stores import open_store  # noqa: E402
from riskengine.offline.model.dataset import build_dataset  # noqa: E402
from riskengine.offline.model.train import train_model  # noqa: E402
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE  # noqa: E402

UAS = [CHROME_WIN, FIREFOX_MAC, IPHONE]
IPS = ["81.2.69.160", "89.160.20.112", "216.160.83.56", "2.125.160.216", "175.16.199.0",
       "81.2.69.142", "152.216.7.110", "67.43.156.0"]


def models(root: Path, out: Path) -> dict[str, Path]:
    if not (root / "events.parquet").exists():
        from riskengine.offline.simulate import SimulationConfig, simulate

        print(f"simulating a training root into {root} …", file=sys.stderr)
        simulate(root, SimulationConfig(users=1500, days=56, seed=3, attack_intensity=8, ato_share=0.03,
                                        warmup_days=0),
                 fmt="native", progress=False)
    frame = build_dataset(root / "events.parquet", labels=root / "labels.parquet")
    dirs = {}
    for kind in ("logistic", "hgb"):
        dirs[kind] = out / kind
        m = train_model(frame, dirs[kind], feature_config=FeatureConfig(), estimator=kind)
        print(f"{kind}: test PR-AUC {m['test']['test_pr_auc']:.3f}", file=sys.stderr)
    return dirs


def run_score(label: str, model_dir: Path | None, odds: float | None = None) -> dict[str, object]:
    from datetime import timedelta

    from bench_score import T0

    policy: dict[str, object] = {"model": str(model_dir) if model_dir else None, "model_weight": 0.5}
    if odds is not None:
        policy["model_odds"] = odds
    settings = Settings().with_overrides(policy=policy)
    engine = Engine(settings, store=open_store("memory://"), sink=NullSink())
    for day in range(6):
        for u in range(USERS):
            d = engine.score(LoginAttempt(user_id=f"user-{u}", timestamp=T0 + timedelta(days=day, seconds=u),
                                          ip=IPS[u % len(IPS)], user_agent=UAS[u % 3]))
            if d.action == "challenge":  # a model may step up a new user's first login: they pass
                engine.record_outcome(d.decision_id, "verified", ["sms"],
                                      timestamp=T0 + timedelta(days=day, seconds=u + 20))
    probe = attempts(random.Random(7), CALLS, day=7)
    for a in probe[:2000]:
        engine.score(a)
    samples, elapsed = time_each(engine.score, probe)
    engine.close()
    p = percentiles_us(samples)
    return {"score() memory store": label, **{f"{k} µs": v for k, v in p.items()},
            "calls/s": int(len(probe) / elapsed)}


def run_hook(label: str, model_dir: Path) -> list[dict[str, object]]:
    import joblib
    import numpy as np

    from riskengine.testing import make_attempt

    model = LoadedModel.load(model_dir, weight=0.5, odds=Settings().policy.model_odds)
    engine = Engine(Settings().with_overrides(geo={"city_db": None}), sink=NullSink())
    prof = engine.store.get("x")
    from riskengine.core.profile import UserProfile

    profile = prof or UserProfile()
    attempt = make_attempt("x")  # 09:00 UTC
    first = int(attempt.timestamp.timestamp()) - 20 * 86400
    for day in range(20):
        profile = profile.learned(now=first + day * 86400, device_key="d1", country="GB",
                                  region="England", asn=2856, latitude=51.5, longitude=-0.1, local_hour=9)
    home = GeoInfo("GB", "England", "London", 51.5, -0.1, "Europe/London", 2856, "BT")
    away = GeoInfo("CN", "Jilin", "Changchun", 43.9, 125.3, "Asia/Shanghai", 4837, "China Unicom")
    rows = []
    for case, geo, dkey in (("familiar login", home, "d1"), ("risky login (+ reasons)", away, "d9")):
        samples = []
        for _ in range(20000):
            t = time.perf_counter_ns()
            model.contribution(attempt, geo, dkey, 9, profile, [], 0, 0)
            samples.append(time.perf_counter_ns() - t)
        p = percentiles_us(samples)
        rows.append({"model hook": f"{label}: {case}", **{f"{k} µs": v for k, v in p.items()}})
    sk = joblib.load(model_dir / "model.joblib")
    x = np.array([model.features.vector(attempt.timestamp.timestamp(), attempt.user_agent, away, "d9", 9,
                                        profile, 0, 0)])
    samples = []
    for _ in range(2000):
        t = time.perf_counter_ns()
        sk.predict_proba(x)
        samples.append(time.perf_counter_ns() - t)
    p = percentiles_us(samples)
    rows.append({"model hook": f"{label}: sklearn predict_proba, 1 row", **{f"{k} µs": v for k, v in p.items()}})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "riskengine-bench-model"))
    ap.add_argument("--model", type=Path, default=None,
                    help="a trained model directory: measure it (rules only vs + this model)")
    args = ap.parse_args()
    if args.model is not None:
        loaded = LoadedModel.load(args.model)
        label = f"+ {loaded.kind} ({args.model.name})"
        print(f"features: {len(FEATURE_NAMES)}; estimator: {loaded.kind}, calibration: {loaded.calibration}"
              + (f", {len(loaded.document['estimator']['trees'])} trees" if loaded.kind == "hgb" else ""))
        odds = Settings().policy.model_odds
        rows = [run_score("rules only", None), run_score(f"{label}, model_odds 1", args.model, 1.0),
                run_score(f"{label}, model_odds {odds:g}", args.model)]
        print(table(rows, f"score() latency with the model hook, {USERS:,} users, {CALLS:,} calls, single thread"))
        print()
        print(table(run_hook(loaded.kind, args.model), "the model hook alone (features + probability [+ reasons])"))
        return
    with tempfile.TemporaryDirectory() as tmp:
        dirs = models(Path(args.root), Path(tmp))
        print(f"features: {len(FEATURE_NAMES)}; HGB trees: "
              f"{len(LoadedModel.load(dirs['hgb']).document['estimator']['trees'])}")
        rows = [run_score("rules only", None), run_score("+ logistic", dirs["logistic"]),
                run_score("+ hgb", dirs["hgb"])]
        print(table(rows, f"score() latency with the model hook, {USERS:,} users, {CALLS:,} calls, single thread"))
        print("targets: memory p50 ≤ 25 µs, p99 ≤ 100 µs")
        print()
        hook = run_hook("logistic", dirs["logistic"]) + run_hook("hgb", dirs["hgb"])
        print(table(hook, "the model hook alone (features + probability [+ reasons]), per call"))


if __name__ == "__main__":
    main()
