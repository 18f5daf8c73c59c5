"""Analytics over the audit log: DuckDB SQL over the Parquet segments, polars frames out.

>>> from riskengine.analytics import AuditDB, Filters
>>> Filters().countries
()
"""

from riskengine._extras import extra

with extra("analytics", feature="riskengine.analytics"):
    import duckdb  # noqa: F401 - checked here so every analytics module names the extra
    import polars  # noqa: F401
    import pyarrow  # noqa: F401

from riskengine.analytics.db import BREAKDOWNS, GRAINS, RATE_DEFINITIONS, AuditDB, Filters
from riskengine.analytics.experiments import ExperimentReadout, VariantResult

__all__ = ["BREAKDOWNS", "GRAINS", "RATE_DEFINITIONS", "AuditDB", "ExperimentReadout", "Filters", "VariantResult"]
