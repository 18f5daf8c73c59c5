"""Legitimate users: homes, operators, devices whose browsers auto-update, personal hours,
login frequency over orders of magnitude, trips, VPNs, new devices, password typos — and the
legitimate behaviour that looks odd to a risk engine: commuters between two regions,
travellers, mobile users behind carrier NAT whose prefix and ASN change (shares and reasons in
:mod:`riskengine.offline.simulate.profiles`). Each login carries a round-trip time from the
user's own band on that network (:func:`rtt_ms`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np

from riskengine.core.signals.geo import haversine_km
from riskengine.offline.simulate.addressing import (
    TRAVEL_DESTINATIONS,
    VPN_COUNTRIES,
    AddressPlan,
    Network,
)
from riskengine.offline.simulate.channels import enrolment
from riskengine.offline.simulate.profiles import DEFAULT, Profile

DAY: Final = 86400.0

# Release cadences that drive the version numbers in the UA strings (same device, new string).
_CHROME_REF = (datetime(2023, 12, 5, tzinfo=UTC).timestamp(), 120, 28.0)
_FIREFOX_REF = (datetime(2023, 12, 19, tzinfo=UTC).timestamp(), 121, 28.0)
_APPLE_REF = datetime(2023, 9, 18, tzinfo=UTC).timestamp()  # iOS / Safari 17.0

ANDROID_MODELS: Final = ("SM-S911B", "Pixel 7", "SM-A546B", "moto g(60)", "Redmi Note 12", "K")
DEVICE_KINDS: Final[dict[str, float]] = {
    "win_chrome": 0.22, "win_edge": 0.07, "win_firefox": 0.04, "mac_safari": 0.07, "mac_chrome": 0.06,
    "linux_firefox": 0.01, "iphone_safari": 0.23, "android_chrome": 0.26, "ipad_safari": 0.04,
}
MOBILE_KINDS: Final = frozenset({"iphone_safari", "android_chrome", "ipad_safari"})


def chrome_major(ts: float) -> int:
    ref, version, cadence = _CHROME_REF
    return version + int((ts - ref) // (cadence * DAY))


def firefox_major(ts: float) -> int:
    ref, version, cadence = _FIREFOX_REF
    return version + int((ts - ref) // (cadence * DAY))


def apple_version(ts: float) -> tuple[int, int]:
    """Major each September, a point release about every seven weeks."""
    days = (ts - _APPLE_REF) / DAY
    years = int(days // 365.25)
    minor = min(7, int((days - years * 365.25) // 49))
    return 17 + years, minor


def user_agent(kind: str, model: str, ts: float) -> str:
    """The UA string a device of ``kind`` sends at time ``ts`` (``ts`` already lagged)."""
    if kind in ("win_chrome", "win_edge", "mac_chrome", "android_chrome"):
        v = chrome_major(ts)
        if kind == "android_chrome":
            return (f"Mozilla/5.0 (Linux; Android {10 if model == 'K' else 13}; {model}) AppleWebKit/537.36 "
                    f"(KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36")
        platform = "Windows NT 10.0; Win64; x64" if kind != "mac_chrome" else "Macintosh; Intel Mac OS X 10_15_7"
        ua = f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"
        return ua + f" Edg/{v}.0.0.0" if kind == "win_edge" else ua
    if kind in ("win_firefox", "linux_firefox"):
        v = firefox_major(ts)
        platform = "Windows NT 10.0; Win64; x64" if kind == "win_firefox" else "X11; Linux x86_64"
        return f"Mozilla/5.0 ({platform}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
    major, minor = apple_version(ts)
    if kind == "mac_safari":
        return (f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                f"Version/{major}.{minor} Safari/605.1.15")
    device = "iPhone; CPU iPhone OS" if kind == "iphone_safari" else "iPad; CPU OS"
    return (f"Mozilla/5.0 ({device} {major}_{minor} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"Version/{major}.{minor} Mobile/15E148 Safari/604.1")


@dataclass(slots=True)
class Device:
    kind: str
    model: str
    lag_days: float
    """How far behind the release this browser updates (auto-update is not instant)."""
    cookie: str | None
    since: float
    until: float = math.inf
    cookie_reset_at: float = math.inf
    cookie_after_reset: str | None = None

    def ua(self, ts: float) -> str:
        return user_agent(self.kind, self.model, ts - self.lag_days * DAY)

    def cookie_at(self, ts: float) -> str | None:
        return self.cookie_after_reset if ts >= self.cookie_reset_at else self.cookie

    @property
    def mobile(self) -> bool:
        return self.kind in MOBILE_KINDS


@dataclass(slots=True)
class User:
    user_id: str
    country: str
    region: str
    home_network: int
    fixed_networks: list[int]
    mobile_networks: list[int]
    work_networks: list[int]
    devices: list[Device]
    hour_peaks: tuple[float, ...]
    hour_spread: float
    rate_per_day: float
    created: float
    enrolled: tuple[str, ...]
    time_zone: str
    vpn_network: int | None = None
    trips: list[tuple[float, float, int]] = field(default_factory=list)
    """(start, end, network index at the destination)."""
    lease_days: float = 30.0
    addresses: dict[int, list[str]] = field(default_factory=dict)
    traits: frozenset[str] = frozenset()
    """Odd-but-legitimate behaviours: ``commuter``, ``cgnat``, ``traveller``, ``vpn``, ``new_device``."""
    rtt_base_ms: float = 32.0
    """This user's fixed-line round-trip time to the service from home (access + backhaul)."""
    rtt_mobile_extra_ms: float = 25.0
    """What this user's mobile radio link adds."""


