from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from riskengine import Engine, Settings


def test_toml_then_env_override(tmp_path: Path) -> None:
    cfg = tmp_path / "riskengine.toml"
    cfg.write_text('[policy]\nchallenge_threshold = 0.5\n[failures]\nuser_threshold = 4\n'
                   '[audit]\nroot = "from-file"\n')
    s = Settings.load(cfg, env={"RISKENGINE_POLICY_CHALLENGE_THRESHOLD": "0.6",
                                "RISKENGINE_AUDIT_ROOT": "from-env",
                                "RISKENGINE_POLICY_DEFAULT_FACTORS": '["totp"]'})
    assert s.policy.challenge_threshold == 0.6
    assert s.failures.user_threshold == 4
    assert s.audit.root == "from-env"
    assert s.policy.default_factors == ("totp",)


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[policy]\nchalenge_threshold = 0.5\n")
    with pytest.raises(ValidationError, match="chalenge_threshold"):
        Settings.load(cfg, env={})
    with pytest.raises(ValueError, match="RISKENGINE_POLICY_NOPE"):
        Settings.load(None, env={"RISKENGINE_POLICY_NOPE": "1"})


def test_inconsistent_thresholds_rejected() -> None:
    with pytest.raises(ValidationError, match="deny_threshold"):
        Settings().with_overrides(policy={"challenge_threshold": 0.9, "deny_threshold": 0.5})


def test_engine_from_config_accepts_path_settings_and_dict(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKENGINE_AUDIT_ROOT", raising=False)
    cfg = tmp_path / "r.toml"
    cfg.write_text('[geo]\ncity_db = ""\n[policy]\nversion = "candidate-7"\n')
    assert Engine.from_config(cfg).policy.version == "candidate-7"
    assert Engine.from_config({"geo": {"city_db": None}, "policy": {"version": "d"}}).policy.version == "d"
    assert Engine.from_config(Settings()).policy.version == "rules-v1"


@pytest.mark.parametrize(("value", "ok"), [(-0.01, False), (0.0, True), (1.0, True), (1.01, False)])
def test_rtt_known_prefix_value_is_a_strength_in_0_1(value: float, ok: bool) -> None:
    if ok:
        assert Settings(rtt={"known_prefix_value": value}).rtt.known_prefix_value == value
    else:
        with pytest.raises(ValidationError, match="known_prefix_value"):
            Settings(rtt={"known_prefix_value": value})


def test_travel_usual_place_days_is_at_least_one_day() -> None:
    assert Settings(geo={"travel_usual_place_days": 1.0}).geo.travel_usual_place_days == 1.0
    with pytest.raises(ValidationError, match="travel_usual_place_days"):
        Settings(geo={"travel_usual_place_days": 0.99})
