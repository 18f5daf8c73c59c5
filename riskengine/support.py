"""Support operations: why was this user challenged, and how to re-enable them.

The same four operations in the public API (``Engine.user_summary`` / ``untrust`` / ``unlock_user`` /
``reset_user``) and on the command line::

    riskengine user show USER [--config riskengine.toml] [--json]
    riskengine user untrust USER [--device KEY] --actor NAME --reason TEXT
    riskengine user unlock USER --actor NAME --reason TEXT
    riskengine user reset USER --actor NAME --reason TEXT

The summary joins the two places a user's story lives: the profile store (what the engine
remembers now: devices, places, trust, failed attempts) and the audit log (the decisions it
took and why, and earlier support actions). Every change is recorded in the audit table
``admin`` with who did it and why, so support actions are themselves auditable.
Audit rows hold pseudonymised user keys; the lookup uses the engine's own key, so the raw
user id never has to be written anywhere.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from riskengine.audit.events import SCHEMA_VERSION
from riskengine.cliutil import UsageError, add_json_flag, print_json
from riskengine.formats import check_input_file
from riskengine.profile import UserProfile

if TYPE_CHECKING:
    from riskengine.analytics import AuditDB
    from riskengine.engine import Engine

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
                "reset_at": _iso(profile.reset_at) if profile is not None else None}
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
    }


_DECISION_COLUMNS = ("event_time", "decision_id", "action", "risk", "reasons", "factor", "country", "region",
                     "device_key", "browser_family", "os_family", "trusted_device", "cold_start", "degraded")
_CHALLENGE_COLUMNS = ("event_time", "decision_id", "outcome", "channels", "attempts", "trust_device")
_ADMIN_COLUMNS = ("event_time", "operation", "device_key", "actor", "note")


def _user_rows(db: AuditDB, table: str, columns: tuple[str, ...], user_key: str,
               limit: int) -> list[dict[str, Any]]:
    """One user's newest rows of an audit table (``AuditDB.user_events``) as plain dicts,
    times as ISO strings (UTC)."""
    rows = db.user_events(user_key, table, limit).select(columns).to_dicts()
    for row in rows:
        t = row.get("event_time")
        if isinstance(t, datetime):
            row["event_time"] = t.astimezone(UTC).isoformat()
    return rows


def user_summary(engine: Engine, user_id: str, *, recent: int = DEFAULT_RECENT,
                 now: datetime | None = None) -> dict[str, Any]:
    """Profile, failed attempts in the window, recent decisions with reasons, support history.

    Raises :class:`riskengine.stores.StoreError` when the store is unreachable: support staff
    must see that, not an empty profile.
    """
    if recent < 0:
        raise ValueError("recent must be >= 0")
    at = _epoch(now)
    window_s = engine.settings.failures.window_minutes * 60.0
    # this process's queued profile lessons and buffered audit events belong in the answer
    engine.flush()
    otp_window_s = engine.settings.otp.user_window_minutes * 60.0
    snap = engine.store.snapshot(user_id, "", at - window_s, otp_since=at - otp_window_s)
    user_key = engine.pseudonymizer.user(user_id)
    root = engine.settings.audit.root
    decisions: list[dict[str, Any]] = []
    admin: list[dict[str, Any]] = []
    if root:
        # the audit history needs the analytics extra; a store-only summary does not
        from riskengine.analytics import AuditDB

        db = AuditDB(root)
        try:
            decisions = _user_rows(db, "decisions", _DECISION_COLUMNS, user_key, recent)
            outcomes = {c["decision_id"]: c for c in _user_rows(
                db, "challenges", _CHALLENGE_COLUMNS, user_key, max(recent, 1) * 4)}
            admin = _user_rows(db, "admin", _ADMIN_COLUMNS, user_key, recent)
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
        "second_factor_window_minutes": engine.settings.otp.user_window_minutes,
        "failure_window_minutes": engine.settings.failures.window_minutes,
        "audit_root": root,
        "recent_decisions": decisions,
        "admin_actions": admin,
    }
    return summary


def _record(engine: Engine, operation: str, user_id: str, device_key: str | None, actor: str,
            note: str, at: float) -> None:
    engine.sink.emit("admin", {
        "event_time": datetime.fromtimestamp(at, UTC), "schema_version": SCHEMA_VERSION,
        "operation": operation, "user_key": engine.pseudonymizer.user(user_id),
        "device_key": device_key, "actor": actor, "note": note,
    })


def untrust(engine: Engine, user_id: str, device_key: str | None = None, *, actor: str,
            reason: str, now: datetime | None = None) -> int:
    """Withdraw "trust this device" (one device, or all). Returns how many devices lost trust.

    The next login from such a device is scored like any known device: a strong signal
    (new country, failures) steps it up again.
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

    engine.flush()  # a queued lesson written after this would bring the trust back
    engine.store.update(user_id, drop)
    _record(engine, "untrust", user_id, device_key, actor, reason, at)
    return removed


