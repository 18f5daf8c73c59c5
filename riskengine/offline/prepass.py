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
  (``coldstart.min_logins`` earlier logins in the file; sensitive events — recovery, factor
  change, password reset — neither add nor count, as online), as a snapshot taken at each hour
  of event time. This is the one place replay differs from ``score()`` online: the online
  prior learns only the logins this engine accepted, which depends on every user's
  decisions and so cannot be computed ahead; replay's prior is the input's population;
- ``_hst``: the store's history start (``ProfileStore.history_start``) as a fresh store
  replaying this input would have it — the time of the input's first login (the first
  ``score()`` sets it online) — in every row, since a partition's engine never sees that
  login; what ``DORMANT_ACCOUNT`` measures from;
- ``_bg0`` … ``_bg4``: the Freeman et al. baseline's population probabilities per feature;
- ``_ts``: the row's time (epoch microseconds, parsed and range-checked once), ``_row``
  (input row number) and ``_part`` (the user's partition).

Experiment assignment needs nothing here: it is a hash of (experiment, user).
Validation errors name the row's index and column, as the serial replay always did.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from riskengine._extras import extra

with extra("sim", feature="riskengine replay"):
    import numpy as np
    import polars as pl

from riskengine.core.attempt import (
    EARLIEST_TIME,
    LATEST_TIME,
    MAX_ID_LENGTH,
    MAX_USER_AGENT_LENGTH,
)
from riskengine.core.engine import Engine
from riskengine.core.identity import checked, normalizer
from riskengine.core.stores.memory import _MAX_EVENTS_PER_KEY, _Counters
from riskengine.offline.baseline import FreemanBaseline

SHARED_COLUMNS: Final = ("_row", "_part", "_ts", "_ipf", "_popc", "_popt", "_hst", "_bg0", "_bg1", "_bg2", "_bg3",
                         "_bg4")
DEFAULT_PARTITIONS: Final = 16
_HOUR_S: Final = 3600.0
_LANDMARK: Final = 1_735_689_600.0  # the engine's forward-decay landmark (population.py)
_HOUR_US: Final = 3_600_000_000
_HOUR_FLOOR: Final = -(2**62)  # before any hour: the snapshot is taken at the first login
_MAX_MEMO: Final = 1 << 20  # distinct addresses / user agents remembered across batches


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


class _PassState:
    """What both pre-passes keep between batches (the population prior, failure counters,
    users' partitions), set up once from the engine's settings."""

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
        self._baseline = FreemanBaseline() if baseline else None
        self._parts: dict[str, tuple[str, int]] = {}
        self.rows = 0
        self.history_start: float | None = None
        """The input's first login's time (epoch seconds): ``_hst``."""

    def _history_column(self, first_micros: int | None, n: int) -> pl.Series:
        if self.history_start is None and first_micros is not None:
            self.history_start = first_micros / 1e6
        return pl.repeat(self.history_start, n, dtype=pl.Float64, eager=True).alias("_hst")

    def _user(self, raw: str) -> tuple[str, int]:
        known = self._parts.get(raw)
        if known is None:
            uid = checked(self._uid, raw)
            known = self._parts[raw] = (uid, partition_of(uid, self.partitions))
        return known


class SharedPass(_PassState):
    """Adds the cross-user columns to each batch, in input order (one instance per input).

    Columnar (polars) over each batch, carrying between batches exactly the state the
    per-row computation (:class:`ReferencePass`) keeps: the failure counter (the memory
    store's own type), the population sums, the snapshot, each user's login count and the
    baseline's population counts. Python loops run over a batch's *distinct* users,
    addresses, user agents and failure keys, never over its rows. The failure counts take
    the columnar path when it is provably the counter's result — every key's failures in
    time order within the batch and after its earlier ones, no login earlier than a failure
    of its key before it, and no key evicted (fewer than ``store.max_counters`` keys) —
    and otherwise the counter itself, row by row, for that batch.
    """

    def __init__(self, engine: Engine, fmt: str, *, baseline: bool, partitions: int = DEFAULT_PARTITIONS) -> None:
        super().__init__(engine, fmt, baseline=baseline, partitions=partitions)
        self._snap_hour: int | None = None
        self._geo: dict[str, tuple[str | None, int | None]] = {}
        self._agents: dict[str, tuple[str, str]] = {}
        self.exact_batches = 0
        """Batches whose failure counts needed the row-by-row counter (out-of-order or evicting)."""

    # ------------------------------------------------------------ distinct-value lookups
    def _geo_of(self, ip: str) -> tuple[str | None, int | None]:
        known = self._geo.get(ip)
        if known is None:
            if len(self._geo) >= _MAX_MEMO:
                self._geo.clear()
            known = self._geo[ip] = geo_country_asn(self.engine, ip)
        return known

    def _agent(self, ua: str) -> tuple[str, str]:
        known = self._agents.get(ua)
        if known is None:
            if len(self._agents) >= _MAX_MEMO:
                self._agents.clear()
            parsed = self.engine.ua.parse(ua)
            known = self._agents[ua] = (f"{parsed.browser_family} {parsed.browser_version.split('.')[0]}",
                                        parsed.os_family)
        return known

    # ------------------------------------------------------------ the batch
    def run(self, b: pl.DataFrame, ts: pl.Series, scored: pl.Series, failed: pl.Series, ips: pl.Series,
            countries: pl.Series | None, asns: pl.Series | None, users: pl.Series,
            feeds: pl.Series | None = None) -> pl.DataFrame:
        """``b`` with the shared columns. The series are the batch's validated values: ``ts``
        (epoch microseconds), ``scored`` (a login), ``failed`` (a failed password), canonical
        ``ips``, the given ``countries``/``asns`` (None: GeoIP decides, as in the engine), the
        raw ``users`` (null: a row no user is attached to) and ``feeds``: the scored rows that
        may feed the population prior (None: all of them; a sensitive event never does, as
        online it never teaches the profile)."""
        n = b.height
        uid_of: dict[str, str] = {}
        part_of: dict[str, int] = {}
        for raw in users.drop_nulls().unique().to_list():
            uid_of[raw], part_of[raw] = self._user(raw)
        active = users.is_not_null()
        frame = pl.DataFrame({
            "i": pl.int_range(n, eager=True, dtype=pl.Int64),
            "ts": ts.cast(pl.Int64),
            "ip": ips.cast(pl.Utf8),
            "uid": users.replace_strict(uid_of, default=None, return_dtype=pl.Utf8),
            "part": users.replace_strict(part_of, default=0, return_dtype=pl.Int32),
            "scored": (scored & active).fill_null(False),
            "failed": (failed & active).fill_null(False),
            "feeds": True if feeds is None else feeds.fill_null(False),
        })
        ipf = self._failures(frame)
        logins = frame.filter(pl.col("scored")).select("i", "ts", "ip", "uid", "feeds")
        if logins.height:
            country, asn = self._places(logins, countries, asns)
            popc, popt = self._population(logins, country)
            bg = self._baseline_columns(logins, b, countries, asns, country, asn)
        else:
            popc = popt = pl.Series("x", [], pl.Float64)
            bg = [popc] * 5
        first = self.rows
        self.rows += n
        pos = logins["i"]

        def scatter_to_rows(name: str, values: pl.Series, dtype: Any) -> pl.Series:
            out = pl.Series(name, [None] * n, dtype)
            return out.scatter(pos, values.cast(dtype)) if pos.len() else out

        return b.with_columns(
            pl.Series("_row", range(first, first + n), pl.Int64),
            frame["part"].alias("_part"),
            frame["ts"].alias("_ts"),
            ipf.alias("_ipf"),
            scatter_to_rows("_popc", popc, pl.Float64),
            scatter_to_rows("_popt", popt, pl.Float64),
            self._history_column(_first(logins["ts"]), n),
            *(scatter_to_rows(f"_bg{k}", bg[k], pl.Float64) for k in range(5)),
        )

    # ------------------------------------------------------------ failed passwords per address
    def _failures(self, frame: pl.DataFrame) -> pl.Series:
        n = frame.height
        keyed = frame.filter(pl.col("scored") | pl.col("failed"))
        fkey = self.engine.failure_key
        keys = {ip: fkey(ip) for ip in keyed["ip"].unique().to_list()}
        keyed = keyed.with_columns(
            pl.col("ip").replace_strict(keys, return_dtype=pl.Utf8).alias("key"),
        ).with_columns(_seconds(keyed["ts"]).alias("t"))
        fails = keyed.filter(pl.col("failed")).select("i", "key", "t", "ts")
        logins = keyed.filter(pl.col("scored")).select("i", "key", "t", "ts")
        out = pl.Series("_ipf", [None] * n, pl.Int64)
        if logins.height == 0 and fails.height == 0:
            return out
        if self._columnar_failures_hold(fails, logins):
            counts = self._failures_columnar(fails, logins)
        else:
            self.exact_batches += 1
            counts = self._failures_exact(keyed)
        return out.scatter(logins["i"], counts) if logins.height else out

    def _columnar_failures_hold(self, fails: pl.DataFrame, logins: pl.DataFrame) -> bool:
        events = self._ips.events
        fail_keys = fails["key"].unique().to_list()
        if len(events) + sum(1 for k in fail_keys if k not in events) > self._ips.cap:
            return False  # the counter would evict keys during this batch
        if fails.height == 0:
            return True
        if fails.select((pl.col("ts").diff().over("key") < 0).any()).item():
            return False  # a key's failures out of time order: the counter inserts, we cannot
        firsts = fails.group_by("key").agg(pl.col("t").first())
        for key, t in firsts.iter_rows():
            earlier = events.get(key)
            if earlier and t < earlier[-1]:
                return False
        before = logins.sort("i").join_asof(fails.sort("i").select("i", "key", pl.col("ts").alias("fts")),
                                            on="i", by="key", strategy="backward", check_sortedness=False)
        return not before.select((pl.col("ts") < pl.col("fts")).any()).item()

    def _failures_columnar(self, fails: pl.DataFrame, logins: pl.DataFrame) -> pl.Series:
        """Per login: min(cap, the key's failures before it — carried or in the batch — at or
        after ``now - window``). Each key's failures are in time order (checked), so those
        before the login and those before the window are both prefixes of the sequence."""
        window = self._window
        events = self._ips.events
        keys = set(logins["key"].unique().to_list()) | set(fails["key"].unique().to_list())
        carried_k: list[str] = []
        carried_t: list[float] = []
        for key in keys:
            earlier = events.get(key)
            if earlier:
                carried_k.extend([key] * len(earlier))
                carried_t.extend(earlier)
        seq = pl.concat([
            pl.DataFrame({"key": carried_k, "t": carried_t, "i": [-1] * len(carried_k)},
                         schema={"key": pl.Utf8, "t": pl.Float64, "i": pl.Int64}),
            fails.select("key", "t", "i"),
        ]).with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("key").alias("rank"))
        since = logins.with_columns((pl.col("t") - window).alias("since"))
        before_window = since.sort("since").join_asof(
            seq.sort("t", "rank").select("key", "t", pl.col("rank").alias("n_lt")),
            left_on="since", right_on="t", by="key", strategy="backward", allow_exact_matches=False,
            check_sortedness=False).select("i", "n_lt")
        before_login = since.sort("i").join_asof(
            seq.sort("i", "rank").select("key", pl.col("i").alias("fi"), pl.col("rank").alias("n_before")),
            left_on="i", right_on="fi", by="key", strategy="backward", allow_exact_matches=False,
            check_sortedness=False).select("i", "n_before")
        counts = before_login.join(before_window, on="i").sort("i").select(
            pl.min_horizontal(
                pl.col("n_before").fill_null(0) - pl.min_horizontal(pl.col("n_before").fill_null(0),
                                                                    pl.col("n_lt").fill_null(0)),
                pl.lit(_MAX_EVENTS_PER_KEY)).alias("c"))["c"]
        # the counter after the batch: each key re-inserted in the order of its last failure
        if fails.height:
            per_key = fails.group_by("key").agg(pl.col("t"), pl.col("i").last().alias("last")).sort("last")
            for key, times, _ in per_key.iter_rows():
                earlier = events.pop(key, None) or []
                merged = earlier + times
                cut = bisect_left(merged, merged[-1] - window)
                if len(merged) - cut > _MAX_EVENTS_PER_KEY:
                    cut = len(merged) - _MAX_EVENTS_PER_KEY
                events[key] = merged[cut:]
        return counts

    def _failures_exact(self, keyed: pl.DataFrame) -> pl.Series:
        """The counter row by row (what the columnar path equals when its conditions hold)."""
        window = self._window
        counts: list[int] = []
        for key, at, is_failed in keyed.select("key", "t", "failed").iter_rows():
            if is_failed:
                self._ips.add(key, at, at - window)
            else:
                counts.append(self._ips.count(key, at - window))
        return pl.Series("c", counts, pl.Int64)

    # ------------------------------------------------------------ place and population prior
    def _places(self, logins: pl.DataFrame, countries: pl.Series | None,
                asns: pl.Series | None) -> tuple[pl.Series, pl.Series]:
        """The login's country (given, else GeoIP's; native: GeoIP's) and ASN (native: GeoIP's)."""
        pos = logins["i"]
        rba = self.fmt == "rba"
        given_c = countries.gather(pos).cast(pl.Utf8) if rba and countries is not None else None
        need = logins["ip"] if given_c is None else logins["ip"].filter(given_c.is_null())
        geo_c: dict[str, str | None] = {}
        geo_a: dict[str, int | None] = {}
        for ip in need.unique().to_list():
            geo_c[ip], geo_a[ip] = self._geo_of(ip)
        from_geo = logins["ip"].replace_strict(geo_c, default=None, return_dtype=pl.Utf8)
        if not rba:
            return from_geo, logins["ip"].replace_strict(geo_a, default=None, return_dtype=pl.Int64)
        country = from_geo if given_c is None else given_c.fill_null(from_geo)
        asn = asns.gather(pos).cast(pl.Int64) if asns is not None else pl.Series([None] * logins.height,
                                                                                 dtype=pl.Int64)
        return country, asn

    def _population(self, logins: pl.DataFrame, country: pl.Series) -> tuple[pl.Series, pl.Series]:
        """The prior in effect at each login (the snapshot taken when its hour began), then
        the login's share — the per-row recurrence, as running sums in input order."""
        m = logins.height
        carried = {u: self._logins.get(u, 0) for u in logins["uid"].unique().to_list()}
        lo = _HOUR_FLOOR if self._snap_hour is None else self._snap_hour
        feeding = pl.col("feeds").cast(pl.Int64)
        f = logins.select(
            "uid", pl.col("ts"), country.alias("c"), "feeds",
        ).with_columns(
            (pl.col("uid").replace_strict(carried, return_dtype=pl.Int64)
             + feeding.cum_sum().over("uid") - feeding).alias("seen"),
            pl.Series(np.clip((_seconds(logins["ts"]).to_numpy() - _LANDMARK) / self._half_life_s,
                              -1000.0, 1000.0)).alias("x"),
            pl.max_horizontal(pl.col("ts").floordiv(_HOUR_US), pl.lit(lo)).cum_max().alias("h"),
        ).with_columns(
            pl.when(pl.col("c").is_not_null() & pl.col("feeds") & (pl.col("seen") >= self._cold_min))
            .then(pl.lit(2.0).pow(pl.col("x"))).otherwise(0.0).alias("w"),
            (pl.col("h") > pl.col("h").shift(1, fill_value=lo)).alias("opens"),
            pl.int_range(pl.len(), dtype=pl.Int64).alias("j"),
        )
        # running total in input order (starting from the carried total: same additions, same order)
        incl = pl.concat([pl.Series([self._pop_total], dtype=pl.Float64), f["w"]]).cum_sum()
        f = f.with_columns(excl=incl.head(m))
        # per country: running sums starting from the carried sums, then the value before row j
        cs = f["c"].drop_nulls().unique().to_list()
        per_c = pl.concat([
            pl.DataFrame({"c": cs, "j": [-1] * len(cs), "w": [self._pop.get(c, 0.0) for c in cs]},
                         schema={"c": pl.Utf8, "j": pl.Int64, "w": pl.Float64}),
            f.filter(pl.col("c").is_not_null()).select("c", "j", "w"),
        ]).with_columns(pl.col("w").cum_sum().over("c").alias("cw")).select("c", "j", "cw").sort("j")
        opened = f.with_columns(pl.when(pl.col("opens")).then(pl.col("j")).forward_fill().alias("at"))
        looked = opened.filter(pl.col("at").is_not_null() & pl.col("c").is_not_null()).sort("at").join_asof(
            per_c, left_on="at", right_on="j", by="c", strategy="backward", allow_exact_matches=False,
            check_sortedness=False, suffix="_c").select("j", "cw")
        snap_c = {c: self._snap.get(c, 0.0) for c in cs}
        f = opened.join(looked, on="j", how="left").sort("j").with_columns(
            pl.when(pl.col("c").is_null()).then(0.0)
            .when(pl.col("at").is_null()).then(pl.col("c").replace_strict(snap_c, default=0.0,
                                                                         return_dtype=pl.Float64))
            .otherwise(pl.col("cw")).alias("popc"),
            pl.when(pl.col("at").is_null()).then(self._snap_total)
            .otherwise(pl.col("excl").gather(pl.col("at").fill_null(0))).alias("popt"),
        )
        # the state after the batch
        last_open = f.filter(pl.col("opens"))["j"].max()
        if last_open is not None:
            assert isinstance(last_open, int)
            snap = dict(self._pop)
            for c, cw in per_c.filter(pl.col("j") < last_open).group_by("c").agg(
                    pl.col("cw").last()).iter_rows():
                snap[c] = cw
            self._snap, self._snap_total = snap, float(incl[last_open])
        self._snap_hour = int(f["h"][-1])
        for c, cw in per_c.group_by("c").agg(pl.col("cw").last()).iter_rows():
            self._pop[c] = cw
        self._pop_total = float(incl[-1])
        for u, k in logins.group_by("uid").agg(pl.col("feeds").sum()).iter_rows():
            self._logins[u] = carried[u] + k
        return f["popc"], f["popt"]

    # ------------------------------------------------------------ Freeman baseline
    def _baseline_columns(self, logins: pl.DataFrame, b: pl.DataFrame, countries: pl.Series | None,
                          asns: pl.Series | None, country: pl.Series, asn: pl.Series) -> list[pl.Series]:
        m = logins.height
        if self._baseline is None:
            return [pl.Series([None] * m, dtype=pl.Float64)] * 5
        pos = logins["i"]
        if self.fmt == "rba":  # the RBA baseline reads the file's own columns
            country = countries.gather(pos).cast(pl.Utf8) if countries is not None else \
                pl.Series([None] * m, dtype=pl.Utf8)
            asn = asns.gather(pos).cast(pl.Int64) if asns is not None else pl.Series([None] * m, dtype=pl.Int64)
        ua = b["User Agent String" if self.fmt == "rba" else "user_agent"].gather(pos).fill_null("") \
            .str.strip_chars().str.slice(0, MAX_USER_AGENT_LENGTH)
        browser: dict[str, str] = {}
        os_family: dict[str, str] = {}
        for agent in ua.unique().to_list():
            browser[agent], os_family[agent] = self._agent(agent)
        values = [logins["ip"], asn.cast(pl.Int64), country.cast(pl.Utf8),
                  ua.replace_strict(browser, return_dtype=pl.Utf8),
                  ua.replace_strict(os_family, return_dtype=pl.Utf8)]
        base = self._baseline
        total0 = base._global_total
        out: list[pl.Series] = []
        for k, v in enumerate(values):
            counts = base._global[k]
            distinct = v.drop_nulls().unique().to_list()
            carried = {x: counts.get(x, 0) for x in distinct}
            g = pl.DataFrame({"v": v}).with_columns(
                pl.col("v").replace_strict(carried, default=0, return_dtype=pl.Int64).alias("c0"),
                pl.int_range(pl.len(), dtype=pl.Int64).over("v").alias("before"),
                (pl.col("v").is_first_distinct() & pl.col("v").is_not_null()).alias("first"),
            ).with_columns(
                (pl.col("first") & (pl.col("c0") == 0)).cast(pl.Int64).alias("new"),
            ).with_columns(
                (len(counts) + pl.col("new").cum_sum() - pl.col("new")).alias("distinct"),
                (total0 + pl.int_range(pl.len(), dtype=pl.Int64)).alias("total"),
            ).select(
                (pl.col("c0") + pl.col("before") + 1).alias("num"),
                (pl.col("total") + pl.col("distinct") + 1).alias("den"), pl.col("v").is_null().alias("null"))
            p = pl.Series(g["num"].to_numpy().astype(np.float64) / g["den"].to_numpy().astype(np.float64))
            out.append(pl.select(pl.when(g["null"]).then(None).otherwise(p)).to_series())
            for x, c in pl.DataFrame({"v": v}).drop_nulls().group_by("v").len().iter_rows():
                counts[x] = carried[x] + c
        base._global_total = total0 + m
        return out


