"""Prometheus metrics on a caller's registry, shared collectors, and OpenTelemetry spans."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from riskengine import Engine
from riskengine.audit.base import MemorySink
from riskengine.core.stores.redis_server import free_port
from riskengine.testing import FIREFOX_MAC, PARIS, T0, establish, make_attempt, offline_settings

REPO = Path(__file__).resolve().parents[1]
KEY = "k" * 40


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    found = reg.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_decisions_reasons_latency_and_challenges_are_counted() -> None:
    reg = CollectorRegistry()
    with Engine(offline_settings(), sink=MemorySink(), metrics_registry=reg) as engine:
        last = establish(engine, days=5)
        ts = last + timedelta(days=1)
        d = engine.score(make_attempt(ts=ts, place=PARIS, ua=FIREFOX_MAC))
        assert d.action == "challenge"
        engine.record_outcome(d.decision_id, "verified", channels=["whatsapp", "sms"],
                              timestamp=ts + timedelta(seconds=40))
    assert value(reg, "riskengine_decisions_total", action="allow", mode="enforce") == 5
    assert value(reg, "riskengine_decisions_total", action="challenge", mode="enforce") == 1
    assert value(reg, "riskengine_reasons_total", code="NEW_DEVICE") >= 2  # first login + the new one
    assert value(reg, "riskengine_reasons_total", code="NEW_COUNTRY") == 1
    assert value(reg, "riskengine_score_latency_seconds_count") == 6
    assert value(reg, "riskengine_score_latency_seconds_sum") > 0
    assert value(reg, "riskengine_challenges_total", outcome="verified", channel="sms") == 1
    assert value(reg, "riskengine_degraded_total") == 0
    text = generate_latest(reg).decode()
    for name in ("riskengine_decisions_total", "riskengine_reasons_total", "riskengine_score_latency_seconds_bucket",
                 "riskengine_degraded_total", "riskengine_store_errors_total", "riskengine_audit_dropped_total",
                 "riskengine_challenges_total"):
        assert name in text, name


def test_shadow_decisions_are_labelled_with_the_would_be_action() -> None:
    reg = CollectorRegistry()
    settings = offline_settings(policy={"mode": "shadow"})
    with Engine(settings, sink=MemorySink(), metrics_registry=reg) as engine:
        last = establish(engine, days=5)
        engine.score(make_attempt(ts=last + timedelta(days=1), place=PARIS, ua=FIREFOX_MAC))
    assert value(reg, "riskengine_decisions_total", action="challenge", mode="shadow") == 1
    assert value(reg, "riskengine_decisions_total", action="allow", mode="shadow") == 5


def test_two_engines_share_one_registry_and_closed_engines_keep_their_counts() -> None:
    reg = CollectorRegistry()
    url = f"redis://127.0.0.1:{free_port()}/0?socket_timeout=0.05&socket_connect_timeout=0.05"
    dead = Engine(offline_settings(store={"url": url}, trust={"secret_keys": [KEY]}), sink=MemorySink(),
                  metrics_registry=reg)
    with Engine(offline_settings(), sink=MemorySink(), metrics_registry=reg) as live:
        live.score(make_attempt())
        for i in range(3):
            assert dead.score(make_attempt(ts=T0 + timedelta(seconds=i))).degraded
        dead.record_failure("alice", "81.2.69.160", T0)  # a store error outside score()
        assert value(reg, "riskengine_degraded_total") == 3
        assert value(reg, "riskengine_store_errors_total") == 4  # 3 unparked fail-mode challenges + 1
        dead.close()
        assert value(reg, "riskengine_degraded_total") == 3  # a closed engine's counts stay
        live.score(make_attempt(ts=T0 + timedelta(minutes=5)))
    assert value(reg, "riskengine_decisions_total", action="challenge", mode="enforce") == 3  # fail mode
    assert value(reg, "riskengine_score_latency_seconds_count") == 5


def test_setting_prometheus_uses_the_global_registry() -> None:
    before = value(REGISTRY, "riskengine_score_latency_seconds_count")
    with Engine(offline_settings(metrics={"prometheus": True}), sink=MemorySink()) as engine:
        engine.score(make_attempt())
    with Engine(offline_settings(metrics={"prometheus": True}), sink=MemorySink()) as engine:
        engine.score(make_attempt())  # a second engine on the global registry: no duplicate error
    assert value(REGISTRY, "riskengine_score_latency_seconds_count") == before + 2


def test_engine_without_metrics_keeps_no_observer() -> None:
    with Engine(offline_settings(), sink=MemorySink()) as engine:
        assert engine._observer is None


def _run(code: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_missing_prometheus_client_names_the_extra() -> None:
    out = _run("""
        import importlib.abc, json, sys
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "prometheus_client":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Blocker())
        from riskengine import Engine
        from riskengine.audit.base import MemorySink
        from riskengine.testing import offline_settings
        Engine(offline_settings(), sink=MemorySink()).close()  # metrics off: fine without it
        try:
            Engine(offline_settings(metrics={"prometheus": True}), sink=MemorySink())
            print(json.dumps({"error": None}))
        except ImportError as exc:
            print(json.dumps({"error": str(exc)}))
    """)
    assert out["error"] is not None and 'pip install "riskengine[metrics]"' in str(out["error"])


def test_score_opens_a_span_without_identifiers() -> None:
    out = _run("""
        import json
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from riskengine import Engine
        from riskengine.audit.base import MemorySink
        from riskengine.testing import make_attempt, offline_settings

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        with Engine(offline_settings(), sink=MemorySink()) as engine:
            d = engine.score(make_attempt(user_id="alice@example.com", ip="81.2.69.160"))
        spans = exporter.get_finished_spans()
        print(json.dumps({"names": [s.name for s in spans], "action": d.action, "risk": d.risk,
                          "reasons": list(d.reason_codes),
                          "attributes": [{k: (list(v) if isinstance(v, tuple) else v)
                                          for k, v in s.attributes.items()} for s in spans]}))
    """)
    assert out["names"] == ["riskengine.score"]
    attrs = out["attributes"][0]  # type: ignore[index]
    assert attrs["riskengine.action"] == out["action"]
    assert attrs["riskengine.risk"] == out["risk"]
    assert attrs["riskengine.reasons"] == out["reasons"]
    blob = json.dumps(attrs)
    assert "alice" not in blob and "81.2.69" not in blob


def test_no_span_without_a_configured_tracer_provider() -> None:
    out = _run("""
        import json
        from riskengine import Engine
        from riskengine.audit.base import MemorySink
        from riskengine.testing import offline_settings
        with Engine(offline_settings(), sink=MemorySink()) as engine:
            print(json.dumps({"observer": engine._observer is not None}))
    """)
    assert out == {"observer": False}


@pytest.mark.parametrize("registry", [None, "custom"])
def test_instruments_are_reused_per_registry(registry: str | None) -> None:
    from riskengine.core.metrics import instruments_for

    reg = CollectorRegistry() if registry else None
    assert instruments_for(reg) is instruments_for(reg)
