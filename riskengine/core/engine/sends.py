"""``check_send`` / ``acheck_send``: may this challenge's OTP go to this destination?

Called before each OTP send (and each resend) of a challenged login. Phases, shared by the
sync and async calls:

1. ``_send_input``: the channel and the time (a bad channel or a naive time is the caller's
   bug: ``ValueError``); a channel nobody bills per message (passkey, TOTP, push, e-mail) is
   allowed at once; the destination parsed (:func:`riskengine.core.sms.parse_destination`):
   an invalid one is blocked (``SMS_INVALID_NUMBER``), never an exception.
2. store: the parked challenge (``peek_pending``: unknown or expired → ``SMS_UNKNOWN_DECISION``),
   then the user's profile and the atomic send counters (``add_send``).
3. ``judge_send`` (pure) and one ``sends`` audit row (country and prefix only, never the number).

A store failure is the ``sms.fail_mode`` decision (default ``allow``: the number checks still
apply, the counters cannot), counted in ``health()["store_errors"]``, never raised.

When the challenge is verified, ``record_outcome`` credits the prefix its last send went to
(``verify_send``) and emits a ``verified`` row in ``sends``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Final, get_args

from riskengine.audit import SCHEMA_VERSION
from riskengine.core import reasons as R
from riskengine.core.decision import Channel
from riskengine.core.engine.audit_rows import AuditRows
from riskengine.core.engine.parking import ParkedChallenge, ParkedRecordError, decode
from riskengine.core.profile import UserProfile
from riskengine.core.sms import (
    BILLED_CHANNELS,
    Destination,
    InvalidDestination,
    SendDecision,
    judge_send,
    number_check,
    parse_destination,
    price_of,
    refused,
)
from riskengine.core.typing import SendCounts

_CHANNELS: Final = frozenset(get_args(Channel))
_MINUTE: Final = 60.0


def prefix_key(dest: Destination) -> str:
    """The store's counter key of a destination prefix: country and prefix (``GB:+447400``)."""
    return f"{dest.country}:{dest.prefix}"


