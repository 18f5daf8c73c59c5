"""A small labelled login stream in the native events layout, for tests, notebooks and docs.

Not the simulator (``riskengine simulate`` models a whole service and needs a one-off
GeoLite2 sampling pass): this writes in a second a few thousand logins whose addresses the
built-in GeoLite2-City resolves. Users log in from home, on their own devices, around their
own hour; attackers log in from abroad or from elsewhere at home on another browser,
sometimes after failed passwords; optional signups exercise the ``signup_2fa`` experiment.
Deterministic per seed.

>>> import tempfile
>>> events, labels = write_sample(tempfile.mkdtemp(), users=5, days=3)
>>> events.name, labels.name
('events.parquet', 'labels.parquet')
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from riskengine._extras import extra

with extra("model", feature="model training (riskengine model)"):
    import numpy as np
    import polars as pl

from riskengine.core.engine import assign_variant
from riskengine.offline.simulate.experiment import EXPERIMENT, VARIANTS, signup_conversion
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE

HOME_IPS = ["81.2.69.160", "2.125.160.216", "89.160.20.112", "5.61.0.1", "24.48.0.1", "152.216.7.110",
            "193.0.6.139", "213.180.204.1"]
ABROAD_IPS = ["175.16.199.0", "41.203.64.1", "77.88.55.60", "61.135.169.121", "200.160.2.3"]
ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0.0.0 Mobile Safari/537.36")
EDGE = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0")
LINUX_FF = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
UAS = [CHROME_WIN, FIREFOX_MAC, IPHONE, ANDROID]
ATTACK_UAS = [EDGE, LINUX_FF, ANDROID]
START = datetime(2025, 9, 1, tzinfo=UTC)


def write_sample(out: str | Path, *, users: int = 80, days: int = 42, seed: int = 1,
                 attack_share: float = 0.04, visitors: int = 0, signup_drop: float = 0.10) -> tuple[Path, Path]:
    """Write ``events.parquet`` + ``labels.parquet`` into ``out``; return their paths.

    ``visitors`` > 0 adds signups to the ``signup_2fa`` experiment (arms by the engine's
    own hash; ``mfa_at_signup`` converts ``1 - signup_drop`` times as often).
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    rows: list[tuple[object, ...]] = []
    fam: list[str | None] = []
    signup_rows: list[tuple[datetime, str, str, str, str, bool]] = []
    experiment: dict[int, tuple[str, bool]] = {}

    def add(ts: datetime, kind: str, user: str, ip: str, ua: str, device: str | None, ok: bool,
            family: str | None) -> None:
        rows.append((ts, kind, user, ip, ua, device, f"s{len(rows)}", ["sms"], ok if kind == "login" else None))
        fam.append(family)

    for u in range(users):
        user = f"u{u:03d}"
        home = HOME_IPS[u % len(HOME_IPS)]
        ua = UAS[u % len(UAS)]
        device = f"dev-{u}" if u % 2 else None
        hour = int(rng.integers(7, 21))
        for day in range(days):
            if rng.random() < 0.35:
                continue
            ts = START + timedelta(days=day, hours=hour, minutes=float(rng.uniform(0, 50)))
            if rng.random() < 0.05:
                add(ts - timedelta(minutes=1), "failed_password", user, home, ua, device, False, None)
            if rng.random() < 0.03:  # a legitimate trip or a new phone
                add(ts, "login", user, HOME_IPS[(u + 3) % len(HOME_IPS)], UAS[(u + 1) % len(UAS)], None, True, None)
            else:
                add(ts, "login", user, home, ua, device, True, None)
            if rng.random() < attack_share:
                at = ts + timedelta(hours=float(rng.uniform(2, 9)))
                foreign = rng.random() < 0.6
                ip = ABROAD_IPS[int(rng.integers(len(ABROAD_IPS)))] if foreign else \
                    HOME_IPS[(u + 1) % len(HOME_IPS)]
                attack_ua = ATTACK_UAS[int(rng.integers(len(ATTACK_UAS)))]
                for k in range(int(rng.integers(0, 5))):
                    add(at - timedelta(minutes=5 - k), "failed_password", user, ip, attack_ua, None, False,
                        "ato_foreign" if foreign else "ato_domestic")
                add(at, "login", user, ip, attack_ua, None, False, "ato_foreign" if foreign else "ato_domestic")
    if visitors:
        for k in range(visitors):
            visitor = f"n{k:05d}"
            variant = assign_variant(EXPERIMENT, visitor, VARIANTS)
            converted = bool(rng.random() < signup_conversion(variant, signup_drop))
            ts = START + timedelta(days=float(rng.uniform(0, days - 1)))
            signup_rows.append((ts, visitor, HOME_IPS[k % len(HOME_IPS)], UAS[k % len(UAS)], variant, converted))
    for ts, visitor, ip, ua, variant, converted in signup_rows:
        add(ts, "signup", visitor, ip, ua, None, False, None)
        experiment[len(rows) - 1] = (variant, converted)
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])  # type: ignore[arg-type,return-value]
    exp_cols = [experiment.get(i) for i in order]
    rows = [rows[i] for i in order]
    fam = [fam[i] for i in order]
    events = pl.DataFrame(rows, orient="row", schema={
        "event_time": pl.Datetime("us", "UTC"), "kind": pl.Utf8, "user_id": pl.Utf8, "ip": pl.Utf8,
        "user_agent": pl.Utf8, "device_id": pl.Utf8, "session_id": pl.Utf8,
        "enrolled_factors": pl.List(pl.Utf8), "would_pass": pl.Boolean,
    }).with_columns(
        pl.Series("experiment", ["signup_2fa" if e else None for e in exp_cols], dtype=pl.Utf8),
        pl.Series("variant", [e[0] if e else None for e in exp_cols], dtype=pl.Utf8),
        pl.Series("converted", [e[1] if e else None for e in exp_cols], dtype=pl.Boolean),
    ).with_row_index("event_id").with_columns(pl.col("event_id").cast(pl.Int64))
    is_login = (pl.col("kind") == "login").cast(pl.Int32)
    labels = events.select(
        pl.col("event_id").alias("index"), "kind", "user_id",
        pl.Series("attack_family", fam, dtype=pl.Utf8),
    ).with_columns(
        pl.col("attack_family").is_not_null().alias("is_attack"),
        ((is_login.cum_sum().over("user_id") - is_login) >= 5).alias("established"),
    )
    out.mkdir(parents=True, exist_ok=True)
    events.write_parquet(out / "events.parquet")
    labels.write_parquet(out / "labels.parquet")
    return out / "events.parquet", out / "labels.parquet"