def reset_user(engine: Engine, user_id: str, *, actor: str, reason: str,
               now: datetime | None = None) -> bool:
    """Erase the user's profile — history, devices, and with them every device token — and
    leave the reset mark: the next logins are challenged (``PROFILE_RESET``) until one is
    verified. A reset is never a cold start that an attacker's login sails through.

    Returns whether a profile existed. Counters (failed passwords, second factors) are left
    alone: clearing them is :func:`unlock_user`'s job.
    """
    actor, reason = _require(actor, reason)
    at = _epoch(now)
    engine.flush()  # a queued lesson written after the reset would bring the profile back
    existed = False

    def erase(p: UserProfile | None) -> UserProfile:
        nonlocal existed
        existed = p is not None and p.logins > 0
        return UserProfile.reset_marker(int(at))

    engine.store.update(user_id, erase)
    _record(engine, "reset", user_id, None, actor, reason, at)
    return existed


def unlock_user(engine: Engine, user_id: str, *, actor: str, reason: str,
                now: datetime | None = None) -> None:
    """Clear the user's failed-password and second-factor counters, and nothing else: the
    answer to a lock-out (``FAILED_ATTEMPTS_EXCESSIVE``, ``OTP_LOCKED``). The profile, its
    devices and their trust stay. Failures counted per address are left alone: they protect
    other users."""
    actor, reason = _require(actor, reason)
    at = _epoch(now)
    engine.store.reset_failures(user_id)
    engine.store.reset_otp_failures(user_id)
    _record(engine, "unlock", user_id, None, actor, reason, at)