class ReferencePass(_PassState):
    """The pre-pass row by row, as first written: the definition :class:`SharedPass` is
    tested against (same inputs as lists, same columns)."""

    def __init__(self, engine: Engine, fmt: str, *, baseline: bool, partitions: int = DEFAULT_PARTITIONS) -> None:
        super().__init__(engine, fmt, baseline=baseline, partitions=partitions)
        self._snap_hour = float("-inf")

    def _weight(self, now: float) -> float:
        exponent = (now - _LANDMARK) / self._half_life_s
        return float(2.0 ** max(-1000.0, min(1000.0, exponent)))

    def _population(self, uid: str, country: str | None, now: float, feeds: bool) -> tuple[float, float]:
        """The prior in effect at ``now`` (the snapshot of the hour), then this login's share
        (``feeds`` False: a sensitive event, which neither counts as a login nor adds)."""
        hour = now // _HOUR_S
        if hour > self._snap_hour:
            self._snap, self._snap_total, self._snap_hour = dict(self._pop), self._pop_total, hour
        count = self._snap.get(country, 0.0) if country is not None else 0.0
        if not feeds:
            return count, self._snap_total
        seen = self._logins.get(uid, 0)
        self._logins[uid] = seen + 1
        if country is not None and seen >= self._cold_min:
            w = self._weight(now)
            self._pop[country] = self._pop.get(country, 0.0) + w
            self._pop_total += w
        return count, self._snap_total

    def run(self, b: pl.DataFrame, ts_micros: list[int | None], scored: list[bool], failed: list[bool],
            ips: list[str | None], countries: list[str | None], asns: list[int | None],
            users: list[str | None], feeds: list[bool] | None = None) -> pl.DataFrame:
        """``b`` with the shared columns. The per-row lists are the batch's validated values:
        ``scored`` (a login), ``failed`` (a failed password), canonical ``ips``, the given
        ``countries``/``asns`` (None: GeoIP decides, as in the engine), ``feeds`` (as in
        :meth:`SharedPass.run`)."""
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
            popc[i], popt[i] = self._population(uid, country, now, feeds is None or feeds[i])
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
            self._history_column(next((ts_micros[i] for i in range(n) if scored[i] and users[i] is not None), None), n),
            *(pl.Series(f"_bg{k}", bg[k], pl.Float64) for k in range(5)),
        )


