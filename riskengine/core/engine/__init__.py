"""The Engine: ``score`` / ``record_failure`` / ``record_outcome`` / ``record_signup`` (and
experiments, support).

Everything expensive happens in the constructor (open GeoIP readers, compile the policy,
open the store and the audit sink). ``score()`` is lookups and arithmetic, is
thread-safe, and never raises because a dependency is degraded: it returns the
configured fail-mode decision with reason ``ENGINE_DEGRADED`` instead.

One facade (:class:`Engine`, in :mod:`~riskengine.core.engine.facade`) over cohesive parts,
each a module: ``state`` (construction), ``scoring``, ``learning`` (profile lessons),
``parking`` (the versioned challenge record), ``outcomes``, ``signup`` (the signup session
as an account's first history), ``experiments``, ``audit_rows``,
``population`` (the population prior), ``support``, ``lifecycle`` (health, flush, close).
"""

from riskengine.core.engine.experiments import assign_variant
from riskengine.core.engine.facade import Engine
from riskengine.core.engine.outcomes import UnknownDecisionError

__all__ = ["Engine", "UnknownDecisionError", "assign_variant"]
