"""Challenge parking: what ``record_outcome`` needs about a challenged login, kept in the
profile store (``put_pending``) so any worker can take the outcome.

The record is **versioned** JSON. A rolling deploy runs old and new workers side by side,
so :func:`decode` reads every earlier version and ignores fields a newer version added;
it never raises ``KeyError``: a record it cannot read raises :class:`ParkedRecordError`
naming the problem. Versions:

- 1: ``u t d h s f r g`` (+ optional ``dt rc pv``), no ``"v"`` key;
- 2: adds ``"v": 2``, ``tk`` (the device key a valid device token proved, or null) and
  ``e`` (the user was established when scored);
- 3: adds ``x`` (the login's traits: browser/OS families and versions, address prefix, city,
  RTT — what a verified challenge teaches the profile beyond device and place). Older
  records (and a malformed ``x``) read as no traits: the lesson is then only the old one.
  ``ev`` (the event scored: ``LoginAttempt.event``); earlier versions were logins.
- 4: adds ``b``: what the step-up budget's sketch counted for the login, ``[risk, forced]``
  (null: not counted), so a challenge that fails can take it back out
  (:meth:`~riskengine.core.budget.BudgetSketch.retract`). Older records read as not counted.

>>> rec = ParkedChallenge("alice", 1.5e9, "ua:x", 9, "s1", "totp", 0.5)
>>> decode(encode(rec)) == rec
True
>>> decode(b'{"u": "bob", "t": 1, "d": "k", "h": null, "s": "", "f": null, "r": 0.4, '
...        b'"g": [null, null, null, null, null, null]}').version
1
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from riskengine.core.attempt import Attempt
from riskengine.core.decision import Decision
from riskengine.core.engine.state import EngineState
from riskengine.core.enrich.geoip import GeoInfo
from riskengine.core.profile import NO_TRAITS, LoginTraits

PARKED_VERSION: Final = 4
"""The version :func:`encode` writes (:func:`decode` reads this one and every earlier one)."""
_REQUIRED: Final = ("u", "t", "d", "h", "s", "f", "r", "g")

Counted = tuple[float, bool]
"""What the step-up budget's sketch counted for a login: the risk it was counted at, and whether
the floor forced it (:meth:`~riskengine.core.budget.BudgetSketch.observe`)."""
Place = tuple[str | None, str | None, str | None, float | None, float | None, int | None]
"""country, region, city, latitude, longitude, ASN."""
_NO_PLACE: Final[Place] = (None, None, None, None, None, None)


class ParkedRecordError(ValueError):
    """A parked challenge record that cannot be read (corrupt, or missing a required field)."""


@dataclass(frozen=True, slots=True)
class ParkedChallenge:
    """A challenged login, as ``record_outcome`` needs it."""

    user_id: str
    at: float
    """The login's epoch seconds."""
    device_key: str
    local_hour: int | None
    session: str
    factor: str | None
    risk: float
    place: Place = _NO_PLACE
    device_type: str | None = None
    reason_codes: tuple[str, ...] = ()
    policy_version: str | None = None
    trusted_key: str | None = None
    """The device key a valid device token proved (None: no token, or a version-1 record)."""
    established: bool = False
    traits: LoginTraits = NO_TRAITS
    event: str = "login"
    """The event challenged: only a verified ``"login"`` teaches the profile or trusts a device
    (a value a newer version added is kept as read, and is not a login)."""
    counted: Counted | None = None
    """What the step-up budget counted for the login (None: nothing, or a record before version 4)."""
    version: int = PARKED_VERSION

    @property
    def geo(self) -> GeoInfo:
        country, region, city, lat, lon, asn = self.place
        return GeoInfo(country, region, city, lat, lon, None, asn, None)


def encode(rec: ParkedChallenge) -> bytes:
    """The record as stored (always the current :data:`PARKED_VERSION`)."""
    return json.dumps({
        "v": PARKED_VERSION,
        "u": rec.user_id, "t": rec.at, "d": rec.device_key, "h": rec.local_hour, "s": rec.session,
        "f": rec.factor, "r": rec.risk, "dt": rec.device_type, "rc": list(rec.reason_codes),
        "pv": rec.policy_version, "g": list(rec.place), "tk": rec.trusted_key, "e": rec.established,
        "x": list(rec.traits),
        "ev": rec.event,
        "b": None if rec.counted is None else list(rec.counted),
    }).encode()


