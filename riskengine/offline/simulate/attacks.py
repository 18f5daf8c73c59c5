"""Labelled attacks, a small share of traffic.

- ``stuffing``: waves of credential stuffing from hosting providers' addresses — each
  address tries a list of leaked username/password pairs, most fail, a few match
  (password reuse).
- ``ato_foreign``: a phished password used from abroad (consumer ISP, hosting or VPN exit).
- ``ato_domestic``: a phished password used from the victim's own country.
- ``ato_imitation``: the hard case — the attacker copies the victim's browser (UA string at
  the current version) and logs in from a residential address in the victim's region, at the
  victim's usual hour. Without a device cookie nothing about the device differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np

from riskengine.offline.simulate.addressing import ATTACK_COUNTRIES, HOSTING_ASNS, AddressPlan
from riskengine.offline.simulate.population import DEVICE_KINDS, User, new_device

FAMILIES: Final = ("stuffing", "ato_foreign", "ato_domestic", "ato_imitation")


@dataclass(slots=True)
class AttackEvent:
    ts: float
    failed: bool
    user_id: str
    ip: str
    ua: str
    family: str
    session: int
    network: int


def _stale_ua(rng: np.random.Generator, ts: float, serial: list[int]) -> str:
    """Stuffing tools rotate through a list of common (often outdated) browser strings."""
    device = new_device(rng, ts, 0.0, serial, ["win_chrome", "win_edge", "mac_chrome", "win_firefox"])
    return device.ua(ts - float(rng.uniform(0, 400)) * 86400.0)


def stuffing(users: list[User], plan: AddressPlan, rng: np.random.Generator, start: float, end: float,
             serial: list[int], session_serial: list[int], intensity: float = 1.0) -> list[AttackEvent]:
    days = (end - start) / 86400.0
    n_waves = max(1, round(days / 10 * intensity))
    hosting = [i for asn in HOSTING_ASNS for i in plan.by_asn.get(asn, ())]
    events: list[AttackEvent] = []
    ghost = 0
    for _ in range(n_waves):
        wave_start = float(rng.uniform(start, end - 3 * 3600))
        n_ips = int(rng.integers(6, 18))
        for _ in range(n_ips):
            net = hosting[int(rng.integers(len(hosting)))]
            ip = plan.address(net, rng)
            ua = _stale_ua(rng, wave_start, serial)
            n_tries = int(max(10, min(400, len(users) * 0.01 * rng.uniform(0.5, 1.5))))
            duration = float(rng.uniform(20, 90)) * 60.0
            t0 = wave_start + float(rng.uniform(0, 1800))
            times = np.sort(rng.uniform(t0, t0 + duration, size=n_tries))
            for ts in times:
                session_serial[0] += 1
                if rng.random() < 0.15:
                    ghost += 1
                    events.append(AttackEvent(float(ts), True, f"x{ghost:07d}", ip, ua, "stuffing",
                                              session_serial[0], net))
                    continue
                victim = users[int(rng.integers(len(users)))]
                if victim.created > ts:
                    continue
                matched = rng.random() < 0.015
                events.append(AttackEvent(float(ts), not matched, victim.user_id, ip, ua, "stuffing",
                                          session_serial[0], net))
    return events


def _victims(users: list[User], rng: np.random.Generator, count: int) -> list[User]:
    picks = rng.choice(len(users), size=min(count, len(users)), replace=False)
    return [users[int(i)] for i in picks]


def takeovers(users: list[User], plan: AddressPlan, rng: np.random.Generator, start: float, end: float,
              serial: list[int], session_serial: list[int], share: float = 0.004) -> list[AttackEvent]:
    """Phished-password takeovers: foreign, domestic and browser-imitating."""
    days = (end - start) / 86400.0
    per_family = max(2, round(len(users) * share * days / 90))
    events: list[AttackEvent] = []
    plan_kinds = {
        "ato_foreign": per_family,
        "ato_domestic": per_family,
        "ato_imitation": max(2, per_family // 2),
    }
    for family, count in plan_kinds.items():
        for victim in _victims(users, rng, count):
            first = float(rng.uniform(max(start, victim.created + 86400.0), end))
            if first >= end:
                continue
            home = plan.networks[victim.home_network]
            if family == "ato_foreign":
                abroad = [c for c in ATTACK_COUNTRIES if c != victim.country]
                country = abroad[int(rng.integers(len(abroad)))]
                r = rng.random()
                kind = "isp" if r < 0.6 else ("mobile" if r < 0.75 else "isp")
                pool = plan.by_country_kind.get((country, kind)) or plan.by_country_kind.get((country, "isp"), [])
                if r >= 0.75:
                    pool = [i for asn in HOSTING_ASNS for i in plan.by_asn.get(asn, ())]
                net = pool[int(rng.integers(len(pool)))]
                ua = new_device(rng, first, 0.0, serial, list(DEVICE_KINDS)).ua(first)
            elif family == "ato_domestic":
                same = plan.by_country_kind.get((victim.country, "isp"), []) + \
                    plan.by_country_kind.get((victim.country, "mobile"), [])
                elsewhere = [i for i in same if plan.networks[i].region != home.region]
                pool = elsewhere if (elsewhere and rng.random() < 0.75) else same
                net = pool[int(rng.integers(len(pool)))]
                ua = new_device(rng, first, 0.0, serial, list(DEVICE_KINDS)).ua(first)
            else:
                # residential proxy in the victim's region, at the victim's usual hour
                local = plan.by_country_kind.get((victim.country, "isp"), [])
                near = [i for i in local if plan.networks[i].region == home.region] or local
                same_isp = [i for i in near if plan.networks[i].asn == home.asn]
                pool = same_isp if (same_isp and rng.random() < 0.5) else near
                net = pool[int(rng.integers(len(pool)))]
                zone = ZoneInfo(victim.time_zone)
                day = datetime.fromtimestamp(first, zone)
                peak = victim.hour_peaks[0]
                first = day.replace(hour=int(peak) % 24, minute=int(rng.integers(60))).timestamp()
                device = victim.devices[0]
                ua = device.ua(first)
            ip = plan.address(net, rng)
            n_logins = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
            ts = first
            for _ in range(n_logins):
                session_serial[0] += 1
                if rng.random() < 0.1:
                    events.append(AttackEvent(ts - 20.0, True, victim.user_id, ip, ua, family,
                                              session_serial[0], net))
                events.append(AttackEvent(ts, False, victim.user_id, ip, ua, family, session_serial[0], net))
                ts += float(rng.uniform(600, 6 * 3600))
    return [e for e in events if start <= e.ts < end]
