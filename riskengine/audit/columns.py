"""The audit tables' columns, in order, with their types by name (``COLUMNS``).

Plain Python, no third-party import: the engine needs the column order to turn its row
tuples into dicts for a sink without the tuple fast path (``MemorySink``), and it must not
import pyarrow to do so. The Arrow schema the Parquet sink writes is built from this in
:mod:`riskengine.audit.schema` (extra ``[audit]``); the DuckDB layer maps the same names
to SQL types (:data:`riskengine.analytics.rollups.DUCK_TYPES`).

Type names: ``timestamp`` (microseconds, UTC), ``int16``, ``int32``, ``int64``, ``double``,
``bool``, ``string``, ``list<string>``, ``list<double>``.

>>> list(COLUMNS["conversions"])
['event_time', 'schema_version', 'experiment', 'user_key']
"""

from __future__ import annotations

from typing import Final

COLUMNS: Final[dict[str, dict[str, str]]] = {
    "decisions": {
        "event_time": "timestamp",
        "schema_version": "int16",
        "decision_id": "string",
        "user_key": "string",
        "session_key": "string",
        "ip_prefix": "string",
        "country": "string",
        "region": "string",
        "city": "string",
        "asn": "int64",
        "device_key": "string",
        "browser_family": "string",
        "browser_version": "string",
        "os_family": "string",
        "device_type": "string",
        "risk": "double",
        "action": "string",
        "reasons": "list<string>",
        "factor": "string",
        "policy_version": "string",
        "latency_us": "double",
        "user_logins": "int32",
        "cold_start": "bool",
        "trusted_device": "bool",
        "degraded": "bool",
        # shadow mode: what enforcement would have done (null in enforce mode and in old segments)
        "shadow_action": "string",
        # the challenge threshold used: fixed, or the step-up budget's live one (null in old segments)
        "threshold": "double",
        # LoginAttempt.event (schema version 2); segments written before read as "login"
        "event": "string",
    },
    "challenges": {
        "event_time": "timestamp",
        "schema_version": "int16",
        "decision_id": "string",
        "user_key": "string",
        "factor": "string",
        "channels": "list<string>",
        "final_channel": "string",
        "fallback_used": "bool",
        "outcome": "string",
        "attempts": "int32",
        "seconds_to_verify": "double",
        "trust_device": "bool",
        "country": "string",
        "device_type": "string",
        "risk": "double",
        # copied from the decision so challenge breakdowns need no join
        "reasons": "list<string>",
        "policy_version": "string",
    },
    "failures": {
        "event_time": "timestamp",
        "schema_version": "int16",
        "user_key": "string",
        "ip_prefix": "string",
        "user_failures": "int32",
    },
    "exposures": {
        "event_time": "timestamp",
        "schema_version": "int16",
        "experiment": "string",
        "variant": "string",
        "user_key": "string",
        # the assignment's design, so a readout knows the control and the expected split (SRM)
        "control": "string",
        "variants": "list<string>",
        "weights": "list<double>",
    },
    "conversions": {
        "event_time": "timestamp",
        "schema_version": "int16",
        "experiment": "string",
        "user_key": "string",
    },
    "admin": {
        "event_time": "timestamp",
        "schema_version": "int16",
        "operation": "string",
        "user_key": "string",
        "device_key": "string",
        "actor": "string",
        "note": "string",
    },
    # fraud feedback (riskengine.core.feedback): a user's "not me", an analyst's verdict
    "feedback": {
        "event_time": "timestamp",
        "schema_version": "int16",
        "decision_id": "string",
        "user_key": "string",
        "kind": "string",
        "actor": "string",
        "note": "string",
    },
}
