"""``simulate()``: population + attacks + signups → events, labels, RBA CSV, ASN mmdb.

A deployed engine has months of history for its existing users; a simulated window that
starts with empty profiles would make every early attack look like a first login. So the
users who exist before ``start`` log in (legitimately, nothing else) for ``warmup_days``
before it. Those rows are in every output, in time order, and ``labels.parquet`` flags them
(``warmup``) so that ``riskengine evaluate`` replays them but measures only the window —
a deployment that learns in shadow mode before it enforces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl
from tqdm import tqdm

from riskengine.offline.simulate import attacks as attack_mod
from riskengine.offline.simulate.addressing import AddressPlan, build_plan, load_or_sample_pool
from riskengine.offline.simulate.channels import ChallengeBehaviour, simulate_challenge
from riskengine.offline.simulate.experiment import EXPERIMENT, enrolled_at_signup, signups
from riskengine.offline.simulate.population import DAY, User, make_user, user_events
from riskengine.offline.simulate.profiles import get_profile
from riskengine.offline.simulate.pumping import FAMILY as PUMPING_FAMILY
from riskengine.offline.simulate.pumping import phone_for, pumping
from riskengine.offline.simulate.writer import ASN_FILE, MANIFEST_FILE, build_frames, write_outputs

FORMAT_VERSION: Final = 2
"""2: per-network round-trip times, the imitating families, odd-but-legitimate users, profiles."""
DEFAULT_START: Final = "2025-09-01"
DEFAULT_WARMUP_DAYS: Final = 90
"""Long enough for a steady state: the window's established-user step-up rate stops drifting
once the profiles hold ~3 months (20k users, seed 42: 1.1 % in the first window week with
30 warm-up days, 2.3–2.6 % across the window with 90)."""
MAX_WARMUP_DAYS: Final = 365


DEFAULT_ATO_SHARE = 0.004
MAX_ATO_SHARE = 0.2
"""Victims per takeover family at most a fifth of the users: beyond it, every family's victims
(six families) would not fit in the user base."""


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    users: int = 20_000
    days: int = 90
    seed: int = 42
    start: str = DEFAULT_START
    """First day (UTC) of the simulated window."""
    new_user_share: float = 0.12
    """Share of users who sign up during the window (through the signup experiment)."""
    cookie_share: float = 0.5
    """Share of devices whose client keeps the service's device cookie."""
    signup_drop: float = 0.10
    """Relative conversion loss of ``mfa_at_signup`` (practice reports 5–15 %)."""
    attack_intensity: float = 1.0
    ato_share: float = DEFAULT_ATO_SHARE
    """Victims per takeover family, as a share of users per 90 days."""
    pumping_waves: int = 1
    """SMS pumping waves in the window (fresh accounts triggering OTPs to numbers the ring is paid for)."""
    warmup_days: int = DEFAULT_WARMUP_DAYS
    """Days of legitimate-only traffic of the pre-existing users before ``start`` (0: none)."""
    profile: str = "default"
    """Parameter set (:mod:`riskengine.offline.simulate.profiles`): ``default`` (tune on this
    one only) or ``heldout`` (other countries, operators, shares, RTT bands, attack mix)."""

    def validate(self) -> None:
        if self.users < 10:
            raise ValueError(f"--users must be at least 10, got {self.users}")
        if not 1 <= self.days <= 3650:
            raise ValueError(f"--days must be in 1..3650, got {self.days}")
        if not 0.0 <= self.signup_drop < 1.0:
            raise ValueError("signup_drop must be in [0, 1)")
        if not 0 <= self.warmup_days <= MAX_WARMUP_DAYS:
            raise ValueError(f"--warmup-days must be in 0..{MAX_WARMUP_DAYS}, got {self.warmup_days}")
        if not 0.0 <= self.ato_share <= MAX_ATO_SHARE:
            raise ValueError(f"--ato-share must be in 0..{MAX_ATO_SHARE}, got {self.ato_share}")
        datetime.fromisoformat(self.start)
        get_profile(self.profile)

    def key(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, **asdict(self)}


