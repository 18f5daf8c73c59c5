"""`riskengine user show|untrust|unlock|reset`: support operations on one user, over the
Engine's support methods (:mod:`riskengine.core.engine.support`).

    riskengine user show USER [--config riskengine.toml] [--json]
    riskengine user untrust USER [--device KEY] --actor NAME --reason TEXT
    riskengine user unlock USER --actor NAME --reason TEXT
    riskengine user reset USER --actor NAME --reason TEXT
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from riskengine.apps.cliutil import UsageError, add_json_flag, print_json
from riskengine.core.config import Settings
from riskengine.core.engine import Engine
from riskengine.core.engine.support import DEFAULT_RECENT
from riskengine.offline.formats import check_input_file


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
        if s.get("signup_at"):
            lines.append(f"  seeded by the account's signup session at {s['signup_at']} (record_signup: "
                         "not a login, not trusted)")
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
