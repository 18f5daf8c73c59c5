"""Threat model: planting a device or a place through the signup session (issue #17, session 9).

``record_signup`` teaches a blank profile the account's signup session, so that an attacker's
first login from elsewhere is novel. Turned around, it is a way to write into a profile without
a login: a hostile or buggy caller replaying "signup" for an existing victim, with the
attacker's device and network, would make them familiar. A seed therefore lands only in a
blank profile, checked inside the store's atomic update (so it also loses every race against a
login's lesson, queued or not), once per account, and never trusts anything."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from riskengine import Engine, UserProfile
from riskengine.audit.base import MemorySink
from riskengine.core.stores import MemoryStore
from riskengine.core.stores.base import Updater
from riskengine.core.stores.sqlite import SqliteStore
from riskengine.testing import CHANGCHUN, EDINBURGH, FIREFOX_MAC, LONDON, T0, establish, make_attempt, offline_settings

ATTACKER = {"place": EDINBURGH | {"asn": 64512}, "ip": "198.51.100.7", "ua": FIREFOX_MAC,
            "device_id": "attacker-laptop"}


@pytest.fixture(params=["memory", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "p.db")
    settings = offline_settings(trust={"secret_keys": ["k" * 40]})
    with Engine(settings, store=store, sink=MemorySink()) as e:
        yield e


def _admin(engine: Engine) -> list[dict[str, Any]]:
    assert isinstance(engine.sink, MemorySink)
    return engine.sink.rows("admin")


def test_a_signup_replayed_for_an_existing_victim_plants_nothing(engine: Engine) -> None:
    last = establish(engine, days=6)
    before = engine.store.get("alice")
    assert before is not None
    planted = engine.record_signup(make_attempt(ts=last + timedelta(hours=1), **ATTACKER))
    assert planted is False
    after = engine.store.get("alice")
    assert after is not None and after.to_bytes() == before.to_bytes()
    # the attacker's device and network are still new to the victim's profile
    d = engine.score(make_attempt(ts=last + timedelta(hours=2), **ATTACKER))
    assert d.action != "allow"
    assert {"NEW_DEVICE", "NEW_REGION", "NEW_ASN"} <= set(d.reason_codes)
    row = _admin(engine)[-1]
    assert row["operation"] == "signup_refused" and "6 accepted login(s)" in row["note"]
    assert engine.health()["signups_refused"] == 1 and engine.health()["signups_learned"] == 0


def test_one_signup_per_account(engine: Engine) -> None:
    assert engine.record_signup(make_attempt(device_id="owner-phone")) is True
    seeded = engine.store.get("alice")
    assert seeded is not None
    # a second "signup" (the attacker's session) the next minute: refused, nothing of it kept
    assert engine.record_signup(make_attempt(ts=T0 + timedelta(minutes=1), **ATTACKER)) is False
    after = engine.store.get("alice")
    assert after is not None and after.to_bytes() == seeded.to_bytes()
    assert [r["operation"] for r in _admin(engine)] == ["signup", "signup_refused"]
    assert "already seeded by a signup" in _admin(engine)[-1]["note"]


def test_a_reset_account_is_not_new(engine: Engine) -> None:
    establish(engine, days=3)
    engine.reset_user("alice", actor="support", reason="owner locked out", now=T0 + timedelta(days=4))
    at = T0 + timedelta(days=4, hours=1)
    assert engine.record_signup(make_attempt(ts=at, **ATTACKER)) is False
    # still the reset mark alone: the next login is stepped up until a challenge is verified
    d = engine.score(make_attempt(ts=at + timedelta(minutes=5), **ATTACKER))
    assert "PROFILE_RESET" in d.reason_codes and d.action == "challenge"


def test_a_signup_trusts_nothing(engine: Engine) -> None:
    # a validly signed token for this user (same key), presented with the signup session
    device = engine.tokens.new_device_id()
    now = int(T0.timestamp())
    token = engine.tokens.issue("alice", device, issued=now - 60, expires=now + 86400 * 30)
    assert engine.tokens.verify(token, "alice", now).problem is None
    assert engine.record_signup(make_attempt(device_id="owner-phone", device_token=token)) is True
    p = engine.store.get("alice")
    assert p is not None
    assert engine.tokens.device_key(device) not in p.devices
    assert all(seen.trusted_until == 0 for seen in p.devices.values())
    assert p.logins == 0 and p.reset_at == 0
    # the owner's first login from the signup device: familiar, but not a trusted device
    first = engine.score(make_attempt(ts=T0 + timedelta(hours=1), device_id="owner-phone"))
    assert "NEW_DEVICE" not in first.reason_codes
    assert engine.sink.rows("decisions")[-1]["trusted_device"] is False  # type: ignore[attr-defined]


def test_a_queued_login_lesson_wins_over_a_late_signup() -> None:
    """Write-behind: the owner's (or the attacker's) first login is allowed and its lesson is
    still queued when a "signup" arrives. The seed queues behind it and finds history: it is
    refused, whatever the background writer's timing."""
    settings = offline_settings(store={"write_behind": True})
    with Engine(settings, sink=MemorySink()) as engine:
        d = engine.score(make_attempt(device_id="first-device"))
        assert d.action == "allow"
        assert engine.record_signup(make_attempt(ts=T0 - timedelta(minutes=5), **ATTACKER)) is False
        engine.flush()
        p = engine.store.get("alice")
        assert p is not None and p.signup_at == 0 and p.logins == 1
        assert set(p.asns) == {LONDON["asn"]}


def test_a_store_failure_is_counted_never_raised() -> None:
    class Broken(MemoryStore):
        def update(self, user_id: str, fn: Updater) -> UserProfile | None:
            raise ConnectionError("store down")

    with Engine(offline_settings(), store=Broken(), sink=MemorySink()) as engine:
        assert engine.record_signup(make_attempt()) is False
        health = engine.health()
        assert health["store_errors"] == 1 and health["signups_learned"] == 0 and health["signups_refused"] == 0


def test_async_twin_refuses_the_same_way() -> None:
    async def run(engine: Engine) -> tuple[bool, bool]:
        first = await engine.arecord_signup(make_attempt(device_id="owner-phone"))
        second = await engine.arecord_signup(make_attempt(ts=T0 + timedelta(minutes=1), **ATTACKER))
        return first, second

    with Engine(offline_settings(), sink=MemorySink()) as engine:
        assert asyncio.run(run(engine)) == (True, False)
        p = engine.store.get("alice")
        assert p is not None and set(p.asns) == {LONDON["asn"]}


def test_a_foreign_attacker_after_a_signup_meets_new_country() -> None:
    """What the seed buys against a cold victim: without it, a first login from abroad is the
    profile (only the population prior may object); with it, it is a new country."""
    with Engine(offline_settings(), sink=MemorySink()) as engine:
        assert engine.record_signup(make_attempt(device_id="owner-phone"))
        d = engine.score(make_attempt(ts=T0 + timedelta(hours=3), place=CHANGCHUN, ip="1.2.3.4",
                                      device_id="attacker"))
        assert "NEW_COUNTRY" in d.reason_codes and d.action != "allow"