def decode(raw: bytes) -> ParkedChallenge:
    """A stored record of any version up to this one's, or newer (unknown fields are ignored).

    >>> decode(b'{"v": 3, "u": "x"}')
    Traceback (most recent call last):
    ...
    riskengine.core.engine.parking.ParkedRecordError: parked challenge record (version 3) lacks d, f, g, h, r, s, t
    """
    try:
        ctx: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParkedRecordError(f"parked challenge record is not JSON: {exc}") from None
    if not isinstance(ctx, dict):
        raise ParkedRecordError(f"parked challenge record is a JSON {type(ctx).__name__}, not an object")
    version = ctx.get("v", 1)
    missing = sorted(k for k in _REQUIRED if k not in ctx)
    if missing:
        raise ParkedRecordError(f"parked challenge record (version {version}) lacks {', '.join(missing)}")
    place = ctx["g"]
    if not isinstance(place, list) or len(place) != len(_NO_PLACE):
        raise ParkedRecordError(f"parked challenge record: g must list {len(_NO_PLACE)} place fields, got {place!r}")
    if not isinstance(ctx["u"], str) or not isinstance(ctx["t"], int | float):
        raise ParkedRecordError("parked challenge record: u must be a string and t a number")
    codes = ctx.get("rc") or ()
    event = ctx.get("ev", "login")
    if not isinstance(event, str):
        raise ParkedRecordError(f"parked challenge record: ev must be a string, got {event!r}")
    return ParkedChallenge(
        user_id=ctx["u"], at=float(ctx["t"]), device_key=ctx["d"], local_hour=ctx["h"], session=ctx["s"],
        factor=ctx["f"], risk=ctx["r"], place=tuple(place),
        device_type=ctx.get("dt"), reason_codes=tuple(codes), policy_version=ctx.get("pv"),
        trusted_key=ctx.get("tk"), established=bool(ctx.get("e", False)), traits=_traits(ctx.get("x")),
        event=event, counted=_counted(ctx.get("b")),
        version=version if isinstance(version, int) else 1)


def _counted(raw: Any) -> Counted | None:
    """The parked budget entry, or none when absent (versions 1–3) or not what version 4 writes
    (a record that cannot say what was counted retracts nothing)."""
    if not isinstance(raw, list) or len(raw) != 2:
        return None
    risk, forced = raw
    if isinstance(risk, bool) or not isinstance(risk, int | float) or not 0.0 <= risk <= 1.0 \
            or not isinstance(forced, bool):
        return None
    return float(risk), forced


def _traits(raw: Any) -> LoginTraits:
    """The parked traits, or none when absent (versions 1–2) or not what version 3 writes."""
    if not isinstance(raw, list) or len(raw) != len(NO_TRAITS):
        return NO_TRAITS
    b, bv, o, ov, prefix, city, rtt, digest = raw
    if not all(v is None or isinstance(v, str) for v in (b, bv, o, ov, prefix, city, digest)) \
            or not (rtt is None or (isinstance(rtt, int | float) and 0 < rtt < 60_000)):
        return NO_TRAITS
    return LoginTraits(b, bv or "", o, ov or "", prefix, city, None if rtt is None else float(rtt), digest)


class Parking(EngineState):
    """Parks a challenged login's context in the store (see :func:`encode`)."""

    def _park(self, decision: Decision, attempt: Attempt, user_id: str, now: float, geo: GeoInfo,
              dkey: str, hour: int | None, device_type: str, *, trusted_key: str | None,
              established: bool, traits: LoginTraits = NO_TRAITS, counted: Counted | None = None) -> None:
        """Keep what record_outcome needs, in the store, so any worker can take the outcome."""
        payload = self._parked(decision, attempt, user_id, now, geo, dkey, hour, device_type,
                               trusted_key=trusted_key, established=established, traits=traits,
                               counted=counted)
        try:
            self.store.put_pending(decision.decision_id, payload, now + self._session_s, user_id=user_id,
                                   max_per_user=self._max_pending_per_user)
        except Exception as exc:  # noqa: BLE001
            self._store_failed("could not park challenge context", exc)

    def _parked(self, decision: Decision, attempt: Attempt, user_id: str, now: float, geo: GeoInfo,
                dkey: str, hour: int | None, device_type: str, *, trusted_key: str | None,
                established: bool, traits: LoginTraits = NO_TRAITS, counted: Counted | None = None) -> bytes:
        """The parked record of a challenged login (:func:`encode`)."""
        return encode(ParkedChallenge(
            user_id, now, dkey, hour, attempt.session_id or "", decision.factor, decision.risk,
            (geo.country, geo.region, geo.city, geo.latitude, geo.longitude, geo.asn),
            device_type, tuple(r.code for r in decision.reasons), decision.policy_version,
            trusted_key, established, traits, decision.event, counted))
