"""Dashboard queries are parameterised: hostile strings in every filter of every AuditDB query
match nothing (exactly like a harmless unknown value) and leave the data intact."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from riskengine import Engine
from riskengine.testing import PARIS, establish, make_attempt, offline_settings

analytics = pytest.importorskip("riskengine.analytics.db")
AuditDB, Filters = analytics.AuditDB, analytics.Filters

HOSTILE = (
    "' OR 1=1 --",
    "GB'; DROP TABLE decisions; --",
    "x\"; SELECT * FROM read_csv('/etc/passwd'); --",
    "$p0') OR ('1'='1",
)
TUPLE_FIELDS = ("countries", "device_types", "actions", "reasons", "factors", "policy_versions")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audit")
    with Engine(offline_settings(audit={"root": str(root)})) as engine:
        for user in ("alice", "bob", "carol"):
            last = establish(engine, user, days=5)
            d = engine.score(make_attempt(user, last + timedelta(days=1), PARIS))
            engine.record_outcome(d.decision_id, "verified", channels=["whatsapp", "sms"],
                                  timestamp=last + timedelta(days=1, seconds=20))
        engine.assign("exp", "alice", {"a": 0.5, "b": 0.5})
    return root


@pytest.fixture
def db(root: Path) -> Iterator[Any]:
    database = AuditDB(root)
    yield database
    database.close()


def _filter_methods() -> list[str]:
    names = []
    for name, fn in inspect.getmembers(AuditDB, inspect.isfunction):
        if name.startswith("_"):
            continue
        params = inspect.signature(fn).parameters
        if "f" in params and not any(p.default is inspect.Parameter.empty for n, p in params.items()
                                     if n not in ("self", "f")):
            names.append(name)
    return names


def _plain(value: Any) -> Any:
    if isinstance(value, pl.DataFrame):
        return (value.columns, value.to_dicts())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return repr(value)
    return value


def _hostile_filters() -> list[Any]:
    out = [Filters(user_key=s) for s in HOSTILE]
    out += [Filters(**{name: (s,)}) for name in TUPLE_FIELDS for s in HOSTILE]
    return out


@pytest.mark.parametrize("method", _filter_methods())
def test_hostile_filters_match_nothing_and_change_nothing(db: Any, method: str) -> None:
    call = getattr(db, method)
    everything = _plain(call(Filters()))
    no_match: dict[str, Any] = {}
    for f in _hostile_filters():
        field = next(n for n in (*TUPLE_FIELDS, "user_key") if getattr(f, n))
        if field not in no_match:
            harmless = Filters(user_key="no-such-user") if field == "user_key" else \
                Filters(**{field: ("no-such-value",)})
            no_match[field] = _plain(call(harmless))
        assert _plain(call(f)) == no_match[field], (method, f)
    assert _plain(call(Filters())) == everything  # nothing was dropped or altered


def test_every_filter_method_was_tried() -> None:
    methods = _filter_methods()
    assert {"kpis", "breakdown", "events", "reason_counts"} <= set(methods), methods


def test_data_intact_after_the_attack(db: Any) -> None:
    for method in _filter_methods():
        for s in HOSTILE:
            getattr(db, method)(Filters(countries=(s,), user_key=s))
    assert db.kpis(Filters())["logins"] == 18  # 3 users × (5 + 1) decisions
    assert len(db.events(Filters(), table="challenges")) == 3
