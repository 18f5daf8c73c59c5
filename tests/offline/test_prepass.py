"""The columnar pre-pass (``SharedPass``) against the per-row definition (``ReferencePass``):
every cross-user column equal, value for value, over batch boundaries, IPv6 networks,
out-of-order input and a failure counter that evicts (the last two take the counter's own
row-by-row path)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from riskengine.core.config import Settings
from riskengine.core.engine import Engine
from riskengine.offline.prepass import SHARED_COLUMNS, ReferencePass, SharedPass, rba_micros, rba_micros_series
from riskengine.offline.replay import (
    _EPOCH,
    Replayer,
    native_batches,
    native_columns,
    prepass_batch,
    rba_batches,
    rba_columns,
    replay_to_file,
)
from riskengine.offline.simulate import SimulationConfig, simulate

HEADER = ("index,Login Timestamp,User ID,IP Address,Country,Region,City,ASN,User Agent String,"
          "Login Successful,Is Account Takeover")
AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
          "Safari/537.36",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
          "Safari/605.1.15",
          "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0")


def _write_rba(path: Path, *, users: int = 30, days: int = 4, shuffle: float = 0.0, spray: int = 0,
               seed: int = 5) -> Path:
    """Logins of ``users`` users over ``days`` days from IPv4 homes and IPv6 networks (several
    addresses in one /64), with countries sometimes left for GeoIP, a failure wave from shared
    addresses, and ``spray`` distinct addresses each failing once. ``shuffle``: the share of rows
    swapped with a neighbour (out of time order)."""
    rng = random.Random(seed)
    start = datetime(2025, 3, 1, 6, 0)
    rows: list[tuple[datetime, str, str, str, bool]] = []
    for day in range(days):
        for u in range(users):
            for _ in range(rng.randint(1, 3)):
                ts = start + timedelta(days=day, minutes=rng.randint(0, 16 * 60), seconds=rng.randint(0, 59))
                ip = f"198.51.100.{u + 1}" if u % 3 else f"2001:db8:{u:x}::{rng.randint(1, 4)}"
                country = rng.choice(["US", "US", "GB", ""]) if u % 5 else "DE"
                rows.append((ts, f"user{u:03d}", ip, country, rng.random() > 0.15))
        wave = start + timedelta(days=day, hours=3)
        for k in range(users):
            attacker = rng.choice(["203.0.113.9", "2001:db8:ffff::1", "2001:db8:ffff::2", "203.0.113.77"])
            rows.append((wave + timedelta(seconds=7 * k), f"user{k:03d}", attacker, "NL", k % 4 == 0))
    if spray:  # 10.9.9.9 fails, then `spray` other addresses fail, then a login from 10.9.9.9
        rows += [(start + timedelta(seconds=k), "victim", "10.9.9.9", "FR", False) for k in range(3)]
        rows += [(start + timedelta(seconds=10 + k), f"sprayed{k % 50}",
                  f"10.{k // 65536}.{k // 256 % 256}.{k % 256}", "FR", False) for k in range(spray)]
        rows.append((start + timedelta(minutes=25), "victim", "10.9.9.9", "FR", True))
    rows.sort(key=lambda r: r[0])
    for i in range(len(rows) - 1):
        if rng.random() < shuffle:
            rows[i], rows[i + 1] = rows[i + 1], rows[i]
    if shuffle:  # a failure 40 minutes older than the one before it, then a login from there
        t = start + timedelta(days=days, hours=1)
        rows += [(t, "late", "192.0.2.200", "US", False),
                 (t - timedelta(minutes=40), "late", "192.0.2.200", "US", False),
                 (t + timedelta(minutes=5), "late", "192.0.2.200", "US", True)]
    lines = [HEADER]
    for i, (ts, user, ip, country, ok) in enumerate(rows):
        lines.append(f"{i},{ts:%Y-%m-%d %H:%M:%S}.{rng.randint(0, 999):03d},{user},{ip},{country},,,"
                     f"{rng.choice(['7922', '3320', ''])},\"{AGENTS[rng.randrange(3)]}\",{ok},False")
    path.write_text("\n".join(lines) + "\n")
    return path


def _reference_batch(ref: ReferencePass, b: pl.DataFrame, fmt: str) -> pl.DataFrame:
    """The pre-pass as first written: validated lists, then the per-row loop."""
    if fmt == "rba":
        c = rba_columns(b)
        ok = c["ok"]
        micros = rba_micros(b["Login Timestamp"].cast(pl.Utf8).to_list(), c["ids"])
        return ref.run(b, micros, [bool(x) for x in ok], [not x for x in ok], c["ips"], c["countries"],
                       c["asns"], c["users"])
    c = native_columns(b)
    kinds = c["kinds"]
    micros = [None if t is None else (t - _EPOCH) // timedelta(microseconds=1) for t in c["times"]]
    none: list[Any] = [None] * b.height
    users = [u if k in ("login", "failed_password") else (u if isinstance(u, str) and u.strip() else None)
             for u, k in zip(c["users"], kinds, strict=True)]
    feeds = None if "event" not in b.columns else \
        [(e or "").strip() in ("", "login") for e in b["event"].cast(pl.Utf8).to_list()]
    return ref.run(b, micros, [k == "login" for k in kinds], [k == "failed_password" for k in kinds],
                   c["ips"], none, none, users, feeds)


def _both(path: Path, fmt: str, batch_rows: int, settings: Settings,
          baseline: bool = True) -> tuple[pl.DataFrame, pl.DataFrame, SharedPass]:
    read = rba_batches if fmt == "rba" else native_batches
    with Engine(settings) as engine:
        shared = SharedPass(engine, fmt, baseline=baseline, partitions=5)
        new = pl.concat([prepass_batch(shared, b).select(SHARED_COLUMNS) for b in read(path, batch_rows)])
    with Engine(settings) as engine:
        ref = ReferencePass(engine, fmt, baseline=baseline, partitions=5)
        old = pl.concat([_reference_batch(ref, b, fmt).select(SHARED_COLUMNS) for b in read(path, batch_rows)])
    return new, old, shared


def _assert_same(new: pl.DataFrame, old: pl.DataFrame) -> None:
    assert new.height == old.height
    for column in SHARED_COLUMNS:
        assert new[column].to_list() == old[column].to_list(), column  # exactly: floats included


@pytest.mark.parametrize("batch_rows", [1, 37, 100_000])
def test_columnar_equals_the_per_row_pass(tmp_path: Path, batch_rows: int) -> None:
    path = _write_rba(tmp_path / "logins.csv")
    new, old, shared = _both(path, "rba", batch_rows, Settings())
    _assert_same(new, old)
    assert shared.exact_batches == 0  # in time order: the columnar path throughout
    # the case is not trivial: cross-user failures counted, the prior and the baseline moving
    assert new["_ipf"].max() >= 3
    assert new["_popt"].n_unique() > 5
    assert new["_bg0"].drop_nulls().n_unique() > 5


def test_ipv6_failures_count_per_network(tmp_path: Path) -> None:
    path = _write_rba(tmp_path / "logins.csv")
    for prefix in (64, 128):
        settings = Settings().with_overrides(failures={"ipv6_prefix": prefix})
        new, old, _ = _both(path, "rba", 50, settings, baseline=False)
        _assert_same(new, old)
    frame = pl.read_csv(path).with_columns(new["_ipf"])
    v6 = frame.filter(pl.col("IP Address").str.starts_with("2001:db8:ffff::") & pl.col("Login Successful"))
    assert v6.height and v6["_ipf"].max() >= 2


def test_out_of_order_input_takes_the_counters_own_path(tmp_path: Path) -> None:
    path = _write_rba(tmp_path / "logins.csv", shuffle=0.3)
    new, old, shared = _both(path, "rba", 40, Settings())
    _assert_same(new, old)
    assert shared.exact_batches > 0
    assert new["_ipf"][-1] == 1  # the counter keeps the older failure out of the window


def test_an_evicting_counter_takes_the_counters_own_path(tmp_path: Path) -> None:
    # 1,200 addresses fail within minutes: more keys than max_counters (1,000), so the counter
    # evicts the least recently touched ones, which only the row-by-row path reproduces
    path = _write_rba(tmp_path / "logins.csv", spray=1200)
    settings = Settings().with_overrides(store={"max_counters": 1000})
    new, old, shared = _both(path, "rba", 5000, settings, baseline=False)
    _assert_same(new, old)
    assert shared.exact_batches > 0
    victim = pl.read_csv(path).with_columns(new["_ipf"]).filter(
        (pl.col("User ID") == "victim") & pl.col("Login Successful"))
    assert victim["_ipf"].to_list() == [0]  # its failures were evicted before it logged in


def test_native_input(tmp_path: Path) -> None:
    simulate(tmp_path, SimulationConfig(users=40, days=4, seed=11, warmup_days=0), fmt="native", progress=False)
    settings = Settings().with_overrides(geo={"asn_db": str(tmp_path / "asn.mmdb")})
    new, old, _ = _both(tmp_path / "events.parquet", "native", 333, settings)
    _assert_same(new, old)
    assert new["_popc"].drop_nulls().n_unique() > 3


def test_timestamps_columnar_and_fallback() -> None:
    values = ["2025-03-01 06:00:00.123", "2025-03-01 23:59:59.999", "1970-01-02 00:00:00.000"]
    ids = [1, 2, 3]
    assert rba_micros_series(pl.Series(values), ids).to_list() == rba_micros(values, ids)
    other = ["2025-03-01T06:00:00+02:00", "2025-03-01 06:00:00", "2025-03-01 06:00:00.5"]
    assert rba_micros_series(pl.Series(other), ids).to_list() == rba_micros(other, ids)
    with pytest.raises(ValueError, match="index 2: 'Login Timestamp' is not an ISO 8601 time"):
        rba_micros_series(pl.Series(["2025-03-01 06:00:00.000", "2025-13-01 06:00:00.000"]), ids)
    with pytest.raises(ValueError, match="index 1: 'Login Timestamp' must be between"):
        rba_micros_series(pl.Series(["1969-12-31 00:00:00.000"]), ids)


def test_raw_batches_are_pre_passed_by_the_replayer(tmp_path: Path) -> None:
    """Model training feeds raw file batches to ``Replayer.run_batch``: it pre-passes them itself
    and decides exactly as the replay does."""
    path = _write_rba(tmp_path / "logins.csv")
    out = tmp_path / "d.parquet"
    replay_to_file(path, "rba", out, baseline=True)
    with Engine() as engine:
        replayer = Replayer(engine, "rba", "labels", None)
        got = pl.concat([pl.from_arrow(replayer.run_batch(b)) for b in rba_batches(path, 64)])  # type: ignore[misc]
    expected = pl.read_parquet(out)
    assert got["decision"].to_list() == expected["decision"].to_list()
    assert got["reasons"].to_list() == expected["reasons"].to_list()
    assert got.height == expected.height > 100


def test_the_prepass_names_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "\n7,2025-03-01 06:00:00.000,u1,1.2.3.4,US,,,1,ua,True,False\n"
                    "8,2025-03-01 06:00:01.000,u1,999.1.1.1,US,,,1,ua,True,False\n")
    with Engine() as engine:
        shared = SharedPass(engine, "rba", baseline=True)
        with pytest.raises(ValueError, match="index 8: 'IP Address'"):
            for b in rba_batches(path, 10):
                prepass_batch(shared, b)


def test_sensitive_events_do_not_feed_the_population_prior(tmp_path: Path) -> None:
    """Online, a recovery or factor change never teaches the profile, so it neither adds to the
    population prior nor counts toward a user being established. The pre-pass agrees: marking
    logins as sensitive events leaves every other login's prior exactly as if those rows were
    not in the file at all (and the columnar pass equals the per-row one)."""
    simulate(tmp_path, SimulationConfig(users=40, days=4, seed=11, warmup_days=0), fmt="native", progress=False)
    settings = Settings().with_overrides(geo={"asn_db": str(tmp_path / "asn.mmdb")})
    events = pl.read_parquet(tmp_path / "events.parquet")
    logins = events["kind"] == "login"
    # every third login becomes a sensitive event (enough to make users "established" under the bug)
    nth = logins.cast(pl.Int64).cum_sum()
    sensitive = logins & (nth % 3 == 0)
    marked = events.with_columns(
        pl.when(sensitive).then(pl.lit("recovery")).when(logins).then(pl.lit("login")).alias("event"))
    marked.write_parquet(tmp_path / "marked.parquet")
    marked.filter(~sensitive).write_parquet(tmp_path / "without.parquet")
    marked.drop("event").write_parquet(tmp_path / "as_logins.parquet")

    new, old, _ = _both(tmp_path / "marked.parquet", "native", 97, settings, baseline=False)
    _assert_same(new, old)
    without, _, _ = _both(tmp_path / "without.parquet", "native", 97, settings, baseline=False)
    as_logins, _, _ = _both(tmp_path / "as_logins.parquet", "native", 97, settings, baseline=False)
    kept = new.filter(~sensitive & logins)
    expected = without.filter(logins.filter(~sensitive))
    for column in ("_popc", "_popt"):
        assert kept[column].to_list() == expected[column].to_list(), column
    # not trivial: counting the sensitive rows as logins moves the prior
    assert as_logins.filter(~sensitive & logins)["_popt"].to_list() != kept["_popt"].to_list()
    assert kept["_popt"].drop_nulls().n_unique() > 3
