"""The protocols the engine is written against, in one typed module (as ``structlog.typing``).

- :class:`ProfileStore`: every profile store backend (memory, sqlite, redis) passes one
  contract suite (``tests/stores/test_contract.py``), not a base class.
- :class:`AuditSink`: where audit events go. Declared by the audit library
  (:mod:`riskengine.audit`, the layer below core, which knows nothing of scoring) and
  re-exported here; :class:`ValuesAuditSink` is its fast path (``emit_values``: a tuple in
  column order, no dict per row), which the engine detects once, by type, at construction.
- :class:`RiskModel`: the hook the engine calls on a learned model
  (:class:`riskengine.core.model.LoadedModel` implements it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from riskengine.audit import AuditSink
from riskengine.core.attempt import Attempt
from riskengine.core.decision import Reason
from riskengine.core.enrich.geoip import GeoInfo
from riskengine.core.profile import UserProfile
from riskengine.core.signals.base import SignalResult

__all__ = [
    "AsyncProfileStore",
    "AuditHistory",
    "AuditHistoryFactory",
    "AuditSink",
    "OtpCounts",
    "ProfileStore",
    "RiskModel",
    "SendCounts",
    "Snapshot",
    "Updater",
    "ValuesAuditSink",
]

Updater = Callable[[UserProfile | None], UserProfile | None]
"""What ``ProfileStore.update`` applies: the stored profile (or None) in, the new one out (None deletes)."""


class Snapshot(NamedTuple):
    """Everything ``score()`` needs from the store, fetched in one read."""

    profile: UserProfile | None
    user_failures: int
    ip_failures: int
    otp_user_failures: int = 0
    """Failed second factors of the user since ``otp_since`` (any session)."""
    otp_session_failures: int = 0
    """Failed second factors in this login's session since ``session_since``."""


class OtpCounts(NamedTuple):
    """Failed second factors after an ``add_otp_failures``, counted in the same atomic step."""

    session: int
    user: int


class SendCounts(NamedTuple):
    """Second-factor sends after an ``add_send``, counted in the same atomic step (this one included)."""

    prefix_sends: int
    """Sends to the destination prefix since ``prefix_since`` (every user)."""
    ratio_sends: int
    """Sends to the prefix since ``ratio_since``."""
    ratio_verified: int
    """Of those, verified (``verify_send``) since ``ratio_since``."""
    user_sends: int
    """The user's sends since ``user_since``."""
    user_prefixes: int
    """Distinct prefixes the user sent to since ``user_since``."""


@runtime_checkable
class ValuesAuditSink(AuditSink, Protocol):
    """An :class:`AuditSink` with the tuple fast path (the Parquet sink)."""

    def emit_values(self, table: str, values: tuple[Any, ...]) -> None:
        """Buffer one row given as a tuple in ``riskengine.audit.columns.COLUMNS[table]`` order."""
        ...


class RiskModel(Protocol):
    """What :class:`~riskengine.core.engine.Engine` calls on a loaded model for each login."""

    def contribution(
        self, attempt: Attempt, geo: GeoInfo, dkey: str, hour: int | None, profile: UserProfile,
        signals: Sequence[SignalResult], user_failures: int, ip_failures: int,
        now: float | None = None,
    ) -> tuple[float, list[Reason]]:
        """The model's term in the noisy-OR risk and the reasons explaining it."""
        ...


