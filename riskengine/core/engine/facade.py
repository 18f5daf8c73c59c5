"""The :class:`Engine` facade: one class over the engine's parts (each a mixin over
:class:`~riskengine.core.engine.state.EngineState`; the order below is the method lookup order)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from riskengine.core.config import Settings, _apply_env
from riskengine.core.engine.aio import AsyncOps
from riskengine.core.engine.experiments import Experiments
from riskengine.core.engine.lifecycle import Lifecycle
from riskengine.core.engine.outcomes import Outcomes
from riskengine.core.engine.scoring import Scoring
from riskengine.core.engine.support import SupportOps


class Engine(AsyncOps, Scoring, Outcomes, Experiments, SupportOps, Lifecycle):
    """Risk-based step-up decisions for logins whose password already checked out.

    >>> from datetime import datetime, timezone
    >>> from riskengine import LoginAttempt
    >>> engine = Engine(Settings().with_overrides(geo={"city_db": None}))
    >>> d = engine.score(LoginAttempt(user_id="u1", timestamp=datetime(2026, 1, 5, 9, tzinfo=timezone.utc),
    ...                               ip="81.2.69.160", country="GB", user_agent="Mozilla/5.0"))
    >>> d.action, d.reason_codes
    ('allow', ('NEW_DEVICE', 'COLD_START'))
    """

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(
        cls, config: str | os.PathLike[str] | Settings | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Engine:
        """From a TOML path, a Settings object or a dict; ``RISKENGINE_*`` env vars override."""
        if isinstance(config, Settings):
            settings = config
        elif isinstance(config, Mapping):
            settings = Settings.model_validate(_apply_env(dict(config), os.environ))
        else:
            settings = Settings.load(config)
        return cls(settings, **kwargs)

