"""Features: online (LoadedModel inside Engine.score) == offline (FeatureRecorder in replay)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from riskengine import Engine
from riskengine.core.enrich.geoip import GeoInfo
from riskengine.core.model.features import FEATURE_NAMES, FeatureConfig, FeatureExtractor
from riskengine.core.model.inference import LoadedModel
from riskengine.core.profile import DeviceSeen, UserProfile
from riskengine.offline.model.dataset import build_dataset
from riskengine.offline.prepass import SharedPass
from riskengine.offline.replay import Replayer, native_batches, prepass_batch
from riskengine.testing import CHROME_WIN, IPHONE

NOW = 1_760_000_000.0
LONDON = GeoInfo("GB", "England", "London", 51.5142, -0.0931, "Europe/London", 2856, "BT")
CHANGCHUN = GeoInfo("CN", "Jilin", "Changchun", 43.88, 125.3228, "Asia/Shanghai", 4837, "China Unicom")


class RecordingExtractor(FeatureExtractor):
    """The online extractor, keeping what it computed (the computation itself is untouched)."""

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__(config)
        self.seen: list[list[float]] = []

    def vector(self, *args: object, **kwargs: object) -> list[float]:
        x = super().vector(*args, **kwargs)  # type: ignore[arg-type]
        self.seen.append(x)
        return x


def test_online_features_equal_offline_training_rows(
        logins: tuple[Path, Path], dataset: pl.DataFrame, trained: Callable[..., Path]) -> None:
    events, _ = logins
    settings = Engine().settings.with_overrides(policy={"model": str(trained("logistic", "sigmoid")),
                                                        "model_weight": 0.0})
    with Engine(settings) as engine:
        assert isinstance(engine.model, LoadedModel)
        recorder = RecordingExtractor(engine.model.features.config)
        engine.model.features = recorder
        replayer = Replayer(engine, "native", "simulated", None)
        shared = SharedPass(engine, "native", baseline=False)
        for batch in native_batches(events, 1000):
            replayer.run_batch(prepass_batch(shared, batch))
    offline = [list(r) for r in dataset.select(FEATURE_NAMES).iter_rows()]
    assert len(recorder.seen) == len(offline) == dataset.height
    assert recorder.seen == offline  # exactly, not approximately


def test_dataset_rows_carry_rules_and_labels(dataset: pl.DataFrame) -> None:
    assert dataset["index"].is_sorted()
    assert set(dataset["rules_decision"].unique()) <= {"allow", "challenge", "deny"}
    assert dataset["is_attack"].sum() > 20
    # attacks come from new devices; familiar logins mostly from known ones
    attacks = dataset.filter(pl.col("is_attack"))
    assert attacks["device_new"].mean() > 0.9  # attackers sometimes share the victim's browser
    legit = dataset.filter(~pl.col("is_attack") & pl.col("established"))
    assert legit["device_new"].mean() < 0.1


def test_new_user_has_only_novelty() -> None:
    fx = FeatureExtractor(FeatureConfig())
    x = dict(zip(FEATURE_NAMES, fx.vector(NOW, CHROME_WIN, LONDON, "d1", 9, UserProfile(), 0, 0), strict=True))
    assert x["new_user"] == 1.0 and x["device_new"] == 1.0 and x["country_new"] == 1.0
    assert x["history_logins_log"] == 0.0 and x["distance_km_log"] == 0.0 and x["hour_rarity"] == 0.0
    assert x["device_pc"] == 1.0 and x["device_mobile"] == 0.0


def _profile() -> UserProfile:
    p = UserProfile()
    for day in range(20):
        p = p.learned(now=int(NOW - (20 - day) * 86400), device_key="d1", country="GB", region="England",
                      asn=2856, latitude=51.5142, longitude=-0.0931, local_hour=9)
    return p


def test_familiar_login_versus_impossible_trip() -> None:
    fx = FeatureExtractor(FeatureConfig())
    p = _profile()
    home = dict(zip(FEATURE_NAMES, fx.vector(NOW, CHROME_WIN, LONDON, "d1", 9, p, 0, 0), strict=True))
    assert home["device_new"] == home["country_new"] == home["region_new"] == home["asn_new"] == 0.0
    assert home["hour_rarity"] == 0.0 and home["speed_kmh_log"] == 0.0
    assert home["history_logins_log"] == pytest.approx(math.log1p(20))
    assert home["device_logins_log"] == pytest.approx(math.log1p(20))
    away = dict(zip(FEATURE_NAMES, fx.vector(NOW, IPHONE, CHANGCHUN, "d2", 3, p, 4, 30), strict=True))
    assert away["device_new"] == away["country_new"] == away["region_new"] == away["asn_new"] == 1.0
    # 8,182 km a day after the last login: ~(8182 - 100) / 24 km/h
    assert away["distance_km_log"] == pytest.approx(math.log1p(8182), abs=1e-3)
    assert away["speed_kmh_log"] == pytest.approx(math.log1p((8182.5 - 100) / 24), abs=1e-2)
    assert away["hour_rarity"] == 1.0
    assert away["user_failures_log"] == pytest.approx(math.log1p(4))
    assert away["ip_failures_log"] == pytest.approx(math.log1p(30))
    assert away["device_mobile"] == 1.0


def test_device_idle_past_window_counts_as_new_and_trust_is_read() -> None:
    fx = FeatureExtractor(FeatureConfig(device_window_days=30))
    p = UserProfile(logins=5, created=int(NOW - 90 * 86400),
                    devices={"d1": DeviceSeen(int(NOW - 90 * 86400), int(NOW - 40 * 86400), 5,
                                              int(NOW + 86400))})
    x = dict(zip(FEATURE_NAMES, fx.vector(NOW, CHROME_WIN, LONDON, "d1", 9, p, 0, 0), strict=True))
    assert x["device_new"] == 1.0 and x["device_trusted"] == 1.0
    assert x["device_idle_days_log"] == pytest.approx(math.log1p(40))
    assert x["account_age_days_log"] == pytest.approx(math.log1p(90))


def test_hosting_flag_by_asn_list_and_org_keyword() -> None:
    fx = FeatureExtractor(FeatureConfig(hosting_asns=(64500,), hosting_keywords=("cloud",)))
    geo = GeoInfo("US", None, None, None, None, None, 64500, None)
    assert fx.vector(NOW, "", geo, "d", None, UserProfile(), 0, 0)[FEATURE_NAMES.index("hosting_asn")] == 1.0
    geo = GeoInfo("US", None, None, None, None, None, 1, "Example Cloud Inc")
    assert fx.vector(NOW, "", geo, "d", None, UserProfile(), 0, 0)[FEATURE_NAMES.index("hosting_asn")] == 1.0
    geo = GeoInfo("US", None, None, None, None, None, 2, "Example Broadband")
    assert fx.vector(NOW, "", geo, "d", None, UserProfile(), 0, 0)[FEATURE_NAMES.index("hosting_asn")] == 0.0


def test_feature_config_round_trips_and_rejects_other_feature_lists() -> None:
    cfg = FeatureConfig(history_days=100.0, hosting_asns=(1, 2))
    assert FeatureConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="retrain"):
        FeatureConfig.from_json({**cfg.to_json(), "names": ["a", "b"]})
    with pytest.raises(ValueError, match="unknown feature settings"):
        FeatureConfig.from_json({"bogus": 1})


def test_dataset_errors_are_clear(tmp_path: Path, logins: tuple[Path, Path]) -> None:
    with pytest.raises(FileNotFoundError, match="logins file not found"):
        build_dataset(tmp_path / "nope.parquet")
    bad = tmp_path / "labels.parquet"
    pl.DataFrame({"index": [1]}).write_parquet(bad)
    with pytest.raises(ValueError, match="is_attack"):
        build_dataset(logins[0], labels=bad)


def test_hour_uses_the_users_own_history() -> None:
    fx = FeatureExtractor(FeatureConfig(hour_min_logins=8))
    p = _profile()
    at9 = fx.vector(NOW + 3600, CHROME_WIN, LONDON, "d1", 9, p, 0, 0)[FEATURE_NAMES.index("hour_rarity")]
    at10 = fx.vector(NOW + timedelta(hours=1).total_seconds(), CHROME_WIN, LONDON, "d1", 10, p, 0, 0)[
        FEATURE_NAMES.index("hour_rarity")]
    at15 = fx.vector(NOW, CHROME_WIN, LONDON, "d1", 15, p, 0, 0)[FEATURE_NAMES.index("hour_rarity")]
    assert at9 == 0.0 and at10 == 0.0 and at15 == 1.0


def test_richer_evidence_features_are_the_engines_signal_values() -> None:
    """One definition: the model's features for the new evidence are the values the engine's
    signal functions returned for this login (online and in training alike)."""
    from riskengine import Engine
    from riskengine.audit.base import NullSink
    from riskengine.core.model.features import FeatureRecorder
    from riskengine.testing import establish, make_attempt, offline_settings

    with Engine(offline_settings(), sink=NullSink()) as engine:
        last = establish(engine, rtt_ms=35.0)
        recorder = FeatureRecorder(FeatureConfig.from_settings(engine.settings))
        engine.model = recorder
        d = engine.score(make_attempt(ts=last + timedelta(days=1), ip="81.2.99.7", rtt_ms=240.0,
                                      ua=CHROME_WIN.replace("Chrome/120", "Chrome/112")))
    x = dict(zip(FEATURE_NAMES, recorder.rows[-1], strict=True))
    fired = {r.code: r for r in d.reasons}
    assert x["ua_downgrade"] == 1.0 and "UA_DOWNGRADE" in fired
    assert x["prefix_new"] == 1.0 and x["rtt_anomaly"] == 1.0
    assert x["ua_new_version"] == 0.0 and x["city_new"] == 0.0 and x["far_from_usual_places"] == 0.0


def test_event_sensitive_feature_is_the_attempts_own_event() -> None:
    """The same login as a recovery differs from the login in exactly one feature,
    ``event_sensitive`` (the attempt's ``event``, read as score() reads it). Sensitive events
    never teach the profile, so they go first and the login last sees the same profile."""
    from riskengine import Engine
    from riskengine.audit.base import NullSink
    from riskengine.core.model.features import FeatureRecorder
    from riskengine.testing import establish, make_attempt, offline_settings

    with Engine(offline_settings(), sink=NullSink()) as engine:
        last = establish(engine)
        recorder = FeatureRecorder(FeatureConfig.from_settings(engine.settings))
        engine.model = recorder
        for event in ("recovery", "factor_change", "password_reset", "login"):
            engine.score(make_attempt(ts=last + timedelta(hours=1), event=event))
    *sensitive, login = (dict(zip(FEATURE_NAMES, row, strict=True)) for row in recorder.rows)
    assert login["event_sensitive"] == 0.0
    for x in sensitive:
        assert x["event_sensitive"] == 1.0
        assert {k for k in x if x[k] != login[k]} == {"event_sensitive"}
