"""riskengine: risk-based step-up authentication.

>>> from riskengine import Engine, LoginAttempt, Decision
"""

from riskengine.core.attempt import LoginAttempt
from riskengine.core.config import Settings
from riskengine.core.decision import Action, Decision, Factor, Reason
from riskengine.core.engine import Engine, UnknownDecisionError, assign_variant
from riskengine.core.engine.support import use_audit_history
from riskengine.core.profile import UserProfile
from riskengine.core.sms import SendDecision
from riskengine.core.typing import AuditHistory

__version__ = "0.1.0"


def _audit_history(root: str) -> AuditHistory:
    """``Engine.user_summary``'s audit history: AuditDB, from the ``[analytics]`` extra, imported
    only when an audit root is read (the root wires layers together; core declares the protocol)."""
    from riskengine.analytics.history import UserHistory

    return UserHistory(root)


use_audit_history(_audit_history)

__all__ = [
    "Action",
    "Decision",
    "Engine",
    "Factor",
    "LoginAttempt",
    "Reason",
    "SendDecision",
    "Settings",
    "UnknownDecisionError",
    "UserProfile",
    "__version__",
    "assign_variant",
]
