"""Audit log: versioned event schemas, sinks (Parquet segments, memory), compaction, retention."""

from riskengine.audit.base import AuditSink, MemorySink, NullSink
from riskengine.audit.events import SCHEMA_VERSION, TABLES, Pseudonymizer

__all__ = ["SCHEMA_VERSION", "TABLES", "AuditSink", "MemorySink", "NullSink", "Pseudonymizer"]
