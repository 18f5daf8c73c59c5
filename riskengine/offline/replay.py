"""Replay historical logins through ``Engine.score()``: ``riskengine replay IN --format rba|native``.

Contract (DESIGN.md): one output row per input row, in input order, with ``index`` (the
input's own index column; native: ``event_id``), ``decision`` (``allow`` | ``challenge`` |
``deny``; empty for rows that are not scored logins — failed passwords and signups),
``risk_score`` (float in [0, 1]; 0.0 for rows that are not scored) and ``reasons`` (list of
codes). Extra columns: ``outcome`` (what was reported back for a challenge) and
``baseline_score`` (Freeman et al. log-likelihood ratio, see :mod:`riskengine.offline.baseline`).

Rows stream in file order through the same engine the auth service uses: failed
passwords go to ``record_failure``, challenges get ``record_outcome`` —
``labels`` (RBA: pass iff not ``Is Account Takeover``; native: the simulated
``would_pass``), ``verified`` (every challenge passes) or, for native input, ``simulated``
(the simulated channel path, fallbacks, abandons and timings; the default). Inputs are
read in batches, so memory grows with the number of users, not rows. The label columns of
the RBA layout are read only to decide challenge outcomes under ``--outcomes labels``;
they never reach the scorer.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from riskengine._extras import extra

with extra("sim", feature="riskengine replay"):
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

from riskengine.core.attempt import (
    EARLIEST_TIME,
    LATEST_TIME,
    MAX_ASN,
    MAX_ID_LENGTH,
    MAX_PLACE_LENGTH,
    MAX_RTT_MS,
    MAX_USER_AGENT_LENGTH,
    ValidatedAttempt,
    normalise_ip,
)
from riskengine.core.config import Settings
from riskengine.core.decision import EVENTS, Decision
from riskengine.core.engine import Engine
from riskengine.core.engine.scoring import CrossUser
from riskengine.core.sms import BILLED_CHANNELS
from riskengine.offline.baseline import FreemanBaseline
from riskengine.offline.budget import apply_budget
from riskengine.offline.formats import NATIVE_REQUIRED, RBA_REQUIRED, check_input_file
from riskengine.offline.prepass import (
    SHARED_COLUMNS,
    SharedPass,
    baseline_features,
    geo_country_asn,
    rba_micros_series,
)

log = logging.getLogger(__name__)

BATCH_ROWS: Final = 65_536
OUTPUT_SCHEMA: Final = pa.schema([
    ("index", pa.int64()),
    ("decision", pa.string()),
    ("risk_score", pa.float64()),
    ("reasons", pa.list_(pa.string())),
    ("outcome", pa.string()),
    ("baseline_score", pa.float64()),
])
# with a step-up budget ([policy] target_stepup_rate) the scoring pass also writes what the
# budget post-pass needs (riskengine.offline.budget.finish_budget), which then drops them
BUDGET_FIELDS: Final = [
    pa.field("_budget_t", pa.float64()), pa.field("_budget_user", pa.string()),
    pa.field("_budget_established", pa.bool_()), pa.field("_budget_exempt", pa.bool_()),
    pa.field("_budget_floor", pa.bool_()), pa.field("_budget_fails", pa.bool_()),
]
BUDGET_SCHEMA: Final = pa.schema([*OUTPUT_SCHEMA, *BUDGET_FIELDS])
_KNOWN_CHANNELS: Final = frozenset({"passkey", "totp", "push", "whatsapp", "sms", "voice", "email"})
_KNOWN_FACTORS = _KNOWN_CHANNELS
_UA_FEATURES_MAX: Final = 16_384


@dataclass(slots=True)
class ReplayStats:
    rows: int = 0
    logins: int = 0
    failures: int = 0
    signups: int = 0
    challenges: int = 0
    denies: int = 0
    out_of_order: int = 0
    sends_blocked: int = 0
    """OTP sends ``Engine.check_send`` refused (block or switch) in simulated challenges."""
    seconds: float = 0.0

    @property
    def logins_per_second(self) -> float:
        return self.logins / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------------------- reading
def rba_batches(path: Path, batch_rows: int) -> Iterator[pl.DataFrame]:
    import pyarrow.csv as pcsv

    head = pl.read_csv(path, n_rows=0)
    missing = [c for c in RBA_REQUIRED if c not in head.columns]
    if missing:
        raise ValueError(f"{path}: not in the RBA layout, missing columns {missing}")
    # every column of the layout typed up front: a block never infers a column differently
    # (e.g. an all-empty ``Round-Trip Time [ms]`` block as null)
    types = {"index": pa.int64(), "User ID": pa.string(), "IP Address": pa.string(),
             "User Agent String": pa.string(), "Login Timestamp": pa.string(), "Country": pa.string(),
             "Region": pa.string(), "City": pa.string(), "ASN": pa.int64(), "Round-Trip Time [ms]": pa.float64(),
             "Browser Name and Version": pa.string(), "OS Name and Version": pa.string(),
             "Device Type": pa.string(), "Login Successful": pa.bool_(), "Is Attack IP": pa.bool_(),
             "Is Account Takeover": pa.bool_()}
    # 4 MiB blocks: the reader's read-ahead holds several; 16 MiB ones put ~400 MB of it in
    # the peak RSS of the process that reads (1.4M rows, measured) for no speed
    reader = pcsv.open_csv(
        path, read_options=pcsv.ReadOptions(block_size=1 << 22),
        convert_options=pcsv.ConvertOptions(
            column_types={k: v for k, v in types.items() if k in head.columns},
            true_values=["True", "true", "1"], false_values=["False", "false", "0"],
            null_values=["", "-"], strings_can_be_null=True))
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in reader:
        pending.append(batch)
        size += batch.num_rows
        if size >= batch_rows:
            yield pl.from_arrow(pa.Table.from_batches(pending))  # type: ignore[misc]
            pending, size = [], 0
    if pending:
        yield pl.from_arrow(pa.Table.from_batches(pending))  # type: ignore[misc]


def native_batches(path: Path, batch_rows: int) -> Iterator[pl.DataFrame]:
    pf = pq.ParquetFile(path)
    missing = [c for c in NATIVE_REQUIRED if c not in pf.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: not a native events file, missing columns {missing}")
    for batch in pf.iter_batches(batch_size=batch_rows):
        yield pl.from_arrow(batch)  # type: ignore[misc]


# ---------------------------------------------------------------------------- validation
# The rules of ``LoginAttempt``, applied to whole columns at once (a pydantic model per row
# cost more than the rest of the loop). A row that breaks one stops the replay with an
# error naming the row's index, the column and the rule — as ``score()`` would have.
def _require(bad: pl.Series, ids: Sequence[Any], column: str, rule: str) -> None:
    if bad.any():
        row = int(bad.arg_true()[0])
        raise ValueError(f"replay input row with index {ids[row]}: {column!r} {rule}")


def _text(b: pl.DataFrame, name: str, scored: pl.Series, ids: Sequence[Any], *, limit: int,
          required: bool = False) -> pl.Series:
    """A string column with surrounding whitespace stripped, checked against ``limit``."""
    s = b[name].cast(pl.Utf8).str.strip_chars()
    length = s.str.len_chars()
    if required:
        _require(scored & (s.is_null() | (length == 0)), ids, name, "is empty")
    _require(scored & (length > limit), ids, name, f"is longer than {limit} characters")
    return s


def _events(b: pl.DataFrame, logins: pl.Series, ids: Sequence[Any]) -> list[Any]:
    """The optional native ``event`` column (``LoginAttempt.event``): empty or null is a login;
    anything outside :data:`~riskengine.core.decision.EVENTS` stops the replay naming the row."""
    s = b["event"].cast(pl.Utf8).str.strip_chars().fill_null("")
    _require(logins & (s != "") & ~s.is_in(EVENTS), ids, "event", f"must be one of {', '.join(EVENTS)}")
    return s.to_list()


def _times(ts: pl.Series, scored: pl.Series, ids: Sequence[Any], column: str) -> list[datetime]:
    """Aware datetimes (naive input is UTC), within the range the engine accepts."""
    if isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone is None:
        ts = ts.dt.replace_time_zone("UTC")
    _require(scored & ts.is_null(), ids, column, "is missing")
    _require(scored & ((ts < EARLIEST_TIME) | (ts >= LATEST_TIME)), ids, column,
             f"must be between {EARLIEST_TIME.date()} and {LATEST_TIME.date()} UTC")
    # datetimes on the fixed UTC tzinfo: polars hands out ZoneInfo("UTC") ones, whose
    # .timestamp() costs three times as much, and the engine asks for it on every login
    micros = ts.dt.epoch("us").to_list()
    return [_EPOCH + timedelta(microseconds=m) if m is not None else None for m in micros]  # type: ignore[misc]


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# an IPv4 address already in canonical dotted-quad form (no leading zeros, each part ≤ 255)
_OCTET: Final = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_V4: Final = rf"^{_OCTET}(\.{_OCTET}){{3}}$"


def _addresses(s: pl.Series, scored: pl.Series, ids: Sequence[Any], column: str) -> dict[str, str]:
    """Canonical form of every distinct address the scored rows use (validated once each:
    canonical IPv4 by one regex over the column, anything else by ``ipaddress``)."""
    _require(scored & s.is_null(), ids, column, "is missing")
    distinct = s.filter(scored).unique()
    plain = distinct.str.contains(_CANONICAL_V4)
    canonical: dict[str, str] = {ip: ip for ip in distinct.filter(plain).to_list()}
    for ip in distinct.filter(~plain).to_list():
        try:
            canonical[ip] = normalise_ip(ip)
        except ValueError as exc:
            _require(scored & (s == ip), ids, column, str(exc))
    return canonical


_POLARS_TYPES: Final[dict[pa.DataType, Any]] = {
    pa.int64(): pl.Int64, pa.float64(): pl.Float64, pa.string(): pl.Utf8, pa.bool_(): pl.Boolean,
    pa.list_(pa.string()): pl.List(pl.Utf8)}


def _arrow(values: list[Any], dtype: pa.DataType) -> pa.Array:
    """An output column from a Python list, through polars: ``pa.array`` of a Python list
    imports pandas on its first call (0.3–0.4 CPU s in every replay process), polars does not.
    Same values, same Arrow type."""
    return pl.Series(values, dtype=_POLARS_TYPES[dtype]).to_arrow().cast(dtype)


def _channels(column: pl.Series | None, row: int) -> list[str]:
    """One row of a list column (read only for the few challenged rows)."""
    if column is None:
        return []
    value = column.slice(row, 1).to_list()[0]
    return list(value) if value else []


@contextlib.contextmanager
def _batch_gc() -> Iterator[None]:
    """Replay allocates millions of short-lived objects next to a long-lived heap of profiles
    and caches; the default collector thresholds rescan that heap over and over (~20 % of
    the run). Profiles hold no reference cycles, so collect rarely while replaying."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(200_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