# light in fibre covers ~200 km per ms one way; routes run ~1.5-2x the great-circle distance
RTT_MS_PER_KM: Final = 0.018


def network_offset_ms(network: int) -> float:
    """A stable per-network shift of the RTT band (-6..+10 ms): two networks of one user sit
    in different bands, the same network always in the same one."""
    return float(((network * 2654435761) >> 8) % 17 - 6)


def rtt_ms(user: User, network: int, mobile: bool, km_from_home: float, rng: np.random.Generator,
           extra_ms: float = 0.0) -> float:
    """A login's round-trip time: the user's band on that network, distance, jitter, rare spikes.

    ``km_from_home`` is the *physical* distance from the user's home (a roaming phone keeps
    its home address but its packets still cross the distance).
    """
    base = user.rtt_base_ms + network_offset_ms(network) + (user.rtt_mobile_extra_ms if mobile else 0.0)
    value = (max(base, 8.0) + RTT_MS_PER_KM * km_from_home + extra_ms) * float(rng.lognormal(0.0, 0.08))
    if rng.random() < 0.03:
        value *= float(rng.uniform(1.5, 3.0))  # a congested moment
    return float(round(value))


def _choice(rng: np.random.Generator, items: list[int]) -> int:
    return items[int(rng.integers(len(items)))]


def _networks_near(plan: AddressPlan, home: Network, asn: int, rng: np.random.Generator, k: int) -> list[int]:
    """Up to ``k`` networks of ``asn`` in the home region, same city first."""
    candidates = plan.by_region_asn.get((home.country, home.region, asn)) or []
    same_city = [i for i in candidates if plan.networks[i].city == home.city]
    pool = same_city or candidates
    if not pool:
        return []
    picks = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
    return [pool[int(i)] for i in picks]


def new_device(rng: np.random.Generator, since: float, cookie_share: float, serial: list[int],
               kinds: list[str] | None = None) -> Device:
    names = kinds or list(DEVICE_KINDS)
    weights = np.array([DEVICE_KINDS[k] for k in names])
    kind = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    model = ANDROID_MODELS[int(rng.integers(len(ANDROID_MODELS)))] if kind == "android_chrome" else ""
    serial[0] += 1
    cookie = f"d{serial[0]:08d}" if rng.random() < cookie_share else None
    return Device(kind, model, float(rng.uniform(0, 21)), cookie, since)


def _other_region_network(plan: AddressPlan, home: Network, rng: np.random.Generator) -> int | None:
    """A broadband network in the nearest *other* region of the home country within 150 km
    (an office across a regional border), or ``None`` when there is none."""
    best: list[tuple[float, int]] = []
    for i in plan.by_country_kind.get((home.country, "isp"), ()):
        n = plan.networks[i]
        if n.region == home.region:
            continue
        km = haversine_km(home.latitude, home.longitude, n.latitude, n.longitude)
        if 5.0 < km < 150.0:
            best.append((km, i))
    if not best:
        return None
    best.sort()
    return best[int(rng.integers(min(3, len(best))))][1]


