"""Labelled attacks, a small share of traffic.

- ``stuffing``: waves of credential stuffing from hosting providers' addresses — each
  address tries a list of leaked username/password pairs, most fail, a few match
  (password reuse).
- ``ato_foreign``: a phished password used from abroad (consumer ISP, hosting or VPN exit).
- ``ato_domestic``: a phished password used from the victim's own country.
- ``ato_imitation``: the hard case — the attacker copies the victim's browser (UA string at
  the current version) and logs in from a residential address in the victim's region, at the
  victim's usual hour. Without a device cookie nothing about the device differs.
- ``ato_lookalike``: an attack kit that imitates the victim — same country and region (a
  network of the victim's own ISP or another consumer ISP there, never a prefix the victim
  used), the victim's browser family and OS, but the kit's FIXED user agent: a version 1–5
  releases older than the victim's auto-updated browser (50–150 days), the same string on every login of
  the attack (kits ship one UA; Android kits often the reduced ``Android 10; K`` form), at the
  victim's usual hours.
- ``ato_residential_proxy``: a residential-proxy exit in the victim's city (another /24 than
  any the victim used, most often a consumer ASN the victim does not use; where the plan has
  no other network in that city, another /24 of the victim's ISP's network there, else the
  region), the victim's browser
  family at its current version (anti-detect browsers copy it) or the attacker's own browser,
  at the victim's usual hours; the proxy hop adds round-trip time.

Family names are stable (they are the ``attack_family`` values of ``labels.parquet`` and the
rows of ``riskengine evaluate``'s per-family table).

Every attack login carries a round-trip time: the attacker's own access line, the distance
from where the attacker's packets leave to the victim's home (the service's side), plus a
proxy hop where there is one (:func:`attack_rtt`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np

from riskengine.core.signals.geo import haversine_km
from riskengine.offline.simulate.addressing import ATTACK_COUNTRIES, HOSTING_ASNS, AddressPlan
from riskengine.offline.simulate.population import (
    DAY,
    DEVICE_KINDS,
    RTT_MS_PER_KM,
    Device,
    User,
    new_device,
    user_agent,
)
from riskengine.offline.simulate.profiles import DEFAULT, Profile

FAMILIES: Final = ("stuffing", "ato_foreign", "ato_domestic", "ato_imitation", "ato_lookalike",
                   "ato_residential_proxy")
TAKEOVER_FAMILIES: Final = FAMILIES[1:]


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
    rtt: float = float("nan")


def attack_rtt(plan: AddressPlan, net: int, victim: User | None, rng: np.random.Generator,
               proxy_extra_ms: float = 0.0) -> float:
    """Attacker's access line (log-normal around 40 ms) + distance from the exit to the
    victim's home + the proxy hop, with the same jitter as legitimate logins."""
    place = plan.networks[net]
    km = 0.0
    if victim is not None:
        home = plan.networks[victim.home_network]
        km = haversine_km(home.latitude, home.longitude, place.latitude, place.longitude)
    access = float(np.clip(rng.lognormal(np.log(40.0), 0.35), 8.0, 150.0))
    return float(round((access + RTT_MS_PER_KM * km + proxy_extra_ms) * float(rng.lognormal(0.0, 0.08))))


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
            rtt = attack_rtt(plan, net, None, rng, float(rng.uniform(20, 160)))
            n_tries = int(max(10, min(400, len(users) * 0.01 * rng.uniform(0.5, 1.5))))
            duration = float(rng.uniform(20, 90)) * 60.0
            t0 = wave_start + float(rng.uniform(0, 1800))
            times = np.sort(rng.uniform(t0, t0 + duration, size=n_tries))
            for ts in times:
                session_serial[0] += 1
                if rng.random() < 0.15:
                    ghost += 1
                    events.append(AttackEvent(float(ts), True, f"x{ghost:07d}", ip, ua, "stuffing",
                                              session_serial[0], net, rtt))
                    continue
                victim = users[int(rng.integers(len(users)))]
                if victim.created > ts:
                    continue
                matched = rng.random() < 0.015
                events.append(AttackEvent(float(ts), not matched, victim.user_id, ip, ua, "stuffing",
                                          session_serial[0], net, rtt))
    return events