# ---------------------------------------------------------------------------- replay
class Replayer:
    """Feeds rows to one Engine (and the baseline) and collects the contract's columns."""

    def __init__(self, engine: Engine, fmt: str, outcomes: str, baseline: FreemanBaseline | None) -> None:
        self.check(fmt, outcomes)
        self.engine = engine
        self._tap = engine.defer_budget()
        self._budget_rows: tuple[list[float | None], list[str | None], list[bool], list[bool], list[bool],
                                 list[bool]] | None = None
        self.fmt = fmt
        self.outcomes = outcomes
        self.baseline = baseline
        self.stats = ReplayStats()
        self._last_ts = 0.0
        self._prepass: SharedPass | None = None
        self.session_period: int | None = None
        """RBA rows have no session: each gets ``r<i>``, ``i`` its place in the batch. Set,
        ``i`` counts on across batches modulo this period instead (a partitioned replay feeds
        a partition in chunks and numbers its rows as the ``batch_rows`` batches it stands for)."""
        self._seen = 0
        self._ua_features: dict[str, tuple[str, str]] = {}

    def run_batch(self, batch: pl.DataFrame) -> pa.RecordBatch:
        """Score one batch. A raw batch (straight from the file, as model training feeds it)
        goes through this replayer's own pre-pass first, in the order batches arrive."""
        if not all(c in batch.columns for c in SHARED_COLUMNS):
            if self._prepass is None:
                self._prepass = SharedPass(self.engine, self.fmt, baseline=self.baseline is not None)
            batch = prepass_batch(self._prepass, batch)
        n = batch.height
        decisions: list[str] = [""] * n
        risks: list[float | None] = [0.0] * n  # rows that are not scored logins carry no risk
        reasons: list[list[str]] = [[] for _ in range(n)]
        outcomes: list[str | None] = [None] * n
        baseline: list[float | None] = [None] * n
        if self._tap is not None:
            self._budget_rows = ([None] * n, [None] * n, [False] * n, [False] * n, [False] * n, [False] * n)
        if self.fmt == "rba":
            index = batch["index"].to_list()
            self._run_rba(batch, decisions, risks, reasons, outcomes, baseline)
        else:
            index = batch["event_id"].to_list()
            self._run_native(batch, decisions, risks, reasons, outcomes, baseline)
        self.stats.rows += n
        self._seen += n
        columns = [
            _arrow(index, pa.int64()), _arrow(decisions, pa.string()), _arrow(risks, pa.float64()),
            _arrow(reasons, pa.list_(pa.string())), _arrow(outcomes, pa.string()),
            _arrow(baseline, pa.float64()),
        ]
        if self._budget_rows is None:
            return pa.RecordBatch.from_arrays(columns, schema=OUTPUT_SCHEMA)
        budget_rows: tuple[list[Any], ...] = self._budget_rows
        columns.extend(_arrow(col, f.type) for col, f in zip(budget_rows, BUDGET_FIELDS, strict=True))
        return pa.RecordBatch.from_arrays(columns, schema=BUDGET_SCHEMA)

    @property
    def schema(self) -> pa.Schema:
        """What :meth:`run_batch` returns: the contract's columns, plus the budget's."""
        return OUTPUT_SCHEMA if self._tap is None else BUDGET_SCHEMA

    def _order(self, now: float) -> None:
        if now < self._last_ts - 1.0:
            self.stats.out_of_order += 1
        else:
            self._last_ts = now

    def _challenge(self, decision_id: str, factor: str | None, passed: bool, ts: datetime,
                   channels: list[str] | None = None, outcome: str | None = None, attempts: int = 1,
                   seconds: float | None = None, trust: bool = False) -> str:
        if outcome is None:
            outcome = "verified" if passed else "failed"
        chans = [c for c in (channels or ([factor] if factor else [])) if c in _KNOWN_CHANNELS]
        self.engine.record_outcome(
            decision_id, outcome, chans, attempts, trust and outcome == "verified",  # type: ignore[arg-type]
            seconds_to_verify=seconds if outcome == "verified" else None,
            timestamp=ts + timedelta(seconds=seconds or 30.0))
        return outcome

    def _sends(self, decision_id: str, phone: str, path: list[str], outcome: str,
               ts: datetime) -> tuple[list[str], str]:
        """The simulated channel path with every phone-billed send checked first
        (``Engine.check_send``, as a service does before each OTP): a refused send is not
        made, so the user cannot verify on that channel; if no channel was usable the
        challenge is abandoned. Counted in ``stats.sends_blocked``."""
        if not path:
            return path, outcome
        kept: list[str] = []
        for channel in path:
            if channel in BILLED_CHANNELS:
                checked = self.engine.check_send(decision_id, channel, phone, now=ts)  # type: ignore[arg-type]
                if checked.action != "allow":
                    self.stats.sends_blocked += 1
                    continue
            kept.append(channel)
        if len(kept) == len(path):
            return path, outcome
        if not kept:
            return path[:1], "abandoned"
        return kept, outcome if kept[-1] == path[-1] else "abandoned"

    def _fails(self, i: int, fails: bool) -> None:
        """Whether login ``i``'s challenge would not verify under this replay's outcome mode
        (the budget post-pass retracts such a login when it challenges it, as the live
        engine's ``record_outcome`` does)."""
        if self._budget_rows is not None:
            self._budget_rows[5][i] = fails

    def _tally(self, i: int, d: Decision, decisions: list[str], risks: list[float | None],
               reasons: list[list[str]], ts: datetime) -> None:
        """Record one scored login in the output columns and the run's counts."""
        self.stats.logins += 1
        decisions[i] = d.action
        risks[i] = d.risk
        reasons[i] = [r.code for r in d.reasons]
        tap, rows = self._tap, self._budget_rows
        # a fail-mode decision or a sensitive event leaves nothing in the tap (and is not budgeted)
        if tap and rows is not None:
            rows[0][i], rows[1][i] = ts.timestamp(), d.user_id
            rows[2][i], rows[3][i], rows[4][i] = tap.pop()
        if d.action == "challenge":
            self.stats.challenges += 1
        elif d.action == "deny":
            self.stats.denies += 1

    @staticmethod
    def check(fmt: str, outcomes: str) -> None:
        """An error naming the problem for a format or outcomes mode replay does not know."""
        if fmt not in ("rba", "native"):
            raise ValueError(f"--format must be rba or native, got {fmt!r}")
        allowed = ("labels", "verified", "simulated") if fmt == "native" else ("labels", "verified")
        if outcomes not in allowed:
            raise ValueError(f"--outcomes for {fmt} input must be one of {allowed}, got {outcomes!r}")

    def _shared(self, b: pl.DataFrame) -> tuple[list[Any], list[Any], list[Any], list[Any], list[list[Any]]]:
        """The pre-pass's cross-user columns (:mod:`riskengine.offline.prepass`)."""
        missing = [c for c in SHARED_COLUMNS if c not in b.columns]
        if missing:
            raise ValueError(f"replay batch without the pre-pass columns {missing}")
        return (b["_ipf"].to_list(), b["_popc"].to_list(), b["_popt"].to_list(), b["_hst"].to_list(),
                [b[f"_bg{k}"].to_list() for k in range(5)])

    def _run_rba(self, b: pl.DataFrame, decisions: list[str], risks: list[float | None],
                 reasons: list[list[str]], outcomes: list[str | None], baseline: list[float | None]) -> None:
        engine = self.engine
        n = b.height
        c = prepassed_columns(b, RBA_VALIDATED)
        user_col, ip_col, ua_col, ok_col = c["users"], c["ips"], c["uas"], c["ok"]
        country_col, region_col, city_col, asn_col = c["countries"], c["regions"], c["cities"], c["asns"]
        rtt_col = c["rtts"]
        micros = b["_ts"].to_list()
        ts_col = _from_micros(micros)
        ipf, popc, popt, hst, bg = self._shared(b)
        # the baseline's population probabilities of a row, one tuple per row (zip runs in C)
        bg_rows: list[tuple[Any, ...]] = list(zip(*bg, strict=True)) if self.baseline is not None else []
        # only the challenge outcome under --outcomes labels looks at the label column
        ato_col = b["Is Account Takeover"].to_list() if (
            self.outcomes == "labels" and "Is Account Takeover" in b.columns) else [None] * n
        verified = self.outcomes == "verified"
        period, seen = self.session_period, self._seen
        stats = self.stats
        score, record_failure = engine.score_validated, engine.record_failure
        make_attempt, make_shared = ValidatedAttempt._make, CrossUser._make
        features = self._baseline_features
        observe = self.baseline.observe_given if self.baseline is not None else None
        for i in range(n):
            ts = ts_col[i]
            # ts.timestamp() of a UTC datetime built from epoch microseconds, without the call
            self._order(micros[i] / 1e6)
            user, ip = user_col[i], ip_col[i]
            if not ok_col[i]:
                record_failure(user, ip, ts)
                stats.failures += 1
                continue
            country, asn, ua = country_col[i], asn_col[i], ua_col[i]
            # tuples built positionally with _make: a NamedTuple's generated __new__ binds every
            # field (and the defaults) in Python
            d = score(make_attempt((
                user, ts, ip, ua, None, country, region_col[i], city_col[i], asn, None, None, None, (),
                f"r{(seen + i) % period if period else i}", None, rtt_col[i], "login")),
                None, make_shared((ipf[i], popc[i], popt[i], hst[i])))
            self._tally(i, d, decisions, risks, reasons, ts)
            action = d.action
            accepted = action == "allow"
            passed = True if verified else not ato_col[i]
            self._fails(i, not passed)
            if action == "challenge":
                outcomes[i] = self._challenge(d.decision_id, d.factor, passed, ts)
                accepted = passed
            if observe is not None:
                baseline[i] = observe(user, features(engine, ip, ua, country, asn), bg_rows[i], accepted)

    def _baseline_features(self, engine: Engine, ip: str, ua: str, country: str | None,
                           asn: int | None) -> tuple[Any, ...]:
        """:func:`baseline_features`, its User-Agent half worked out once per distinct string."""
        known = self._ua_features.get(ua)
        if known is None:
            if len(self._ua_features) >= _UA_FEATURES_MAX:
                self._ua_features.clear()  # bounded: the strings come from the input
            _, _, _, browser, os_family = baseline_features(engine, ip, ua, country, asn)
            known = self._ua_features[ua] = (browser, os_family)
        return (ip, asn, country, known[0], known[1])

    def _run_native(self, b: pl.DataFrame, decisions: list[str], risks: list[float | None],
                    reasons: list[list[str]], outcomes: list[str | None], baseline: list[float | None]) -> None:
        # here, not at the top: importing the simulator (numpy-heavy modules) costs an RBA
        # replay process ~0.1-0.2 CPU s for a constant only native input's signups use
        from riskengine.offline.simulate.experiment import VARIANTS

        engine = self.engine
        cols = b.columns
        n = b.height
        none: list[Any] = [None] * n
        c = prepassed_columns(b, NATIVE_VALIDATED)
        c["times"] = _from_micros(b["_ts"].to_list())
        kind_col, user_col, ip_col, ua_col, ts_col = c["kinds"], c["users"], c["ips"], c["uas"], c["times"]
        ipf, popc, popt, hst, bg = self._shared(b)

        def col(name: str) -> list[Any]:
            return b[name].to_list() if name in cols else none

        device_col = col("device_id")
        session_col = col("session_id")
        rtt_col = c["rtts"]  # the round-trip time, as the RBA layout's: RTT_ANOMALY's evidence
        # list columns are slow to turn into Python lists: factors go through their joined
        # text (a handful of distinct sets), channels are read only for challenged rows
        enrolled_col = b["enrolled_factors"].list.join(",").to_list() if "enrolled_factors" in cols else none
        event_col = _events(b, b["kind"] == "login", c["ids"]) if "event" in cols else none
        factor_sets: dict[str | None, tuple[Any, ...]] = {None: (), "": ()}
        channels = b["challenge_channels"] if "challenge_channels" in cols else None
        pass_col, out_col = col("would_pass"), col("challenge_outcome")
        phone_col = col("phone")
        att_col, secs_col, trust_col = col("challenge_attempts"), col("seconds_to_verify"), col("trust_device")
        exp_col, var_col, conv_col = col("experiment"), col("variant"), col("converted")
        seeds = converted_signups(b).to_list()  # the signup rows the pre-pass validated
        for i in range(n):
            ts: datetime = ts_col[i]
            kind, user = kind_col[i], user_col[i]
            if kind == "failed_password":
                self._order(ts.timestamp())
                engine.record_failure(user, ip_col[i], ts)
                self.stats.failures += 1
                continue
            if kind == "signup":
                self._order(ts.timestamp())
                self.stats.signups += 1
                if seeds[i]:
                    # the account's signup session: its first history (a blank profile only),
                    # validated with the logins by the pre-pass; never a decision or a row output
                    seeded = engine.record_signup_validated(ValidatedAttempt(
                        user, ts, ip_col[i], ua_col[i], device_col[i], rtt_ms=rtt_col[i]))
                    if seeded and self.baseline is not None:
                        # the baseline gets the same first history (its per-user half only: a
                        # signup is no login of the population, as in the pre-pass)
                        country, asn = geo_country_asn(engine, ip_col[i])
                        self.baseline.learn(user, baseline_features(engine, ip_col[i], ua_col[i], country, asn))
                if exp_col[i] and var_col[i]:
                    engine.assign(exp_col[i], user, VARIANTS, ts)
                    if conv_col[i]:
                        engine.record_conversion(exp_col[i], user, ts + timedelta(seconds=90))
                continue
            self._order(ts.timestamp())
            ip = ip_col[i]
            enrolled = factor_sets.get(enrolled_col[i])
            if enrolled is None:
                enrolled = factor_sets[enrolled_col[i]] = tuple(
                    f for f in enrolled_col[i].split(",") if f in _KNOWN_FACTORS)
            d = engine.score_validated(ValidatedAttempt(
                user, ts, ip, ua_col[i], device_col[i], enrolled_factors=enrolled, session_id=session_col[i],
                rtt_ms=rtt_col[i], event=event_col[i] or "login"),
                None, CrossUser(ipf[i], popc[i], popt[i], hst[i]))
            self._tally(i, d, decisions, risks, reasons, ts)
            accepted = d.action == "allow"
            would_pass = bool(pass_col[i]) if pass_col[i] is not None else True
            self._fails(i, self.outcomes != "verified" and not would_pass)
            if d.action == "challenge":
                if self.outcomes == "simulated" and out_col[i] is not None:
                    path, out = _channels(channels, i), out_col[i]
                    if phone_col[i] is not None:
                        path, out = self._sends(d.decision_id, phone_col[i], path, out, ts)
                    outcome = self._challenge(
                        d.decision_id, d.factor, would_pass, ts, path, out,
                        int(att_col[i] or 0), secs_col[i], bool(trust_col[i]))
                else:
                    passed = True if self.outcomes == "verified" else would_pass
                    outcome = self._challenge(d.decision_id, d.factor, passed, ts)
                outcomes[i] = outcome
                accepted = outcome == "verified"
                self._fails(i, outcome != "verified")
            if self.baseline is not None:
                country, asn = geo_country_asn(engine, ip)
                baseline[i] = self.baseline.observe_given(
                    user, baseline_features(engine, ip, ua_col[i], country, asn),
                    [bg[0][i], bg[1][i], bg[2][i], bg[3][i], bg[4][i]], accepted)


