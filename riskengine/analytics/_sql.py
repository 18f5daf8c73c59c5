"""Query building: :class:`Filters` and the pure pieces of SQL every AuditDB query is made of.

Nothing here touches a file or a connection: :class:`Query` collects bound parameters while
SQL text is assembled, and the helpers turn filters, grains and times into SQL fragments or
epoch microseconds. Kept apart from the reader so the SQL can be read (and tested) without
the DuckDB plumbing around it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from riskengine.analytics.rollups import DAY_US

GRAINS = ("hour", "day", "week")


@dataclass(frozen=True)
class Filters:
    """What to look at. Empty tuples mean "all"; ``since`` inclusive, ``until`` exclusive.

    Filters a table has no column for are applied through its decision where one exists
    (challenges → decisions by ``decision_id``) and ignored otherwise (failures,
    exposures and conversions only know time and user).
    """

    since: datetime | None = None
    until: datetime | None = None
    countries: tuple[str, ...] = ()
    device_types: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    factors: tuple[str, ...] = ()
    user_key: str | None = None
    policy_versions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise ValueError(f"Filters.{name} must be a timezone-aware datetime, got {value!r}")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError(f"Filters.until ({self.until}) must be after since ({self.since})")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list | set | frozenset):
                object.__setattr__(self, f.name, tuple(value))
            elif isinstance(value, str) and f.name not in ("user_key",):
                raise ValueError(f"Filters.{f.name} must be a tuple of strings, not a string")

    def replace(self, **changes: Any) -> Filters:
        return dataclasses.replace(self, **changes)

    def previous(self) -> Filters | None:
        """The same filters over the same-length window just before this one (None while the
        window is open at either end): what every "vs previous period" figure compares with.

        >>> from datetime import datetime, UTC
        >>> f = Filters(since=datetime(2026, 3, 8, tzinfo=UTC), until=datetime(2026, 3, 15, tzinfo=UTC))
        >>> p = f.previous()
        >>> (p.since.day, p.until.day) if p else None
        (1, 8)
        """
        if self.since is None or self.until is None:
            return None
        return dataclasses.replace(self, since=self.since - (self.until - self.since), until=self.since)

    @property
    def decision_only(self) -> bool:
        """Whether a filter needs decision columns that the challenges table does not have."""
        return bool(self.device_types or self.actions or self.reasons or self.policy_versions)


class Query:
    """Collects named parameters while SQL text is assembled."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def p(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"


def decision_column_conds(q: Query, f: Filters, a: str) -> list[str]:
    """Device type, reason and policy-version filters: one definition for decision rows and
    for the copies of those columns a challenge row carries."""
    conds = []
    if f.device_types:
        conds.append(f"list_contains({q.p(list(f.device_types))}, {a}device_type)")
    if f.reasons:
        conds.append(f"list_has_any({a}reasons, {q.p(list(f.reasons))})")
    if f.policy_versions:
        conds.append(f"list_contains({q.p(list(f.policy_versions))}, {a}policy_version)")
    return conds


def segment_filtered(f: Filters) -> bool:
    """Whether ``f`` filters on a segment column (anything but time and user)."""
    return bool(f.countries or f.device_types or f.actions or f.reasons or f.factors or f.policy_versions)


_GRAIN_US = {"hour": 3_600_000_000, "day": 86_400_000_000, "week": 7 * 86_400_000_000}
_MONDAY_US = 4 * 86_400_000_000  # 1970-01-01 was a Thursday; weeks start on Monday 1970-01-05


def bucket_sql(grain: str, us: str = "epoch_us(event_time)") -> str:
    """Bucket start as a naive UTC TIMESTAMP by integer arithmetic on epoch microseconds:
    ~10x faster than date_trunc on TIMESTAMPTZ (which goes through ICU calendars). ``us`` may
    be a rollup's day/hour start instead: days and hours nest in weeks and days exactly."""
    width = _GRAIN_US[grain]
    offset = _MONDAY_US if grain == "week" else 0
    return f"make_timestamp((({us} - {offset}) // {width}) * {width} + {offset})"


def day_sql() -> str:
    """Start of the row's UTC day in epoch microseconds (the rollups' ``day_us``)."""
    return f"(epoch_us(event_time) // {DAY_US}) * {DAY_US}"


def check_grain(grain: str) -> str:
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {', '.join(GRAINS)}, got {grain!r}")
    return grain


def utc_buckets(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("bucket").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))


def epoch_us(t: datetime) -> int:
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def floor_day(t: datetime) -> datetime:
    u = t.astimezone(UTC)
    return datetime(u.year, u.month, u.day, tzinfo=UTC)


def ceil_day(t: datetime) -> datetime:
    day = floor_day(t)
    return day if day == t else day + timedelta(days=1)


def month_start(key: int) -> datetime:
    """Midnight UTC on the first day of month ``YYYYMM``."""
    return datetime(key // 100, key % 100, 1, tzinfo=UTC)


def month_end(key: int) -> datetime:
    """Midnight UTC on the first day of the month after ``YYYYMM``."""
    y, m = divmod(key, 100)
    return datetime(y + 1, 1, 1, tzinfo=UTC) if m == 12 else datetime(y, m + 1, 1, tzinfo=UTC)