def _victims(users: list[User], rng: np.random.Generator, count: int) -> list[User]:
    picks = rng.choice(len(users), size=min(count, len(users)), replace=False)
    return [users[int(i)] for i in picks]


def at_usual_hour(victim: User, ts: float, rng: np.random.Generator) -> float:
    """``ts``'s day at one of the victim's own peak hours (local time, the victim's spread)."""
    zone = ZoneInfo(victim.time_zone)
    day = datetime.fromtimestamp(ts, zone)
    peak = victim.hour_peaks[int(rng.integers(len(victim.hour_peaks)))]
    hour = float(np.clip(rng.normal(peak, min(victim.hour_spread, 1.0)), 0.0, 23.99))
    return day.replace(hour=int(hour), minute=int((hour % 1.0) * 60), second=0, microsecond=0).timestamp()


def _active_device(victim: User, ts: float, rng: np.random.Generator) -> Device:
    active = [d for d in victim.devices if d.since <= ts < d.until] or victim.devices[-1:]
    return active[int(rng.integers(len(active)))]


def kit_user_agent(device: Device, ts: float, rng: np.random.Generator) -> str:
    """The fixed UA string a kit imitating ``device`` sends: same browser family and OS, a
    version 1-5 releases (50-150 days) older than the device's own auto-updated one (50 days
    cross at least one release of every cadence: Chrome/Firefox 4 weeks, Apple 7 weeks)."""
    behind = float(rng.uniform(50.0, 150.0)) * DAY
    model = "K" if device.kind == "android_chrome" and rng.random() < 0.5 else device.model
    return user_agent(device.kind, model, ts - device.lag_days * DAY - behind)


def victim_networks(victim: User) -> set[int]:
    return {*victim.fixed_networks, *victim.mobile_networks, *victim.work_networks}


def victim_asns(plan: AddressPlan, victim: User) -> set[int]:
    return {plan.networks[i].asn for i in victim_networks(victim)}


def _lookalike_network(plan: AddressPlan, victim: User, rng: np.random.Generator, profile: Profile) -> int:
    home = plan.networks[victim.home_network]
    used = victim_networks(victim)
    consumer = [i for kind in ("isp", "mobile") for i in plan.by_country_kind.get((victim.country, kind), ())
                if plan.networks[i].region == home.region and i not in used]
    same_isp = [i for i in consumer if plan.networks[i].asn == home.asn]
    pool = same_isp if (same_isp and rng.random() < profile.lookalike_same_isp) else consumer
    if not pool:  # a region with one network: any other network of the country
        pool = [i for i in plan.by_country_kind.get((victim.country, "isp"), ()) if i not in used]
    return pool[int(rng.integers(len(pool)))]


def _proxy_network(plan: AddressPlan, victim: User, rng: np.random.Generator, profile: Profile) -> int:
    home = plan.networks[victim.home_network]
    used = victim_networks(victim)
    consumer = [i for kind in ("isp", "mobile") for i in plan.by_country_kind.get((victim.country, kind), ())
                if i not in used]
    near = [i for i in consumer if plan.networks[i].city == home.city]
    if not near:
        # the plan holds no other network in that city: another /24 of a city network the
        # victim's own ISP announces (a neighbour's line), else the region
        prefixes = {plan.prefix(a) for known in victim.addresses.values() for a in known}
        near = [i for i in victim_networks(victim) if plan.networks[i].city == home.city
                and plan.ases[plan.networks[i].asn].kind == "isp" and _free_blocks(plan, i, prefixes)]
    near = near or [i for i in consumer if plan.networks[i].region == home.region] or consumer
    asns = victim_asns(plan, victim)
    foreign_asn = [i for i in near if plan.networks[i].asn not in asns]
    pool = foreign_asn if (foreign_asn and rng.random() < profile.proxy_other_asn) else near
    return pool[int(rng.integers(len(pool)))]


