"""judge_send: each check at its limit, one step either side (limits taken from the config)."""

from __future__ import annotations

import pytest

from riskengine.core import reasons as R
from riskengine.core.config import SmsSettings
from riskengine.core.sms import Destination, judge_send, number_check
from riskengine.core.typing import SendCounts

CFG = SmsSettings()
MOBILE = Destination("GB", "+447400", "mobile")
HOME = {"GB": 1_700_000_000}
OLD = CFG.new_account_logins + 10


def counts(prefix: int = 1, ratio_sends: int = 1, verified: int = 0, user: int = 1, prefixes: int = 1) -> SendCounts:
    return SendCounts(prefix, ratio_sends, verified, user, prefixes)


def codes(c: SendCounts, countries: dict[str, int] | None = None, logins: int = OLD) -> tuple[str, ...]:
    return judge_send("sms", MOBILE, c, HOME if countries is None else countries, logins, CFG).reason_codes


@pytest.mark.parametrize(("delta", "fires"), [(-1, False), (0, False), (1, True)])
def test_prefix_velocity_boundary(delta: int, fires: bool) -> None:
    n = CFG.prefix_max_sends + delta
    assert (R.SMS_PREFIX_VELOCITY in codes(counts(prefix=n, ratio_sends=n, verified=n))) is fires


def test_prefix_velocity_blocks() -> None:
    n = CFG.prefix_max_sends + 1
    d = judge_send("sms", MOBILE, counts(prefix=n, ratio_sends=n, verified=n), HOME, OLD, CFG)
    assert d.action == "block" and d.suggested_channel is None


@pytest.mark.parametrize(("delta", "fires"), [(-1, False), (0, False), (1, True)])
def test_user_velocity_boundary_and_switch(delta: int, fires: bool) -> None:
    d = judge_send("sms", MOBILE, counts(user=CFG.user_max_sends + delta), HOME, OLD, CFG)
    assert (R.SMS_USER_VELOCITY in d.reason_codes) is fires
    assert d.action == ("switch" if fires else "allow")
    assert d.suggested_channel == (CFG.switch_channel if fires else None)


def test_verify_ratio_boundary() -> None:
    earlier = CFG.ratio_min_sends
    at_limit = round(CFG.min_verify_ratio * earlier)
    assert at_limit / earlier == CFG.min_verify_ratio  # the defaults make the limit exact
    # the current send is not in the ratio: ratio_sends counts it, so earlier = ratio_sends - 1
    assert R.SMS_LOW_VERIFY_RATIO not in codes(counts(ratio_sends=earlier + 1, verified=at_limit))
    assert R.SMS_LOW_VERIFY_RATIO in codes(counts(ratio_sends=earlier + 1, verified=at_limit - 1))
    assert R.SMS_LOW_VERIFY_RATIO not in codes(counts(ratio_sends=earlier + 1, verified=at_limit + 1))


def test_verify_ratio_needs_enough_earlier_sends() -> None:
    n = CFG.ratio_min_sends
    assert R.SMS_LOW_VERIFY_RATIO not in codes(counts(ratio_sends=n, verified=0))  # n - 1 earlier
    d = judge_send("sms", MOBILE, counts(ratio_sends=n + 1, verified=0), HOME, OLD, CFG)
    assert d.reason_codes == (R.SMS_LOW_VERIFY_RATIO,) and d.action == "block"


def test_new_country_is_weak_alone() -> None:
    d = judge_send("sms", MOBILE, counts(), {"FR": 1}, OLD, CFG)
    assert d.reason_codes == (R.SMS_NEW_COUNTRY,) and d.action == "allow"
    assert R.SMS_NEW_COUNTRY not in codes(counts(), countries={})  # no history: nothing to compare


@pytest.mark.parametrize(("delta", "fires"), [(-1, False), (0, False), (1, True)])
def test_many_prefixes_boundary_for_new_accounts(delta: int, fires: bool) -> None:
    c = counts(prefixes=CFG.max_prefixes_new_account + delta)
    assert (R.SMS_MANY_PREFIXES in codes(c, logins=CFG.new_account_logins - 1)) is fires
    assert R.SMS_MANY_PREFIXES not in codes(c, logins=CFG.new_account_logins)  # established


def test_many_prefixes_to_a_new_country_switches() -> None:
    d = judge_send("sms", MOBILE, counts(prefixes=CFG.max_prefixes_new_account + 1), {"FR": 1}, 0, CFG)
    assert set(d.reason_codes) == {R.SMS_MANY_PREFIXES, R.SMS_NEW_COUNTRY}
    expected = 1 - (1 - CFG.many_prefixes_weight) * (1 - CFG.new_country_weight)
    assert d.risk == pytest.approx(expected)
    assert d.action == ("block" if expected >= CFG.block_threshold else "switch")


def test_premium_types_block_without_the_store() -> None:
    for kind in CFG.blocked_number_types:
        d = number_check("sms", Destination("GB", "+449098", kind), CFG)
        assert d is not None and d.action == "block" and d.reason_codes == (R.SMS_PREMIUM_NUMBER,)


def test_premium_weight_below_block_threshold_defers_to_the_counters() -> None:
    cfg = SmsSettings(premium_weight=0.3)
    premium = Destination("GB", "+449098", "premium_rate")
    assert number_check("sms", premium, cfg) is None
    d = judge_send("sms", premium, counts(), HOME, OLD, cfg)
    assert d.action == "allow" and d.reason_codes == (R.SMS_PREMIUM_NUMBER,)


@pytest.mark.parametrize("mode", ["allow", "switch", "block"])
def test_store_down_is_the_configured_fail_mode(mode: str) -> None:
    cfg = SmsSettings(fail_mode=mode)  # type: ignore[arg-type]
    d = judge_send("sms", MOBILE, None, None, 0, cfg)
    assert d.action == mode and d.degraded
    assert d.suggested_channel == (cfg.switch_channel if mode == "switch" else None)


def test_price_per_country_and_default() -> None:
    assert judge_send("sms", MOBILE, counts(), HOME, OLD, CFG).price == CFG.price_per_country["GB"]
    far = Destination("TV", "+688901", "mobile")
    assert judge_send("sms", far, counts(), {"TV": 1}, OLD, CFG).price == CFG.default_price


def test_config_rejects_billable_switch_channel_and_bad_prices() -> None:
    with pytest.raises(ValueError, match="billed"):
        SmsSettings(switch_channel="voice")
    with pytest.raises(ValueError, match="ISO"):
        SmsSettings(price_per_country={"gb": 0.1})
    with pytest.raises(ValueError, match="switch_threshold"):
        SmsSettings(switch_threshold=0.9, block_threshold=0.5)
