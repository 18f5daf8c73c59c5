"""The parked-challenge record (riskengine.core.engine.parking): versioned, so a rolling deploy
(old and new workers sharing one store) never raises KeyError out of record_outcome."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from riskengine import Engine
from riskengine.audit import MemorySink
from riskengine.core.engine.parking import PARKED_VERSION, ParkedChallenge, ParkedRecordError, decode, encode
from riskengine.testing import PARIS, T0, establish, make_attempt, offline_settings

# what a version-1 worker parked: no "v", no "tk" (token device) / "e" (established), no dt/rc/pv
AT = T0 + timedelta(days=7)
V1 = {"u": "alice", "t": AT.timestamp(), "d": "ua:chrome/windows", "h": 9, "s": "sess-1", "f": "totp",
      "r": 0.62, "g": ["FR", "Ile-de-France", "Paris", 48.86, 2.35, 3215]}


@pytest.fixture
def engine() -> Engine:
    return Engine(offline_settings(), sink=MemorySink())


def _park(engine: Engine, decision_id: str, record: dict[str, object]) -> None:
    engine.store.put_pending(decision_id, json.dumps(record).encode(), AT.timestamp() + 600, user_id="alice")


def test_the_current_version_round_trips() -> None:
    rec = ParkedChallenge("bob", 1.7e9, "t:abc", None, "", "sms", 0.5, ("GB", None, None, 51.5, -0.1, 2856),
                          "desktop", ("NEW_DEVICE", "NEW_COUNTRY"), "p1", "t:abc", True)
    raw = encode(rec)
    assert json.loads(raw)["v"] == PARKED_VERSION
    assert decode(raw) == rec


def test_a_version_1_record_is_read_with_defaults() -> None:
    rec = decode(json.dumps(V1).encode())
    assert rec.version == 1 and rec.user_id == "alice" and rec.session == "sess-1"
    assert rec.trusted_key is None and rec.established is False
    assert rec.reason_codes == () and rec.device_type is None and rec.policy_version is None
    assert rec.geo.country == "FR" and rec.geo.asn == 3215


def test_a_newer_version_with_unknown_fields_is_read() -> None:
    rec = decode(json.dumps({**V1, "v": PARKED_VERSION + 1, "tk": None, "e": True, "zz": [1, 2]}).encode())
    assert rec.version == PARKED_VERSION + 1 and rec.established is True


@pytest.mark.parametrize(("raw", "problem"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON list"),
    (json.dumps({k: v for k, v in V1.items() if k != "u"}).encode(), "lacks u"),
    (json.dumps({**V1, "g": ["FR"]}).encode(), "g must list 6"),
])
def test_an_unreadable_record_names_the_problem(raw: bytes, problem: str) -> None:
    with pytest.raises(ParkedRecordError, match=problem):
        decode(raw)


def test_record_outcome_applies_a_version_1_record(engine: Engine) -> None:
    establish(engine, "alice", days=6)
    _park(engine, "d-v1", V1)
    token = engine.record_outcome("d-v1", "verified", channels=["totp"], trust_device=True,
                                  timestamp=AT + timedelta(seconds=30))
    assert token is not None  # a v1 record has no token device: the device gets a fresh id
    rows = engine.sink.rows("challenges")  # type: ignore[attr-defined]
    assert rows[-1]["decision_id"] == "d-v1" and rows[-1]["outcome"] == "verified"
    assert rows[-1]["factor"] == "totp" and rows[-1]["country"] == "FR" and rows[-1]["reasons"] == []
    summary = engine.user_summary("alice", now=AT + timedelta(minutes=1))
    assert any(c["country"] == "FR" for c in summary["countries"])  # the verified login was learned
    trusted = [d for d in summary["devices"] if d["trusted"]]
    assert len(trusted) == 1 and trusted[0]["device_key"].startswith("t:")
    again = engine.score(make_attempt("alice", AT + timedelta(minutes=5), PARIS, device_token=token))
    assert again.action == "allow" and again.device_key == trusted[0]["device_key"]  # the token is honoured


def test_record_outcome_on_a_corrupt_record_counts_a_store_error_and_raises_nothing(engine: Engine) -> None:
    _park(engine, "d-bad", {k: v for k, v in V1.items() if k != "g"})
    before = engine.health()["store_errors"]
    assert engine.record_outcome("d-bad", "verified", timestamp=AT) is None
    assert engine.health()["store_errors"] == before + 1
    assert engine.sink.rows("challenges") == []  # type: ignore[attr-defined]


def test_a_challenge_parked_now_carries_the_current_version(engine: Engine) -> None:
    last = establish(engine, "carol", days=6)
    d = engine.score(make_attempt("carol", last + timedelta(days=1), PARIS))
    assert d.action == "challenge"
    raw = engine.store.pop_pending(d.decision_id, (last + timedelta(days=1)).timestamp())
    assert raw is not None
    rec = decode(raw)
    assert rec.version == PARKED_VERSION and rec.user_id == "carol" and rec.established is True
    assert set(rec.reason_codes) >= {"NEW_COUNTRY"}


def test_version_4_keeps_what_the_budget_counted() -> None:
    rec = ParkedChallenge("bob", 1.7e9, "t:abc", None, "", "sms", 0.5, counted=(0.5, True))
    assert decode(encode(rec)).counted == (0.5, True)
    assert decode(encode(ParkedChallenge("bob", 1.7e9, "t:abc", None, "", "sms", 0.5))).counted is None


@pytest.mark.parametrize("b", [None, [0.5], [0.5, 1], ["0.5", False], [True, False], [1.5, False], [-0.1, True],
                               {"r": 0.5}])
def test_a_record_that_cannot_say_what_the_budget_counted_retracts_nothing(b: object) -> None:
    """Versions 1-3 have no ``b``; a malformed one reads as "nothing counted", never an error
    (and never a retraction of a weight the sketch did not receive)."""
    assert decode(json.dumps({**V1, "v": 3}).encode()).counted is None
    assert decode(json.dumps({**V1, "v": 4, "b": b}).encode()).counted is None