def _free_blocks(plan: AddressPlan, net: int, victim_prefixes: set[str], limit: int = 64) -> list[int]:
    """First addresses of (up to ``limit``) /24s of ``net`` the victim never used."""
    n = plan.networks[net]
    blocks = [n.first + 256 * k for k in range(min(n.size // 256, limit))]
    return [b for b in blocks if str(ipaddress.IPv4Network((b, 24))) not in victim_prefixes]


def _address_off_prefixes(plan: AddressPlan, net: int, victim_prefixes: set[str], rng: np.random.Generator) -> str:
    """An address of ``net`` outside every /24 the victim used (a free /24 of a wide network,
    else a few tries, then any)."""
    free = _free_blocks(plan, net, victim_prefixes)
    if free:
        return str(ipaddress.IPv4Address(free[int(rng.integers(len(free)))] + int(rng.integers(1, 255))))
    ip = plan.address(net, rng)
    for _ in range(8):
        if plan.prefix(ip) not in victim_prefixes:
            break
        ip = plan.address(net, rng)
    return ip


def takeovers(users: list[User], plan: AddressPlan, rng: np.random.Generator, start: float, end: float,
              serial: list[int], session_serial: list[int], share: float = 0.004,
              profile: Profile = DEFAULT) -> list[AttackEvent]:
    """Phished-password takeovers of every family in :data:`TAKEOVER_FAMILIES`."""
    days = (end - start) / 86400.0
    per_family = max(2, round(len(users) * share * days / 90))
    events: list[AttackEvent] = []
    plan_kinds = {f: max(2, round(per_family * profile.family_weights.get(f, 1.0))) for f in TAKEOVER_FAMILIES}
    for family, count in plan_kinds.items():
        for victim in _victims(users, rng, count):
            first = float(rng.uniform(max(start, victim.created + 86400.0), end))
            if first >= end:
                continue
            home = plan.networks[victim.home_network]
            proxy_ms = 0.0
            victim_prefixes = {plan.prefix(a) for known in victim.addresses.values() for a in known}
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
            elif family == "ato_imitation":
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
                proxy_ms = float(rng.uniform(*profile.rtt_proxy_extra_ms))
            elif family == "ato_lookalike":
                net = _lookalike_network(plan, victim, rng, profile)
                first = at_usual_hour(victim, first, rng)
                ua = kit_user_agent(_active_device(victim, first, rng), first, rng)
                if rng.random() < 0.5:  # half the kits run through a proxy in the region
                    proxy_ms = float(rng.uniform(*profile.rtt_proxy_extra_ms))
            else:  # ato_residential_proxy
                net = _proxy_network(plan, victim, rng, profile)
                first = at_usual_hour(victim, first, rng)
                if rng.random() < 0.6:
                    ua = _active_device(victim, first, rng).ua(first)
                else:
                    ua = new_device(rng, first, 0.0, serial, list(DEVICE_KINDS)).ua(first)
                proxy_ms = float(rng.uniform(*profile.rtt_proxy_extra_ms))
            ip = _address_off_prefixes(plan, net, victim_prefixes, rng)
            n_logins = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
            ts = first
            for k in range(n_logins):
                session_serial[0] += 1
                rtt = attack_rtt(plan, net, victim, rng, proxy_ms)
                if rng.random() < 0.1:
                    events.append(AttackEvent(ts - 20.0, True, victim.user_id, ip, ua, family,
                                              session_serial[0], net, rtt))
                events.append(AttackEvent(ts, False, victim.user_id, ip, ua, family, session_serial[0], net, rtt))
                if family in ("ato_lookalike", "ato_residential_proxy"):
                    # next time on another day, again at one of the victim's hours
                    ts = at_usual_hour(victim, ts + float(rng.uniform(1, 4)) * DAY, rng) if k < n_logins - 1 else ts
                else:
                    ts += float(rng.uniform(600, 6 * 3600))
    return [e for e in events if start <= e.ts < end]
