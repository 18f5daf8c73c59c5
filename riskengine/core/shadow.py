"""Shadow mode (``policy.mode = "shadow"``): score everything, enforce nothing.

A deployment runs the engine audit-only before it enforces: every login is scored and
audited as usual, ``score()`` returns ``allow``, and :attr:`Decision.shadow_action` carries
what enforcement would have done. The returned allow teaches the profile exactly as an
enforced allow does (profiles are warm on the day enforcement starts), and no challenge is
parked (none was issued). The dashboard and ``riskengine report`` read the would-be rates
from the audit log's ``shadow_action`` column (:meth:`riskengine.analytics.AuditDB.shadow_summary`).
"""

from __future__ import annotations

from riskengine.core.decision import Decision


def shadowed(d: Decision) -> Decision:
    """``d`` as shadow mode returns it: ``allow`` (no factor), with ``shadow_action`` set to
    the enforced action; the risk, reasons and ids unchanged.

    >>> from riskengine.core.decision import Reason
    >>> d = Decision("d1", "challenge", 0.6, (Reason("NEW_DEVICE", 0.55, "new"),), "sms", "u1", "k", "v1")
    >>> s = shadowed(d)
    >>> s.action, s.shadow_action, s.factor, s.reason_codes
    ('allow', 'challenge', None, ('NEW_DEVICE',))
    """
    return Decision(d.decision_id, "allow", d.risk, d.reasons, None, d.user_id, d.device_key,
                    d.policy_version, shadow_action=d.action, threshold=d.threshold, event=d.event)


__all__ = ["shadowed"]
