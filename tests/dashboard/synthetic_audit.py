"""A small, realistic audit root for the dashboard tests, made by the real Engine.

A few hundred logins of ~70 users over two weeks (plus a credential-stuffing burst) are
scored by :class:`riskengine.Engine` writing to a Parquet audit root; every event is also
kept in a :class:`MemorySink` so tests can count the expected numbers themselves, without
going through ``riskengine.analytics``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from riskengine import Engine
from riskengine.audit import SCHEMA_VERSION
from riskengine.audit.base import AuditSink, MemorySink, Row
from riskengine.audit.parquet import ParquetSink
from riskengine.core.engine import assign_variant
from riskengine.testing import (
    CHANGCHUN,
    CHROME_WIN,
    EDINBURGH,
    FIREFOX_MAC,
    IPHONE,
    LONDON,
    MANCHESTER,
    PARIS,
    offline_settings,
)

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
DAYS = 21
MAIN_EXPERIMENT = "signup_2fa"
SKEWED_EXPERIMENT = "otp_copy"
HOMES = (LONDON, MANCHESTER, EDINBURGH, PARIS)
AGENTS = (CHROME_WIN, FIREFOX_MAC, IPHONE)
ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0.0.0 Mobile Safari/537.36")
FALLBACK_PATHS: tuple[tuple[tuple[str, ...], str, float], ...] = (
    # (channel path, outcome, probability) for legitimate users; the rest abandon
    (("whatsapp",), "verified", 0.55),
    (("whatsapp", "sms"), "verified", 0.2),
    (("whatsapp", "sms", "voice"), "verified", 0.07),
    (("whatsapp", "sms"), "failed", 0.08),
)


class TeeSink:
    """Sends every event to the real sink and keeps a copy in memory."""

    def __init__(self, real: AuditSink) -> None:
        self.real = real
        self.copy = MemorySink()

    def emit(self, table: str, row: Row) -> None:
        self.copy.emit(table, dict(row))
        self.real.emit(table, row)

    def flush(self) -> None:
        self.real.flush()

    def close(self) -> None:
        self.real.close()

    @property
    def dropped(self) -> int:
        return self.real.dropped


@dataclass
class SyntheticAudit:
    """The audit root and every event written to it (as dict rows per table)."""

    root: Path
    labels_path: Path
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def frame(self, table: str) -> pl.DataFrame:
        return pl.DataFrame(self.rows.get(table, []), infer_schema_length=None)


PUMPING_WAVE_SENDS = 60


def build(root: Path, seed: int = 7) -> SyntheticAudit:
    """Score the synthetic traffic into ``root`` and return what was written."""
    rng = random.Random(seed)
    real = ParquetSink(root, flush_seconds=60.0, flush_rows=100_000, buffer_rows=1_000_000)

    settings = offline_settings(audit={"root": str(root)})
    tee = TeeSink(real)
    attack_decisions: set[str] = set()
    all_decisions: list[str] = []
    with Engine(settings, sink=tee) as engine:
        users = [f"user{i:03d}" for i in range(70)]
        home = {u: rng.choice(HOMES) for u in users}
        agent = {u: rng.choice(AGENTS) for u in users}
        events: list[tuple[datetime, str, str]] = []
        for u in users:
            for day in range(DAYS):
                if rng.random() < 0.5:
                    ts = START + timedelta(days=day, hours=rng.choice((8, 9, 10, 19)),
                                           minutes=rng.randrange(60))
                    events.append((ts, u, "normal"))
        # a credential-stuffing burst on day 10 from one foreign network
        for _ in range(45):
            ts = START + timedelta(days=10, hours=3, minutes=rng.randrange(60))
            events.append((ts, rng.choice(users), "attack"))
        events.sort()
        exposed: set[tuple[str, str]] = set()
        for ts, u, kind in events:
            place: dict[str, Any] = dict(home[u])
            ua = agent[u]
            device = f"dev-{u}"
            ip = f"81.2.{users.index(u)}.{10 + users.index(u)}"
            if kind == "attack":
                place, ua, device, ip = dict(CHANGCHUN), ANDROID, f"bot-{rng.randrange(10**6)}", "1.180.0.7"
                for k in range(rng.randrange(0, 12)):
                    engine.record_failure(u, ip, ts - timedelta(seconds=30 + k))
            elif rng.random() < 0.1:
                device = f"dev-{u}-new{rng.randrange(1000)}"
                ua = rng.choice(AGENTS)
            elif rng.random() < 0.04:
                place = dict(PARIS if home[u] is not PARIS else LONDON)
            d = engine.score({"user_id": u, "timestamp": ts, "ip": ip, "user_agent": ua,
                              "device_id": device, "session_id": f"s-{u}-{ts.timestamp():.0f}",
                              "enrolled_factors": ("whatsapp", "sms", "voice"), **place})
            all_decisions.append(d.decision_id)
            if kind == "attack":
                attack_decisions.add(d.decision_id)
            if d.action == "challenge":
                # the OTP send check (no rng draw: the rest of the traffic stays as it was)
                idx = users.index(u)
                dest = f"+336123456{idx:02d}" if home[u] is PARIS else f"+4474001234{idx:02d}"
                engine.check_send(d.decision_id, "sms", dest, now=ts)
                _outcome(engine, rng, d.decision_id, ts, attacker=kind == "attack")
            if kind == "normal" and (u, MAIN_EXPERIMENT) not in exposed:
                exposed.add((u, MAIN_EXPERIMENT))
                variant = engine.assign(MAIN_EXPERIMENT, u, {"control": 0.5, "mfa_at_signup": 0.5}, ts)
                if rng.random() < (0.3 if variant == "control" else 0.45):
                    engine.record_conversion(MAIN_EXPERIMENT, u, ts + timedelta(minutes=5))
                # a 50/50 design whose short_code arm loses most exposure events (a logging bug):
                # the readout must flag a sample-ratio mismatch
                design = {"control": 0.5, "short_code": 0.5}
                lost = assign_variant(SKEWED_EXPERIMENT, u, design) == "short_code" and rng.random() < 0.8
                if not lost:
                    engine.assign(SKEWED_EXPERIMENT, u, design, ts)
                    if rng.random() < 0.5:
                        engine.record_conversion(SKEWED_EXPERIMENT, u, ts + timedelta(minutes=7))
        # an SMS pumping wave on day 12: 60 unverified sends to Uzbek numbers in one hour (sends
        # rows only, as the engine writes them, so the login traffic above is unchanged)
        wave = START + timedelta(days=12, hours=2)
        for i in range(PUMPING_WAVE_SENDS):
            tee.emit("sends", {
                "event_time": wave + timedelta(seconds=55 * i), "schema_version": SCHEMA_VERSION,
                "decision_id": f"pump-{i}", "user_key": f"fresh-{i}", "channel": "sms", "dest_country": "UZ",
                "dest_prefix": "+99890", "number_type": "mobile", "action": "allow", "reasons": [],
                "price": engine.settings.sms.price_per_country["UZ"], "verified": False})
    rows = {t: tee.copy.rows(t) for t in ("decisions", "challenges", "failures", "exposures", "conversions",
                                          "sends")}
    labels_path = root.parent / f"{root.name}-labels.csv"
    pl.DataFrame({"decision_id": all_decisions,
                  "is_attack": [i in attack_decisions for i in all_decisions]}).write_csv(labels_path)
    return SyntheticAudit(root=root, labels_path=labels_path, rows=rows)


def _outcome(engine: Engine, rng: random.Random, decision_id: str, ts: datetime, *, attacker: bool) -> None:
    if attacker:
        channels: tuple[str, ...] = ("sms",)
        outcome = rng.choice(("failed", "abandoned", "expired"))
    else:
        pick = rng.random()
        channels, outcome = ("whatsapp",), "abandoned"
        for path, result, p in FALLBACK_PATHS:
            if pick < p:
                channels, outcome = path, result
                break
            pick -= p
    seconds = rng.uniform(6, 25) * len(channels) if outcome == "verified" else None
    engine.record_outcome(decision_id, outcome, channels, attempts=len(channels),  # type: ignore[arg-type]
                          seconds_to_verify=seconds,
                          timestamp=ts + timedelta(seconds=seconds or 120.0))


def _window(frame: pl.DataFrame, since: date | None, until: date | None, countries: tuple[str, ...] = ()
            ) -> pl.DataFrame:
    if since is not None:
        frame = frame.filter(pl.col("event_time") >= datetime.combine(since, datetime.min.time(), UTC))
    if until is not None:
        end = datetime.combine(until, datetime.min.time(), UTC) + timedelta(days=1)
        frame = frame.filter(pl.col("event_time") < end)
    if countries:
        frame = frame.filter(pl.col("country").is_in(countries))
    return frame


def expected(s: SyntheticAudit, since: date | None = None, until: date | None = None,
             countries: tuple[str, ...] = ()) -> dict[str, float]:
    d = _window(s.frame("decisions"), since, until, countries)
    c = _window(s.frame("challenges"), since, until, countries)
    challenged = d.filter(pl.col("action") == "challenge").height
    denied = d.filter(pl.col("action") == "deny").height
    verified = c.filter(pl.col("outcome") == "verified").height
    fallback = c.filter(pl.col("channels").list.len() > 1).height
    return {
        "logins": d.height, "challenged": challenged, "denied": denied, "challenges": c.height,
        "verified": verified,
        "challenge_rate": (challenged + denied) / d.height,
        "deny_rate": denied / d.height,
        "challenge_success_rate": verified / c.height,
        "fallback_rate": fallback / c.height,
    }
