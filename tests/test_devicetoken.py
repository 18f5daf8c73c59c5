"""Device tokens and user-id normalisation, unit by unit: every rejection path of a token says
why and reports what the attacker must not learn, keys are checked, and ids fold one way."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from riskengine.core.attempt import FailedPassword, LoginAttempt
from riskengine.core.devicetoken import (
    DEVICE_ID_BYTES,
    KEY_PREFIX,
    MAX_TOKEN_CHARS,
    TOKEN_CHARS,
    DeviceTokens,
    parse_keys,
)
from riskengine.core.identity import MODES, checked, normalize_user_id, normalizer

K1 = b"k" * 32
K2 = b"q" * 32
DEV = bytes(range(DEVICE_ID_BYTES))


def _raw(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _enc(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_token_is_url_safe_of_the_documented_length_and_verifies_to_its_device() -> None:
    t = DeviceTokens([K1]).issue("alice", DEV, issued=1_000, expires=2_000)
    assert len(t) == TOKEN_CHARS == 87 and TOKEN_CHARS <= MAX_TOKEN_CHARS
    assert re.fullmatch(r"[A-Za-z0-9_-]+", t)
    check = DeviceTokens([K1]).verify(t, "alice", now=1_500)
    assert check == (KEY_PREFIX + DEV.hex(), 2_000, None)


@pytest.mark.parametrize(("now", "problem"), [(1_999.999, None), (2_000, None), (2_000.001, "device token expired")])
def test_expiry_is_inclusive_and_an_expired_token_reports_its_expiry(now: float, problem: str | None) -> None:
    tokens = DeviceTokens([K1])
    check = tokens.verify(tokens.issue("alice", DEV, issued=1_000, expires=2_000), "alice", now=now)
    assert check.problem == problem and check.expires == 2_000
    assert (check.device_key is None) is (problem is not None)


def test_issue_clamps_negative_times_to_zero() -> None:
    tokens = DeviceTokens([K1])
    t = tokens.issue("alice", DEV, issued=-5, expires=-1)
    raw = _raw(t)
    assert raw[17:25] == bytes(8) and raw[25:33] == bytes(8)
    assert tokens.verify(t, "alice", now=0).problem is None  # expires 0 >= now 0


@pytest.mark.parametrize("size", [DEVICE_ID_BYTES - 1, DEVICE_ID_BYTES + 1, 0])
def test_issue_refuses_a_device_id_of_the_wrong_size(size: int) -> None:
    with pytest.raises(ValueError, match=f"device id must be {DEVICE_ID_BYTES} bytes"):
        DeviceTokens([K1]).issue("alice", bytes(size), issued=0, expires=1)


def _tampered(kind: str) -> str:
    t = DeviceTokens([K1]).issue("alice", DEV, issued=1_000, expires=2_000)
    if kind == "short":
        return t[:-1]
    if kind == "long":
        return t + "A"
    if kind == "not_base64":
        return t[:-2] + "!!"
    if kind == "one_char_base64":  # 87 chars whose last group decodes to a different length
        return "A" * (TOKEN_CHARS - 1) + "="
    raw = _raw(t)
    if kind == "version":
        raw[0] = 2
    elif kind == "expiry":
        raw[25:33] = (10**9).to_bytes(8, "big")
    elif kind == "device":
        raw[1] ^= 1
    elif kind == "mac":
        raw[-1] ^= 1
    return _enc(bytes(raw))


@pytest.mark.parametrize(("kind", "problem"), [
    ("short", "malformed device token"), ("long", "malformed device token"),
    ("not_base64", "malformed device token"), ("one_char_base64", "malformed device token"),
    ("version", "unknown device token version"),
    ("expiry", "device token does not verify for this user"),
    ("device", "device token does not verify for this user"),
    ("mac", "device token does not verify for this user"),
])
def test_every_tampered_token_is_refused_with_its_reason_and_no_expiry(kind: str, problem: str) -> None:
    check = DeviceTokens([K1]).verify(_tampered(kind), "alice", now=1_500)
    assert check == (None, 0, problem)


def test_a_token_is_bound_to_its_user_and_signed_by_the_first_key_only() -> None:
    rotated = DeviceTokens([K2, K1])
    t = rotated.issue("alice", DEV, issued=0, expires=10)
    assert rotated.verify(t, "alice", now=5).problem is None  # signed by the first of two keys
    assert rotated.verify(t, "bob", now=5).problem == "device token does not verify for this user"
    assert DeviceTokens([K2]).verify(t, "alice", now=5).problem is None
    assert DeviceTokens([K1]).verify(t, "alice", now=5).problem == "device token does not verify for this user"
    old = DeviceTokens([K1]).issue("alice", DEV, issued=0, expires=10)
    assert rotated.verify(old, "alice", now=5).problem is None  # every key verifies
    # the user id is delimited: "al" + "ice…" cannot be re-split into another user's MAC input
    assert DeviceTokens([K1]).verify(old, "alice\x00", now=5).problem is not None


def test_a_user_id_with_a_lone_surrogate_still_gets_a_token() -> None:
    """Ids are arbitrary str: one a JSON client sent with a lone surrogate must not crash."""
    tokens = DeviceTokens([K1])
    t = tokens.issue("al\ud800ice", DEV, issued=0, expires=10)
    assert tokens.verify(t, "al\ud800ice", now=5).problem is None
    assert tokens.verify(t, "al\udc00ice", now=5).problem is not None


def test_keys_are_required_and_at_least_32_bytes() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        DeviceTokens([])
    with pytest.raises(ValueError, match="at least 32 bytes"):
        DeviceTokens([K1, b"x" * 31])
    DeviceTokens([b"x" * 32])  # exactly 32 is enough


def test_device_ids_are_random_and_keys_round_trip() -> None:
    a, b = DeviceTokens.new_device_id(), DeviceTokens.new_device_id()
    assert len(a) == DEVICE_ID_BYTES and a != b
    assert DeviceTokens.device_key(a) == KEY_PREFIX + a.hex()
    assert DeviceTokens.device_id_of(DeviceTokens.device_key(a)) == a


@pytest.mark.parametrize("key", [
    DEV.hex(),                                  # no prefix (a familiarity key)
    KEY_PREFIX + "zz" * DEVICE_ID_BYTES,        # not hex
    KEY_PREFIX + "ab" * (DEVICE_ID_BYTES - 1),  # one byte short
    KEY_PREFIX + "ab" * (DEVICE_ID_BYTES + 1),  # one byte long
    "x" + KEY_PREFIX + DEV.hex(),
])
def test_device_id_of_refuses_anything_but_a_token_device_key(key: str) -> None:
    assert DeviceTokens.device_id_of(key) is None


@pytest.mark.parametrize(("value", "expected"), [
    ("a, b ,,c", ("a", "b", "c")), (["  a ", "", " "], ("a",)), ("", ()), ("solo", ("solo",)),
])
def test_parse_keys(value: str | list[str], expected: tuple[str, ...]) -> None:
    assert parse_keys(value) == expected


# ---------------------------------------------------------------- user-id normalisation
@pytest.mark.parametrize(("raw", "folded"), [
    ("  Alice@Example.COM ", "alice@example.com"),
    ("ＡＬＩＣＥ@x", "alice@x"),           # full width: NFKC
    ("STRASSE", "strasse"), ("straße", "strasse"),  # casefold, not lower
    ("\u3000Élan\u3000", "élan"),          # ideographic space stripped after NFKC
    ("ǅ", "dž"),                            # NFKC splits the digraph, then it folds
])
def test_nfkc_casefold(raw: str, folded: str) -> None:
    assert normalize_user_id(raw) == folded
    assert normalizer("nfkc_casefold")(raw) == folded


def test_other_modes_and_an_unknown_one() -> None:
    assert normalizer("strip")(" Bob ") == "Bob"
    assert normalizer("none")(" Bob ") == " Bob "
    assert MODES == ("nfkc_casefold", "strip", "none")
    with pytest.raises(ValueError, match="identity.normalize_user_id must be one of nfkc_casefold, strip, none, "
                                         "got 'lower'"):
        normalizer("lower")  # type: ignore[arg-type]


@pytest.mark.parametrize("blank", ["", "   ", "\u3000"])
def test_checked_refuses_an_id_that_normalises_to_nothing(blank: str) -> None:
    with pytest.raises(ValueError, match="is empty after normalisation"):
        checked(normalize_user_id, blank)
    assert checked(normalize_user_id, " A ") == "a"
    long = "x" * 40 + "\u3000"
    with pytest.raises(ValueError, match=re.escape(repr(long[:32]))):
        checked(lambda _: "", long)


@pytest.mark.parametrize("blank", ["\x1d", "\x1c\x1f", " \x1e ", "\u3000\x1d"])
def test_an_id_blank_only_to_python_is_refused_at_the_boundary(blank: str) -> None:
    """pydantic strips Unicode white space; ``str.strip`` (the engine's normalisation) also
    strips the separators U+001C..U+001F. Such an id passed ``LoginAttempt`` and then raised a
    plain ``ValueError`` inside ``score()``; now the model refuses it (found by the fuzzer)."""
    now = datetime.now(UTC)
    with pytest.raises(ValidationError, match="empty once white space and separators are stripped"):
        LoginAttempt(user_id=blank, timestamp=now, ip="81.2.69.160")
    with pytest.raises(ValidationError, match="empty once white space and separators are stripped"):
        FailedPassword(user_id=blank, ip="81.2.69.160", timestamp=now)
    assert LoginAttempt(user_id="\x1dbob\x1d", timestamp=now, ip="81.2.69.160").user_id == "\x1dbob\x1d"
