"""Threat model: an attack kit replaying a victim's browser family with a fixed, older User-Agent
(UA_DOWNGRADE), and attempts to poison the profile's "newest version" so that later the real
user looks like the downgrade, or the kit's version looks current."""

from __future__ import annotations

from datetime import timedelta

from riskengine import Engine
from riskengine.testing import CHROME_WIN, establish, make_attempt

# the attack kit: the victim's browser family and OS, a plausible but frozen version
KIT_UA = CHROME_WIN.replace("Chrome/120.0.0.0", "Chrome/112.0.0.0")


def chrome(major: int) -> str:
    return CHROME_WIN.replace("Chrome/120.0.0.0", f"Chrome/{major}.0.0.0")


def test_a_fixed_old_user_agent_of_the_victims_family_is_challenged(engine: Engine) -> None:
    last = establish(engine)  # Chrome 120 on Windows, London, every day
    d = engine.score(make_attempt(ts=last + timedelta(days=1), ua=KIT_UA))
    assert d.action == "challenge"
    assert d.reason_codes == ("UA_DOWNGRADE",)
    assert "Chrome 112 (newest seen 120)" in d.reasons[0].detail
    # the owner's own updated browser is not
    own = engine.score(make_attempt(ts=last + timedelta(days=1, minutes=5), ua=chrome(121)))
    assert own.action == "allow" and own.reason_codes == ("NEW_UA_VERSION",)


def test_a_challenged_login_teaches_nothing_until_verified(engine: Engine) -> None:
    """The kit's login is challenged; it fails the second factor: its version is not learned, so
    the same kit is challenged again (and a verified one would be learned)."""
    last = establish(engine)
    d = engine.score(make_attempt(ts=last + timedelta(days=1), ua=KIT_UA))
    engine.record_outcome(d.decision_id, "failed", channels=["sms"], timestamp=last + timedelta(days=1, minutes=1))
    again = engine.score(make_attempt(ts=last + timedelta(days=1, minutes=2), ua=KIT_UA))
    assert again.action == "challenge" and "UA_DOWNGRADE" in again.reason_codes
    engine.record_outcome(again.decision_id, "verified", channels=["totp"],
                          timestamp=last + timedelta(days=1, minutes=3))
    # the owner really runs this old version (verified): from now on it is a version they use
    third = engine.score(make_attempt(ts=last + timedelta(days=1, minutes=4), ua=KIT_UA))
    assert third.action == "allow" and third.reason_codes == ()


def test_a_bogus_huge_version_on_a_challenged_login_is_never_learned(engine: Engine) -> None:
    last = establish(engine)
    # a new place (challenged) with a far-future version: it would make the owner look like a downgrade
    from riskengine.testing import PARIS
    d = engine.score(make_attempt(ts=last + timedelta(days=1), ua=chrome(999), place=PARIS))
    assert d.action == "challenge"
    engine.record_outcome(d.decision_id, "failed", channels=["sms"], timestamp=last + timedelta(days=1, minutes=1))
    owner = engine.score(make_attempt(ts=last + timedelta(days=2), ua=chrome(121)))
    assert owner.action == "allow" and "UA_DOWNGRADE" not in owner.reason_codes


def test_an_implausible_version_jump_is_not_learned_even_when_allowed(engine: Engine) -> None:
    """An allowed login (home, known device family) claiming Chrome 999 is scored as a new
    version, but is not learned as the newest: the owner's Chrome 121 is no downgrade after it."""
    last = establish(engine)
    bogus = engine.score(make_attempt(ts=last + timedelta(days=1), ua=chrome(999)))
    assert bogus.action == "allow" and bogus.reason_codes == ("NEW_UA_VERSION",)
    owner = engine.score(make_attempt(ts=last + timedelta(days=2), ua=chrome(121)))
    assert owner.action == "allow" and "UA_DOWNGRADE" not in owner.reason_codes
    # unparseable versions are ignored altogether
    weird = engine.score(make_attempt(ts=last + timedelta(days=3),
                                      ua=CHROME_WIN.replace("Chrome/120.0.0.0", "Chrome/99999999.0")))
    assert "UA_DOWNGRADE" not in weird.reason_codes
