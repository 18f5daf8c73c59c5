"""The audit tables' columns and Polars types (``TABLES``).

Kept apart from :mod:`riskengine.audit.events` so that the hot path (the engine, which needs
only the pseudonymiser and ``SCHEMA_VERSION``) does not import Polars: ``import riskengine``
stays light for an auth service. The sink, maintenance and analytics import this module.
"""

from __future__ import annotations

from typing import Final

import polars as pl

_TS = pl.Datetime("us", "UTC")
_STRS = pl.List(pl.Utf8)

TABLES: Final[dict[str, dict[str, pl.DataType]]] = {
    "decisions": {
        "event_time": _TS,
        "schema_version": pl.Int16(),
        "decision_id": pl.Utf8(),
        "user_key": pl.Utf8(),
        "session_key": pl.Utf8(),
        "ip_prefix": pl.Utf8(),
        "country": pl.Utf8(),
        "region": pl.Utf8(),
        "city": pl.Utf8(),
        "asn": pl.Int64(),
        "device_key": pl.Utf8(),
        "browser_family": pl.Utf8(),
        "browser_version": pl.Utf8(),
        "os_family": pl.Utf8(),
        "device_type": pl.Utf8(),
        "risk": pl.Float64(),
        "action": pl.Utf8(),
        "reasons": _STRS,
        "factor": pl.Utf8(),
        "policy_version": pl.Utf8(),
        "latency_us": pl.Float64(),
        "user_logins": pl.Int32(),
        "cold_start": pl.Boolean(),
        "trusted_device": pl.Boolean(),
        "degraded": pl.Boolean(),
    },
    "challenges": {
        "event_time": _TS,
        "schema_version": pl.Int16(),
        "decision_id": pl.Utf8(),
        "user_key": pl.Utf8(),
        "factor": pl.Utf8(),
        "channels": _STRS,
        "final_channel": pl.Utf8(),
        "fallback_used": pl.Boolean(),
        "outcome": pl.Utf8(),
        "attempts": pl.Int32(),
        "seconds_to_verify": pl.Float64(),
        "trust_device": pl.Boolean(),
        "country": pl.Utf8(),
        "device_type": pl.Utf8(),
        "risk": pl.Float64(),
        # copied from the decision so challenge breakdowns need no join
        "reasons": _STRS,
        "policy_version": pl.Utf8(),
    },
    "failures": {
        "event_time": _TS,
        "schema_version": pl.Int16(),
        "user_key": pl.Utf8(),
        "ip_prefix": pl.Utf8(),
        "user_failures": pl.Int32(),
    },
    "exposures": {
        "event_time": _TS,
        "schema_version": pl.Int16(),
        "experiment": pl.Utf8(),
        "variant": pl.Utf8(),
        "user_key": pl.Utf8(),
        # the assignment's design, so a readout knows the control and the expected split (SRM)
        "control": pl.Utf8(),
        "variants": _STRS,
        "weights": pl.List(pl.Float64()),
    },
    "conversions": {
        "event_time": _TS,
        "schema_version": pl.Int16(),
        "experiment": pl.Utf8(),
        "user_key": pl.Utf8(),
    },
    "admin": {
        "event_time": _TS,
        "schema_version": pl.Int16(),
        "operation": pl.Utf8(),
        "user_key": pl.Utf8(),
        "device_key": pl.Utf8(),
        "actor": pl.Utf8(),
        "note": pl.Utf8(),
    },
}
