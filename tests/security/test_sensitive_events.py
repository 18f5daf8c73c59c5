"""Takeovers finish in account recovery and factor changes (issue #17, the seed's checklist
items 9 and 11). The attacker has the victim's password or her recovery e-mail; each test is
one move of his (docs/threat-model.md, row 9)."""

from __future__ import annotations

from datetime import timedelta

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.stores import MemoryStore
from riskengine.testing import CHANGCHUN, FIREFOX_MAC, LONDON, establish, make_attempt, offline_settings

ATTACKER_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/109.0.0.0 Safari/537.36")


def test_attacker_recovery_from_new_device_and_new_country_is_denied_for_review(engine: Engine,
                                                                               sink: MemorySink) -> None:
    last = establish(engine, "alice")
    d = engine.score(make_attempt("alice", last + timedelta(days=1), CHANGCHUN, ATTACKER_UA,
                                  ip="175.16.199.10", event="recovery"))
    assert d.action == "deny" and "RECOVERY_HIGH_RISK" in d.reason_codes
    assert "manual review" in next(r.detail for r in d.reasons if r.code == "RECOVERY_HIGH_RISK")
    row = sink.rows("decisions")[-1]
    assert (row["event"], row["action"]) == ("recovery", "deny") and "RECOVERY_HIGH_RISK" in row["reasons"]


def test_attacker_recovery_does_not_whitelist_his_device() -> None:
    """He passes the recovery's challenge (a SIM swap passes SMS) and asks to trust the device:
    no token, no lesson. His next login from that device and network is still a stranger's."""
    store = MemoryStore()
    with Engine(offline_settings(), store=store, sink=MemorySink()) as engine:
        last = establish(engine, "alice")
        ts = last + timedelta(days=1)
        exit_node = {**LONDON, "asn": 64501}
        # a browser the user never showed (not an older Chrome: a downgrade would deny the recovery)
        rec = engine.score(make_attempt("alice", ts, exit_node, FIREFOX_MAC, ip="81.2.69.200", event="recovery"))
        assert rec.action == "challenge"
        before = store.get("alice")
        token = engine.record_outcome(rec.decision_id, "verified", ["sms"], trust_device=True,
                                      timestamp=ts + timedelta(minutes=1))
        assert token is None
        assert store.get("alice") == before
        login = engine.score(make_attempt("alice", ts + timedelta(minutes=5), exit_node, FIREFOX_MAC,
                                          ip="81.2.69.200"))
        assert login.action == "challenge"
        assert {"NEW_DEVICE", "NEW_ASN"} <= set(login.reason_codes)


def test_attacker_allowed_password_reset_does_not_make_his_network_familiar(engine: Engine) -> None:
    last = establish(engine, "alice")
    ts = last + timedelta(days=1)
    block = "81.2.70.12"  # a new /24 of her own network: one weak signal (0.2)
    reset = engine.score(make_attempt("alice", ts, ip=block, event="password_reset"))
    assert reset.action == "allow"  # one weak signal under the reset's threshold
    for i in range(5):  # repeated resets do not wear the block in
        engine.score(make_attempt("alice", ts + timedelta(minutes=i + 1), ip=block, event="password_reset"))
    login = engine.score(make_attempt("alice", ts + timedelta(minutes=30), ip=block))
    assert "NEW_PREFIX" in login.reason_codes


def test_factor_change_right_after_a_takeover_login_is_stepped_up(engine: Engine) -> None:
    """He got through a login challenge on a new device (phished code) and immediately
    enrols his own authenticator: the device is an hour old, so the change is stepped up,
    and a trust token won in that challenge does not skip it."""
    last = establish(engine, "alice")
    ts = last + timedelta(days=1)
    login = engine.score(make_attempt("alice", ts, ua=FIREFOX_MAC, device_id="evil"))
    assert login.action == "challenge"
    token = engine.record_outcome(login.decision_id, "verified", trust_device=True,
                                  timestamp=ts + timedelta(minutes=1))
    change = engine.score(make_attempt("alice", ts + timedelta(hours=1), ua=FIREFOX_MAC, device_id="evil",
                                       device_token=token, event="factor_change"))
    assert change.action == "challenge" and "RECENT_NEW_DEVICE" in change.reason_codes


def test_factor_change_without_a_device_token_is_stepped_up_even_on_a_familiar_browser(engine: Engine) -> None:
    """Browser family = familiarity only: the victim's UA copied onto his machine is not trust."""
    last = establish(engine, "alice")
    d = engine.score(make_attempt("alice", last + timedelta(days=1), event="factor_change"))
    assert d.action == "challenge" and d.reason_codes == ("UNTRUSTED_DEVICE",)


def test_recovery_of_a_fresh_account_is_never_cold_start_allowed(engine: Engine) -> None:
    d = engine.score(make_attempt("mallory-target", event="recovery"))
    assert d.action == "challenge" and "NO_HISTORY" in d.reason_codes
