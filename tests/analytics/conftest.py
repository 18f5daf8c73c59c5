"""A tiny audit root built by hand, so every expected number below is countable on paper.

decisions (10): nine in March 2026, one in February
  id   time          ctry dev     action     risk  reasons                                   user
  d01  03-01 10:00   GB   pc      allow      0.05  KNOWN_DEVICE                              u1
  d02  03-01 11:00   GB   pc      allow      0.10  KNOWN_DEVICE                              u2
  d03  03-02 09:00   GB   mobile  allow      0.15  KNOWN_DEVICE                              u3
  d04  03-02 10:00   FR   pc      allow      0.20  KNOWN_DEVICE                              u4
  d05  03-03 10:00   GB   pc      allow      0.00  COLD_START (cold start)                   u5
  d06  03-03 11:00   GB   pc      challenge  0.55  NEW_DEVICE                  factor sms    u1
  d07  03-04 10:00   FR   mobile  challenge  0.70  NEW_COUNTRY, NEW_DEVICE     factor whatsapp u2
  d08  03-04 12:00   GB   pc      challenge  0.45  UNUSUAL_HOUR, NEW_ASN (trusted device) totp u3
  d09  03-05 10:00   CN   pc      deny       0.95  NEW_COUNTRY, IMPOSSIBLE_TRAVEL, NEW_DEVICE u4
  d10  02-27 10:00   GB   pc      allow      0.10  KNOWN_DEVICE                              u1
challenges: d06 [sms] verified 20 s; d07 [whatsapp, sms] verified 60 s; d08 [totp] abandoned
failures: three for u4 on 03-05
experiment signup_2fa (control progressive, 50/50): progressive u1 u2 u3, mfa_at_signup u4 u5 u6;
  conversions u1 (after exposure), u2 (BEFORE exposure: not counted), u4, u5
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from riskengine.analytics import Filters
from riskengine.audit.parquet import ParquetSink


def ts(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


DECISIONS = [
    ("d01", ts(3, 1, 10), "GB", "pc", "allow", 0.05, ["KNOWN_DEVICE"], None, "u1", False, False),
    ("d02", ts(3, 1, 11), "GB", "pc", "allow", 0.10, ["KNOWN_DEVICE"], None, "u2", False, False),
    ("d03", ts(3, 2, 9), "GB", "mobile", "allow", 0.15, ["KNOWN_DEVICE"], None, "u3", False, False),
    ("d04", ts(3, 2, 10), "FR", "pc", "allow", 0.20, ["KNOWN_DEVICE"], None, "u4", False, False),
    ("d05", ts(3, 3, 10), "GB", "pc", "allow", 0.0, ["COLD_START"], None, "u5", True, False),
    ("d06", ts(3, 3, 11), "GB", "pc", "challenge", 0.55, ["NEW_DEVICE"], "sms", "u1", False, False),
    ("d07", ts(3, 4, 10), "FR", "mobile", "challenge", 0.70, ["NEW_COUNTRY", "NEW_DEVICE"], "whatsapp", "u2",
     False, False),
    ("d08", ts(3, 4, 12), "GB", "pc", "challenge", 0.45, ["UNUSUAL_HOUR", "NEW_ASN"], "totp", "u3", False, True),
    ("d09", ts(3, 5, 10), "CN", "pc", "deny", 0.95, ["NEW_COUNTRY", "IMPOSSIBLE_TRAVEL", "NEW_DEVICE"], None, "u4",
     False, False),
    ("d10", ts(2, 27, 10), "GB", "pc", "allow", 0.10, ["KNOWN_DEVICE"], None, "u1", False, False),
]
CHALLENGES = [
    ("d06", ts(3, 3, 11, 1), "sms", ["sms"], "verified", 20.0, "GB", "u1"),
    ("d07", ts(3, 4, 10, 2), "whatsapp", ["whatsapp", "sms"], "verified", 60.0, "FR", "u2"),
    ("d08", ts(3, 4, 12, 5), "totp", ["totp"], "abandoned", None, "GB", "u3"),
]


def build_root(root: Path) -> Path:
    with ParquetSink(root) as sink:
        for did, t, country, dev, action, risk, reasons, factor, user, cold, trusted in DECISIONS:
            sink.emit("decisions", {
                "event_time": t, "schema_version": 1, "decision_id": did, "user_key": user,
                "country": country, "device_type": dev, "browser_family": "Chrome", "action": action,
                "risk": risk, "reasons": reasons, "factor": factor, "policy_version": "v1",
                "cold_start": cold, "trusted_device": trusted, "degraded": False})
        for did, t, factor, channels, outcome, secs, country, user in CHALLENGES:
            sink.emit("challenges", {
                "event_time": t, "schema_version": 1, "decision_id": did, "user_key": user, "factor": factor,
                "channels": channels, "final_channel": channels[-1], "fallback_used": len(channels) > 1,
                "outcome": outcome, "attempts": 1, "seconds_to_verify": secs, "country": country})
        for minute in range(3):
            sink.emit("failures", {"event_time": ts(3, 5, 9, minute), "schema_version": 1, "user_key": "u4",
                                   "ip_prefix": "10.0.0.0/24", "user_failures": minute + 1})
        design = {"control": "progressive", "variants": ["progressive", "mfa_at_signup"], "weights": [0.5, 0.5]}
        for i, (user, variant) in enumerate([("u1", "progressive"), ("u2", "progressive"), ("u3", "progressive"),
                                             ("u4", "mfa_at_signup"), ("u5", "mfa_at_signup"),
                                             ("u6", "mfa_at_signup")]):
            sink.emit("exposures", {"event_time": ts(3, 2, 12, i), "schema_version": 1, "experiment": "signup_2fa",
                                    "variant": variant, "user_key": user, **design})
        for user, t in (("u1", ts(3, 3, 8)), ("u2", ts(3, 1, 8)), ("u4", ts(3, 3, 9)), ("u5", ts(3, 6, 9))):
            sink.emit("conversions", {"event_time": t, "schema_version": 1, "experiment": "signup_2fa",
                                      "user_key": user})
    return root


@pytest.fixture
def audit_root(tmp_path: Path) -> Path:
    return build_root(tmp_path / "audit")


class FullScan:
    """The Audit explorer's answer by brute force, the independent reference the explorer tests
    hold ``AuditDB.events`` / ``user_events`` to: every decision row read with polars, filtered,
    sorted newest first (ties by decision id), sliced."""

    @staticmethod
    def rows(root: Path) -> pl.DataFrame:
        """Every row of every decisions segment under ``root`` (whatever their schemas)."""
        return pl.concat([pl.read_parquet(p) for p in sorted(root.glob("decisions/*/*/*.parquet"))],
                         how="diagonal")

    @staticmethod
    def page(rows: pl.DataFrame, f: Filters, limit: int, offset: int) -> pl.DataFrame:
        keep = pl.lit(True)
        if f.since is not None:
            keep &= pl.col("event_time") >= f.since
        if f.until is not None:
            keep &= pl.col("event_time") < f.until
        if f.actions:
            keep &= pl.col("action").is_in(f.actions)
        if f.countries:
            keep &= pl.col("country").is_in(f.countries)
        if f.user_key is not None:
            keep &= pl.col("user_key") == f.user_key
        if f.reasons:
            keep &= pl.col("reasons").list.eval(pl.element().is_in(f.reasons)).list.any()
        return rows.filter(keep).sort(["event_time", "decision_id"], descending=True).slice(offset, limit)

    @staticmethod
    def same(got: pl.DataFrame, want: pl.DataFrame) -> None:
        assert got.height == want.height
        assert_frame_equal(got.select(want.columns), want, check_dtypes=False)