_ISO_MILLIS: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}$"


def _first(micros: pl.Series) -> int | None:
    """The first non-null value of an integer column (None: none)."""
    known = micros.drop_nulls()
    return int(known[0]) if known.len() else None


def _seconds(micros: pl.Series) -> pl.Series:
    """Epoch microseconds → float seconds exactly as Python's ``micros / 1e6`` (numpy's IEEE
    division: polars' division by a constant is not correctly rounded)."""
    return pl.Series(micros.to_numpy().astype(np.float64) / 1e6)


def rba_micros_series(values: pl.Series, ids: list[Any]) -> pl.Series:
    """``Login Timestamp`` → epoch microseconds, columnar for the RBA file's own form
    (``YYYY-MM-DD HH:MM:SS.fff``, naive: UTC); any other form, and any row that fails, goes
    through :func:`rba_micros` (``datetime.fromisoformat``), which names the bad row."""
    s = values.cast(pl.Utf8)
    if s.null_count() == 0 and s.str.contains(_ISO_MILLIS).all():
        parsed = s.str.to_datetime("%Y-%m-%d %H:%M:%S%.3f", time_unit="us", strict=False)
        micros = parsed.dt.epoch("us")
        lo = (EARLIEST_TIME - _EPOCH) // _MICRO
        hi = (LATEST_TIME - _EPOCH) // _MICRO
        if micros.null_count() == 0 and bool(((micros >= lo) & (micros < hi)).all()):
            return micros.cast(pl.Int64)
    return pl.Series(rba_micros(s.to_list(), ids), dtype=pl.Int64)


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
_MICRO: Final = timedelta(microseconds=1)
MAX_USER_ID: Final = MAX_ID_LENGTH
