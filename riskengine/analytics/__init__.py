"""Analytics over the audit log: DuckDB SQL over the Parquet segments, polars frames out.

>>> from riskengine.analytics import AuditDB, Filters
>>> Filters().countries
()
"""

from riskengine.analytics.db import BREAKDOWNS, GRAINS, RATE_DEFINITIONS, AuditDB, Filters
from riskengine.analytics.experiments import ExperimentReadout, VariantResult

__all__ = ["BREAKDOWNS", "GRAINS", "RATE_DEFINITIONS", "AuditDB", "ExperimentReadout", "Filters", "VariantResult"]
