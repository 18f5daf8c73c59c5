"""riskengine simulate: reproducibility, file layouts, realism properties, 2FA and experiment models."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import maxminddb
import numpy as np
import polars as pl
import pytest
from scipy import stats

from riskengine.apps.cli import main
from riskengine.core.engine import assign_variant
from riskengine.offline.simulate import SimulationConfig, existing_run, simulate
from riskengine.offline.simulate.addressing import HOSTING_ASNS
from riskengine.offline.simulate.attacks import FAMILIES
from riskengine.offline.simulate.channels import ABANDON, COMPLETION, DELIVERY, simulate_challenge
from riskengine.offline.simulate.experiment import EXPERIMENT, VARIANTS, signup_conversion
from riskengine.offline.simulate.writer import LABEL_ONLY_COLUMNS, NATIVE_SCHEMA, RBA_COLUMNS

TINY = SimulationConfig(users=200, days=21, seed=42, warmup_days=30)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, TINY, fmt="both", progress=False)
    return out


def test_same_seed_gives_identical_files(sim: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    simulate(again, TINY, fmt="both", progress=False)
    for name in ("events.parquet", "labels.parquet"):
        assert pl.read_parquet(sim / name).equals(pl.read_parquet(again / name)), name
    assert (sim / "logins_rba.csv").read_bytes() == (again / "logins_rba.csv").read_bytes()
    other = tmp_path / "other"
    simulate(other, replace(TINY, seed=43), fmt="native", progress=False,
             pool_path=sim / ".ippool-seed42-v1.parquet")  # same networks, other draws
    assert not pl.read_parquet(sim / "events.parquet").equals(pl.read_parquet(other / "events.parquet"))


def test_native_schema_and_time_order(sim: Path) -> None:
    events = pl.read_parquet(sim / "events.parquet")
    assert events.columns == ["event_id", *[c for c in NATIVE_SCHEMA if c not in LABEL_ONLY_COLUMNS]]
    assert events["event_id"].to_list() == list(range(events.height))
    assert events["event_time"].is_sorted()
    assert set(events["kind"].unique()) == {"login", "failed_password", "signup"}
    logins = events.filter(pl.col("kind") == "login")
    assert logins["would_pass"].null_count() == 0
    assert 0.2 < logins["device_id"].is_null().mean() < 0.8  # only a share of clients keep a cookie


def test_labels_and_attack_share(sim: Path) -> None:
    labels = pl.read_parquet(sim / "labels.parquet")
    events = pl.read_parquet(sim / "events.parquet")
    assert labels["index"].to_list() == events["event_id"].to_list()
    logins = labels.filter(pl.col("kind") == "login")
    fams = set(logins["attack_family"].drop_nulls().unique())
    assert fams <= set(FAMILIES)
    assert {"ato_foreign", "ato_domestic"} <= fams
    assert logins["is_attack"].mean() < 0.05  # attacks are a small share of logins
    # established = at least 5 earlier logins of that user, recomputed independently
    seen: dict[str, int] = {}
    for row in labels.iter_rows(named=True):
        assert row["established"] == (seen.get(row["user_id"], 0) >= 5)
        if row["kind"] == "login":
            seen[row["user_id"]] = seen.get(row["user_id"], 0) + 1
    # stuffing: many failures, few successes
    stuffing = labels.filter(pl.col("attack_family") == "stuffing")
    assert (stuffing["kind"] == "failed_password").sum() > 10 * (stuffing["kind"] == "login").sum()


def test_warmup_is_legitimate_traffic_of_existing_users_before_the_window(sim: Path) -> None:
    start = datetime(2025, 9, 1, tzinfo=UTC)
    rows = pl.read_parquet(sim / "events.parquet").join(
        pl.read_parquet(sim / "labels.parquet").select("index", "warmup", "is_attack", "is_attack_ip"),
        left_on="event_id", right_on="index")
    assert rows["warmup"].dtype == pl.Boolean and rows["warmup"].null_count() == 0
    warm = rows.filter(pl.col("warmup"))
    window = rows.filter(~pl.col("warmup"))
    assert warm.height > 1000 and (warm["kind"] == "login").sum() > 1000
    # in time order: every warm-up login first, starting TINY.warmup_days before the window
    warm_ids, window_ids = (f.filter(pl.col("kind") == "login")["event_id"] for f in (warm, window))
    assert warm_ids.max() < window_ids.min()  # type: ignore[operator]
    assert warm["event_time"].max() < start <= window["event_time"].filter(window["kind"] == "login").min()
    assert warm["event_time"].min() >= start - timedelta(days=TINY.warmup_days, minutes=1)
    assert warm["event_time"].min() < start - timedelta(days=TINY.warmup_days - 1)
    # nothing but existing users' logins and typos: no attacks, no signups, no new users
    assert set(warm["kind"].unique()) == {"login", "failed_password"}
    assert not warm["is_attack"].any() and not warm["is_attack_ip"].any()
    assert warm["user_id"].str.starts_with("u").all()
    assert window["is_attack"].any() and (window["kind"] == "signup").any()
    manifest = json.loads((sim / "manifest.json").read_text())
    assert manifest["config"]["warmup_days"] == TINY.warmup_days
    assert manifest["warmup"] == {"window": ["2025-08-02", "2025-09-01"], "rows": warm.height,
                                  "logins": int((warm["kind"] == "login").sum())}
    # the RBA CSV carries the warm-up rows too, in the same order, with its columns unchanged
    rba = pl.read_csv(sim / "logins_rba.csv", schema_overrides={"User ID": pl.Utf8}, columns=["index"])
    assert set(warm["event_id"].to_list()) <= set(rba["index"].to_list())
    # warm-up logins count as a user's earlier logins: users are established from the window's start
    labels = pl.read_parquet(sim / "labels.parquet")
    first_in_window = labels.filter(~pl.col("warmup") & (pl.col("kind") == "login")).group_by("user_id").first()
    assert first_in_window["established"].sum() > 0.3 * first_in_window.height


def test_no_warmup_starts_with_empty_histories(tmp_path: Path, sim: Path) -> None:
    cold = SimulationConfig(users=100, days=7, seed=42, warmup_days=0)
    simulate(tmp_path, cold, fmt="native", progress=False, pool_path=sim / ".ippool-seed42-v1.parquet")
    labels = pl.read_parquet(tmp_path / "labels.parquet")
    assert not labels["warmup"].any()
    assert not labels.filter(pl.col("kind") == "login").group_by("user_id").first()["established"].any()
    assert json.loads((tmp_path / "manifest.json").read_text())["warmup"]["rows"] == 0
    # the cache key tells a warm-up run from a cold one
    assert existing_run(tmp_path, cold, "native")
    assert not existing_run(tmp_path, replace(cold, warmup_days=30), "native")
    with pytest.raises(ValueError, match="--warmup-days"):
        SimulationConfig(warmup_days=-1).validate()


def test_rba_layout_and_geo_from_real_databases(sim: Path) -> None:
    rba = pl.read_csv(sim / "logins_rba.csv", schema_overrides={"User ID": pl.Utf8})
    assert tuple(rba.columns) == RBA_COLUMNS
    events = pl.read_parquet(sim / "events.parquet").filter(pl.col("kind") != "signup")
    assert rba.height == events.height
    assert rba["index"].to_list() == events["event_id"].to_list()
    failed = events["kind"].to_numpy() == "failed_password"
    assert (~rba["Login Successful"].to_numpy() == failed).all()
    assert rba["Country"].null_count() == 0 and rba["ASN"].null_count() == 0
    # the written ASN database answers through maxminddb, hosting operators by name
    with maxminddb.open_database(str(sim / "asn.mmdb")) as reader:
        row = rba.filter(pl.col("Is Attack IP") & ~pl.col("Login Successful")).row(0, named=True)
        rec = reader.get(row["IP Address"])
        assert isinstance(rec, dict)
        assert rec["autonomous_system_number"] == row["ASN"]
    stuffing_asns = set(rba.filter(pl.col("Is Attack IP"))["ASN"].unique().to_list())
    assert stuffing_asns & set(HOSTING_ASNS)


def test_browsers_auto_update_on_the_same_device(sim: Path) -> None:
    events = pl.read_parquet(sim / "events.parquet").filter(
        (pl.col("kind") == "login") & pl.col("device_id").is_not_null())
    per_device = events.group_by("device_id").agg(pl.col("user_agent").n_unique().alias("uas"))
    assert (per_device["uas"] > 1).any()  # a version bump changed the string, not the device


def test_signup_variants_match_the_engine_assignment(sim: Path) -> None:
    signups = pl.read_parquet(sim / "events.parquet").filter(pl.col("kind") == "signup")
    assert signups.height > 0
    for row in signups.iter_rows(named=True):
        assert row["experiment"] == EXPERIMENT
        assert row["variant"] == assign_variant(EXPERIMENT, row["user_id"], VARIANTS)


def test_signup_conversion_effect_in_reported_range() -> None:
    control = signup_conversion("progressive", 0.10)
    treated = signup_conversion("mfa_at_signup", 0.10)
    assert 0.05 <= 1 - treated / control <= 0.15
    with pytest.raises(ValueError, match="relative_drop"):
        signup_conversion("mfa_at_signup", 1.5)


def test_sms_challenge_success_matches_the_channel_model() -> None:
    """Verified share of SMS challenges (with voice fallback) against the closed form, by scipy."""
    rng = np.random.default_rng(5)
    n = 20_000
    results = [simulate_challenge("sms", "US", True, rng) for _ in range(n)]
    verified = sum(r.outcome == "verified" for r in results)
    a, d1, c1, d2, c2 = ABANDON, DELIVERY["sms"], COMPLETION["sms"], DELIVERY["voice"], COMPLETION["voice"]
    expected = (1 - a) * (d1 * c1 + (1 - d1) * (1 - a) * d2 * c2)
    assert stats.binomtest(verified, n, expected).pvalue > 1e-3
    fallbacks = [r.channels for r in results if len(r.channels) > 1]
    assert fallbacks and all(ch == ("sms", "voice") for ch in fallbacks)
    wa = simulate_challenge("whatsapp", "US", True, np.random.default_rng(1))
    assert wa.channels[0] == "whatsapp"


def test_attackers_never_pass_a_challenge() -> None:
    rng = np.random.default_rng(0)
    assert not any(simulate_challenge("sms", "GB", False, rng).would_pass for _ in range(500))
    assert all(simulate_challenge("sms", "GB", False, rng).outcome in ("failed", "abandoned") for _ in range(50))


def test_cli_rejects_bad_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--out", str(tmp_path), "--users", "3"]) == 2
    assert "--users must be at least 10" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path), "--warmup-days", "-5"]) == 2
    assert "--warmup-days must be in 0..365" in capsys.readouterr().err


def test_cli_warmup_days(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--out", str(tmp_path), "--users", "40", "--days", "3", "--warmup-days", "5",
                 "--format", "native", "--no-progress"]) == 0
    assert "(+ 5 warm-up days)" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["warmup_days"] == 5
    assert manifest["warmup"]["window"] == ["2025-08-27", "2025-09-01"]
    assert SimulationConfig().warmup_days == 90  # months of history, as a deployed engine has
