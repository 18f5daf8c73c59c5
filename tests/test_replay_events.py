"""Native replay input may carry an optional ``event`` column (issue #17): absent, null or
empty is a login; the replay output contract is unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from riskengine.offline.replay import replay
from riskengine.testing import CHROME_WIN, FIREFOX_MAC

START = datetime(2026, 1, 5, 9, tzinfo=UTC)


def _native(path: Path, events: list[str | None] | None) -> Path:
    n = 8
    frame = pl.DataFrame({
        "event_id": list(range(100, 100 + n)),
        "event_time": [START + timedelta(days=i) for i in range(n)],
        "kind": ["login"] * n,
        "user_id": ["alice"] * n,
        "ip": ["81.2.69.160"] * (n - 1) + ["175.16.199.10"],
        "user_agent": [CHROME_WIN] * (n - 1) + [FIREFOX_MAC],
    })
    if events is not None:
        frame = frame.with_columns(pl.Series("event", events, dtype=pl.Utf8))
    frame.write_parquet(path)
    return path


def test_event_column_is_optional_and_scores_each_row_under_its_event(tmp_path: Path) -> None:
    """The last row is a new device in a never-seen country (GeoIP puts 175.16.199.10 in China):
    as a login it is challenged, as a recovery it is denied ``RECOVERY_HIGH_RISK``."""
    without = replay(_native(tmp_path / "a.parquet", None), "native", baseline=False)
    as_login = replay(_native(tmp_path / "b.parquet", [None, "", *["login"] * 6]), "native", baseline=False)
    recovery = replay(_native(tmp_path / "c.parquet", [None] * 7 + ["recovery"]), "native", baseline=False)
    assert without.columns == as_login.columns == recovery.columns  # the output contract
    assert without["index"].to_list() == list(range(100, 108))
    assert without["decision"].to_list() == as_login["decision"].to_list()
    assert without["decision"][-1] == "challenge"
    assert recovery["decision"][-1] == "deny" and "RECOVERY_HIGH_RISK" in recovery["reasons"][-1]
    assert recovery["decision"][:-1].to_list() == without["decision"][:-1].to_list()


def test_unknown_event_stops_the_replay_naming_the_row(tmp_path: Path) -> None:
    path = _native(tmp_path / "bad.parquet", [None] * 3 + ["delete_account"] + [None] * 4)
    with pytest.raises(ValueError, match=r"index 103: 'event' must be one of login, recovery"):
        replay(path, "native", baseline=False)
