"""Audit log: versioned event schemas, sinks (Parquet segments, memory), compaction, retention."""

from typing import TYPE_CHECKING, Any

from riskengine.audit.base import AuditSink, MemorySink, NullSink
from riskengine.audit.events import SCHEMA_VERSION, Pseudonymizer

if TYPE_CHECKING:
    from riskengine.audit.schema import TABLES as TABLES

__all__ = ["SCHEMA_VERSION", "TABLES", "AuditSink", "MemorySink", "NullSink", "Pseudonymizer"]


def __getattr__(name: str) -> Any:
    # TABLES needs pyarrow (extra [audit]), which the scoring path does not: imported on first use
    if name == "TABLES":
        from riskengine.audit.schema import TABLES

        return TABLES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
