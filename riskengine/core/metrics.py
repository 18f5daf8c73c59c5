"""Prometheus metrics and OpenTelemetry spans for the engine (both optional).

Prometheus (extra ``[metrics]``; ``[metrics] prometheus = true`` or
``Engine(metrics_registry=registry)``; the default registry is prometheus_client's global
``REGISTRY``):

=====================================================  ==========================================
``riskengine_decisions_total{action,mode}``            decisions by what the policy decided
                                                       (``mode="shadow"``: the would-be action;
                                                       every one of them was returned as allow)
``riskengine_reasons_total{code}``                     reason codes on decisions
``riskengine_score_latency_seconds``                   histogram of ``score()`` wall time
``riskengine_degraded_total``                          fail-mode decisions (``ENGINE_DEGRADED``)
``riskengine_store_errors_total``                      profile-store calls that failed
``riskengine_audit_dropped_total``                     audit events the sink could not keep
``riskengine_challenges_total{outcome,channel}``       challenge outcomes by final channel
                                                       (``channel="none"``: none reported)
=====================================================  ==========================================

Collectors are created once per registry and shared: any number of engines can report to
one registry (the last three are read from every live engine at scrape time, plus what
closed engines counted before they closed).

OpenTelemetry (``opentelemetry-api``, extra ``[otel]``): when a tracer provider is configured
**before the Engine is constructed**, every ``score()`` runs inside a span
``riskengine.score`` whose attributes are the action, risk, reason codes, policy version,
shadow action and whether the decision was degraded — never the user id, the address or
any other raw identifier.

With neither on, the engine keeps no observer and ``score()`` pays one attribute check.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from riskengine._extras import extra
from riskengine.core.decision import Decision

if TYPE_CHECKING:
    from riskengine.core.attempt import Attempt

LATENCY_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05, 0.1, 0.25, 0.5, 1.0)
"""Seconds: ``score()`` is sub-millisecond in memory and a round trip or two with Redis."""

ENGINE_COUNTERS: dict[str, str] = {
    "degraded": "Fail-mode decisions (ENGINE_DEGRADED): the profile store was unavailable.",
    "store_errors": "Profile-store calls that failed (the login still got a decision).",
    "audit_dropped": "Audit events the sink could not keep (buffer full, unwritable root).",
    "signups_refused": "record_signup calls refused: the account already had history (audit table admin).",
}
"""Counters every engine keeps anyway (see ``Engine.counters()``), exported at scrape time."""

ScoreFn = Callable[["Attempt", float], Decision]


class _EngineCounters:
    """A custom collector: the sum of :data:`ENGINE_COUNTERS` over the engines on a registry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: weakref.WeakSet[Any] = weakref.WeakSet()
        self._retired = dict.fromkeys(ENGINE_COUNTERS, 0)

    def add(self, engine: Any) -> None:
        with self._lock:
            self._engines.add(engine)

    def retire(self, engine: Any) -> None:
        """Keep a closing engine's final counts (counters never go down)."""
        with self._lock:
            if engine in self._engines:
                self._engines.discard(engine)
                for name, value in engine.counters().items():
                    self._retired[name] += value

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        with self._lock:
            totals = dict(self._retired)
            engines = list(self._engines)
        for engine in engines:
            for name, value in engine.counters().items():
                totals[name] += value
        for name, doc in ENGINE_COUNTERS.items():
            yield CounterMetricFamily(f"riskengine_{name}", doc, value=totals[name])

    def describe(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        for name, doc in ENGINE_COUNTERS.items():
            yield CounterMetricFamily(f"riskengine_{name}", doc)


class PrometheusInstruments:
    """The collectors of one registry (create with :func:`instruments_for`)."""

    def __init__(self, registry: Any) -> None:
        with extra("metrics", feature="Prometheus metrics (riskengine.core.metrics)"):
            from prometheus_client import Counter, Histogram

        self.registry = registry
        self.decisions = Counter("riskengine_decisions", "Decisions by action and policy mode.",
                                 ("action", "mode"), registry=registry)
        self.reasons = Counter("riskengine_reasons", "Reason codes on decisions.", ("code",), registry=registry)
        self.latency = Histogram("riskengine_score_latency_seconds", "Wall time of Engine.score().",
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.challenges = Counter("riskengine_challenges", "Challenge outcomes by final channel.",
                                  ("outcome", "channel"), registry=registry)
        self.engine_counters = _EngineCounters()
        registry.register(self.engine_counters)
        # label children resolved once: the per-decision path is dict lookups and inc()
        self._decision_children: dict[tuple[str, str], Any] = {}
        self._reason_children: dict[str, Any] = {}

    def decision(self, d: Decision, seconds: float) -> None:
        if d.shadow_action is None:
            key = (d.action, "enforce")
        else:
            key = (d.shadow_action, "shadow")
        child = self._decision_children.get(key)
        if child is None:
            child = self._decision_children.setdefault(key, self.decisions.labels(*key))
        child.inc()
        for r in d.reasons:
            rc = self._reason_children.get(r.code)
            if rc is None:
                rc = self._reason_children.setdefault(r.code, self.reasons.labels(r.code))
            rc.inc()
        self.latency.observe(seconds)


_LOCK = threading.Lock()
_BY_REGISTRY: weakref.WeakKeyDictionary[Any, PrometheusInstruments] = weakref.WeakKeyDictionary()


def instruments_for(registry: Any = None) -> PrometheusInstruments:
    """The collectors of ``registry`` (None: prometheus_client's global ``REGISTRY``), created
    the first time and reused after, so two engines on one registry share them."""
    if registry is None:
        with extra("metrics", feature="Prometheus metrics (riskengine.core.metrics)"):
            from prometheus_client import REGISTRY

        registry = REGISTRY
    with _LOCK:
        found = _BY_REGISTRY.get(registry)
        if found is None:
            found = _BY_REGISTRY[registry] = PrometheusInstruments(registry)
        return found


def configured_tracer() -> Any:
    """An OpenTelemetry tracer when opentelemetry-api is installed and a real tracer provider is
    set (not the API's default proxy / no-op); None otherwise."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("riskengine")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        ours = None
    return provider.get_tracer("riskengine", ours)


class Observer:
    """What ``score()`` and ``record_outcome()`` report to when metrics or tracing are on."""

    def __init__(self, prometheus: PrometheusInstruments | None, tracer: Any) -> None:
        self.prometheus = prometheus
        self.tracer = tracer

    def scored(self, fn: ScoreFn, attempt: Attempt, started: float) -> Decision:
        """Run ``fn(attempt, started)`` (the scoring) inside a span, then count the decision."""
        import time

        tracer = self.tracer
        if tracer is None:
            d = fn(attempt, started)
        else:
            with tracer.start_as_current_span("riskengine.score") as span:
                d = fn(attempt, started)
                span.set_attributes(span_attributes(d))
        if self.prometheus is not None:
            self.prometheus.decision(d, time.perf_counter() - started)
        return d

    def challenge(self, outcome: str, channel: str | None) -> None:
        if self.prometheus is not None:
            self.prometheus.challenges.labels(outcome, channel or "none").inc()


def span_attributes(d: Decision) -> dict[str, Any]:
    """The span attributes of a decision: no user id, address or device key.

    >>> span_attributes(Decision("d1", "allow", 0.0, (), None, "alice", "k", "rules-v1"))["riskengine.action"]
    'allow'
    """
    attrs: dict[str, Any] = {
        "riskengine.action": d.action,
        "riskengine.risk": d.risk,
        "riskengine.reasons": list(d.reason_codes),
        "riskengine.policy_version": d.policy_version,
        "riskengine.degraded": d.degraded,
    }
    if d.shadow_action is not None:
        attrs["riskengine.shadow_action"] = d.shadow_action
    return attrs


def observer_for(prometheus: bool, registry: Any = None) -> Observer | None:
    """The engine's observer: Prometheus when asked for (``prometheus`` or a ``registry``),
    tracing when a tracer provider is configured; None when neither."""
    instruments = instruments_for(registry) if prometheus or registry is not None else None
    tracer = configured_tracer()
    if instruments is None and tracer is None:
        return None
    return Observer(instruments, tracer)


__all__ = ["ENGINE_COUNTERS", "LATENCY_BUCKETS", "Observer", "PrometheusInstruments", "configured_tracer",
           "instruments_for", "observer_for", "span_attributes"]