# the columns prepass_batch replaces with their validated values (key → column)
RBA_VALIDATED: Final = {"users": "User ID", "ips": "IP Address", "uas": "User Agent String",
                        "ok": "Login Successful", "countries": "Country", "regions": "Region",
                        "cities": "City", "asns": "ASN", "rtts": "Round-Trip Time [ms]"}
NATIVE_VALIDATED: Final = {"kinds": "kind", "users": "user_id", "ips": "ip", "uas": "user_agent",
                           "device_id": "device_id", "session_id": "session_id", "rtts": "rtt_ms"}


def prepassed_columns(b: pl.DataFrame, names: dict[str, str]) -> dict[str, Any]:
    """A pre-passed batch's columns as lists: validated once, by :func:`prepass_batch`
    (absent columns: None per row)."""
    none: list[Any] = [None] * b.height
    out: dict[str, Any] = {key: b[col].to_list() if col in b.columns else none for key, col in names.items()}
    out["ids"] = b["index" if "index" in b.columns and names is RBA_VALIDATED else "event_id"].to_list()
    return out


def _from_micros(micros: list[int | None]) -> list[datetime]:
    # datetimes on the fixed UTC tzinfo: polars hands out ZoneInfo("UTC") ones, whose
    # .timestamp() costs three times as much, and the engine asks for it on every login
    return [_EPOCH + timedelta(microseconds=m) if m is not None else None for m in micros]  # type: ignore[misc]


