"""Replay's global pre-pass: the cross-user state, computed once in input order.

``riskengine replay`` scores each user's logins in one partition's engine (``--workers``,
``--scheduler``), and a partition cannot see other users' events. What crosses users is
computed here, over the whole input in file order, and handed to every row as columns —
the serial path (``--workers 1``) runs the very same pre-pass, so every worker count writes
the same bytes:

- ``_ipf``: failed passwords from the login's address (its failure key: the address, or
  its IPv6 ``failures.ipv6_prefix`` network) within the failure window, counted in the
  memory store's own counter type (same window, same per-key cap, same least-recently-touched
  eviction), so the count is the serial engine's;
- ``_popc`` / ``_popt``: the population prior in effect: the forward-decayed count of the
  login's country and of all countries, from the *input's* logins of established users
  (``coldstart.min_logins`` earlier logins in the file), as a snapshot taken at each hour
  of event time. This is the one place replay differs from ``score()`` online: the online
  prior learns only the logins this engine accepted, which depends on every user's
  decisions and so cannot be computed ahead; replay's prior is the input's population;
- ``_bg0`` … ``_bg4``: the Freeman et al. baseline's population probabilities per feature;
- ``_ts``: the row's time (epoch microseconds, parsed and range-checked once), ``_row``
  (input row number) and ``_part`` (the user's partition).

Experiment assignment needs nothing here: it is a hash of (experiment, user).
Validation errors name the row's index and column, as the serial replay always did.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Final

from riskengine._extras import extra

with extra("sim", feature="riskengine replay"):
    import polars as pl

from riskengine.core.attempt import (
    EARLIEST_TIME,
    LATEST_TIME,
    MAX_ID_LENGTH,
    MAX_USER_AGENT_LENGTH,
)
from riskengine.core.engine import Engine
from riskengine.core.identity import checked, normalizer
from riskengine.core.stores.memory import _Counters
from riskengine.offline.baseline import FreemanBaseline

SHARED_COLUMNS: Final = ("_row", "_part", "_ts", "_ipf", "_popc", "_popt", "_bg0", "_bg1", "_bg2", "_bg3", "_bg4")
DEFAULT_PARTITIONS: Final = 16
_HOUR_S: Final = 3600.0
_LANDMARK: Final = 1_735_689_600.0  # the engine's forward-decay landmark (population.py)


def partition_of(user_id: str, partitions: int) -> int:
    """The partition of a (normalised) user id: stable across processes, machines and Python
    versions (BLAKE2b, not ``hash()``), so any executor — processes, Dask, later Ray or
    Spark — can be handed the same partitions."""
    digest = hashlib.blake2b(user_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def baseline_features(engine: Engine, ip: str, ua: str, country: str | None,
                      asn: int | None) -> tuple[Any, ...]:
    """The Freeman baseline's feature values of one login (ip, ASN, country, browser, OS)."""
    parsed = engine.ua.parse(ua)
    browser = f"{parsed.browser_family} {parsed.browser_version.split('.')[0]}"
    return (ip, asn, country, browser, parsed.os_family)


def geo_country_asn(engine: Engine, ip: str) -> tuple[str | None, int | None]:
    found, _ = engine.geoip.lookup(ip)
    return (found.country, found.asn) if found is not None else (None, None)


