from __future__ import annotations

from typing import NamedTuple


class SignalResult(NamedTuple):
    """How strongly one signal fired: ``value`` in [0, 1] (0 = not at all), a code, a sentence."""

    code: str
    value: float
    detail: str

    @property
    def fired(self) -> bool:
        return self.value > 0.0