def rba_series(b: pl.DataFrame) -> dict[str, Any]:
    """An RBA batch's columns, validated, as series (every row is scored: a login or a
    failed password); ``ids`` is a list (for error messages)."""
    cols = b.columns
    n = b.height
    ids = b["index"].to_list()
    every = pl.Series([True] * n)
    users = _text(b, "User ID", every, ids, limit=MAX_ID_LENGTH, required=True)
    ip_series = b["IP Address"].cast(pl.Utf8).str.strip_chars()
    canonical = _addresses(ip_series, every, ids, "IP Address")
    ips = ip_series.replace_strict(canonical, return_dtype=pl.Utf8) if canonical else ip_series
    uas = b["User Agent String"].fill_null("").str.strip_chars().str.slice(0, MAX_USER_AGENT_LENGTH)
    ok = b["Login Successful"].fill_null(False).cast(pl.Boolean)
    countries = regions = cities = asns = None
    if "Country" in cols:
        country = b["Country"].cast(pl.Utf8).str.strip_chars()
        _require(country.is_not_null() & (country != "") & ~country.str.contains("^[A-Za-z]{2}$"),
                 ids, "Country", "must be an ISO 3166-1 alpha-2 code")
        countries = country.str.to_uppercase().replace("", None)
    if "Region" in cols:
        regions = _text(b, "Region", every, ids, limit=MAX_PLACE_LENGTH)
    if "City" in cols:
        cities = _text(b, "City", every, ids, limit=MAX_PLACE_LENGTH)
    if "ASN" in cols:
        asn = b["ASN"]
        _require((asn < 0) | (asn > MAX_ASN), ids, "ASN", f"must be in 0..{MAX_ASN}")
        asns = asn
    rtts = _rtts(b, "Round-Trip Time [ms]")
    return {"ids": ids, "users": users, "ips": ips, "uas": uas, "ok": ok, "countries": countries,
            "regions": regions, "cities": cities, "asns": asns, "rtts": rtts}


