"""Test helpers shipped with the library (like ``structlog.testing``): places, user agents,
attempt builders and a history builder, for this project's tests and for integrators' own.

>>> from riskengine.testing import make_attempt
>>> make_attempt().country
'GB'
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

from riskengine.audit.base import MemorySink
from riskengine.core.attempt import MAX_RTT_MS, LoginAttempt
from riskengine.core.config import Settings
from riskengine.core.decision import Factor
from riskengine.core.engine import Engine

CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
FIREFOX_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:121.0) Gecko/20100101 Firefox/121.0")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")

LONDON = {"country": "GB", "region": "England", "city": "London", "asn": 2856,
          "latitude": 51.5142, "longitude": -0.0931, "time_zone": "Europe/London"}
MANCHESTER = {"country": "GB", "region": "England", "city": "Manchester", "asn": 2856,
              "latitude": 53.48, "longitude": -2.24, "time_zone": "Europe/London"}
EDINBURGH = {"country": "GB", "region": "Scotland", "city": "Edinburgh", "asn": 2856,
             "latitude": 55.95, "longitude": -3.19, "time_zone": "Europe/London"}
PARIS = {"country": "FR", "region": "Ile-de-France", "city": "Paris", "asn": 3215,
         "latitude": 48.86, "longitude": 2.35, "time_zone": "Europe/Paris"}
CHANGCHUN = {"country": "CN", "region": "Jilin", "city": "Changchun", "asn": 4837,
             "latitude": 43.88, "longitude": 125.3228, "time_zone": "Asia/Shanghai"}

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 in London


def offline_settings(**sections: dict[str, Any]) -> Settings:
    """Settings with GeoIP off (tests pass pre-resolved geo) plus overrides."""
    base = Settings().with_overrides(geo={"city_db": None, "asn_db": None})
    return base.with_overrides(**sections) if sections else base


def make_attempt(user_id: str = "alice", ts: datetime = T0, place: dict[str, Any] | None = None,
                 ua: str = CHROME_WIN, ip: str = "81.2.69.160", **extra: Any) -> LoginAttempt:
    return LoginAttempt(user_id=user_id, timestamp=ts, ip=ip, user_agent=ua,
                        **(place if place is not None else LONDON), **extra)



def establish(engine: Engine, user_id: str = "alice", days: int = 20, hour: int = 9,
              place: dict[str, Any] | None = None, ua: str = CHROME_WIN, **extra: Any) -> datetime:
    """Give a user `days` daily logins at `hour` UTC from one place and device; return the last time."""
    ts = T0
    for day in range(days):
        ts = T0.replace(hour=hour) + timedelta(days=day)
        d = engine.score(make_attempt(user_id, ts, place, ua, **extra))
        assert d.action == "allow", d
    return ts


FACTORS = frozenset(get_args(Factor))
"""The second factors ``LoginAttempt.enrolled_factors`` accepts."""


def live_decisions(events: Iterable[Mapping[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """Every login of a simulated service's events (``riskengine simulate``'s ``events.parquet``
    rows, in order) through one live engine, each challenge verified 30 s later, failed
    passwords reported, converted signups recorded (``record_signup``): the engine's
    ``decisions`` audit rows. The oracle the replay's budget post-pass is tested against."""
    sink = MemorySink()
    with Engine(settings, sink=sink) as engine:
        for row in events:
            ts = row["event_time"].astimezone(UTC)
            if row["kind"] == "failed_password":
                engine.record_failure(row["user_id"], row["ip"], ts)
            elif row["kind"] == "signup" and row.get("converted"):
                engine.record_signup(LoginAttempt(
                    user_id=row["user_id"], timestamp=ts, ip=row["ip"], user_agent=row["user_agent"],
                    device_id=row["device_id"], rtt_ms=_usable_rtt(row.get("rtt_ms"))))
            elif row["kind"] == "login":
                d = engine.score(LoginAttempt(
                    user_id=row["user_id"], timestamp=ts, ip=row["ip"], user_agent=row["user_agent"],
                    device_id=row["device_id"], session_id=row["session_id"],
                    enrolled_factors=tuple(f for f in row["enrolled_factors"] if f in FACTORS),
                    rtt_ms=_usable_rtt(row.get("rtt_ms"))))
                if d.action == "challenge":
                    engine.record_outcome(d.decision_id, "verified", [d.factor] if d.factor else [],
                                          timestamp=ts + timedelta(seconds=30))
        engine.flush()
    return sink.rows("decisions")


def _usable_rtt(rtt: float | None) -> float | None:
    """What replay passes as the round-trip time: a finite 0 < rtt < 60 s, else nothing."""
    return rtt if rtt is not None and math.isfinite(rtt) and 0.0 < rtt < MAX_RTT_MS else None


def write_linear_model(out: Path, intercept: float, weights: Mapping[str, float]) -> Path:
    """Write a hand-made logistic model (``policy.model``) to the directory ``out``: the
    probability is ``1 / (1 + exp(−(intercept + Σ weights[f]·x_f)))`` over the named features
    (``riskengine.core.model.features.FEATURE_NAMES``; the rest weigh 0). For tests that need a
    model whose opinion they choose, without training one.

    >>> import tempfile
    >>> from riskengine.core.model.inference import LoadedModel
    >>> m = LoadedModel.load(write_linear_model(Path(tempfile.mkdtemp()), 0.0, {"device_new": 2.0}))
    >>> round(m.calibrate(0.0), 3)
    0.5
    """
    from riskengine.core.model.features import FEATURE_NAMES, FeatureConfig

    unknown = set(weights) - set(FEATURE_NAMES)
    if unknown:
        raise ValueError(f"unknown feature(s) {sorted(unknown)}")
    document = {
        "format": 1,
        "features": list(FEATURE_NAMES),
        "feature_config": FeatureConfig().to_json(),
        "estimator": {"kind": "logistic", "intercept": intercept,
                      "weights": [float(weights.get(name, 0.0)) for name in FEATURE_NAMES],
                      "means": [0.0] * len(FEATURE_NAMES)},
        # sigmoid calibration p = 1 / (1 + exp(a·raw + b)) with a = −1, b = 0: the raw log-odds as they are
        "calibrator": {"method": "sigmoid", "a": -1.0, "b": 0.0},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.json").write_text(json.dumps(document))
    return out
