"""Engine.check_send end to end: challenge → send checks → verification, audit rows, fail modes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from riskengine import Engine
from riskengine.audit import MemorySink
from riskengine.core import reasons as R
from riskengine.core.stores.redis_server import LocalRedisServer, free_port
from riskengine.testing import PARIS, T0, establish, make_attempt, offline_settings

MOBILE = "+447400123456"  # phonenumbers' example GB mobile
PREMIUM = "+449012345678"  # its example GB premium-rate number
KEY = "k" * 40


def challenged(engine: Engine, user: str = "alice", ts: datetime = T0) -> str:
    d = engine.score(make_attempt(user, ts))
    assert d.action == "challenge", d
    return d.decision_id


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def engine(sink: MemorySink) -> Iterator[Engine]:
    # cold start off: a first login is challenged (NEW_DEVICE), so every test has a challenge
    e = Engine(offline_settings(coldstart={"min_logins": 0}), sink=sink)
    yield e
    e.close()


def test_a_send_to_a_mobile_is_allowed_and_its_verification_recorded(engine: Engine, sink: MemorySink) -> None:
    did = challenged(engine)
    d = engine.check_send(did, "sms", MOBILE, now=T0)
    assert (d.action, d.reasons, d.suggested_channel) == ("allow", (), None)
    assert (d.country, d.prefix, d.number_type, d.price) == ("GB", "+447400", "mobile",
                                                             engine.settings.sms.price_per_country["GB"])
    engine.record_outcome(did, "verified", ["sms"], timestamp=T0 + timedelta(seconds=40))
    rows = sink.rows("sends")
    assert [(r["action"], r["verified"], r["dest_country"], r["dest_prefix"]) for r in rows] == [
        ("allow", False, "GB", "+447400"), ("verified", True, "GB", "+447400")]
    assert rows[0]["user_key"] == rows[1]["user_key"] == engine.pseudonymizer.user("alice")
    assert all("123456" not in str(v) for r in rows for v in r.values())  # never the number


def test_premium_unknown_and_invalid_destinations_are_blocked_not_raised(engine: Engine, sink: MemorySink) -> None:
    did = challenged(engine)
    assert engine.check_send(did, "sms", PREMIUM, now=T0).reason_codes == (R.SMS_PREMIUM_NUMBER,)
    assert engine.check_send(did, "voice", "+447700900123", now=T0).reason_codes == (R.SMS_INVALID_NUMBER,)
    assert engine.check_send(did, "sms", None, now=T0).reason_codes == (R.SMS_INVALID_NUMBER,)
    unknown = engine.check_send("no-such-decision", "sms", MOBILE, now=T0)
    assert (unknown.action, unknown.reason_codes) == ("block", (R.SMS_UNKNOWN_DECISION,))
    # after the outcome the challenge is no longer pending: a late resend is refused
    engine.record_outcome(did, "verified", ["sms"], timestamp=T0)
    assert engine.check_send(did, "sms", MOBILE, now=T0).reason_codes == (R.SMS_UNKNOWN_DECISION,)
    assert {r["action"] for r in sink.rows("sends")} == {"block"}


def test_an_expired_challenge_is_unknown(engine: Engine) -> None:
    did = challenged(engine)
    late = T0 + timedelta(minutes=engine.settings.otp.session_minutes, seconds=1)
    assert engine.check_send(did, "sms", MOBILE, now=late).reason_codes == (R.SMS_UNKNOWN_DECISION,)


def test_a_blocked_send_is_not_credited_by_the_verification(engine: Engine, sink: MemorySink) -> None:
    did = challenged(engine)
    assert engine.check_send(did, "sms", MOBILE, now=T0).action == "allow"
    assert engine.check_send(did, "sms", PREMIUM, now=T0).action == "block"
    engine.record_outcome(did, "verified", ["sms"], timestamp=T0)
    verified = [r for r in sink.rows("sends") if r["verified"]]
    assert [r["dest_prefix"] for r in verified] == ["+447400"]


def test_unbilled_channels_pass_and_bad_calls_raise(engine: Engine) -> None:
    did = challenged(engine)
    assert engine.check_send(did, "totp").action == "allow"
    with pytest.raises(ValueError, match="unknown channel"):
        engine.check_send(did, "pigeon", MOBILE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        engine.check_send(did, "sms", MOBILE, now=datetime(2026, 3, 2, 9))
    with pytest.raises(ValueError, match="decision_id"):
        engine.check_send("", "sms", MOBILE)


def test_a_destination_country_the_user_never_logged_in_from() -> None:
    with Engine(offline_settings(), sink=MemorySink()) as engine:
        last = establish(engine, "alice", days=5)
        d = engine.score(make_attempt("alice", last + timedelta(days=1), PARIS))
        assert d.action == "challenge"
        home = engine.check_send(d.decision_id, "sms", MOBILE, now=last + timedelta(days=1))
        away = engine.check_send(d.decision_id, "sms", "+33612345678", now=last + timedelta(days=1))
    assert home.reason_codes == ()  # GB: where alice logs in from
    assert away.reason_codes == (R.SMS_NEW_COUNTRY,) and away.action == "allow"  # weak alone


def test_user_velocity_switches_at_the_configured_limit(engine: Engine) -> None:
    limit = engine.settings.sms.user_max_sends
    did = challenged(engine)
    actions = [engine.check_send(did, "sms", MOBILE, now=T0 + timedelta(minutes=i)).action for i in range(limit + 1)]
    assert actions == ["allow"] * limit + ["switch"]


def test_a_dead_store_is_the_fail_mode_and_counted() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0?socket_timeout=0.05&socket_connect_timeout=0.05"
    with Engine(offline_settings(store={"url": url}, trust={"secret_keys": [KEY]}), sink=MemorySink()) as dead:
        d = dead.check_send("some-decision", "sms", MOBILE, now=T0)
        assert d.action == dead.settings.sms.fail_mode == "allow" and d.degraded
        # the number checks need no store: a premium number is still blocked in an outage
        assert dead.check_send("some-decision", "sms", PREMIUM, now=T0).action == "block"
        assert dead.health()["store_errors"] == 1


@pytest.mark.skipif(not LocalRedisServer.available(), reason="redis-server not installed")
def test_store_lost_after_the_challenge_was_found_is_the_fail_mode() -> None:
    with LocalRedisServer() as server:
        url = f"{server.url}?socket_timeout=0.2&socket_connect_timeout=0.2"
        engine = Engine(offline_settings(store={"url": url}, trust={"secret_keys": [KEY]},
                                         coldstart={"min_logins": 0}, sms={"fail_mode": "switch"}),
                        sink=MemorySink())
        did = challenged(engine)
        assert engine.check_send(did, "sms", MOBILE, now=T0).action == "allow"
        server.kill()
        d = engine.check_send(did, "sms", MOBILE, now=T0)
        assert (d.action, d.suggested_channel, d.degraded) == ("switch", engine.settings.sms.switch_channel, True)
        engine.close()


def test_async_check_send_decides_like_the_sync_one(sink: MemorySink) -> None:
    settings = offline_settings(coldstart={"min_logins": 0})
    sync_engine, async_engine = Engine(settings, sink=MemorySink()), Engine(settings, sink=sink)
    limit = settings.sms.user_max_sends
    destinations = [MOBILE] * (limit + 1) + [PREMIUM, "+447700900123"]

    async def run() -> list[tuple[str, tuple[str, ...]]]:
        d = await async_engine.ascore(make_attempt("alice"))
        out = []
        for i, dest in enumerate(destinations):
            s = await async_engine.acheck_send(d.decision_id, "sms", dest, now=T0 + timedelta(minutes=i))
            out.append((s.action, s.reason_codes))
        await async_engine.arecord_outcome(d.decision_id, "verified", ["sms"], timestamp=T0)
        return out

    did = challenged(sync_engine)
    expected = [(s.action, s.reason_codes) for s in
                (sync_engine.check_send(did, "sms", dest, now=T0 + timedelta(minutes=i))
                 for i, dest in enumerate(destinations))]
    assert asyncio.run(run()) == expected
    assert [r["verified"] for r in sink.rows("sends")][-1] is True
    sync_engine.close()
    async_engine.close()