def _rtts(b: pl.DataFrame, column: str) -> pl.Series | None:
    """The round-trip time column as ``LoginAttempt.rtt_ms`` takes it, or None when absent.
    Optional evidence (the public data set leaves most rows empty, a native file's signups
    have none): a value outside LoginAttempt's rule (finite, 0 < rtt < 60 s) is a measuring
    glitch and is not used."""
    if column not in b.columns:
        return None
    rtt = pl.col(column).cast(pl.Float64, strict=False)
    return b.select(pl.when(rtt.is_finite() & (rtt > 0) & (rtt < MAX_RTT_MS)).then(rtt)).to_series()


def rba_columns(b: pl.DataFrame) -> dict[str, Any]:
    """An RBA batch's columns, validated, as lists (None: the column is absent)."""
    none: list[Any] = [None] * b.height
    return {k: (none if v is None else v if isinstance(v, list) else v.to_list())
            for k, v in rba_series(b).items()}


def converted_signups(b: pl.DataFrame) -> pl.Series:
    """The rows a native replay teaches as signup sessions (``Engine.record_signup``): kind
    ``signup`` with ``converted`` true — the account was created, and its user is the new
    account. A signup that did not convert created no account; a file without the column
    has none."""
    kind = b["kind"]
    if "converted" not in b.columns:
        return pl.Series([False] * b.height, dtype=pl.Boolean)
    return ((kind == "signup") & b["converted"].cast(pl.Boolean, strict=False).fill_null(False)).fill_null(False)


