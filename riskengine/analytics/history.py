"""One user's recent audit rows through :class:`~riskengine.analytics.AuditDB`: what
``Engine.user_summary`` shows support staff (it implements core's ``AuditHistory``
protocol; the package root hands it to the engine, so core never imports analytics)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riskengine.analytics.db import AuditDB


class UserHistory:
    """``user_rows(user_key, table, columns, limit)`` over an audit root, newest first."""

    def __init__(self, root: str | Path) -> None:
        self._db = AuditDB(root)

    def user_rows(self, user_key: str, table: str, columns: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
        rows = self._db.user_events(user_key, table, limit).select(columns).to_dicts()
        for row in rows:
            t = row.get("event_time")
            if isinstance(t, datetime):
                row["event_time"] = t.astimezone(UTC).isoformat()
        return rows

    def close(self) -> None:
        self._db.close()