def make_user(user_id: str, plan: AddressPlan, rng: np.random.Generator, start: float, end: float,
              created: float, cookie_share: float, serial: list[int],
              enrolled: tuple[str, ...] | None = None, profile: Profile = DEFAULT) -> User:
    countries = list(profile.home_countries)
    probs = np.array(list(profile.home_countries.values()))
    country = countries[int(rng.choice(len(countries), p=probs / probs.sum()))]
    isps = plan.isps(country, "isp")
    carriers = plan.isps(country, "mobile")
    # a home: a network of one of the country's broadband ISPs
    home_isp = isps[int(rng.integers(len(isps)))]
    home_network = _choice(rng, plan.by_asn[home_isp])  # consumer ASNs are national
    home = plan.networks[home_network]
    fixed = [home_network, *_networks_near(plan, home, home_isp, rng, 1)]
    carrier = carriers[int(rng.integers(len(carriers)))]
    traits: set[str] = set()
    mobile = _networks_near(plan, home, carrier, rng, 2) or fixed
    if rng.random() < profile.cgnat_share:
        # carrier NAT pools: many prefixes, announced from the carrier's ASN and a partner's
        partner = [c for c in carriers if c != carrier]
        pools = _networks_near(plan, home, carrier, rng, 4)
        if partner:
            pools += _networks_near(plan, home, partner[int(rng.integers(len(partner)))], rng, 3)
        if len({plan.networks[i].asn for i in pools}) > 1:
            mobile = pools
            traits.add("cgnat")
    work: list[int] = []
    if rng.random() < profile.commuter_share:
        office = _other_region_network(plan, home, rng)
        if office is not None:
            work = [office]
            traits.add("commuter")
    if not work and rng.random() < 0.35:
        other = [a for a in isps if a != home_isp]
        if other:
            work = _networks_near(plan, home, other[int(rng.integers(len(other)))], rng, 1)
    n_devices = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
    devices = [new_device(rng, start, cookie_share, serial) for _ in range(n_devices)]
    span = end - start
    # new-device purchase, cookie clearing
    if rng.random() < profile.new_device_rate * span / (90 * DAY):
        traits.add("new_device")
        at = float(rng.uniform(max(start, created), end))
        old = devices[int(rng.integers(len(devices)))]
        old.until = at + float(rng.uniform(0, 7)) * DAY  # the old one lingers a few days
        same_family = [old.kind] if rng.random() < 0.6 else None
        devices.append(new_device(rng, at, cookie_share, serial, same_family))
    for d in devices:
        if d.cookie is not None and rng.random() < 0.06 * span / (90 * DAY):
            d.cookie_reset_at = float(rng.uniform(start, end))
            serial[0] += 1
            d.cookie_after_reset = f"d{serial[0]:08d}"
    # personal hours in local time: one or two peaks
    n_peaks = 1 if rng.random() < 0.5 else 2
    peaks = tuple(float(np.clip(rng.normal(14.0, 4.0), 6.0, 23.5)) for _ in range(n_peaks))
    rate = float(np.clip(rng.lognormal(math.log(0.22), 1.1), 0.01, 12.0))
    user = User(
        user_id=user_id, country=country, region=home.region, home_network=home_network,
        fixed_networks=fixed, mobile_networks=mobile, work_networks=work, devices=devices,
        hour_peaks=peaks, hour_spread=float(rng.uniform(0.8, 2.5)), rate_per_day=rate,
        created=created, enrolled=enrolled if enrolled is not None else enrolment(country, rng),
        time_zone=home.time_zone, lease_days=float(rng.uniform(14, 120)),
        rtt_base_ms=float(np.clip(rng.lognormal(math.log(profile.rtt_access_ms), 0.35), 10.0, 90.0)),
        rtt_mobile_extra_ms=float(rng.uniform(*profile.rtt_mobile_extra_ms)),
    )
    if rng.random() < profile.vpn_share:
        exits = [c for c in VPN_COUNTRIES if c == country] or list(VPN_COUNTRIES)
        exit_country = exits[int(rng.integers(len(exits)))]
        vpn_nets = plan.by_country_kind.get((exit_country, "vpn"), [])
        if vpn_nets:
            user.vpn_network = _choice(rng, vpn_nets)
            traits.add("vpn")
    trip_p = profile.trip_rate * span / (90 * DAY)
    while rng.random() < trip_p and len(user.trips) < 3:
        trip_p *= 0.3
        begin = float(rng.uniform(max(start, created), end))
        length = float(rng.uniform(2, 14)) * DAY
        if rng.random() < 0.65:
            dests = [c for c in TRAVEL_DESTINATIONS if c != country]
            dest = dests[int(rng.integers(len(dests)))]
        else:
            dest = country  # a domestic trip: another region, hotel or family broadband
        choices = plan.by_country_kind.get((dest, "isp"), [])
        choices = [i for i in choices if plan.networks[i].region != home.region] or choices
        if choices:
            user.trips.append((begin, begin + length, _choice(rng, choices)))
            traits.add("traveller")
    user.traits = frozenset(traits)
    return user


