"""SMS pumping (toll fraud): attackers trigger OTP sends to numbers they earn from.

Each test plays one attack through the real engine (memory store, challenges scored the way a
login would be) and checks where ``check_send`` stops it; limits come from the config.
"""

from __future__ import annotations

from datetime import timedelta

import phonenumbers

from riskengine import Engine
from riskengine.audit import MemorySink
from riskengine.core import reasons as R
from riskengine.testing import T0, make_attempt, offline_settings


def numbers_in(prefix: str, n: int) -> list[str]:
    """``n`` distinct valid numbers of one prefix (what a pumping ring rotates through)."""
    out = []
    for i in range(10_000):
        text = f"{prefix}{i:06d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(text, None)):
            out.append(text)
            if len(out) == n:
                return out
    raise AssertionError(f"not enough valid numbers in {prefix}")


def engine() -> Engine:
    return Engine(offline_settings(coldstart={"min_logins": 0}), sink=MemorySink())


def test_rotating_numbers_within_one_prefix_hits_the_prefix_limit() -> None:
    e = engine()
    limit = e.settings.sms.prefix_max_sends
    actions = []
    # every send from a different fresh account and a different number of the same range,
    # one a minute: no user limit can see it, the prefix count does. The ring receives its own
    # codes and enters them, so the verify ratio looks healthy.
    for i, number in enumerate(numbers_in("+447400", limit + 5)):
        ts = T0 + timedelta(minutes=i)
        did = e.score(make_attempt(f"fresh-{i}", ts)).decision_id
        d = e.check_send(did, "sms", number, now=ts)
        actions.append((d.action, d.reason_codes))
        e.record_outcome(did, "verified", ["sms"], timestamp=ts + timedelta(seconds=20))
    assert all(a == ("allow", ()) for a in actions[:limit])
    assert all(a == "block" and R.SMS_PREFIX_VELOCITY in codes for a, codes in actions[limit:])
    # the block holds for the whole rolling window, then the prefix is usable again
    later = T0 + timedelta(minutes=limit + 5 + e.settings.sms.prefix_window_minutes)
    did = e.score(make_attempt("legit", later)).decision_id
    d = e.check_send(did, "sms", numbers_in("+447400", 1)[0], now=later)
    assert R.SMS_PREFIX_VELOCITY not in d.reason_codes


def test_slow_pumping_under_the_velocity_limit_is_caught_by_the_verify_ratio() -> None:
    e = engine()
    cfg = e.settings.sms
    spacing = timedelta(minutes=cfg.prefix_window_minutes / (cfg.prefix_max_sends - 1))  # never over the limit
    n = cfg.ratio_min_sends + 3
    results = []
    for i, number in enumerate(numbers_in("+447400", n)):
        ts = T0 + i * spacing
        did = e.score(make_attempt(f"fresh-{i}", ts)).decision_id
        results.append(e.check_send(did, "sms", number, now=ts))  # and nobody ever enters the code
    assert all(R.SMS_PREFIX_VELOCITY not in r.reason_codes for r in results)
    first_blocked = next(i for i, r in enumerate(results) if r.action == "block")
    assert first_blocked == cfg.ratio_min_sends  # as soon as there are enough sends to judge
    assert R.SMS_LOW_VERIFY_RATIO in results[first_blocked].reason_codes


def test_verified_traffic_to_a_busy_prefix_keeps_flowing() -> None:
    e = engine()
    cfg = e.settings.sms
    spacing = timedelta(minutes=cfg.prefix_window_minutes / (cfg.prefix_max_sends - 1))
    for i, number in enumerate(numbers_in("+447400", cfg.ratio_min_sends + 10)):
        ts = T0 + i * spacing
        did = e.score(make_attempt(f"user-{i}", ts)).decision_id
        assert e.check_send(did, "sms", number, now=ts).action == "allow"
        e.record_outcome(did, "verified", ["sms"], timestamp=ts + timedelta(seconds=30))


def test_many_fresh_accounts_each_spraying_prefixes_are_switched() -> None:
    e = engine()
    cfg = e.settings.sms
    ranges = ["+447400", "+447500", "+447700", "+447800", "+447900"]
    for account in range(5):
        ts = T0 + timedelta(hours=account)
        did = e.score(make_attempt(f"fresh-{account}", ts)).decision_id
        got = [e.check_send(did, "sms", numbers_in(p, account + 1)[-1], now=ts) for p in ranges]
        assert [d.action for d in got[:cfg.max_prefixes_new_account]] == ["allow"] * cfg.max_prefixes_new_account
        for d in got[cfg.max_prefixes_new_account:]:
            assert d.action == "switch" and R.SMS_MANY_PREFIXES in d.reason_codes
            assert d.suggested_channel == cfg.switch_channel


def test_premium_and_shared_cost_numbers_are_never_sent() -> None:
    e = engine()
    did = e.score(make_attempt("fresh", T0)).decision_id
    for region, kind in [("GB", phonenumbers.PhoneNumberType.PREMIUM_RATE),
                         ("FR", phonenumbers.PhoneNumberType.SHARED_COST),
                         ("US", phonenumbers.PhoneNumberType.PREMIUM_RATE)]:
        number = phonenumbers.example_number_for_type(region, kind)
        assert number is not None
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        for channel in ("sms", "voice", "whatsapp"):
            d = e.check_send(did, channel, text, now=T0)  # type: ignore[arg-type]
            assert (d.action, d.reason_codes) == ("block", (R.SMS_PREMIUM_NUMBER,)), (region, channel)


def test_resending_to_one_victim_number_hits_the_user_limit() -> None:
    e = engine()
    did = e.score(make_attempt("victim", T0)).decision_id
    limit = e.settings.sms.user_max_sends
    got = [e.check_send(did, "sms", "+447400123456", now=T0 + timedelta(seconds=30 * i)).action
           for i in range(limit + 3)]
    assert got == ["allow"] * limit + ["switch"] * 3


def test_guessed_decision_ids_send_nothing() -> None:
    e = engine()
    e.score(make_attempt("someone", T0))
    for guess in ["0" * 16, "1", "decision", "ffffffffffffffff"]:
        d = e.check_send(guess, "sms", "+447400123456", now=T0)
        assert (d.action, d.reason_codes) == ("block", (R.SMS_UNKNOWN_DECISION,))
