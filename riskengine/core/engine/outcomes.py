"""Outcomes: ``record_outcome`` (how a challenge ended) and ``record_failure`` (a failed password)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from riskengine.audit import SCHEMA_VERSION
from riskengine.core.attempt import ChallengeOutcome, FailedPassword
from riskengine.core.decision import Channel, Outcome
from riskengine.core.devicetoken import DeviceTokens
from riskengine.core.engine.audit_rows import AuditRows
from riskengine.core.engine.learning import Learning
from riskengine.core.engine.parking import ParkedRecordError, decode
from riskengine.core.identity import checked

log = logging.getLogger(__name__)

class UnknownDecisionError(LookupError):
    """``record_outcome`` got a decision id that was never challenged here, or has expired."""


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)



class Outcomes(AuditRows, Learning):
    """How challenges ended and failed passwords: the store's counters, profile lessons, audit rows."""

    def record_outcome(
        self,
        decision_id: str,
        outcome: Outcome,
        channels: Sequence[Channel] = (),
        attempts: int = 1,
        trust_device: bool = False,
        *,
        seconds_to_verify: float | None = None,
        timestamp: datetime | None = None,
    ) -> str | None:
        """Report how a challenge ended. A verified challenge teaches the profile; with
        ``trust_device=True`` it also trusts the device and **returns its device token** (an
        opaque URL-safe string: set it as a long-lived HttpOnly cookie and present it as
        ``LoginAttempt.device_token``); otherwise returns None. Failed attempts count toward
        the session's and the user's second-factor limits, atomically in the store.

        Raises :class:`UnknownDecisionError` for an id that was not challenged (or expired);
        a store outage is logged and counted, never raised.
        """
        # channels as given: the model turns a list into a tuple and rejects None or a number
        o = ChallengeOutcome(
            decision_id=decision_id, outcome=outcome, channels=channels, attempts=attempts,
            trust_device=trust_device, seconds_to_verify=seconds_to_verify, timestamp=timestamp)
        now = o.timestamp.timestamp() if o.timestamp is not None else time.time()
        try:
            raw = self.store.pop_pending(o.decision_id, now)
        except Exception as exc:  # noqa: BLE001
            next(self._store_errors)
            log.warning("record_outcome: store unavailable, outcome not applied: %s", exc)
            return None
        if raw is None:
            raise UnknownDecisionError(
                f"decision {o.decision_id!r} was not a pending challenge here (unknown or expired)")
        try:
            rec = decode(raw)  # any version a worker of a rolling deploy may have parked
        except ParkedRecordError as exc:
            next(self._store_errors)
            log.warning("record_outcome: outcome not applied: %s", exc)
            return None
        user_id = rec.user_id
        failed_attempts_n = o.attempts if o.outcome == "failed" else max(0, o.attempts - 1)
        event_ts = now if o.timestamp is not None else rec.at
        if failed_attempts_n:
            try:
                self.store.add_otp_failures(
                    user_id, rec.session, failed_attempts_n, event_ts,
                    otp_since=event_ts - self._otp_user_window_s, session_since=event_ts - self._session_s)
            except Exception as exc:  # noqa: BLE001
                next(self._store_errors)
                log.warning("counting second-factor failures failed: %s", exc)
        token: str | None = None
        if o.outcome == "verified":
            trust_key: str | None = None
            until = 0
            if o.trust_device and self._trust_s > 0:
                until = int(event_ts + self._trust_s)
                # a device that presented a valid token keeps its id; any other gets a fresh one
                known = rec.trusted_key
                device_id = DeviceTokens.device_id_of(known) if known else None
                if device_id is None:
                    device_id = DeviceTokens.new_device_id()
                trust_key = DeviceTokens.device_key(device_id)
                token = self.tokens.issue(user_id, device_id, issued=int(event_ts), expires=until)
            self._learn(user_id, rec.at, rec.device_key, rec.geo, rec.local_hour, trust_key=trust_key,
                        trust_until=until, established=rec.established, verified=True)
            try:
                self.store.reset_failures(user_id)
            except Exception as exc:  # noqa: BLE001
                next(self._store_errors)
                log.warning("could not reset failures: %s", exc)
        chans = list(o.channels)
        self._emit("challenges", {
            "event_time": _utc(event_ts),
            "schema_version": SCHEMA_VERSION,
            "decision_id": o.decision_id,
            "user_key": self.pseudonymizer.user(user_id),
            "factor": rec.factor,
            "channels": chans,
            "final_channel": chans[-1] if chans else None,
            "fallback_used": len(chans) > 1,
            "outcome": o.outcome,
            "attempts": o.attempts,
            "seconds_to_verify": o.seconds_to_verify,
            "trust_device": o.trust_device,
            "country": rec.place[0],
            "device_type": rec.device_type,
            "risk": rec.risk,
            "reasons": list(rec.reason_codes),
            "policy_version": rec.policy_version,
        })
        if self._observer is not None:
            self._observer.challenge(o.outcome, chans[-1] if chans else None)
        return token

    def record_failure(self, user_id: str, ip: str, ts: datetime | None = None, *,
                       timestamp: datetime | None = None) -> int:
        """A failed password at ``ts`` (DESIGN.md's name; ``timestamp=`` is accepted too, as
        :class:`LoginAttempt` names it). Returns the user's failures in the window (0 if the
        store is down)."""
        if (ts is None) == (timestamp is None):
            raise TypeError("record_failure() takes the failure's time once: ts (or timestamp=)")
        f = FailedPassword(user_id=user_id, ip=ip, timestamp=ts if ts is not None else timestamp)
        uid = checked(self._uid, f.user_id)
        count = 0
        try:
            count = self.store.add_failure(uid, self.failure_key(f.ip), f.timestamp.timestamp())
        except Exception as exc:  # noqa: BLE001
            next(self._store_errors)
            log.warning("record_failure: store unavailable: %s", exc)
        self._emit("failures", {
            "event_time": f.timestamp.astimezone(UTC),
            "schema_version": SCHEMA_VERSION,
            "user_key": self.pseudonymizer.user(uid),
            "ip_prefix": self.pseudonymizer.ip(f.ip),
            "user_failures": count,
        })
        return count

