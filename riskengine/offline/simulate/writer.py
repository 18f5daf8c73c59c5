"""Output files of ``riskengine simulate``: native events, RBA-layout CSV, labels, manifest.

Native events (``events.parquet``), one row per event in time order:

==================  ==================  =====================================================
column              type                meaning
==================  ==================  =====================================================
event_id            int64               0, 1, 2 … in time order; the replay ``index``
event_time          datetime[us, UTC]   when it happened
kind                str                 ``login`` (password ok) | ``failed_password`` | ``signup``
user_id             str                 account (``x…`` = a name not registered here)
ip                  str                 client address (IPv4)
user_agent          str                 as sent; versions move with browser auto-updates
device_id           str, nullable       device cookie when the client kept one
session_id          str                 login session (a typo and its retry share it)
enrolled_factors    list[str]           the user's second factors, strongest first
would_pass          bool, nullable      logins: would this person pass a challenge
challenge_channels  list[str]           logins: channels tried, in order (fallbacks)
challenge_outcome   str, nullable       logins: verified | failed | abandoned | expired
challenge_attempts  int32, nullable     logins: codes entered
seconds_to_verify   float64, nullable   logins: time to a verified challenge
trust_device        bool, nullable      logins: ticks "trust this device" when verified
experiment          str, nullable       signups: experiment name
variant             str, nullable       signups: arm the visitor saw
converted           bool, nullable      signups: completed the signup
rtt_ms              float64, nullable   logins, failed passwords: round-trip time to the
                                        service (the user's band on that network; attackers'
                                        proxies add latency); null for signups
==================  ==================  =====================================================

``labels.parquet``: ``index`` (= event_id), ``kind``, ``user_id``, ``is_attack``,
``attack_family`` (stuffing | ato_foreign | ato_domestic | ato_imitation | ato_lookalike |
ato_residential_proxy | null),
``is_attack_ip``, ``warmup`` (the row belongs to the warm-up before the simulated window:
legitimate traffic of existing users that teaches the profiles and is left out of
``riskengine evaluate``'s numbers), ``user_logins_before`` (warm-up logins included) and
``established`` (≥ 5 earlier logins) and ``user_traits`` (the legitimate user's odd-but-legitimate
behaviours: ``cgnat``, ``commuter``, ``new_device``, ``traveller``, ``vpn``; empty for attackers'
rows, which carry the victim's id but not the victim's behaviour).

The RBA CSV's ``Round-Trip Time [ms]`` is ``rtt_ms`` on every row (a login server can measure
it: the public data set has it on a minority of rows only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import polars as pl

from riskengine.core.enrich.geoip import GeoIP, builtin_city_db
from riskengine.core.enrich.useragent import classify

EVENTS_FILE: Final = "events.parquet"
LABELS_FILE: Final = "labels.parquet"
RBA_FILE: Final = "logins_rba.csv"
ASN_FILE: Final = "asn.mmdb"
MANIFEST_FILE: Final = "manifest.json"
ESTABLISHED_MIN_LOGINS: Final = 5

RBA_COLUMNS: Final = (
    "index", "Login Timestamp", "User ID", "Round-Trip Time [ms]", "IP Address", "Country", "Region",
    "City", "ASN", "User Agent String", "Browser Name and Version", "OS Name and Version", "Device Type",
    "Login Successful", "Is Attack IP", "Is Account Takeover",
)
RBA_LABEL_COLUMNS: Final = ("Is Attack IP", "Is Account Takeover")

NATIVE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "event_time": pl.Datetime("us", "UTC"),
    "kind": pl.Utf8(),
    "user_id": pl.Utf8(),
    "ip": pl.Utf8(),
    "user_agent": pl.Utf8(),
    "device_id": pl.Utf8(),
    "session_id": pl.Utf8(),
    "enrolled_factors": pl.List(pl.Utf8),
    "would_pass": pl.Boolean(),
    "challenge_channels": pl.List(pl.Utf8),
    "challenge_outcome": pl.Utf8(),
    "challenge_attempts": pl.Int32(),
    "seconds_to_verify": pl.Float64(),
    "trust_device": pl.Boolean(),
    "experiment": pl.Utf8(),
    "variant": pl.Utf8(),
    "converted": pl.Boolean(),
    "attack_family": pl.Utf8(),
    "is_attack_ip": pl.Boolean(),
    "warmup": pl.Boolean(),
    "rtt_ms": pl.Float64(),
    "user_traits": pl.List(pl.Utf8),
}
LABEL_ONLY_COLUMNS: Final = ("attack_family", "is_attack_ip", "warmup", "user_traits")
"""Collected with the events but written only to ``labels.parquet``."""


def build_frames(columns: dict[str, list[Any]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Sort the collected events by time (stable) and split them into events and labels."""
    micros = [int(round(t * 1e6)) for t in columns.pop("ts")]
    frame = pl.DataFrame({"event_time": micros, **columns}, schema_overrides={"event_time": pl.Int64})
    frame = frame.with_columns(pl.col("event_time").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    frame = frame.cast(NATIVE_SCHEMA)  # type: ignore[arg-type]
    frame = frame.sort("event_time", maintain_order=True).with_row_index("event_id")
    frame = frame.with_columns(pl.col("event_id").cast(pl.Int64))
    is_login = (pl.col("kind") == "login").cast(pl.Int32)
    labels = frame.select(
        pl.col("event_id").alias("index"),
        "kind",
        "user_id",
        pl.col("attack_family").is_not_null().alias("is_attack"),
        "attack_family",
        "is_attack_ip",
        "warmup",
        (is_login.cum_sum().over("user_id") - is_login).alias("user_logins_before"),
        "user_traits",
    ).with_columns((pl.col("user_logins_before") >= ESTABLISHED_MIN_LOGINS).alias("established"))
    events = frame.drop(*LABEL_ONLY_COLUMNS)
    return events, labels


def rba_frame(events: pl.DataFrame, labels: pl.DataFrame, asn_db: Path, seed: int) -> pl.DataFrame:
    """The RBA-dataset layout (Wiefling et al.): logins and failed passwords, geo from GeoIP."""
    logins = events.filter(pl.col("kind") != "signup").join(
        labels.select("index", "is_attack", "is_attack_ip"), left_on="event_id", right_on="index")
    geoip = GeoIP(builtin_city_db(), str(asn_db), cache_size=0)
    try:
        geo_rows = []
        for ip in logins["ip"].unique().to_list():
            found, _ = geoip.lookup(ip)
            geo_rows.append((ip, found.country if found else None, found.region if found else None,
                             found.city if found else None, found.asn if found else None))
    finally:
        geoip.close()
    geo = pl.DataFrame(geo_rows, orient="row", schema={
        "ip": pl.Utf8, "Country": pl.Utf8, "Region": pl.Utf8, "City": pl.Utf8, "ASN": pl.Int64})
    ua_rows = []
    for ua in logins["user_agent"].unique().to_list():
        p = classify(ua)
        device = {"pc": "desktop", "other": "unknown"}.get(p.device_type, p.device_type)
        ua_rows.append((ua, f"{p.browser_family} {p.browser_version}".strip(),
                        f"{p.os_family} {p.os_version}".strip(), device))
    uas = pl.DataFrame(ua_rows, orient="row", schema={
        "user_agent": pl.Utf8, "Browser Name and Version": pl.Utf8, "OS Name and Version": pl.Utf8,
        "Device Type": pl.Utf8})
    del seed  # every random draw happened in the simulation (RTTs included)
    out = logins.join(geo, on="ip", how="left", maintain_order="left").join(
        uas, on="user_agent", how="left", maintain_order="left")
    return out.select(
        pl.col("event_id").alias("index"),
        pl.col("event_time").dt.replace_time_zone(None).dt.strftime("%Y-%m-%d %H:%M:%S%.3f")
        .alias("Login Timestamp"),
        pl.col("user_id").alias("User ID"),
        pl.col("rtt_ms").round().cast(pl.Int64).alias("Round-Trip Time [ms]"),
        pl.col("ip").alias("IP Address"),
        "Country", "Region", "City", "ASN",
        pl.col("user_agent").alias("User Agent String"),
        "Browser Name and Version", "OS Name and Version", "Device Type",
        (pl.col("kind") == "login").alias("Login Successful"),
        pl.col("is_attack_ip").alias("Is Attack IP"),
        (pl.col("is_attack") & (pl.col("kind") == "login")).alias("Is Account Takeover"),
    )


def write_outputs(out: Path, events: pl.DataFrame, labels: pl.DataFrame, fmt: str, seed: int,
                  manifest: dict[str, Any]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if fmt in ("native", "both"):
        events.write_parquet(out / EVENTS_FILE, statistics=True, row_group_size=100_000)
        written["events"] = out / EVENTS_FILE
    labels.write_parquet(out / LABELS_FILE)
    written["labels"] = out / LABELS_FILE
    if fmt in ("rba", "both"):
        rba_frame(events, labels, out / ASN_FILE, seed).write_csv(out / RBA_FILE)
        written["rba"] = out / RBA_FILE
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    written["manifest"] = out / MANIFEST_FILE
    return written
