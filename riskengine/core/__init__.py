"""The core layer: what an auth service runs in-process (the core install's dependencies only).

Attempt/decision/reason models, settings, profiles, pure signals, enrichment (GeoIP, user
agents, time zones), profile stores, the policy, device tokens, online model inference and
the :class:`~riskengine.core.engine.Engine` facade. It imports nothing above it: not
``riskengine.analytics``, ``offline``, ``ops`` or ``apps``, and of ``riskengine.audit`` only
its package face. See docs/layout.md.
"""