def native_series(b: pl.DataFrame) -> dict[str, Any]:
    """A native batch's columns, validated (``scored``: logins and failed passwords;
    ``signups``: the converted signups, validated as logins are, since they teach the profile)."""
    ids = b["event_id"].to_list()
    kind = b["kind"]
    scored = (kind == "login") | (kind == "failed_password")
    bad = ~kind.is_in(["login", "failed_password", "signup"]) | kind.is_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise ValueError(f"replay input row with index {ids[row]}: unknown event kind {kind[row]!r}")
    signups = converted_signups(b)
    read = scored | signups
    ts = b["event_time"]
    if isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone is None:
        ts = ts.dt.replace_time_zone("UTC")
    _require(read & ts.is_null(), ids, "event_time", "is missing")
    _require(read & ((ts < EARLIEST_TIME) | (ts >= LATEST_TIME)), ids, "event_time",
             f"must be between {EARLIEST_TIME.date()} and {LATEST_TIME.date()} UTC")
    users = _text(b, "user_id", read, ids, limit=MAX_ID_LENGTH, required=True)
    ip_series = b["ip"].str.strip_chars()
    canonical = _addresses(ip_series, read, ids, "ip")
    ips = ip_series.replace_strict(canonical, default=None, return_dtype=pl.Utf8)
    uas = b["user_agent"].fill_null("").str.strip_chars().str.slice(0, MAX_USER_AGENT_LENGTH)
    return {"ids": ids, "kind": kind, "scored": scored, "signups": signups, "read": read,
            "micros": ts.dt.epoch("us").cast(pl.Int64), "users": users, "ips": ips, "uas": uas}


