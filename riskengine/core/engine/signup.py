"""Signups: ``record_signup``: the account's signup session as its first history.

An account whose first login is an attacker's has nothing to compare that login with: every
novelty signal needs a history. The auth service knows more than the engine there — it saw the
account being created, from the real user's device, network and place. ``record_signup`` hands
that session to the engine, which learns it through the same lesson an accepted login teaches
(:meth:`~riskengine.core.engine.learning.Learning._lesson`, ``signup=True``): an attacker's
first login from another device, network or region is then novel, and the owner's first login
from the signup device is familiar.

What a signup is not (docs/signals.md, "The signup session"):

- not a login: ``UserProfile.logins`` does not count it, so cold start (``coldstart.min_logins``),
  the step-up budget's "established" and the population prior (established users only) are
  the accepted logins' alone — replay's pre-pass, which counts the input's logins, agrees;
- not verified and not trusted: no device trust, a reset mark is never cleared (a reset
  account is not blank: the signup is refused);
- not a decision: no risk, no challenge, no ``decisions`` row; an ``admin`` audit row
  (operation ``signup``, or ``signup_refused``) says the profile was seeded, or that a seed
  was refused.

It applies **only to a blank profile** (:attr:`UserProfile.blank`), checked inside the store's
atomic update: a signup replayed for an existing account — a hostile or buggy caller — plants
nothing, and a second signup for one account is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from riskengine.audit import SCHEMA_VERSION
from riskengine.core.attempt import Attempt, LoginAttempt
from riskengine.core.engine.scoring import Scoring
from riskengine.core.enrich.geoip import GeoInfo
from riskengine.core.profile import UserProfile

SIGNUP_ACTOR = "record_signup"
"""The ``actor`` of a signup's ``admin`` audit row: the auth service, through this call."""


class Seed:
    """The signup lesson as a store updater that remembers what its last application did
    (a store may apply an update more than once: Redis retries a lost compare-and-set)."""

    __slots__ = ("learned", "lesson", "refused_by")

    def __init__(self, lesson: Callable[[UserProfile | None], UserProfile]) -> None:
        self.lesson = lesson
        self.learned = False
        self.refused_by: UserProfile | None = None

    def __call__(self, p: UserProfile | None) -> UserProfile:
        out = self.lesson(p)
        # the lesson returns the very profile it refused to seed
        self.learned = out is not p
        self.refused_by = None if self.learned else p
        return out


class SignupPlan(NamedTuple):
    """A signup session before the store is written."""

    user_id: str
    at: datetime
    device_key: str
    geo: GeoInfo
    seed: Seed


class Signups(Scoring):
    """``record_signup`` (the async twin is in :mod:`~riskengine.core.engine.aio`)."""

    def record_signup(self, attempt: LoginAttempt | Mapping[str, Any]) -> bool:
        """Learn the account's signup session as its first history; True when the profile
        learned it.

        ``attempt`` is validated as :meth:`score` validates a login (a mapping is checked at
        the same boundary); its ``device_token``, ``event``, ``session_id`` and
        ``enrolled_factors`` are not read. Refused (False, an ``admin`` row
        ``signup_refused``) when the user already has any history: an accepted login, an
        earlier signup, a trusted device, a support reset. Never raises for a store failure:
        False, counted in ``health()["store_errors"]`` as every lost lesson is."""
        if not isinstance(attempt, LoginAttempt):
            attempt = LoginAttempt.model_validate(attempt)
        return self.record_signup_validated(attempt)

    def record_signup_validated(self, attempt: Attempt) -> bool:
        """:meth:`record_signup` for an attempt the caller has already validated (``riskengine
        replay``'s converted signups, checked in bulk with the file's logins)."""
        plan = self._signup_plan(attempt)
        stored = self._update_profile(plan.user_id, plan.seed, "profile seed from a signup")
        return self._signup_done(plan, stored)

    def _signup_plan(self, attempt: Attempt) -> SignupPlan:
        # the login's own preparation (geo, UA, device key, hour, traits), not counted as scored
        p = self._prepare(attempt, 0.0, scored=False)
        lesson = self._lesson(p.now, p.device_key, p.geo, p.hour, None, 0, False, False, p.traits, signup=True)
        return SignupPlan(p.user_id, attempt.timestamp.astimezone(UTC), p.device_key, p.geo, Seed(lesson))

    def _signup_done(self, plan: SignupPlan, stored: bool) -> bool:
        """Count the signup and record it in the ``admin`` audit table (a lost write — the
        store failed — is counted as a store error, not as a signup)."""
        if not stored:
            return False
        seed = plan.seed
        if seed.learned:
            next(self._signups_learned)
            geo = plan.geo
            operation = "signup"
            note = (f"profile seeded by the account's signup session: country {geo.country or '-'}, "
                    f"region {geo.region or '-'}, AS {geo.asn if geo.asn is not None else '-'}")
        else:
            next(self._signups_refused)
            operation = "signup_refused"
            note = "refused: " + _history_of(seed.refused_by)
        self._emit("admin", {
            "event_time": plan.at, "schema_version": SCHEMA_VERSION, "operation": operation,
            "user_key": self.pseudonymizer.user(plan.user_id), "device_key": plan.device_key,
            "actor": SIGNUP_ACTOR, "note": note,
        })
        return seed.learned


def _history_of(p: UserProfile | None) -> str:
    """Why a profile is not blank, for the audit row (no places: the seed was not learned)."""
    if p is None:
        return "the profile already has history"
    if p.reset_at:
        return "the profile was reset by support (the account exists)"
    if p.signup_at:
        return (f"the profile was already seeded by a signup at "
                f"{datetime.fromtimestamp(p.signup_at, UTC).isoformat()}")
    if p.logins:
        return f"the profile already has {p.logins} accepted login(s)"
    return "the profile already has history (a device or a place)"
