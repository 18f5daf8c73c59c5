"""Outcomes: ``record_outcome`` (how a challenge ended) and ``record_failure`` (a failed password)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from riskengine.audit import SCHEMA_VERSION, NullSink
from riskengine.core.attempt import ChallengeOutcome, FailedPassword
from riskengine.core.decision import Channel, Outcome
from riskengine.core.devicetoken import DeviceTokens
from riskengine.core.engine.learning import Learning
from riskengine.core.engine.parking import ParkedChallenge, ParkedRecordError, decode
from riskengine.core.engine.sends import Sends
from riskengine.core.identity import checked
from riskengine.core.typing import Updater


class UnknownDecisionError(LookupError):
    """``record_outcome`` got a decision id that was never challenged here, or has expired."""


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class OutcomePlan(NamedTuple):
    """What one outcome changes (see :meth:`Outcomes._outcome_plan`)."""

    record: ParkedChallenge
    user_id: str
    session: str
    failed_attempts: int
    event_ts: float
    token: str | None
    lesson: Updater | None


def untrusted(plan: OutcomePlan) -> OutcomePlan:
    """The plan without its device token: the lesson that trusts the device was not stored,
    so the token would read as revoked (``DEVICE_TOKEN_INVALID``) at the next login."""
    return plan._replace(token=None)


class Outcomes(Sends, Learning):
    """How challenges ended and failed passwords: the store's counters, profile lessons, audit rows
    (and, from :class:`~riskengine.core.engine.sends.Sends`, the OTP send checks)."""

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
        o, now = self._outcome_input(decision_id, outcome, channels, attempts, trust_device,
                                     seconds_to_verify, timestamp)
        try:
            raw = self.store.pop_pending(o.decision_id, now)
        except Exception as exc:  # noqa: BLE001
            self._store_failed("record_outcome: store unavailable, outcome not applied", exc)
            return None
        plan = self._outcome_plan(o, raw, now)
        if plan is None:
            return None
        self._outcome_budget(o, plan.record)
        if plan.failed_attempts:
            try:
                self.store.add_otp_failures(plan.user_id, plan.session, plan.failed_attempts, plan.event_ts,
                                            **self._otp_windows(plan.event_ts))
            except Exception as exc:  # noqa: BLE001
                self._store_failed("counting second-factor failures failed", exc)
        if plan.lesson is not None:
            if not self._update_profile(plan.user_id, plan.lesson, "profile update for a login"):
                plan = untrusted(plan)
            try:
                self.store.reset_failures(plan.user_id)
            except Exception as exc:  # noqa: BLE001
                self._store_failed("could not reset failures", exc)
        if o.outcome == "verified":
            try:
                key = self.store.verify_send(o.decision_id, plan.event_ts)
            except Exception as exc:  # noqa: BLE001
                self._store_failed("could not count a verified send", exc)
                key = None
            self._verified_send(o, plan, key)
        self._outcome_emit(o, plan)
        return plan.token

    def _verified_send(self, o: ChallengeOutcome, plan: OutcomePlan, key: str | None) -> None:
        """A verified challenge whose OTP went through ``check_send``: the ``sends`` row."""
        if key is not None:
            chans = list(o.channels)
            self._send_verified_emit(o.decision_id, plan.user_id, key, chans[-1] if chans else None,
                                     plan.event_ts)

    # -- the phases record_outcome() and arecord_outcome() share ------------------------------
    def _outcome_input(self, decision_id: str, outcome: Outcome, channels: Sequence[Channel], attempts: int,
                       trust_device: bool, seconds_to_verify: float | None,
                       timestamp: datetime | None) -> tuple[ChallengeOutcome, float]:
        # channels as given: the model turns a list into a tuple and rejects None or a number
        o = ChallengeOutcome(
            decision_id=decision_id, outcome=outcome, channels=channels, attempts=attempts,
            trust_device=trust_device, seconds_to_verify=seconds_to_verify, timestamp=timestamp)
        return o, (o.timestamp.timestamp() if o.timestamp is not None else time.time())

    def _outcome_budget(self, o: ChallengeOutcome, rec: ParkedChallenge) -> None:
        """A challenge that did not verify (failed, abandoned, expired) takes its login back out
        of the step-up budget's sketch: the budget is a share of logins the second factor
        proved legitimate, and takeover attempts it stopped must not raise everyone's
        threshold (docs/threat-model.md). Local state only: merged at the next refresh."""
        budget = self._budget
        if o.outcome == "verified" or rec.counted is None or budget is None:
            return
        risk, forced = rec.counted
        with self._budget_lock:
            budget.retract(risk, forced, rec.at)

    def _otp_windows(self, event_ts: float) -> dict[str, float]:
        return {"otp_since": event_ts - self._otp_user_window_s, "session_since": event_ts - self._session_s}

    def _outcome_plan(self, o: ChallengeOutcome, raw: bytes | None, now: float) -> OutcomePlan | None:
        """What an outcome changes, worked out from the parked record (no I/O): the failed
        attempts to count, the lesson and device token of a verified challenge."""
        if raw is None:
            raise UnknownDecisionError(
                f"decision {o.decision_id!r} was not a pending challenge here (unknown or expired)")
        try:
            rec = decode(raw)  # any version a worker of a rolling deploy may have parked
        except ParkedRecordError as exc:
            self._store_failed("record_outcome: outcome not applied", exc)
            return None
        failed_attempts_n = o.attempts if o.outcome == "failed" else max(0, o.attempts - 1)
        event_ts = now if o.timestamp is not None else rec.at
        token: str | None = None
        lesson: Updater | None = None
        if o.outcome == "verified" and rec.event == "login":
            # a verified sensitive event (recovery, factor change, reset) teaches nothing, trusts
            # no device and keeps the failure counters: passing a recovery's challenge (a SIM
            # swap passes SMS) must not whitelist the device it came from
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
                token = self.tokens.issue(rec.user_id, device_id, issued=int(event_ts), expires=until)
            lesson = self._lesson(rec.at, rec.device_key, rec.geo, rec.local_hour, trust_key, until,
                                  rec.established, True, rec.traits)
        return OutcomePlan(rec, rec.user_id, rec.session, failed_attempts_n, event_ts, token, lesson)

    def _outcome_emit(self, o: ChallengeOutcome, plan: OutcomePlan) -> None:
        rec = plan.record
        chans = list(o.channels)
        # no audit log (a replay partition): the row and its pseudonyms are not worth building
        if not isinstance(self.sink, NullSink):
            self._emit_challenge(o, plan, rec, chans)
        if self._observer is not None:
            self._observer.challenge(o.outcome, chans[-1] if chans else None)

    def _emit_challenge(self, o: ChallengeOutcome, plan: OutcomePlan, rec: ParkedChallenge,
                        chans: list[Channel]) -> None:
        self._emit("challenges", {
            "event_time": _utc(plan.event_ts),
            "schema_version": SCHEMA_VERSION,
            "decision_id": o.decision_id,
            "user_key": self.pseudonymizer.user(plan.user_id),
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

    def record_failure(self, user_id: str, ip: str, ts: datetime | None = None, *,
                       timestamp: datetime | None = None) -> int:
        """A failed password at ``ts`` (DESIGN.md's name; ``timestamp=`` is accepted too, as
        :class:`LoginAttempt` names it). Returns the user's failures in the window (0 if the
        store is down)."""
        f, uid, key = self._failure_input(user_id, ip, ts, timestamp)
        count = 0
        try:
            count = self.store.add_failure(uid, key, f.timestamp.timestamp())
        except Exception as exc:  # noqa: BLE001
            self._store_failed("record_failure: store unavailable", exc)
        self._failure_emit(f, uid, count)
        return count

    def _failure_input(self, user_id: str, ip: str, ts: datetime | None,
                       timestamp: datetime | None) -> tuple[FailedPassword, str, str]:
        if (ts is None) == (timestamp is None):
            raise TypeError("record_failure() takes the failure's time once: ts (or timestamp=)")
        f = FailedPassword(user_id=user_id, ip=ip, timestamp=ts if ts is not None else timestamp)
        return f, checked(self._uid, f.user_id), self.failure_key(f.ip)

    def _failure_emit(self, f: FailedPassword, uid: str, count: int) -> None:
        if isinstance(self.sink, NullSink):
            return  # no audit log: the row and its pseudonyms are not worth building
        self._emit("failures", {
            "event_time": f.timestamp.astimezone(UTC),
            "schema_version": SCHEMA_VERSION,
            "user_key": self.pseudonymizer.user(uid),
            "ip_prefix": self.pseudonymizer.ip(f.ip),
            "user_failures": count,
        })

