"""riskengine replay: the DESIGN.md contract, on a hand-written RBA CSV and a tiny simulation."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from riskengine.apps.cli import main
from riskengine.core.attempt import LoginAttempt
from riskengine.core.config import Settings
from riskengine.core.engine import Engine
from riskengine.offline.replay import replay, replay_to_file
from riskengine.offline.simulate import SimulationConfig, simulate

HEADER = ("index,Login Timestamp,User ID,Round-Trip Time [ms],IP Address,Country,Region,City,ASN,"
          "User Agent String,Browser Name and Version,OS Name and Version,Device Type,Login Successful,"
          "Is Attack IP,Is Account Takeover")
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.1 Mobile/15E148 Safari/604.1")


def _rows() -> list[str]:
    rows = []
    start = datetime(2020, 2, 3, 9, 0)
    for day in range(6):  # alice: six ordinary logins from home
        ts = (start + timedelta(days=day)).strftime("%Y-%m-%d %H:%M:%S.000")
        rows.append(f"{10 + day},{ts},alice,,81.2.69.160,GB,England,London,2856,\"{CHROME}\",Chrome 120,"
                    "Windows 10,desktop,True,False,False")
    ts = start + timedelta(days=6)
    for k in range(3):  # bob: three failed passwords, then the right one
        rows.append(f"{20 + k},{(ts + timedelta(seconds=k)).strftime('%Y-%m-%d %H:%M:%S.000')},bob,,"
                    "5.6.7.8,DE,Berlin,Berlin,3320,\"" + CHROME + "\",Chrome 120,Windows 10,desktop,False,False,False")
    rows.append(f"23,{(ts + timedelta(seconds=10)).strftime('%Y-%m-%d %H:%M:%S.000')},bob,,5.6.7.8,DE,Berlin,"
                f"Berlin,3320,\"{CHROME}\",Chrome 120,Windows 10,desktop,True,False,False")
    # alice's password used from Lagos on an unknown phone
    rows.append(f"24,{(ts + timedelta(hours=3)).strftime('%Y-%m-%d %H:%M:%S.000')},alice,,102.89.1.1,NG,Lagos,"
                f"Lagos,29465,\"{IPHONE}\",Mobile Safari 17.1,iOS 17.1,mobile,True,True,True")
    return rows


@pytest.fixture
def rba_csv(tmp_path: Path) -> Path:
    path = tmp_path / "logins.csv"
    path.write_text("\n".join([HEADER, *_rows()]) + "\n")
    return path


def test_contract_on_a_hand_written_rba_csv(rba_csv: Path) -> None:
    out = replay(rba_csv, "rba", baseline=False)
    assert out.columns[:4] == ["index", "decision", "risk_score", "reasons"]
    assert out.schema["index"] == pl.Int64 and out.schema["decision"] == pl.Utf8
    assert out.schema["risk_score"] == pl.Float64 and out.schema["reasons"] == pl.List(pl.Utf8)
    assert out["index"].to_list() == [10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 24]
    by_index = {r["index"]: r for r in out.iter_rows(named=True)}
    assert by_index[10]["decision"] == "allow" and "COLD_START" in by_index[10]["reasons"]
    assert all(by_index[i]["decision"] == "allow" for i in range(11, 16))
    for i in (20, 21, 22):  # failed passwords: no decision
        assert by_index[i]["decision"] == "" and by_index[i]["risk_score"] == 0.0
    assert by_index[23]["decision"] == "challenge"
    assert "FAILED_ATTEMPTS_USER" in by_index[23]["reasons"]
    assert by_index[24]["decision"] in ("challenge", "deny")
    assert {"NEW_DEVICE", "NEW_COUNTRY"} <= set(by_index[24]["reasons"])
    scored = out.filter(pl.col("decision") != "")["risk_score"]
    assert ((scored >= 0) & (scored <= 1)).all()


def test_label_columns_never_reach_the_scorer(rba_csv: Path, tmp_path: Path) -> None:
    frame = pl.read_csv(rba_csv)
    rng = np.random.default_rng(3)
    shuffled = frame.with_columns(
        pl.Series("Is Attack IP", rng.permutation(frame["Is Attack IP"].to_numpy())),
        pl.Series("Is Account Takeover", ~frame["Is Account Takeover"].to_numpy()))
    other = tmp_path / "shuffled.csv"
    shuffled.write_csv(other)
    a = replay(rba_csv, "rba", outcomes="verified", baseline=False)
    b = replay(other, "rba", outcomes="verified", baseline=False)
    assert a.select("index", "decision", "risk_score", "reasons").equals(
        b.select("index", "decision", "risk_score", "reasons"))


def test_challenge_outcomes_follow_the_labels(rba_csv: Path) -> None:
    out = replay(rba_csv, "rba", outcomes="labels", baseline=False)
    by_index = {r["index"]: r for r in out.iter_rows(named=True)}
    assert by_index[23]["outcome"] == "verified"  # bob is no takeover
    assert by_index[24]["outcome"] in ("failed", None)  # the Lagos login is


def test_bad_input_names_the_problem(tmp_path: Path, rba_csv: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text("index,User ID\n1,alice\n")
    with pytest.raises(ValueError, match="missing columns"):
        replay(broken, "rba")
    with pytest.raises(FileNotFoundError):
        replay(tmp_path / "nope.csv", "rba")
    with pytest.raises(ValueError, match="--outcomes"):
        replay(rba_csv, "rba", outcomes="simulated")
    assert main(["replay", str(rba_csv), "--format", "native", "--out", str(tmp_path / "d.parquet")]) == 1


@pytest.mark.parametrize(("row", "message"), [
    (9, "index 23: 'IP Address' not an IPv4 or IPv6 address: '999.1.1.1'"),
    (3, "index 13: 'User ID' is longer than 256 characters"),
    (5, "index 15: 'Country' must be an ISO 3166-1 alpha-2 code"),
    (1, "index 11: 'Region' is longer than 128 characters"),
])
def test_a_row_breaking_the_attempt_rules_stops_the_replay_naming_it(
        tmp_path: Path, row: int, message: str) -> None:
    """The columns are validated in bulk against LoginAttempt's rules; the error names the
    input's own index and the column, and no partial decisions file is left behind."""
    rows = _rows()
    fields = rows[row].split(",")
    if "IP" in message:
        fields[4] = "999.1.1.1"
    elif "User ID" in message:
        fields[2] = "u" * 257
    elif "Country" in message:
        fields[5] = "GBR"
    else:
        fields[6] = "R" * 129
    rows[row] = ",".join(fields)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    dest = tmp_path / "decisions.parquet"
    with pytest.raises(ValueError, match=re.escape(message)):
        replay_to_file(path, "rba", dest, baseline=False)
    assert not dest.exists() and not list(tmp_path.glob("*.tmp"))
    # the same value through the public API is refused by the pydantic model too
    with pytest.raises(ValueError):
        LoginAttempt(user_id=fields[2], timestamp=datetime(2020, 2, 3, tzinfo=UTC), ip=fields[4],
                     country=fields[5], region=fields[6])


