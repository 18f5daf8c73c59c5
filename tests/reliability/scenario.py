"""Deterministic per-user login stories for the load tests (also run by worker processes).

Each user's story is drawn from ``random.Random(user index)`` before anything is scored, so
the same user gets the same events whatever thread or process plays them, and whatever the
other users do. Users never share an IP, so per-IP failure counts are per-user too: any
difference between a concurrent run and a single-threaded run is a lost or torn update.

Run as a script: ``python scenario.py CONFIG_JSON FIRST LAST`` plays users FIRST..LAST-1
with an engine built from the JSON settings and prints one JSON line per user.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from riskengine import Engine
from riskengine.testing import CHANGCHUN, CHROME_WIN, EDINBURGH, FIREFOX_MAC, IPHONE, LONDON, MANCHESTER, PARIS

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PLACES = [LONDON, LONDON, LONDON, MANCHESTER, EDINBURGH, PARIS, CHANGCHUN]
AGENTS = [CHROME_WIN, CHROME_WIN, CHROME_WIN, FIREFOX_MAC, IPHONE]


@dataclass(frozen=True)
class Event:
    kind: str  # "login" or "fail"
    ts: datetime
    place: dict[str, Any]
    ua: str
    verified: bool
    attempts: int
    trust: bool
    channels: tuple[str, ...]


def user_id(index: int) -> str:
    return f"user{index:05d}"


def ip_of(index: int) -> str:
    return f"100.{64 + index // 65536 % 64}.{index // 256 % 256}.{index % 256}"


def story(index: int, events: int) -> list[Event]:
    rng = random.Random(index)
    ts = START + timedelta(minutes=rng.randrange(0, 600))
    out: list[Event] = []
    for _ in range(events):
        step = timedelta(hours=rng.choice([1, 5, 20, 24, 24, 26, 48]))
        if rng.random() < 0.08:
            step = -timedelta(minutes=rng.randrange(1, 90))  # out of order (clock skew)
        ts = ts + step
        kind = "fail" if rng.random() < 0.12 else "login"
        out.append(Event(
            kind, ts, rng.choice(PLACES) if rng.random() < 0.25 else LONDON,
            rng.choice(AGENTS) if rng.random() < 0.2 else CHROME_WIN,
            verified=rng.random() < 0.8, attempts=rng.randrange(1, 4), trust=rng.random() < 0.3,
            channels=tuple(rng.sample(["whatsapp", "sms", "voice"], rng.randrange(1, 3)))))
    return out


def play(engine: Engine, index: int, events: int) -> list[tuple[str, float, tuple[str, ...], str | None]]:
    """Play one user's story; return what the engine decided at each login."""
    uid, ip = user_id(index), ip_of(index)
    seen: list[tuple[str, float, tuple[str, ...], str | None]] = []
    for e in story(index, events):
        if e.kind == "fail":
            for i in range(4):
                engine.record_failure(uid, ip, e.ts + timedelta(seconds=i))
            continue
        d = engine.score({"user_id": uid, "timestamp": e.ts, "ip": ip, "user_agent": e.ua,
                          "session_id": f"s-{uid}-{e.ts.timestamp():.0f}", **e.place})
        seen.append((d.action, round(d.risk, 9), d.reason_codes, d.factor))
        if d.action == "challenge":
            engine.record_outcome(
                d.decision_id, "verified" if e.verified else "failed", channels=e.channels,  # type: ignore[arg-type]
                attempts=e.attempts, trust_device=e.trust and e.verified,
                timestamp=e.ts + timedelta(seconds=30))
    return seen


def counts(indices: range, events: int) -> dict[str, int]:
    """How many audit rows each table must hold after playing these users (from the stories
    alone for failures; decisions and challenges are counted by the caller)."""
    fails = sum(4 for i in indices for e in story(i, events) if e.kind == "fail")
    logins = sum(1 for i in indices for e in story(i, events) if e.kind == "login")
    return {"failures": fails, "decisions": logins}


if __name__ == "__main__":
    settings, first, last, n_events = json.loads(sys.argv[1]), *map(int, sys.argv[2:5])
    with Engine.from_config(settings) as eng:
        for i in range(first, last):
            print(json.dumps([i, play(eng, i, n_events)]), flush=True)
        health = eng.health()
    print(json.dumps(["health", health]), flush=True)