def _behaviour_columns() -> dict[str, list[Any]]:
    names = ("ts", "kind", "user_id", "ip", "user_agent", "device_id", "session_id", "enrolled_factors",
             "would_pass", "challenge_channels", "challenge_outcome", "challenge_attempts",
             "seconds_to_verify", "trust_device", "experiment", "variant", "converted",
             "attack_family", "is_attack_ip", "warmup", "rtt_ms", "user_traits", "phone")
    return {n: [] for n in names}


def _append(cols: dict[str, list[Any]], ts: float, kind: str, user_id: str, ip: str, ua: str,
            device_id: str | None, session: int, enrolled: tuple[str, ...], b: ChallengeBehaviour | None,
            family: str | None = None, attack_ip: bool = False, warmup: bool = False,
            rtt: float | None = None, traits: frozenset[str] = frozenset(),
            phone: str | None = None) -> None:
    cols["ts"].append(ts)
    cols["kind"].append(kind)
    cols["user_id"].append(user_id)
    cols["ip"].append(ip)
    cols["user_agent"].append(ua)
    cols["device_id"].append(device_id)
    cols["session_id"].append(f"s{session:09d}")
    cols["enrolled_factors"].append(list(enrolled))
    cols["would_pass"].append(None if b is None else b.would_pass)
    cols["challenge_channels"].append([] if b is None else list(b.channels))
    cols["challenge_outcome"].append(None if b is None else b.outcome)
    cols["challenge_attempts"].append(None if b is None else b.attempts)
    cols["seconds_to_verify"].append(None if b is None else b.seconds_to_verify)
    cols["trust_device"].append(None if b is None else b.trust_device)
    cols["experiment"].append(None)
    cols["variant"].append(None)
    cols["converted"].append(None)
    cols["attack_family"].append(family)
    cols["is_attack_ip"].append(attack_ip)
    cols["warmup"].append(warmup)
    cols["rtt_ms"].append(None if rtt is None or rtt != rtt else rtt)
    cols["user_traits"].append(sorted(traits))
    cols["phone"].append(phone)


