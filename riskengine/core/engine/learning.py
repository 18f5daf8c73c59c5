"""What an accepted (or verified) login teaches the profile; every profile write."""

from __future__ import annotations

from collections.abc import Callable

from riskengine.core.engine.population import PopulationPrior
from riskengine.core.enrich.geoip import GeoInfo
from riskengine.core.profile import NO_TRAITS, LoginTraits, UserProfile
from riskengine.core.stores.base import Updater


class Learning(PopulationPrior):
    """Profile lessons: write-behind or write-through, never failing the login."""

    def _learn(self, user_id: str, now: float, dkey: str, geo: GeoInfo, hour: int | None,
               trust_key: str | None = None, trust_until: int = 0,
               scored_against: UserProfile | None = None, behind: bool = False,
               established: bool = False, verified: bool = False, traits: LoginTraits = NO_TRAITS) -> None:
        """Teach the profile an accepted login (``scored_against``: the profile the login was
        scored against, which write-behind needs to keep reads consistent). ``trust_key``: the
        token device a verified "trust this device" trusts until ``trust_until``."""
        learn = self._lesson(now, dkey, geo, hour, trust_key, trust_until, established, verified, traits)
        if behind and self._writer is not None:
            self._writer.submit(user_id, learn, learn(scored_against))
            return
        self._update_profile(user_id, learn, "profile update for a login")

    def _lesson(self, now: float, dkey: str, geo: GeoInfo, hour: int | None, trust_key: str | None,
                trust_until: int, established: bool, verified: bool,
                traits: LoginTraits = NO_TRAITS, signup: bool = False) -> Callable[[UserProfile | None], UserProfile]:
        """The pure update an accepted login applies to the profile (and the population prior's
        count, which only established users feed). Only accepted logins (allowed, or a verified
        challenge) ever get here: a challenged login cannot teach the profile a "newest" browser
        version, a prefix or an RTT band before its second factor is passed.

        ``signup``: the account's signup session (``Engine.record_signup``) instead — the same
        evidence, learned only into a blank profile (any history, a reset mark or an earlier
        signup: the profile is returned unchanged, the very object), never counted as a login,
        never verified, trusted or "established"."""
        limits = self._evidence_limits
        bounds = self._learn_bounds
        at = int(now)
        country, region, asn, latitude, longitude = geo.country, geo.region, geo.asn, geo.latitude, geo.longitude
        if signup and (established or verified or trust_key is not None):
            raise ValueError("a signup lesson is never established, verified or trusted")

        def learn(p: UserProfile | None) -> UserProfile:
            base = p if p is not None else _EMPTY
            if signup and p is not None and not p.blank:
                # applied inside the store's atomic update: whatever landed first (a login's
                # lesson, another signup, a reset) wins, and nothing of this session is planted
                return p
            out = base.learn(at, dkey, country, region, asn, latitude, longitude, hour, bounds, traits, limits)
            if signup:
                return out.seeded_by_signup(base, at)
            if verified:
                out = out.verified()
            if trust_key is not None:
                out = out.trusted(trust_key, trust_until, now=at, max_devices=bounds.max_devices)
            return out

        if established and geo.country is not None:
            # the population prior learns only from users with a history: a fresh account
            # (an attacker's, or a takeover of one) does not get to shape what "common" means
            self._population_add(geo.country, now)
        return learn

    def _update_profile(self, user_id: str, fn: Updater, what: str) -> bool:
        """Every profile write goes through here: with write-behind on it queues behind this
        user's pending lessons (so they apply in order), otherwise it writes through. False
        when the store refused it (counted and logged, never raised)."""
        try:
            if self._writer is not None:
                self._writer.update(user_id, fn)
            else:
                self.store.update(user_id, fn)
        except Exception as exc:  # noqa: BLE001 - a lost lesson must not fail the login
            self._store_failed(f"{what} failed", exc)
            return False
        return True


_EMPTY = UserProfile()
