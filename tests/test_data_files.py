"""The committed samples in data/ stay true: the example config is the defaults, the RBA
sample replays and its takeover is challenged."""

from __future__ import annotations

import tomllib
from pathlib import Path

import polars as pl

from riskengine import Settings
from riskengine.offline.replay import replay

DATA = Path(__file__).resolve().parents[1] / "data"


def test_example_config_lists_the_defaults() -> None:
    example = Settings.load(DATA / "riskengine.example.toml", env={})
    assert example == Settings()
    text = (DATA / "riskengine.example.toml").read_text()
    written = tomllib.loads(text)
    defaults = Settings().model_dump()
    for section, keys in defaults.items():
        assert section in written, f"[{section}] missing from the example config"
        for key in keys:  # every key appears, set or as a commented line
            assert f"{key} =" in text, f"{section}.{key} missing from the example config"


def test_sample_rba_replays_and_catches_its_takeover() -> None:
    out = replay(DATA / "sample_rba.csv", "rba", baseline=False)
    assert out["index"].to_list() == list(range(9))
    by = {r["index"]: r for r in out.iter_rows(named=True)}
    assert by[6]["decision"] == ""  # the failed password
    assert by[7]["decision"] in ("challenge", "deny")
    # the RBA layout has no coordinates, so travel speed is unknown; the country is new
    assert {"NEW_COUNTRY", "NEW_DEVICE"} <= set(by[7]["reasons"])
    assert by[3]["decision"] == "allow"  # Chrome 120 → 121 is the same device
    assert out.filter(pl.col("decision") != "")["risk_score"].is_between(0, 1).all()
