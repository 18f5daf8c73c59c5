"""riskengine: risk-based step-up authentication.

>>> from riskengine import Engine, LoginAttempt, Decision
"""

from riskengine.core.attempt import LoginAttempt
from riskengine.core.config import Settings
from riskengine.core.decision import Action, Decision, Factor, Reason
from riskengine.core.engine import Engine, UnknownDecisionError, assign_variant
from riskengine.core.profile import UserProfile

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Decision",
    "Engine",
    "Factor",
    "LoginAttempt",
    "Reason",
    "Settings",
    "UnknownDecisionError",
    "UserProfile",
    "__version__",
    "assign_variant",
]
