from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignalResult:
    """How strongly one signal fired: ``value`` in [0, 1] (0 = not at all), a code, a sentence."""

    code: str
    value: float
    detail: str

    @property
    def fired(self) -> bool:
        return self.value > 0.0