@runtime_checkable
class ProfileStore(Protocol):
    def get(self, user_id: str) -> UserProfile | None: ...

    def put(self, user_id: str, profile: UserProfile) -> None: ...

    def update(self, user_id: str, fn: Updater) -> UserProfile | None:
        """Atomic read-modify-write: concurrent updates of one user are never lost.
        ``fn`` returning None deletes the profile."""
        ...

    def delete(self, user_id: str) -> None: ...

    def add_failure(self, user_id: str, ip: str, at: float) -> int:
        """Record a failed password; return the user's failures in the store's window."""
        ...

    def reset_failures(self, user_id: str) -> None:
        """Forget the user's failed passwords (a verified challenge, or ``unlock_user``)."""
        ...

    def add_otp_failures(self, user_id: str, session: str, count: int, at: float, *,
                         otp_since: float, session_since: float) -> OtpCounts:
        """Atomically record ``count`` failed second factors of ``user_id`` in ``session`` at
        ``at`` (they also count as the user's failed passwords) and return the session's and
        the user's counts in their windows, including these."""
        ...

    def reset_otp_failures(self, user_id: str) -> None:
        """Forget the user's failed second factors, every session (``unlock_user``)."""
        ...

    def snapshot(self, user_id: str, ip: str, since: float, *, session: str = "",
                 otp_since: float | None = None, session_since: float | None = None) -> Snapshot:
        """Profile + failure counts in one read (second-factor counts when ``otp_since`` /
        ``session_since`` are given, else 0)."""
        ...

    def population_add(self, country: str, weight: float) -> None:
        """Add ``weight`` to ``country`` in the service-wide population prior (atomic)."""
        ...

    def population(self) -> dict[str, float]:
        """The population prior: country → accumulated (forward-decayed) weight."""
        ...

    def history_start(self, now: float) -> float:
        """When this store began learning: set to ``now`` by the first call (atomically, so
        concurrent first calls agree) and returned unchanged by every later one. The engine's
        ``DORMANT_ACCOUNT`` signal measures how long the store has been watching from it."""
        ...

    def budget_merge(self, delta: Mapping[str, float]) -> dict[str, float]:
        """Add ``delta`` (key → weight) to the shared step-up budget sketch and return the
        whole merged sketch, atomically (one transaction / one script); an empty delta reads."""
        ...

    def put_pending(self, decision_id: str, payload: bytes, expires_at: float, *,
                    user_id: str = "", max_per_user: int = 0) -> None:
        """Park a challenge's context until its outcome arrives (possibly at another worker).
        With ``max_per_user``, the user's own oldest parked challenges beyond it are dropped."""
        ...

    def pop_pending(self, decision_id: str, now: float) -> bytes | None: ...

    def peek_pending(self, decision_id: str, now: float) -> bytes | None:
        """The parked challenge, left in place (``check_send`` before the outcome arrives)."""
        ...

    def add_send(self, user_id: str, prefix: str, at: float, *, prefix_since: float,
                 ratio_since: float, user_since: float) -> SendCounts:
        """Atomically record one second-factor send (attempt) of ``user_id`` to ``prefix`` at
        ``at`` and return the counts including it."""
        ...

    def link_send(self, decision_id: str, prefix: str, expires_at: float) -> None:
        """The OTP of ``decision_id`` went to ``prefix`` (the last allowed send wins), until
        ``expires_at``: what :meth:`verify_send` credits."""
        ...

    def verify_send(self, decision_id: str, at: float) -> str | None:
        """The challenge of ``decision_id`` was verified: count one verified send for the prefix
        its last send went to (once: the link is consumed) and return that prefix, or None."""
        ...

    def user_ids(self, limit: int = 1000) -> list[str]: ...

    def ping(self) -> bool:
        """Whether the backend answers a trivial request now (health checks; never raises)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncProfileStore(Protocol):
    """The async twins of the hot-path calls (what ``Engine.ascore``/``arecord_*`` need).

    Same arguments, same results as the sync methods. :class:`~riskengine.core.stores.redis.RedisStore`
    implements them over ``redis.asyncio``; the local stores offload to a thread
    (:class:`riskengine.core.stores.base.ThreadOffload`)."""

    async def asnapshot(self, user_id: str, ip: str, since: float, *, session: str = "",
                        otp_since: float | None = None, session_since: float | None = None) -> Snapshot: ...

    async def aupdate(self, user_id: str, fn: Updater) -> UserProfile | None: ...

    async def aadd_failure(self, user_id: str, ip: str, at: float) -> int: ...

    async def areset_failures(self, user_id: str) -> None: ...

    async def aadd_otp_failures(self, user_id: str, session: str, count: int, at: float, *,
                                otp_since: float, session_since: float) -> OtpCounts: ...

    async def apopulation_add(self, country: str, weight: float) -> None: ...

    async def apopulation(self) -> dict[str, float]: ...

    async def ahistory_start(self, now: float) -> float: ...

    async def aput_pending(self, decision_id: str, payload: bytes, expires_at: float, *,
                           user_id: str = "", max_per_user: int = 0) -> None: ...

    async def apop_pending(self, decision_id: str, now: float) -> bytes | None: ...

    async def aget(self, user_id: str) -> UserProfile | None: ...

    async def apeek_pending(self, decision_id: str, now: float) -> bytes | None: ...

    async def aadd_send(self, user_id: str, prefix: str, at: float, *, prefix_since: float,
                        ratio_since: float, user_since: float) -> SendCounts: ...

    async def alink_send(self, decision_id: str, prefix: str, expires_at: float) -> None: ...

    async def averify_send(self, decision_id: str, at: float) -> str | None: ...

    async def aclose(self) -> None:
        """Release the async resources of the running event loop (not the store itself)."""
        ...


@runtime_checkable
class AuditHistory(Protocol):
    """One user's recent audit rows, for ``Engine.user_summary`` (support's "why was I
    challenged?"). Core declares it; :mod:`riskengine.analytics` implements it with AuditDB
    (the ``[analytics]`` extra), and the package root wires the two together, so core never
    imports analytics."""

    def user_rows(self, user_key: str, table: str, columns: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
        """Newest first; times as ISO strings (UTC)."""
        ...

    def close(self) -> None: ...


AuditHistoryFactory = Callable[[str], AuditHistory]
"""Opens the history reader of an audit root."""