def simulate(out: str | Path, config: SimulationConfig | None = None, *, fmt: str = "both",
             progress: bool = True, pool_path: str | Path | None = None) -> dict[str, Path]:
    """Write a simulated service's traffic into ``out``; returns the files written.

    ``pool_path`` overrides where the sampled GeoLite2 network pool is cached (default: a
    file in ``out`` keyed by seed).
    """
    cfg = config or SimulationConfig()
    cfg.validate()
    if fmt not in ("native", "rba", "both"):
        raise ValueError(f"--format must be native, rba or both, got {fmt!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = datetime.fromisoformat(cfg.start).replace(tzinfo=UTC).timestamp()
    end = start + cfg.days * DAY
    warm_start = start - cfg.warmup_days * DAY
    pool = load_or_sample_pool(out, cfg.seed, progress=progress,
                               pool_path=Path(pool_path) if pool_path else None)
    profile = get_profile(cfg.profile)
    plan: AddressPlan = build_plan(pool, cfg.seed, profile.fixed_isps_per_country,
                                   profile.mobile_carriers_per_country)
    plan.write_asn_mmdb(out / ASN_FILE)

    rng = np.random.default_rng(cfg.seed)
    device_serial = [0]
    session_serial = [0]
    cols = _behaviour_columns()
    n_new = int(round(cfg.users * cfg.new_user_share))
    n_existing = cfg.users - n_new
    users: list[User] = []
    # existing users live (devices, trips, habits) through warm-up and window alike
    for k in range(n_existing):
        users.append(make_user(f"u{k:07d}", plan, rng, warm_start, end, warm_start - 400 * DAY,
                               cfg.cookie_share, device_serial, profile=profile))
    # the signup funnel produces the new users; visitors scale so about n_new convert
    visitors = signups(int(n_new / 0.57), start, end - DAY, rng, cfg.signup_drop)
    for v in visitors:
        country_user = make_user(v.visitor_id, plan, rng, start, end, v.ts, cfg.cookie_share, device_serial,
                                 profile=profile)
        home = plan.networks[country_user.home_network]
        device = country_user.devices[0]
        session_serial[0] += 1
        _append(cols, v.ts, "signup", v.visitor_id, plan.address(home_index(country_user), rng),
                device.ua(v.ts), device.cookie_at(v.ts), session_serial[0], (), None)
        cols["experiment"][-1] = EXPERIMENT
        cols["variant"][-1] = v.variant
        cols["converted"][-1] = v.converted
        if v.converted:
            country_user.enrolled = enrolled_at_signup(v.variant, home.country, rng)
            users.append(country_user)

    for user in tqdm(users, desc="simulating users", unit=" users", disable=not progress, mininterval=1.0):
        country = user.country
        legit = user_events(user, plan, rng, warm_start, end, session_serial)
        # a typo belongs to the period of the login it precedes (same session)
        warm_sessions = {e.session for e in legit if not e.failed and e.ts < start}
        phone = phone_for(user.user_id, country, cfg.seed)
        for e in legit:
            b = None if e.failed else simulate_challenge(user.enrolled[0], country, True, rng)
            _append(cols, e.ts, "failed_password" if e.failed else "login", user.user_id, e.ip, e.ua,
                    e.device_id, e.session, user.enrolled, b, warmup=e.session in warm_sessions,
                    rtt=e.rtt, traits=user.traits, phone=phone)
    by_id = {u.user_id: u for u in users}
    attack_events = attack_mod.stuffing(users, plan, rng, start, end, device_serial, session_serial,
                                        cfg.attack_intensity)
    attack_events += attack_mod.takeovers(users, plan, rng, start, end, device_serial, session_serial,
                                          cfg.ato_share * cfg.attack_intensity, profile)
    for a in attack_events:
        victim = by_id.get(a.user_id)
        enrolled = victim.enrolled if victim is not None else ()
        b = None if a.failed else simulate_challenge(enrolled[0] if enrolled else "sms", "", False, rng)
        # an OTP for a takeover goes to the victim's phone
        phone = phone_for(victim.user_id, victim.country, cfg.seed) if victim is not None else None
        _append(cols, a.ts, "failed_password" if a.failed else "login", a.user_id, a.ip, a.ua, None,
                a.session, enrolled, b, a.family, True, rtt=a.rtt, phone=phone)
    for p in pumping(plan, cfg.seed, start, end, session_serial, device_serial, cfg.pumping_waves):
        # the ring never enters a code (its own stream: the events above are unchanged)
        _append(cols, p.ts, "login", p.user_id, p.ip, p.ua, None, p.session, ("sms",),
                ChallengeBehaviour(False, ("sms",), "abandoned", 0, None, False), PUMPING_FAMILY, True,
                rtt=p.rtt, phone=p.phone)

    events, labels = build_frames(cols)
    warm = labels.filter(pl.col("warmup"))
    manifest = {
        "config": cfg.key(),
        "format": fmt,
        "rows": events.height,
        "logins": int((events["kind"] == "login").sum()),
        "failed_passwords": int((events["kind"] == "failed_password").sum()),
        "signups": int((events["kind"] == "signup").sum()),
        "attack_logins": {f: int(((labels["attack_family"] == f) & (labels["kind"] == "login")).sum())
                          for f in (*attack_mod.FAMILIES, PUMPING_FAMILY)},
        "asn_db": ASN_FILE,
        "window": [cfg.start, datetime.fromtimestamp(end, UTC).date().isoformat()],
        "warmup": {
            "window": [datetime.fromtimestamp(warm_start, UTC).date().isoformat(), cfg.start],
            "rows": warm.height,
            "logins": int((warm["kind"] == "login").sum()),
        },
    }
    return write_outputs(out, events, labels, fmt, cfg.seed, manifest)


def home_index(user: User) -> int:
    return user.home_network


def existing_run(out: str | Path, config: SimulationConfig, fmt: str = "both") -> bool:
    """Whether ``out`` already holds a complete run with exactly these parameters."""
    import json

    path = Path(out) / MANIFEST_FILE
    if not path.exists():
        return False
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("config") != config.key():
        return False
    return manifest.get("format") in (fmt, "both")
