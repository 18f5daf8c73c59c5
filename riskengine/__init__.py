"""riskengine: risk-based step-up authentication.

>>> from riskengine import Engine, LoginAttempt, Decision
"""

from riskengine.config import Settings
from riskengine.decision import Action, Decision, Factor, Reason
from riskengine.engine import Engine, UnknownDecisionError, assign_variant
from riskengine.models import LoginAttempt
from riskengine.profile import UserProfile

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