class SharedPass:
    """Adds the cross-user columns to each batch, in input order (one instance per input)."""

    def __init__(self, engine: Engine, fmt: str, *, baseline: bool, partitions: int = DEFAULT_PARTITIONS) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        s = engine.settings
        self.engine = engine
        self.fmt = fmt
        self.partitions = partitions
        self._uid = normalizer(s.identity.normalize_user_id)
        self._window = s.failures.window_minutes * 60.0
        self._ips = _Counters(s.store.max_counters)
        self._cold_min = s.coldstart.min_logins
        self._half_life_s = s.geo.population_half_life_days * 86_400.0
        self._logins: dict[str, int] = {}
        self._pop: dict[str, float] = {}
        self._pop_total = 0.0
        self._snap: dict[str, float] = {}
        self._snap_total = 0.0
        self._snap_hour = float("-inf")
        self._baseline = FreemanBaseline() if baseline else None
        self._parts: dict[str, tuple[str, int]] = {}
        self.rows = 0

    def _user(self, raw: str) -> tuple[str, int]:
        known = self._parts.get(raw)
        if known is None:
            uid = checked(self._uid, raw)
            known = self._parts[raw] = (uid, partition_of(uid, self.partitions))
        return known

    def _weight(self, now: float) -> float:
        exponent = (now - _LANDMARK) / self._half_life_s
        return float(2.0 ** max(-1000.0, min(1000.0, exponent)))

    def _population(self, uid: str, country: str | None, now: float) -> tuple[float, float]:
        """The prior in effect at ``now`` (the snapshot of the hour), then this login's share."""
        hour = now // _HOUR_S
        if hour > self._snap_hour:
            self._snap, self._snap_total, self._snap_hour = dict(self._pop), self._pop_total, hour
        seen = self._logins.get(uid, 0)
        self._logins[uid] = seen + 1
        count = self._snap.get(country, 0.0) if country is not None else 0.0
        if country is not None and seen >= self._cold_min:
            w = self._weight(now)
            self._pop[country] = self._pop.get(country, 0.0) + w
            self._pop_total += w
        return count, self._snap_total

    def run(self, b: pl.DataFrame, ts_micros: list[int | None], scored: list[bool], failed: list[bool],
            ips: list[str | None], countries: list[str | None], asns: list[int | None],
            users: list[str | None]) -> pl.DataFrame:
        """``b`` with the shared columns. The per-row lists are the batch's validated values:
        ``scored`` (a login), ``failed`` (a failed password), canonical ``ips``, the given
        ``countries``/``asns`` (None: GeoIP decides, as in the engine)."""
        n = b.height
        engine = self.engine
        window = self._window
        parts = [0] * n
        ipf: list[int | None] = [None] * n
        popc: list[float | None] = [None] * n
        popt: list[float | None] = [None] * n
        bg: list[list[float | None]] = [[None] * n for _ in range(5)]
        ua_col = b["User Agent String" if self.fmt == "rba" else "user_agent"].fill_null("") \
            .str.strip_chars().str.slice(0, MAX_USER_AGENT_LENGTH).to_list()
        fkey = engine.failure_key
        for i in range(n):
            raw = users[i]
            if raw is None:
                continue
            uid, parts[i] = self._user(raw)
            if failed[i]:
                at = ts_micros[i] / 1e6  # type: ignore[operator]
                ip = ips[i]
                assert ip is not None
                self._ips.add(fkey(ip), at, at - window)
                continue
            if not scored[i]:
                continue
            now = ts_micros[i] / 1e6  # type: ignore[operator]
            ip = ips[i]
            assert ip is not None
            ipf[i] = self._ips.count(fkey(ip), now - window)
            country, asn = countries[i], asns[i]
            if self.fmt == "native" or country is None:
                geo_country, geo_asn = geo_country_asn(engine, ip)
                if country is None:
                    country = geo_country
                if self.fmt == "native":
                    asn = geo_asn
            popc[i], popt[i] = self._population(uid, country, now)
            if self._baseline is not None:
                if self.fmt == "rba":  # the RBA baseline reads the file's own columns
                    country, asn = countries[i], asns[i]
                p = self._baseline.global_probabilities(baseline_features(engine, ip, ua_col[i], country, asn))
                for k in range(5):
                    bg[k][i] = p[k]
        first = self.rows
        self.rows += n
        return b.with_columns(
            pl.Series("_row", range(first, first + n), pl.Int64),
            pl.Series("_part", parts, pl.Int32),
            pl.Series("_ts", ts_micros, pl.Int64),
            pl.Series("_ipf", ipf, pl.Int64),
            pl.Series("_popc", popc, pl.Float64),
            pl.Series("_popt", popt, pl.Float64),
            *(pl.Series(f"_bg{k}", bg[k], pl.Float64) for k in range(5)),
        )


def rba_micros(values: list[str | None], ids: list[Any]) -> list[int | None]:
    """``Login Timestamp`` strings → epoch microseconds (naive is UTC), each range-checked."""
    out: list[int | None] = []
    for i, value in enumerate(values):
        if value is None:
            raise ValueError(f"replay input row with index {ids[i]}: 'Login Timestamp' is missing")
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"replay input row with index {ids[i]}: 'Login Timestamp' "
                             f"is not an ISO 8601 time: {value[:40]!r}") from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        if not EARLIEST_TIME <= ts < LATEST_TIME:
            raise ValueError(f"replay input row with index {ids[i]}: 'Login Timestamp' must be between "
                             f"{EARLIEST_TIME.date()} and {LATEST_TIME.date()} UTC")
        delta = ts - _EPOCH
        out.append((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    return out


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_USER_ID: Final = MAX_ID_LENGTH
