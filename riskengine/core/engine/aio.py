"""``ascore`` / ``arecord_outcome`` / ``arecord_failure`` / ``acheck_send`` / ``arecord_signup``: the same
decisions as the sync calls, for an ``async def`` route.

They run the very phases the sync calls run (``_prepare`` → read → ``_conclude`` → lesson /
parked challenge → audit row; ``_outcome_plan``; ``_failure_input``; ``_signup_plan``), with the store's I/O
awaited: over ``redis.asyncio`` end to end on a Redis store, as one thread hop per store call
on the local stores (memory, sqlite: :class:`~riskengine.core.stores.base.ThreadOffload`).
A store without the async twins (a caller's own) gets one thread hop for the whole call.
What stays synchronous on the event loop is local work: GeoIP and UA lookups, the policy,
the audit buffer, and two background conveniences of the sync engine — write-behind lessons
(queued to their thread) and the population prior (read at most every 2 s, written in
batches at most once a second).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from riskengine.core.attempt import LoginAttempt
from riskengine.core.decision import Channel, Decision, Outcome
from riskengine.core.engine.outcomes import Outcomes, untrusted
from riskengine.core.engine.sends import prefix_key
from riskengine.core.engine.signup import Signups
from riskengine.core.engine.state import HISTORY_REFRESH_S
from riskengine.core.metrics import span_attributes
from riskengine.core.profile import UserProfile
from riskengine.core.sms import SendDecision
from riskengine.core.typing import AsyncProfileStore, SendCounts, Snapshot, Updater


class AsyncOps(Signups, Outcomes):
    """The async twins of ``score``, ``record_outcome``, ``record_failure``, ``check_send`` and
    ``record_signup``."""

    def _async_store(self) -> AsyncProfileStore | None:
        store = self.store
        return store if isinstance(store, AsyncProfileStore) else None

    async def ascore(self, attempt: LoginAttempt | Mapping[str, Any]) -> Decision:
        """:meth:`score` for an ``async def`` route: the same decision, the store awaited."""
        started = time.perf_counter()
        if not isinstance(attempt, LoginAttempt):
            attempt = LoginAttempt.model_validate(attempt)
        tracer = self._observer.tracer if self._observer is not None else None
        if tracer is None:
            d = await self._ascore(attempt, started)
        else:
            with tracer.start_as_current_span("riskengine.score") as span:
                d = await self._ascore(attempt, started)
                span.set_attributes(span_attributes(d))
        if self._observer is not None and self._observer.prometheus is not None:
            self._observer.prometheus.decision(d, time.perf_counter() - started)
        return d

    async def _ascore(self, attempt: LoginAttempt, started: float) -> Decision:
        store = self._async_store()
        if store is None:
            return await asyncio.to_thread(self.score_validated, attempt, started)
        p = self._prepare(attempt, started)
        before = self._writer.peek(p.user_id) if self._writer is not None else None
        snap: Snapshot | None = None
        error: Exception | None = None
        try:
            snap = await store.asnapshot(*self._snapshot_args(p, attempt), **self._snapshot_windows(p, attempt))
        except Exception as exc:  # noqa: BLE001 - the auth flow must get a decision
            error = exc
        if self._history_due <= p.started and self._history_wanted(snap):
            await self._aread_history_start(store, p.now)
        c = self._conclude(p, attempt, snap, error, before)
        d = c.decision
        if d.action == "allow" and not c.degraded and attempt.event == "login":
            lesson = self._lesson(p.now, c.device_key, p.geo, p.hour, None, 0, c.established, False, p.traits)
            if self._writer is not None:
                self._writer.submit(p.user_id, lesson, lesson(c.profile))
            else:
                await self._aupdate(store, p.user_id, lesson, "profile update for a login")
        elif d.action == "challenge":
            payload = self._parked(d, attempt, p.user_id, p.now, p.geo, c.device_key, p.hour, p.ua.device_type,
                                   trusted_key=c.device_key if c.trusted else None, established=c.established,
                                   traits=p.traits, counted=c.counted)
            try:
                await store.aput_pending(d.decision_id, payload, p.now + self._session_s, user_id=p.user_id,
                                         max_per_user=self._max_pending_per_user)
            except Exception as exc:  # noqa: BLE001
                self._store_failed("could not park challenge context", exc)
        self._finish(p, attempt, c)
        return d

    async def _aread_history_start(self, store: AsyncProfileStore, now: float) -> None:
        """:meth:`_read_history_start`, the store awaited."""
        self._history_due = time.perf_counter() + HISTORY_REFRESH_S
        try:
            self._history_start = await store.ahistory_start(now)
        except Exception as exc:  # noqa: BLE001 - the login still gets its decision
            self._store_failed("history start read failed", exc)

    async def arecord_outcome(
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
        """:meth:`record_outcome` for an ``async def`` route (same result, same errors)."""
        store = self._async_store()
        if store is None:
            return await asyncio.to_thread(
                self.record_outcome, decision_id, outcome, channels, attempts, trust_device,
                seconds_to_verify=seconds_to_verify, timestamp=timestamp)
        o, now = self._outcome_input(decision_id, outcome, channels, attempts, trust_device,
                                     seconds_to_verify, timestamp)
        try:
            raw = await store.apop_pending(o.decision_id, now)
        except Exception as exc:  # noqa: BLE001
            self._store_failed("record_outcome: store unavailable, outcome not applied", exc)
            return None
        plan = self._outcome_plan(o, raw, now)
        if plan is None:
            return None
        self._outcome_budget(o, plan.record)
        if plan.failed_attempts:
            try:
                await store.aadd_otp_failures(plan.user_id, plan.session, plan.failed_attempts, plan.event_ts,
                                              **self._otp_windows(plan.event_ts))
            except Exception as exc:  # noqa: BLE001
                self._store_failed("counting second-factor failures failed", exc)
        if plan.lesson is not None:
            if self._writer is not None:
                # behind this user's queued lessons, as record_outcome does (they apply in order)
                stored = await asyncio.to_thread(self._update_profile, plan.user_id, plan.lesson,
                                                 "profile update for a login")
            else:
                stored = await self._aupdate(store, plan.user_id, plan.lesson, "profile update for a login")
            if not stored:
                plan = untrusted(plan)
            try:
                await store.areset_failures(plan.user_id)
            except Exception as exc:  # noqa: BLE001
                self._store_failed("could not reset failures", exc)
        if o.outcome == "verified":
            try:
                key = await store.averify_send(o.decision_id, plan.event_ts)
            except Exception as exc:  # noqa: BLE001
                self._store_failed("could not count a verified send", exc)
                key = None
            self._verified_send(o, plan, key)
        self._outcome_emit(o, plan)
        return plan.token

    async def arecord_failure(self, user_id: str, ip: str, ts: datetime | None = None, *,
                              timestamp: datetime | None = None) -> int:
        """:meth:`record_failure` for an ``async def`` route."""
        store = self._async_store()
        if store is None:
            return await asyncio.to_thread(self.record_failure, user_id, ip, ts, timestamp=timestamp)
        f, uid, key = self._failure_input(user_id, ip, ts, timestamp)
        count = 0
        try:
            count = await store.aadd_failure(uid, key, f.timestamp.timestamp())
        except Exception as exc:  # noqa: BLE001
            self._store_failed("record_failure: store unavailable", exc)
        self._failure_emit(f, uid, count)
        return count

    async def acheck_send(self, decision_id: str, channel: Channel = "sms", destination: str | None = None, *,
                          now: datetime | None = None) -> SendDecision:
        """:meth:`check_send` for an ``async def`` route (the same phases, the store awaited)."""
        store = self._async_store()
        if store is None:
            return await asyncio.to_thread(self.check_send, decision_id, channel, destination, now=now)
        early, at, dest = self._send_input(decision_id, channel, destination, now)
        if early is not None:
            return self._send_emit(decision_id, None, early, at)
        assert dest is not None
        try:
            raw = await store.apeek_pending(decision_id, at)
        except Exception as exc:  # noqa: BLE001 - the auth flow must get a decision
            self._store_failed("check_send: store unavailable", exc)
            return self._send_emit(decision_id, None, self._send_judged(channel, dest, None, None), at)
        rec = self._send_record(decision_id, raw, channel, dest)
        if isinstance(rec, SendDecision):
            return self._send_emit(decision_id, None, rec, at)
        profile: UserProfile | None = None
        counts: SendCounts | None = None
        try:
            profile = await store.aget(rec.user_id)
            counts = await store.aadd_send(rec.user_id, prefix_key(dest), at, **self._send_windows(at))
        except Exception as exc:  # noqa: BLE001
            self._store_failed("check_send: send counters unavailable", exc)
        d = self._send_judged(channel, dest, counts, profile)
        if d.action == "allow" and counts is not None:
            try:
                await store.alink_send(decision_id, prefix_key(dest), at + self._session_s)
            except Exception as exc:  # noqa: BLE001
                self._store_failed("check_send: could not link the send to its challenge", exc)
        return self._send_emit(decision_id, rec.user_id, d, at)

    async def arecord_signup(self, attempt: LoginAttempt | Mapping[str, Any]) -> bool:
        """:meth:`record_signup` for an ``async def`` route (same result, same audit row)."""
        if not isinstance(attempt, LoginAttempt):
            attempt = LoginAttempt.model_validate(attempt)
        store = self._async_store()
        if store is None:
            return await asyncio.to_thread(self.record_signup_validated, attempt)
        plan = self._signup_plan(attempt)
        what = "profile seed from a signup"
        if self._writer is not None:
            # behind this user's queued lessons, as record_signup does (a pending login wins)
            stored = await asyncio.to_thread(self._update_profile, plan.user_id, plan.seed, what)
        else:
            stored = await self._aupdate(store, plan.user_id, plan.seed, what)
        return self._signup_done(plan, stored)

    async def aclose(self) -> None:
        """Release the store connections this event loop opened (a Redis store keeps an asyncio
        pool per loop): await it before the loop ends, e.g. in the app's lifespan shutdown.
        ``close()`` still closes the engine itself."""
        store = self._async_store()
        if store is not None:
            await store.aclose()

    async def _aupdate(self, store: AsyncProfileStore, user_id: str, fn: Updater, what: str) -> bool:
        try:
            await store.aupdate(user_id, fn)
        except Exception as exc:  # noqa: BLE001 - a lost lesson must not fail the login
            self._store_failed(f"{what} failed", exc)
            return False
        return True
