"""DuckDB over an audit root on object storage, without DuckDB's httpfs extension.

DuckDB reads ``s3://`` through its httpfs extension, which it downloads from
extensions.duckdb.org on first use: not reachable from many CI runners and locked-down
hosts, and the ``duckdb-extension-httpfs`` wheels on PyPI are built for DuckDB 1.x only.
So the reader hands DuckDB a Python file system instead (``duckdb.register_filesystem``
with an fsspec wrapper around pyarrow's S3 client, the same client the sink writes with,
credentials from the standard AWS chain). DuckDB keeps doing everything else: Parquet
footer and row-group pruning, projection pushdown, hive partitions; only the byte ranges
it asks for cross the network (docs/audit.md, "Object storage", has the figures).

Paths handed to DuckDB use the scheme ``riskengine-s3://`` (not ``s3://``), so DuckDB
never tries to load httpfs for them.
"""

from __future__ import annotations

from typing import Any

import duckdb

from riskengine._extras import extra
from riskengine.audit.objectstore import S3Root

with extra("s3", feature="reading an s3:// audit root (AuditDB, report, dashboard)"):
    from fsspec.implementations.arrow import ArrowFSWrapper  # type: ignore[import-untyped]

SCHEME = "riskengine-s3"
PREFIX = f"{SCHEME}://"


class _S3Wrapper(ArrowFSWrapper):  # type: ignore[misc]  # fsspec is untyped
    protocol = SCHEME
    cachable = False

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(path)
        if text.startswith(PREFIX):
            text = text[len(PREFIX):]
        return text.rstrip("/")


def register(con: duckdb.DuckDBPyConnection, store: S3Root) -> None:
    """Let ``con`` read (and write) ``riskengine-s3://bucket/key`` through ``store``'s client."""
    con.register_filesystem(_S3Wrapper(store.fs))


def duck_path(store: S3Root, rel: str) -> str:
    """The path DuckDB opens for ``rel`` (relative to the root).

    >>> duck_path(S3Root.parse("s3://audit/prod"), "decisions/year=2026/month=01/part-1.parquet")
    'riskengine-s3://audit/prod/decisions/year=2026/month=01/part-1.parquet'
    """
    return PREFIX + store.path(rel)


__all__ = ["PREFIX", "SCHEME", "duck_path", "register"]