# ---------------------------------------------------------------------- command line
def register(subparsers: Any) -> None:
    user = subparsers.add_parser(
        "user", help="support operations on one user: show, untrust, unlock, reset",
        description="See why a user was challenged or denied; withdraw device trust; unlock a locked-out "
                    "user; reset a compromised profile. Changes are recorded in the audit log (table admin). Needs the "
                    "service's own store (sqlite:// or redis://, from --config or RISKENGINE_STORE_URL).")
    ops = user.add_subparsers(dest="user_command", metavar="OPERATION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("user_id", metavar="USER", help="the user id as the auth service knows it")
        p.add_argument("--config", help="riskengine TOML (store URL, audit root); env overrides")

    def change(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--actor", required=True, help="who is doing this")
        p.add_argument("--reason", required=True, help="why (ticket number, ...)")
        add_json_flag(p, what)

    show = ops.add_parser("show", help="profile summary, recent decisions with reasons")
    common(show)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument("--recent", type=int, default=DEFAULT_RECENT, help="decisions to list")
    show.set_defaults(func=_cmd_show)

    untrust_p = ops.add_parser("untrust", help="withdraw 'trust this device' (one or all devices)")
    common(untrust_p)
    untrust_p.add_argument("--device", help="device key (from `user show`); default: all devices")
    change(untrust_p, "how many devices lost their trust")
    untrust_p.set_defaults(func=_cmd_untrust)

    unlock = ops.add_parser(
        "unlock", help="clear failed-password and second-factor counters only (profile and trust stay)")
    common(unlock)
    change(unlock, "what was done")
    unlock.set_defaults(func=_cmd_unlock)

    reset = ops.add_parser(
        "reset", help="erase the profile and its device tokens; next logins are challenged until one is verified")
    common(reset)
    change(reset, "whether a profile existed")
    reset.set_defaults(func=_cmd_reset)


def _engine(args: argparse.Namespace) -> Engine:
    from riskengine.config import Settings
    from riskengine.engine import Engine

    if getattr(args, "recent", 1) < 0:
        raise UsageError(f"--recent must be 0 or more, got {args.recent}")
    if hasattr(args, "actor"):
        for flag in ("actor", "reason"):
            if not getattr(args, flag).strip():
                raise UsageError(f"--{flag} must not be blank (it goes into the audit log)")
    if args.config is not None:
        check_input_file(args.config, "--config")
    settings = Settings.load(args.config)
    if settings.store.url.split(":", 1)[0] == "memory":
        raise ValueError(
            "the profile store is memory:// (one process's memory): `riskengine user` would read and "
            "change nothing the service sees; set store.url in --config or RISKENGINE_STORE_URL to the "
            "service's sqlite:// or redis:// store")
    return Engine.from_config(settings)


def _cmd_show(args: argparse.Namespace) -> int:
    with _engine(args) as engine:
        summary = engine.user_summary(args.user_id, recent=args.recent)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(format_summary(summary))
    return 0


def _cmd_untrust(args: argparse.Namespace) -> int:
    with _engine(args) as engine:
        if args.device is not None:
            profile = engine.store.get(args.user_id)
            if profile is None or args.device not in profile.devices:
                raise ValueError(f"device {args.device!r} is not known for this user (see `riskengine user show`)")
        n = engine.untrust(args.user_id, args.device, actor=args.actor, reason=args.reason)
    if args.json:
        print_json({"user_id": args.user_id, "operation": "untrust", "device": args.device,
                    "devices_untrusted": n})
    else:
        print(f"trust withdrawn from {n} device(s); recorded in the audit log")
    return 0


def _cmd_unlock(args: argparse.Namespace) -> int:
    with _engine(args) as engine:
        engine.unlock_user(args.user_id, actor=args.actor, reason=args.reason)
    if args.json:
        print_json({"user_id": args.user_id, "operation": "unlock"})
    else:
        print("failed-password and second-factor counters cleared (profile and device trust kept); "
              "recorded in the audit log")
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    with _engine(args) as engine:
        existed = engine.reset_user(args.user_id, actor=args.actor, reason=args.reason)
    if args.json:
        print_json({"user_id": args.user_id, "operation": "reset", "profile_existed": existed})
    else:
        print(("profile erased and marked reset" if existed else
               "no profile was stored; marked reset") + " (next logins are challenged until one is verified); "
              "recorded in the audit log")
    return 0


def format_summary(s: Mapping[str, Any]) -> str:
    """The human-readable ``user show`` report."""
    lines = [f"user {s['user_id']}  (audit key {s['user_key']})  as of {s['as_of']}"]
    if not s["known"]:
        lines.append("  no profile stored: the next login is treated as a first login (cold start)")
    else:
        lines.append(f"  accepted logins: {s['logins']}  first: {s['created']}  last: {s['last_login']}")
        lines.append("  devices (most recent first):")
        for d in s["devices"]:
            trust = f"TRUSTED until {d['trusted_until']}" if d["trusted"] else "not trusted"
            lines.append(f"    {d['device_key']}  first {d['first_seen']}  last {d['last_seen']}  "
                         f"logins {d['logins']}  {trust}")
        for label, key in (("countries", "country"), ("regions", "region"), ("networks (ASN)", "asn")):
            items = s[{"networks (ASN)": "asns"}.get(label, label)]
            shown = ", ".join(f"{i[key]} ({(i['last_seen'] or '')[:10]})" for i in items) or "-"
            lines.append(f"  {label}: {shown}")
        if s.get("reset_at"):
            lines.append(f"  reset by support at {s['reset_at']}: logins step up until one is verified")
    lines.append(f"  failed passwords in the last {s['failure_window_minutes']:g} min: "
                 f"{s['failed_passwords_in_window']}")
    lines.append(f"  failed second factors in the last {s['second_factor_window_minutes']:g} min: "
                 f"{s['failed_second_factors_in_window']}")
    if not s["audit_root"]:
        lines.append("  audit log: not configured (no decision history available)")
    else:
        lines.append(f"  recent decisions ({len(s['recent_decisions'])}):")
        for d in s["recent_decisions"]:
            reasons = ", ".join(d["reasons"] or [])
            lines.append(f"    {d['event_time'][:19]}  {d['action']:<9} risk {d['risk']:.2f}  "
                         f"{d['country'] or '??'}  device {d['device_key']}  [{reasons}]")
            c = d.get("challenge")
            if c is not None:
                lines.append(f"        challenge {c['outcome']} via {' -> '.join(c['channels'] or []) or '?'}"
                             f" after {c['attempts']} attempt(s){', device trusted' if c['trust_device'] else ''}")
        if s["admin_actions"]:
            lines.append("  support actions:")
            for a in s["admin_actions"]:
                dev = f" device {a['device_key']}" if a["device_key"] else ""
                lines.append(f"    {a['event_time'][:19]}  {a['operation']}{dev} by {a['actor']}: {a['note']}")
    return "\n".join(lines)
