"""Per-area command modules: each exposes ``register(subparsers)`` (see :mod:`riskengine.apps.cli`)."""