def native_columns(b: pl.DataFrame) -> dict[str, Any]:
    """A native batch's columns, validated, as lists (``times``: aware UTC datetimes)."""
    c = native_series(b)
    return {"ids": c["ids"], "kinds": c["kind"].to_list(), "scored": c["scored"],
            "times": [None if m is None else _EPOCH + timedelta(microseconds=m) for m in c["micros"].to_list()],
            "users": c["users"].to_list(), "ips": c["ips"].to_list(), "uas": c["uas"].to_list()}


def prepass_batch(shared: SharedPass, b: pl.DataFrame) -> pl.DataFrame:
    """Validate a raw input batch and add the cross-user columns (in input order)."""
    if b.height == 0:
        return b
    if shared.fmt == "rba":
        c = rba_series(b)
        ok = c["ok"]
        micros = rba_micros_series(b["Login Timestamp"], c["ids"])
        out = shared.run(b, micros, ok, ~ok, c["ips"], c["countries"], c["asns"], c["users"])
        return _validated(out, c, RBA_VALIDATED)
    c = native_series(b)
    kind = c["kind"]
    login, failed = kind == "login", kind == "failed_password"
    # signups carry their user only when one is given (non-blank)
    users = pl.select(pl.when(login | failed | (c["users"] != "")).then(c["users"])).to_series()
    # a sensitive event (recovery, factor change, password reset) never teaches the profile
    # online, so it neither feeds the population prior nor counts toward "established"
    feeds = None if "event" not in b.columns else \
        b["event"].cast(pl.Utf8).str.strip_chars().fill_null("").is_in(["", "login"])
    out = shared.run(b, c["micros"], login, failed, c["ips"], None, None, users, feeds)
    ids = c["ids"]
    c["kinds"] = kind
    for name in ("device_id", "session_id"):
        if name in b.columns:
            c[name] = _text(b, name, c["read"], ids, limit=MAX_ID_LENGTH)
    c["rtts"] = _rtts(b, "rtt_ms")
    return _validated(out, c, NATIVE_VALIDATED)


def _validated(b: pl.DataFrame, c: dict[str, Any], names: dict[str, str]) -> pl.DataFrame:
    """``b`` with its input columns replaced by their validated values (what the replay reads)."""
    return b.with_columns(*(c[key].alias(col) for key, col in names.items()
                            if col in b.columns and c.get(key) is not None))


def _settings(config: str | Path | Settings | None, audit_root: str | Path | None,
              asn_db: str | Path | None) -> Settings:
    settings = config if isinstance(config, Settings) else Settings.load(config)
    if audit_root is not None:
        settings = settings.with_overrides(audit={"root": str(audit_root)})
    if asn_db is not None:
        if not Path(asn_db).exists():
            raise FileNotFoundError(f"ASN database not found: {asn_db}")
        settings = settings.with_overrides(geo={"asn_db": str(asn_db)})
    return settings


