"""Support operations: why was this user challenged, and how to re-enable them.

The four operations behind ``Engine.user_summary`` / ``untrust`` / ``unlock_user`` /
``reset_user`` (and the ``riskengine user …`` command, :mod:`riskengine.apps.commands.user`).
Each function takes what it needs (the profile store, the audit sink, the pseudonymizer),
not the Engine: the Engine flushes its queues, then forwards here.

The summary joins the two places a user's story lives: the profile store (what the engine
remembers now: devices, places, trust, failed attempts) and the audit log (the decisions it
took and why, and earlier support actions). Every change is recorded in the audit table
``admin`` with who did it and why, so support actions are themselves auditable.
Audit rows hold pseudonymised user keys; the lookup uses the engine's own key, so the raw
user id never has to be written anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from riskengine.audit import SCHEMA_VERSION, Pseudonymizer
from riskengine.core import feedback
from riskengine.core.config import Settings
from riskengine.core.engine.lifecycle import Lifecycle
from riskengine.core.identity import checked
from riskengine.core.profile import UserProfile
from riskengine.core.typing import AuditHistoryFactory, AuditSink, ProfileStore

DEFAULT_RECENT = 20


def _iso(ts: float | int) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


def _epoch(now: datetime | None) -> float:
    if now is None:
        return time.time()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.timestamp()


def _require(actor: str, reason: str) -> tuple[str, str]:
    actor, reason = actor.strip(), reason.strip()
    if not actor:
        raise ValueError("actor must name who is doing this (it goes into the audit log)")
    if not reason:
        raise ValueError("reason must say why (it goes into the audit log)")
    return actor, reason


def _places(seen: Mapping[Any, int], label: str) -> list[dict[str, Any]]:
    rows = sorted(seen.items(), key=lambda kv: kv[1], reverse=True)
    return [{label: key, "last_seen": _iso(ts)} for key, ts in rows]


def profile_summary(profile: UserProfile | None, now: float) -> dict[str, Any]:
    """What the store remembers about one user, with times as ISO strings (UTC)."""
    if profile is None or (not profile.logins and not profile.devices):
        return {"known": False, "logins": 0, "devices": [], "countries": [], "regions": [], "asns": [],
                "reset_at": _iso(profile.reset_at) if profile is not None else None, "signup_at": None}
    devices = sorted(profile.devices.items(), key=lambda kv: kv[1].last_seen, reverse=True)
    return {
        "known": True,
        "created": _iso(profile.created),
        "logins": profile.logins,
        "last_login": _iso(profile.last_ts),
        "devices": [
            {"device_key": key, "first_seen": _iso(d.first_seen), "last_seen": _iso(d.last_seen),
             "logins": d.count, "trusted": d.trusted_until >= now,
             "trusted_until": _iso(d.trusted_until) if d.trusted_until >= now else None}
            for key, d in devices
        ],
        "countries": _places(profile.countries, "country"),
        "regions": _places(profile.regions, "region"),
        "asns": _places(profile.asns, "asn"),
        "reset_at": _iso(profile.reset_at),
        # when the account's signup session seeded the profile (record_signup; None: never)
        "signup_at": _iso(profile.signup_at),
    }


_DECISION_COLUMNS = ("event_time", "decision_id", "action", "risk", "reasons", "factor", "country", "region",
                     "device_key", "browser_family", "os_family", "trusted_device", "cold_start", "degraded")
_CHALLENGE_COLUMNS = ("event_time", "decision_id", "outcome", "channels", "attempts", "trust_device")
_ADMIN_COLUMNS = ("event_time", "operation", "device_key", "actor", "note")


_history: AuditHistoryFactory | None = None


def use_audit_history(factory: AuditHistoryFactory) -> None:
    """Set how ``user_summary`` reads an audit root's history (the package root sets the
    AuditDB-backed reader of :mod:`riskengine.analytics`; core cannot import it)."""
    global _history
    _history = factory


def user_summary(store: ProfileStore, pseudonymizer: Pseudonymizer, settings: Settings, user_id: str, *,
                 recent: int = DEFAULT_RECENT, now: datetime | None = None) -> dict[str, Any]:
    """Profile, failed attempts in the window, recent decisions with reasons, support history.

    The caller flushes first (this process's queued profile lessons and buffered audit events
    belong in the answer). Raises :class:`riskengine.core.stores.StoreError` when the store is
    unreachable: support staff must see that, not an empty profile.
    """
    if recent < 0:
        raise ValueError("recent must be >= 0")
    at = _epoch(now)
    window_s = settings.failures.window_minutes * 60.0
    otp_window_s = settings.otp.user_window_minutes * 60.0
    snap = store.snapshot(user_id, "", at - window_s, otp_since=at - otp_window_s)
    user_key = pseudonymizer.user(user_id)
    root = settings.audit.root
    decisions: list[dict[str, Any]] = []
    admin: list[dict[str, Any]] = []
    if root:
        # the audit history is read through the reader the package root wired in (AuditDB, the
        # analytics extra: opened only when an audit root is configured)
        if _history is None:
            raise RuntimeError("no audit history reader: import riskengine (the package) first")
        db = _history(root)
        try:
            decisions = db.user_rows(user_key, "decisions", _DECISION_COLUMNS, recent)
            outcomes = {c["decision_id"]: c for c in db.user_rows(
                user_key, "challenges", _CHALLENGE_COLUMNS, max(recent, 1) * 4)}
            admin = db.user_rows(user_key, "admin", _ADMIN_COLUMNS, recent)
        finally:
            db.close()
        for d in decisions:
            c = outcomes.get(d["decision_id"])
            d["challenge"] = None if c is None else {
                "outcome": c["outcome"], "channels": c["channels"], "attempts": c["attempts"],
                "trust_device": c["trust_device"], "at": c["event_time"]}
    summary: dict[str, Any] = {
        "user_id": user_id,
        "user_key": user_key,
        "as_of": _iso(at),
        **profile_summary(snap.profile, at),
        "failed_passwords_in_window": snap.user_failures,
        "failed_second_factors_in_window": snap.otp_user_failures,
        "second_factor_window_minutes": settings.otp.user_window_minutes,
        "failure_window_minutes": settings.failures.window_minutes,
        "audit_root": root,
        "recent_decisions": decisions,
        "admin_actions": admin,
    }
    return summary


def _record(sink: AuditSink, pseudonymizer: Pseudonymizer, operation: str, user_id: str,
            device_key: str | None, actor: str, note: str, at: float) -> None:
    sink.emit("admin", {
        "event_time": datetime.fromtimestamp(at, UTC), "schema_version": SCHEMA_VERSION,
        "operation": operation, "user_key": pseudonymizer.user(user_id),
        "device_key": device_key, "actor": actor, "note": note,
    })


def untrust(store: ProfileStore, sink: AuditSink, pseudonymizer: Pseudonymizer, user_id: str,
            device_key: str | None = None, *, actor: str, reason: str, now: datetime | None = None) -> int:
    """Withdraw "trust this device" (one device, or all). Returns how many devices lost trust.

    The next login from such a device is scored like any known device: a strong signal
    (new country, failures) steps it up again. The caller flushes first: a queued lesson
    written after this would bring the trust back.
    """
    actor, reason = _require(actor, reason)
    at = _epoch(now)
    removed = 0

    def drop(p: UserProfile | None) -> UserProfile | None:
        nonlocal removed
        if p is None:
            removed = 0
            return None
        removed = sum(1 for k, d in p.devices.items()
                      if device_key in (None, k) and d.trusted_until >= at)
        return p.untrusted(device_key)

    store.update(user_id, drop)
    _record(sink, pseudonymizer, "untrust", user_id, device_key, actor, reason, at)
    return removed


def reset_user(store: ProfileStore, sink: AuditSink, pseudonymizer: Pseudonymizer, user_id: str, *,
               actor: str, reason: str, now: datetime | None = None) -> bool:
    """Erase the user's profile — history, devices, and with them every device token — and
    leave the reset mark: the next logins are challenged (``PROFILE_RESET``) until one is
    verified. A reset is never a cold start that an attacker's login sails through.

    Returns whether a profile existed. Counters (failed passwords, second factors) are left
    alone: clearing them is :func:`unlock_user`'s job. The caller flushes first: a queued
    lesson written after the reset would bring the profile back.
    """
    actor, reason = _require(actor, reason)
    at = _epoch(now)
    existed = False

    def erase(p: UserProfile | None) -> UserProfile:
        nonlocal existed
        existed = p is not None and p.logins > 0
        return UserProfile.reset_marker(int(at))

    store.update(user_id, erase)
    _record(sink, pseudonymizer, "reset", user_id, None, actor, reason, at)
    return existed


def unlock_user(store: ProfileStore, sink: AuditSink, pseudonymizer: Pseudonymizer, user_id: str, *,
                actor: str, reason: str, now: datetime | None = None) -> None:
    """Clear the user's failed-password and second-factor counters, and nothing else: the
    answer to a lock-out (``FAILED_ATTEMPTS_EXCESSIVE``, ``OTP_LOCKED``). The profile, its
    devices and their trust stay. Failures counted per address are left alone: they protect
    other users."""
    actor, reason = _require(actor, reason)
    at = _epoch(now)
    store.reset_failures(user_id)
    store.reset_otp_failures(user_id)
    _record(sink, pseudonymizer, "unlock", user_id, None, actor, reason, at)


class SupportOps(Lifecycle):
    """The Engine's support methods: normalise the user id, flush, forward to the functions above."""

    def user_summary(self, user_id: str, *, recent: int = 20,
                     now: datetime | None = None) -> dict[str, Any]:
        """Why was this user challenged? Profile (devices, places, trust, failures) plus recent
        decisions with reasons and support actions from the audit log. See :func:`user_summary`."""
        self.flush()  # this process's queued lessons and buffered audit events belong in the answer
        return user_summary(self.store, self.pseudonymizer, self.settings, checked(self._uid, user_id),
                                    recent=recent, now=now)

    def untrust(self, user_id: str, device_key: str | None = None, *, actor: str, reason: str,
                now: datetime | None = None) -> int:
        """Withdraw device trust (one device or all); audited with who and why."""
        self.flush()  # a queued lesson written after this would bring the trust back
        return untrust(self.store, self.sink, self.pseudonymizer, checked(self._uid, user_id), device_key,
                               actor=actor, reason=reason, now=now)

    def reset_user(self, user_id: str, *, actor: str, reason: str,
                   now: datetime | None = None) -> bool:
        """Erase the profile (every device token is revoked with it) and mark it reset: the
        next logins are challenged (``PROFILE_RESET``) until one is verified. Audited.
        Lock-outs are :meth:`unlock_user`'s job, not this one's."""
        self.flush()  # a queued lesson written after the reset would bring the profile back
        return reset_user(self.store, self.sink, self.pseudonymizer, checked(self._uid, user_id),
                                  actor=actor, reason=reason, now=now)

    def unlock_user(self, user_id: str, *, actor: str, reason: str,
                    now: datetime | None = None) -> None:
        """Clear the user's failed-password and second-factor counters, and nothing else (the
        runbook's answer to a lock-out: the profile and its trust stay). Audited."""
        unlock_user(self.store, self.sink, self.pseudonymizer, checked(self._uid, user_id),
                            actor=actor, reason=reason, now=now)

    def report_fraud(self, *, decision_id: str, user_id: str, kind: str, actor: str,
                     note: str | None = None, timestamp: datetime | None = None) -> None:
        """Record fraud feedback on a decision — ``kind``: ``"not_me"`` (the user),
        ``"confirmed_takeover"`` or ``"false_positive"`` (an analyst) — in the audit table
        ``feedback``. See :mod:`riskengine.core.feedback` (and how training uses it as labels)."""
        feedback.report_fraud(self.sink, self.pseudonymizer, decision_id=decision_id,
                              user_id=checked(self._uid, user_id), kind=kind, actor=actor, note=note,
                              timestamp=timestamp)

