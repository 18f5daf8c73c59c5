"""Audit log: versioned event schemas, pseudonyms, sinks (Parquet segments, memory, null).

A leaf library: it imports nothing else from riskengine (only the ``_extras`` helper) and
knows nothing of scoring. This package is its public face, the only part of it that
:mod:`riskengine.core` imports. Compaction and retention are in :mod:`riskengine.ops.maintenance`.
"""

from typing import TYPE_CHECKING, Any

from riskengine.audit.base import AuditSink, MemorySink, NullSink, Row
from riskengine.audit.columns import COLUMNS
from riskengine.audit.events import SCHEMA_VERSION, AuditKey, Pseudonymizer, resolve_key

if TYPE_CHECKING:
    from riskengine.audit.parquet import ParquetSink as ParquetSink
    from riskengine.audit.schema import TABLES as TABLES

__all__ = ["COLUMNS", "SCHEMA_VERSION", "TABLES", "AuditKey", "AuditSink", "MemorySink", "NullSink",
           "ParquetSink", "Pseudonymizer", "Row", "resolve_key"]


def __getattr__(name: str) -> Any:
    # TABLES and ParquetSink need pyarrow (extra [audit]), which the scoring path does not:
    # imported on first use (the engine asks for ParquetSink only when an audit root is set)
    if name == "TABLES":
        from riskengine.audit.schema import TABLES

        return TABLES
    if name == "ParquetSink":
        from riskengine.audit.parquet import ParquetSink

        return ParquetSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