def test_bulk_validation_normalises_like_the_model(tmp_path: Path, rba_csv: Path) -> None:
    """Whitespace around ids and addresses and lower-case countries give the same decisions
    as the clean file (the model strips and upper-cases them too)."""
    rows = [r.replace(",alice,", ",  alice ,").replace(",GB,", ",gb,") for r in _rows()]
    rows[0] = rows[0].replace("81.2.69.160", " 81.2.69.160 ")
    messy = tmp_path / "messy.csv"
    messy.write_text("\n".join([HEADER, *rows]) + "\n")
    clean = replay(rba_csv, "rba", baseline=False)
    got = replay(messy, "rba", baseline=False)
    assert got["decision"].to_list() == clean["decision"].to_list()
    assert got["risk_score"].to_list() == clean["risk_score"].to_list()


@pytest.fixture(scope="module")
def tiny_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, SimulationConfig(users=150, days=14, seed=42, warmup_days=0), fmt="native", progress=False)
    return out


def test_native_replay_streams_through_the_same_engine_path(tiny_sim: Path) -> None:
    events = pl.read_parquet(tiny_sim / "events.parquet")
    out = replay(tiny_sim / "events.parquet", "native", outcomes="verified", baseline=False, batch_rows=500)
    assert out.height == events.height
    assert out["index"].to_list() == events["event_id"].to_list()
    assert (out.filter(events["kind"] != "login")["decision"] == "").all()
    # the same rows fed by hand, in time order, to a plain Engine give the same decisions;
    # a converted signup is the account's signup session (record_signup), as replay teaches it
    settings = Settings().with_overrides(geo={"asn_db": str(tiny_sim / "asn.mmdb")})
    expected: list[tuple[str, float | None]] = []
    seeded = 0
    with Engine(settings) as engine:
        for row in events.iter_rows(named=True):
            ts = row["event_time"].astimezone(UTC)
            if row["kind"] == "failed_password":
                engine.record_failure(row["user_id"], row["ip"], ts)
                expected.append(("", 0.0))
                continue
            if row["kind"] == "signup" and row["converted"]:
                seeded += engine.record_signup(LoginAttempt(
                    user_id=row["user_id"], timestamp=ts, ip=row["ip"], user_agent=row["user_agent"],
                    device_id=row["device_id"]))
            if row["kind"] != "login":
                expected.append(("", 0.0))
                continue
            rtt = row["rtt_ms"]
            d = engine.score(LoginAttempt(
                user_id=row["user_id"], timestamp=ts, ip=row["ip"], user_agent=row["user_agent"],
                device_id=row["device_id"], session_id=row["session_id"],
                enrolled_factors=tuple(row["enrolled_factors"]),
                rtt_ms=rtt if rtt is not None and np.isfinite(rtt) else None))
            if d.action == "challenge":
                engine.record_outcome(d.decision_id, "verified", [d.factor] if d.factor else [],
                                      timestamp=ts + timedelta(seconds=30))
            expected.append((d.action, d.risk))
    assert list(zip(out["decision"].to_list(), out["risk_score"].to_list(), strict=True)) == expected
    assert seeded == events.filter((pl.col("kind") == "signup") & pl.col("converted")).height > 10


