"""The audit tables' Arrow schemas (``TABLES``, :func:`arrow_schema`): extra ``[audit]``.

Built from :data:`riskengine.audit.columns.COLUMNS` (the one list of columns) with pyarrow
alone, so the Parquet sink needs no Polars. Strings and lists are Arrow's 64-bit-offset
``large_string`` / ``large_list``, the types the segments have always been written with, so
old and new segments read back alike. The hot path (the engine) does not import this module:
``import riskengine`` stays light for an auth service.

>>> str(TABLES["conversions"]["event_time"])
'timestamp[us, tz=UTC]'
>>> arrow_schema("conversions").names
['event_time', 'schema_version', 'experiment', 'user_key']
"""

from __future__ import annotations

from typing import Final

from riskengine._extras import extra
from riskengine.audit.columns import COLUMNS

with extra("audit", feature="the audit log schema (riskengine.audit.schema)"):
    import pyarrow as pa

ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    "timestamp": pa.timestamp("us", tz="UTC"),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.large_string(),
    "list<string>": pa.large_list(pa.large_string()),
    "list<double>": pa.large_list(pa.float64()),
}
"""Arrow type of each type name used in :data:`COLUMNS`."""

TABLES: Final[dict[str, dict[str, pa.DataType]]] = {
    table: {name: ARROW_TYPES[kind] for name, kind in columns.items()} for table, columns in COLUMNS.items()
}
"""Each audit table's columns, in order, with their Arrow types."""


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of an audit table (nullable columns, in :data:`TABLES` order)."""
    try:
        columns = TABLES[table]
    except KeyError:
        raise ValueError(f"unknown audit table {table!r}; known: {', '.join(TABLES)}") from None
    return pa.schema([pa.field(name, dtype) for name, dtype in columns.items()])


__all__ = ["ARROW_TYPES", "TABLES", "arrow_schema"]