class Sends(AuditRows):
    """Second-factor send checks (SMS pumping) and their audit rows."""

    def check_send(self, decision_id: str, channel: Channel = "sms", destination: str | None = None, *,
                   now: datetime | None = None) -> SendDecision:
        """Whether to send this challenge's OTP to ``destination`` over ``channel`` (call it
        before every send and resend): ``allow``, ``block`` (send nothing there) or ``switch``
        (offer ``suggested_channel`` instead). Never raises for a bad destination, an unknown
        decision or a store outage (see the module docstring)."""
        early, at, dest = self._send_input(decision_id, channel, destination, now)
        if early is not None:
            return self._send_emit(decision_id, None, early, at)
        assert dest is not None
        try:
            raw = self.store.peek_pending(decision_id, at)
        except Exception as exc:  # noqa: BLE001 - the auth flow must get a decision
            self._store_failed("check_send: store unavailable", exc)
            return self._send_emit(decision_id, None, self._send_judged(channel, dest, None, None), at)
        rec = self._send_record(decision_id, raw, channel, dest)
        if isinstance(rec, SendDecision):
            return self._send_emit(decision_id, None, rec, at)
        profile: UserProfile | None = None
        counts: SendCounts | None = None
        try:
            profile = self.store.get(rec.user_id)
            counts = self.store.add_send(rec.user_id, prefix_key(dest), at, **self._send_windows(at))
        except Exception as exc:  # noqa: BLE001
            self._store_failed("check_send: send counters unavailable", exc)
        d = self._send_judged(channel, dest, counts, profile)
        if d.action == "allow" and counts is not None:
            try:
                self.store.link_send(decision_id, prefix_key(dest), at + self._session_s)
            except Exception as exc:  # noqa: BLE001
                self._store_failed("check_send: could not link the send to its challenge", exc)
        return self._send_emit(decision_id, rec.user_id, d, at)

    # -- the phases check_send() and acheck_send() share -------------------------------------
    def _send_input(self, decision_id: str, channel: Channel, destination: str | None,
                    now: datetime | None) -> tuple[SendDecision | None, float, Destination | None]:
        if not isinstance(decision_id, str) or not decision_id:
            raise ValueError("check_send: decision_id must be the non-empty id of a challenge decision")
        if channel not in _CHANNELS:
            raise ValueError(f"check_send: unknown channel {channel!r} (one of {', '.join(sorted(_CHANNELS))})")
        if now is not None and (not isinstance(now, datetime) or now.tzinfo is None):
            raise ValueError("check_send: now must be a timezone-aware datetime")
        at = now.timestamp() if now is not None else time.time()
        if channel not in BILLED_CHANNELS:
            return SendDecision("allow", (), None, channel), at, None
        if destination is None:
            return refused(channel, R.SMS_INVALID_NUMBER, f"no destination given for a {channel} send"), at, None
        try:
            dest = parse_destination(destination, self.settings.sms.prefix_digits)
        except InvalidDestination as exc:
            return refused(channel, R.SMS_INVALID_NUMBER, str(exc)), at, None
        return number_check(channel, dest, self.settings.sms), at, dest

    def _send_record(self, decision_id: str, raw: bytes | None, channel: Channel,
                     dest: Destination) -> ParkedChallenge | SendDecision:
        price = price_of(dest.country, self.settings.sms)
        if raw is None:
            return refused(channel, R.SMS_UNKNOWN_DECISION,
                           "no pending challenge with this decision id (unknown, answered or expired)",
                           dest=dest, price=price)
        try:
            return decode(raw)
        except ParkedRecordError as exc:
            self._store_failed("check_send: unreadable parked challenge", exc)
            return refused(channel, R.SMS_UNKNOWN_DECISION, "the parked challenge cannot be read",
                           dest=dest, price=price)

    def _send_windows(self, at: float) -> dict[str, float]:
        cfg = self.settings.sms
        return {"prefix_since": at - cfg.prefix_window_minutes * _MINUTE,
                "ratio_since": at - cfg.ratio_window_minutes * _MINUTE,
                "user_since": at - cfg.user_window_minutes * _MINUTE}

    def _send_judged(self, channel: Channel, dest: Destination, counts: SendCounts | None,
                     profile: UserProfile | None) -> SendDecision:
        countries = profile.countries if profile is not None else None
        logins = profile.logins if profile is not None else 0
        return judge_send(channel, dest, counts, countries, logins, self.settings.sms)

    def _send_emit(self, decision_id: str, user_id: str | None, d: SendDecision, at: float) -> SendDecision:
        self._emit("sends", {
            "event_time": datetime.fromtimestamp(at, UTC),
            "schema_version": SCHEMA_VERSION,
            "decision_id": decision_id,
            "user_key": self.pseudonymizer.user(user_id) if user_id is not None else None,
            "channel": d.channel,
            "dest_country": d.country,
            "dest_prefix": d.prefix,
            "number_type": d.number_type,
            "action": d.action,
            "reasons": list(d.reason_codes),
            "price": d.price,
            "verified": False,
        })
        return d

    def _send_verified_emit(self, decision_id: str, user_id: str, key: str, channel: str | None,
                            at: float) -> None:
        """The ``verified`` row of the prefix whose send this challenge's verification credits."""
        country, _, prefix = key.partition(":")
        self._emit("sends", {
            "event_time": datetime.fromtimestamp(at, UTC),
            "schema_version": SCHEMA_VERSION,
            "decision_id": decision_id,
            "user_key": self.pseudonymizer.user(user_id),
            "channel": channel if channel in BILLED_CHANNELS else "sms",
            "dest_country": country or None,
            "dest_prefix": prefix or None,
            "number_type": None,
            "action": "verified",
            "reasons": [],
            "price": 0.0,
            "verified": True,
        })