def test_a_converted_signup_is_validated_like_a_login(tiny_sim: Path, tmp_path: Path) -> None:
    """A converted signup teaches the profile, so a broken one stops the replay naming it; an
    unconverted one is read for the experiment only, as before."""
    events = pl.read_parquet(tiny_sim / "events.parquet")
    signups = events.with_row_index("_n").filter(pl.col("kind") == "signup")
    converted = signups.filter(pl.col("converted")).row(0, named=True)
    unconverted = signups.filter(~pl.col("converted")).row(0, named=True)
    for row, stops in ((converted, True), (unconverted, False)):
        bad = events.with_columns(pl.when(pl.int_range(pl.len()) == row["_n"]).then(pl.lit("999.1.1.1"))
                                  .otherwise(pl.col("ip")).alias("ip"))
        path = tmp_path / f"bad-{stops}.parquet"
        bad.write_parquet(path)
        if stops:
            with pytest.raises(ValueError, match=rf"index {row['event_id']}: 'ip'"):
                replay(path, "native", outcomes="verified", baseline=False)
        else:
            assert replay(path, "native", outcomes="verified", baseline=False).height == events.height


def test_native_replay_learns_converted_signups_only(tiny_sim: Path, tmp_path: Path) -> None:
    """The signups matter to the decisions (the same file without them decides the new
    accounts' first logins differently), and only converted ones teach: flipping every
    unconverted signup to converted changes nothing, since those accounts never log in."""
    events = pl.read_parquet(tiny_sim / "events.parquet")
    kw: dict[str, Any] = {"outcomes": "verified", "baseline": False,
                          "asn_db": tiny_sim / "asn.mmdb"}
    with_signups = replay(tiny_sim / "events.parquet", "native", **kw)
    unconverted = tmp_path / "unconverted.parquet"
    events.with_columns(pl.lit(False).alias("converted")).write_parquet(unconverted)
    without = replay(unconverted, "native", **kw)
    new_users = set(events.filter((pl.col("kind") == "signup") & pl.col("converted"))["user_id"].to_list())
    on_new = events["user_id"].is_in(list(new_users)) & (events["kind"] == "login")
    assert with_signups.filter(~on_new)["risk_score"].to_list() == without.filter(~on_new)["risk_score"].to_list()
    changed = (with_signups.filter(on_new)["risk_score"] != without.filter(on_new)["risk_score"]).sum()
    assert changed > 0


