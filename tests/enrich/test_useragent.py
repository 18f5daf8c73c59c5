from __future__ import annotations

import user_agents

from riskengine.core.enrich.useragent import UAParser, classify, device_key
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE

SAMPLES = [
    CHROME_WIN,
    FIREFOX_MAC,
    IPHONE,
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.4.0",
]


def _reference_type(ua: str) -> str:
    parsed = user_agents.parse(ua)  # the slow legacy path, as an oracle for classification
    if parsed.is_bot:
        return "bot"
    if parsed.is_tablet:
        return "tablet"
    if parsed.is_mobile:
        return "mobile"
    if parsed.is_pc:
        return "pc"
    return "other"


def test_device_type_agrees_with_user_agents_library() -> None:
    for ua in SAMPLES:
        ours = classify(ua)
        ref = user_agents.parse(ua)
        assert ours.device_type == _reference_type(ua), ua
        assert ours.browser_family == ref.browser.family, ua
        assert ours.os_family == ref.os.family, ua


def test_browser_update_keeps_device_key_os_change_does_not() -> None:
    newer = CHROME_WIN.replace("Chrome/120.0.0.0", "Chrome/131.0.6778.86")
    assert device_key(None, classify(CHROME_WIN)) == device_key(None, classify(newer))
    assert device_key(None, classify(CHROME_WIN)) != device_key(None, classify(FIREFOX_MAC))


def test_device_id_wins_over_user_agent() -> None:
    a = device_key("cookie-1", classify(CHROME_WIN))
    assert a == device_key("cookie-1", classify(FIREFOX_MAC))
    assert a != device_key("cookie-2", classify(CHROME_WIN))


def test_empty_and_garbage_user_agents() -> None:
    assert classify("").device_type == "other"
    assert classify("\x00\xff garbage ☃" * 50).browser_family == "Other"


def test_cache_is_bounded() -> None:
    parser = UAParser(cache_size=4)
    for i in range(10):
        parser.parse(f"{CHROME_WIN} build/{i}")
    info = parser.parse.cache_info()  # type: ignore[attr-defined]
    assert info.currsize == 4 and info.misses == 10