def _address(user: User, plan: AddressPlan, net: int, ts: float, rng: np.random.Generator,
             churn: bool) -> str:
    """Broadband addresses change with the DHCP lease; mobile ones (CGNAT) at every login."""
    if not churn:
        return plan.address(net, rng)
    epoch = int(ts // (user.lease_days * DAY))
    known = user.addresses.setdefault(net, [])
    while len(known) <= epoch % 4:
        known.append(plan.address(net, rng))
    return known[epoch % 4]


@dataclass(slots=True)
class LegitEvent:
    ts: float
    failed: bool
    ip: str
    ua: str
    device_id: str | None
    session: int
    network: int
    rtt: float = math.nan


def user_events(user: User, plan: AddressPlan, rng: np.random.Generator, start: float, end: float,
                session_serial: list[int]) -> list[LegitEvent]:
    """All of one user's logins (and typos) between ``start`` and ``end``."""
    begin = max(start, user.created)
    days = max(0.0, (end - begin) / DAY)
    n = int(min(rng.poisson(user.rate_per_day * days), 3000))
    zone = ZoneInfo(user.time_zone)
    stamps: list[float] = []
    if user.created >= start:
        stamps.append(user.created + float(rng.uniform(20, 300)))  # first login right after signup
    first_day = datetime.fromtimestamp(begin, zone).date()
    for _ in range(n):
        day = first_day + timedelta(days=int(rng.integers(0, max(1, math.ceil(days)))))
        peak = user.hour_peaks[int(rng.integers(len(user.hour_peaks)))]
        hour = float(rng.normal(peak, user.hour_spread)) % 24.0
        local = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(hours=hour)
        ts = local.timestamp()
        if begin <= ts < end:
            stamps.append(ts)
    stamps.sort()
    events: list[LegitEvent] = []
    last: tuple[float, float, float] | None = None
    home = plan.networks[user.home_network]
    for ts in stamps:
        active = [d for d in user.devices if d.since <= ts < d.until] or user.devices[-1:]
        device = active[int(rng.integers(len(active)))]
        trip = next((t for t in user.trips if t[0] <= ts < t[1]), None)
        churn = True
        on_mobile = False
        if trip is not None:
            # roaming phones keep the home carrier's address; hotel Wi-Fi is local
            if device.mobile and rng.random() < 0.5:
                net, churn, on_mobile = _choice(rng, user.mobile_networks), False, True
            else:
                net = trip[2]
        elif user.vpn_network is not None and rng.random() < 0.25:
            net = user.vpn_network
        elif device.mobile and rng.random() < 0.55:
            net, churn, on_mobile = _choice(rng, user.mobile_networks), False, True
        elif user.work_networks and _office_hours(user, ts, zone) and rng.random() < (
                0.75 if "commuter" in user.traits else 0.5):
            net = user.work_networks[0]
        else:
            net = user.fixed_networks[int(rng.integers(len(user.fixed_networks)))]
        place = plan.networks[net]
        if last is not None and net != user.vpn_network:
            # people do not teleport: drop a login that would need faster than an airliner
            km = haversine_km(last[0], last[1], place.latitude, place.longitude) - 100.0
            if km > 0 and km / max((ts - last[2]) / 3600.0, 1e-3) > 700.0:
                continue
        if net != user.vpn_network:
            last = (place.latitude, place.longitude, ts)
        # where the person physically is: the trip's place even behind a roaming address
        here = plan.networks[trip[2]] if trip is not None else (
            home if net == user.vpn_network else place)
        km = haversine_km(home.latitude, home.longitude, here.latitude, here.longitude)
        vpn_km = 0.0
        if net == user.vpn_network:  # the detour through the exit and back
            vpn_km = 2.0 * haversine_km(here.latitude, here.longitude, place.latitude, place.longitude)
        rtt = rtt_ms(user, net, on_mobile, km + vpn_km, rng)
        ip = _address(user, plan, net, ts, rng, churn)
        ua = device.ua(ts)
        cookie = device.cookie_at(ts)
        session_serial[0] += 1
        session = session_serial[0]
        typos = 0
        r = rng.random()
        if r < 0.005:
            typos = 2
        elif r < 0.035:
            typos = 1
        for k in range(typos, 0, -1):
            events.append(LegitEvent(ts - k * float(rng.uniform(4, 30)), True, ip, ua, cookie, session, net, rtt))
        events.append(LegitEvent(ts, False, ip, ua, cookie, session, net, rtt))
    return events


def _office_hours(user: User, ts: float, zone: ZoneInfo) -> bool:
    local = datetime.fromtimestamp(ts, zone)
    if "commuter" in user.traits:
        return local.weekday() < 5 and 8 <= local.hour < 18
    return 9 <= local.hour < 18