def test_the_freeman_baseline_learns_the_signups_the_engine_learns(tiny_sim: Path, tmp_path: Path) -> None:
    """A fair comparison: the baseline gets the same first history as the engine. A new
    account's first login after its signup is no longer a login with no history for the
    baseline (log-ratio exactly 0): its score is the signup session's likelihood ratio."""
    events = pl.read_parquet(tiny_sim / "events.parquet")
    kw: dict[str, Any] = {"outcomes": "verified", "asn_db": tiny_sim / "asn.mmdb"}
    with_signups = replay(tiny_sim / "events.parquet", "native", **kw)
    unconverted = tmp_path / "unconverted.parquet"
    events.with_columns(pl.lit(False).alias("converted")).write_parquet(unconverted)
    without = replay(unconverted, "native", **kw)
    new_users = events.filter((pl.col("kind") == "signup") & pl.col("converted"))["user_id"].to_list()
    first_logins = events.with_row_index("row").filter(
        (pl.col("kind") == "login") & pl.col("user_id").is_in(new_users)).group_by("user_id").agg(
        pl.col("row").min())["row"].to_list()
    assert first_logins
    assert without[first_logins]["baseline_score"].to_list() == [0.0] * len(first_logins)
    seeded = with_signups[first_logins]["baseline_score"].to_list()
    assert all(score != 0.0 for score in seeded)
    # the population half is the logins' alone: users without a signup score the same
    others = ~events["user_id"].is_in(new_users) & (events["kind"] == "login")
    assert with_signups.filter(others)["baseline_score"].to_list() == \
        without.filter(others)["baseline_score"].to_list()


def test_native_replay_passes_the_round_trip_time(tmp_path: Path, maxmind: Callable[[str], Path]) -> None:
    """A native file's ``rtt_ms`` reaches the scorer as the RBA layout's column does: six logins
    at ~40 ms teach the user's band, a seventh at 400 ms from another block of the same network
    fires RTT_ANOMALY; a missing or glitched value (NaN, 0) is no evidence, never an error."""
    start = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    rtts = [40.0, 42.0, 38.0, 41.0, 39.0, 40.0, 400.0, float("nan"), 0.0]
    ips = ["1.128.0.1"] * 6 + ["1.128.1.7"] * 3  # one network AS (1221), two /24 blocks
    n = len(rtts)
    events = pl.DataFrame({
        "event_id": list(range(n)), "event_time": [start + timedelta(days=k) for k in range(n)],
        "kind": ["login"] * n, "user_id": ["alice"] * n, "ip": ips, "user_agent": [CHROME] * n,
        "device_id": ["d1"] * n, "session_id": [f"s{k}" for k in range(n)], "rtt_ms": rtts})
    path = tmp_path / "events.parquet"
    events.write_parquet(path)
    out = replay(path, "native", outcomes="verified", baseline=False,
                 asn_db=maxmind("GeoLite2-ASN-Test.mmdb"))
    fired = ["RTT_ANOMALY" in r for r in out["reasons"].to_list()]
    assert fired == [False] * 6 + [True, False, False]


def test_native_replay_cli_writes_decisions_and_audit(tiny_sim: Path, tmp_path: Path) -> None:
    dest = tmp_path / "decisions.parquet"
    audit = tmp_path / "audit"
    assert main(["replay", str(tiny_sim / "events.parquet"), "--format", "native", "--out", str(dest),
                 "--audit-root", str(audit), "--no-progress"]) == 0
    out = pl.read_parquet(dest)
    assert out.height == pl.read_parquet(tiny_sim / "events.parquet").height
    assert out["baseline_score"].null_count() < out.height
    decisions = pl.read_parquet(audit / "decisions", hive_partitioning=True)
    assert decisions.height == (out["decision"] != "").sum()
    assert decisions["asn"].null_count() == 0  # ASNs resolved through the written asn.mmdb


def test_collector_settings_are_restored_between_batches(tiny_sim: Path) -> None:
    """Replay tunes the cyclic collector while it scores a batch; the caller's code between
    batches (and after an abandoned iteration) runs with the settings it had before."""
    import gc

    from riskengine.offline.replay import iter_replay

    before = gc.get_threshold()
    batches = iter_replay(tiny_sim / "events.parquet", "native", baseline=False, batch_rows=200)
    next(batches)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    batches.close()
    assert gc.get_threshold() == before
