"""Signals: pure functions, values and ``now`` in, :class:`SignalResult` out. No I/O, no clock."""

from riskengine.core.signals.base import SignalResult

__all__ = ["SignalResult"]