def iter_replay(
    path: str | Path, fmt: str, *, outcomes: str | None = None, config: str | Path | Settings | None = None,
    audit_root: str | Path | None = None, asn_db: str | Path | None = None, baseline: bool = True,
    progress: bool = False, batch_rows: int = BATCH_ROWS, stats: ReplayStats | None = None,
) -> Iterator[pa.RecordBatch]:
    """Decisions batch by batch (bounded memory). ``stats`` (if given) is filled in as it goes."""
    from tqdm import tqdm

    path = check_input_file(path, "replay input")
    if fmt not in ("rba", "native"):
        raise ValueError(f"--format must be rba or native, got {fmt!r}")
    if outcomes is None:
        outcomes = "simulated" if fmt == "native" else "labels"
    if asn_db is None and fmt == "native" and (path.parent / "asn.mmdb").exists():
        asn_db = path.parent / "asn.mmdb"  # written by `riskengine simulate` beside its events
    settings = _settings(config, audit_root, asn_db)
    total = pq.ParquetFile(path).metadata.num_rows if fmt == "native" else None
    batches = native_batches(path, batch_rows) if fmt == "native" else rba_batches(path, batch_rows)
    with Engine(settings) as engine:
        replayer = Replayer(engine, fmt, outcomes, FreemanBaseline() if baseline else None)
        shared = SharedPass(engine, fmt, baseline=baseline)
        if stats is not None:
            replayer.stats = stats
        started = time.perf_counter()
        with tqdm(total=total, desc="replaying", unit=" rows", disable=not progress, mininterval=1.0) as bar:
            for batch in batches:
                with _batch_gc():  # only while scoring: the caller's code between batches is its own
                    out = replayer.run_batch(prepass_batch(shared, batch))
                replayer.stats.seconds = time.perf_counter() - started
                bar.update(batch.height)
                yield out
        if replayer.stats.out_of_order:
            log.warning("%d rows were earlier than the row before them; scored in file order",
                        replayer.stats.out_of_order)


def replay(
    path: str | Path, fmt: str, *, out: str | Path | None = None, outcomes: str | None = None,
    config: str | Path | Settings | None = None, audit_root: str | Path | None = None,
    asn_db: str | Path | None = None, baseline: bool = True, progress: bool = False,
    batch_rows: int = BATCH_ROWS, stats: ReplayStats | None = None,
) -> pl.DataFrame:
    """Replay a file and return (and optionally write) the decisions frame — for notebooks.

    For inputs too large for memory use the CLI or :func:`replay_to_file`.
    """
    settings = _settings(config, None, None)
    batches = list(iter_replay(path, fmt, outcomes=outcomes, config=settings, audit_root=audit_root,
                               asn_db=asn_db, baseline=baseline, progress=progress,
                               batch_rows=batch_rows, stats=stats))
    table = pa.Table.from_batches(batches, schema=BUDGET_SCHEMA if batches and batches[0].schema == BUDGET_SCHEMA
                                  else OUTPUT_SCHEMA)
    if table.schema == BUDGET_SCHEMA:
        table = budget_post_pass(table, settings, stats)
    if out is not None:
        pq.write_table(table, out)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def replay_to_file(path: str | Path, fmt: str, out: str | Path, **kwargs: Any) -> ReplayStats:
    """Stream decisions into a Parquet file batch by batch; returns the run's statistics."""
    stats = ReplayStats()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    writer: pq.ParquetWriter | None = None
    try:
        for batch in iter_replay(path, fmt, stats=stats, **kwargs):
            if writer is None:
                writer = pq.ParquetWriter(tmp, batch.schema)
            writer.write_batch(batch)
        if writer is None:
            writer = pq.ParquetWriter(tmp, OUTPUT_SCHEMA)
        writer.close()
        if writer.schema == BUDGET_SCHEMA:
            settings = _settings(kwargs.get("config"), None, None)
            pq.write_table(budget_post_pass(pq.read_table(tmp), settings, stats), tmp)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)  # a failed replay leaves no half-written decisions behind
        raise
    tmp.replace(out)
    return stats


def budget_post_pass(table: pa.Table, settings: Settings, stats: ReplayStats | None = None) -> pa.Table:
    """Apply the step-up budget to a scoring pass's output (:data:`BUDGET_SCHEMA`): each
    scored login's ``decision`` becomes the budget's, a ``threshold`` column records the live
    threshold it met, and the budget's working columns are dropped. The run's challenge and
    deny counts follow. A login whose decision changed keeps no challenge ``outcome`` (the
    scoring pass simulated the challenge of the fixed threshold's decision, not this one)."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    # a sensitive event (LoginAttempt.event) keeps its own thresholds: no budget row, decision kept
    scored = frame.with_row_index("_i").filter((pl.col("decision") != "") & pl.col("_budget_t").is_not_null())
    budget = apply_budget(scored.select(
        pl.col("_budget_t").alias("event_time"), pl.col("risk_score").alias("risk"),
        pl.col("_budget_established").alias("established"), pl.col("_budget_floor").alias("floor_forced"),
        pl.col("_budget_user").alias("user"), (pl.col("decision") == "deny").alias("denied"),
        pl.col("_budget_exempt").alias("exempt"), pl.col("_budget_fails").alias("fails")), settings)
    n = frame.height
    pos = scored["_i"]
    old = frame["decision"]
    decision = old.clone().scatter(pos, budget["action"]) if n else old
    threshold = pl.repeat(None, n, dtype=pl.Float64, eager=True).alias("threshold")
    if n:
        threshold = threshold.scatter(pos, budget["threshold"])
    result = frame.drop([f.name for f in BUDGET_FIELDS]).with_columns(
        decision,
        pl.when(decision != old).then(None).otherwise(pl.col("outcome")).alias("outcome"),
        threshold)
    if stats is not None:
        stats.challenges = int((decision == "challenge").sum())
        stats.denies = int((decision == "deny").sum())
    return result.to_arrow().cast(pa.schema([*OUTPUT_SCHEMA, pa.field("threshold", pa.float64())]))
