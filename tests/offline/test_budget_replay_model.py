"""The step-up budget with a model configured, end to end on a small simulated file: the live
threshold on the blended risk rises above ``budget_max_threshold`` when the model lifts many
legitimate logins, the rules alone at that clamp still step up (the replay's post-pass gets it
from the scoring pass, as the live engine decides it), and the budget holds where a threshold
clamped at ``budget_max_threshold`` on the blend could not."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from riskengine.core.config import Settings
from riskengine.offline.replay import replay
from riskengine.offline.simulate import SimulationConfig, simulate
from riskengine.testing import live_decisions, write_linear_model

TARGET = 0.02
FACTORS = ("passkey", "totp", "push", "whatsapp", "sms", "voice", "email")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("budget-model")
    simulate(out, SimulationConfig(users=200, days=21, seed=11, warmup_days=7), fmt="native", progress=False)
    # a noisy model: any new network, address block or city lifts the term to ~0.48, so legitimate
    # logins with one weak signal (a rules' risk of 0.1-0.3) blend to over 0.5
    write_linear_model(out / "model", -5.0, {"asn_new": 5.0, "prefix_new": 5.0, "city_new": 5.0})
    return out


def _settings(sim: Path) -> Settings:
    # the population prior differs between replay (a pre-pass) and a live engine: off, so the
    # live engine is the oracle (as in test_budget_replay.py)
    return Settings().with_overrides(
        geo={"asn_db": str(sim / "asn.mmdb"), "rare_country_weight": 0.0}, audit={"key": "k" * 40},
        policy={"target_stepup_rate": TARGET, "budget_warmup_logins": 120, "budget_refresh_seconds": 3600.0,
                "model": str(sim / "model")})


@pytest.fixture(scope="module")
def replayed(sim: Path) -> pl.DataFrame:
    frame = replay(sim / "events.parquet", "native", outcomes="verified", config=_settings(sim), baseline=False)
    return frame.join(pl.read_parquet(sim / "labels.parquet"), on="index").filter(pl.col("decision") != "")


def test_replay_with_a_model_and_a_budget_decides_as_the_live_engine(sim: Path, replayed: pl.DataFrame) -> None:
    settings = _settings(sim)
    live = live_decisions(pl.read_parquet(sim / "events.parquet").iter_rows(named=True), settings)
    assert replayed.height == len(live) > 2000
    assert replayed["decision"].to_list() == [r["action"] for r in live]
    assert replayed["threshold"].to_list() == pytest.approx([r["threshold"] for r in live])
    top = settings.policy.budget_max_threshold
    # not trivial: the threshold on the blend left the rules' clamp, and below it the rules'
    # clamp challenged logins whose blended risk was under the live threshold
    assert replayed["threshold"].max() > top
    under = replayed.filter((pl.col("decision") == "challenge") & (pl.col("risk_score") < pl.col("threshold"))
                            & pl.col("established"))
    floor = set(settings.policy.budget_floor_signals)
    at_top = {"NEW_DEVICE", "UA_DOWNGRADE"}  # the rules' signals weighing budget_max_threshold or more
    assert settings.device.weight >= top and settings.device.ua_downgrade_weight >= top
    forced = [set(codes) for codes in under["reasons"].to_list()]
    assert all(codes & (floor | at_top) for codes in forced)
    assert any(codes & at_top and not codes & floor for codes in forced)


def test_the_budget_holds_with_a_model_where_the_rules_clamp_on_the_blend_could_not(
        sim: Path, replayed: pl.DataFrame) -> None:
    top = _settings(sim).policy.budget_max_threshold
    legit = replayed.filter(pl.col("established") & ~pl.col("is_attack") & ~pl.col("warmup"))
    assert legit.height > 1000
    realised = (legit["decision"] == "challenge").mean()
    # any live threshold clamped at `top` on the blended risk steps up at least these
    clamped_at_top = (legit["risk_score"] >= top).mean()
    assert isinstance(realised, float) and isinstance(clamped_at_top, float)
    assert clamped_at_top > 1.3 * TARGET
    assert realised <= 1.1 * TARGET
