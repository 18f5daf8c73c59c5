"""UserProfile: the compact, bounded, mergeable per-user state the signals read.

Immutable: learning returns a new profile, so a store can hand the same object to many
threads and replace it atomically. Serialised as compact JSON (typically 300–900 bytes).

``UserProfile`` is a ``NamedTuple`` rather than a frozen dataclass: it is rebuilt on every
accepted login, and a frozen dataclass pays one ``object.__setattr__`` call per field
(1.4 µs for 14 fields against 0.3 µs for the tuple, measured on the hot path).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final, NamedTuple

HOURS: Final = 24
_EMPTY_HOURS: Final[tuple[float, ...]] = (0.0,) * HOURS
FORMAT_VERSION: Final = 1
_COMPRESS_ABOVE: Final = 640
_REBASE_HALF_LIVES: Final = 8
_NOTHING: Final[Mapping[Any, Any]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DeviceSeen:
    first_seen: int
    last_seen: int
    count: int
    trusted_until: int = 0


class UserProfile(NamedTuple):
    """What the engine remembers about one user. Times are epoch seconds (int)."""

    created: int = 0
    logins: int = 0
    devices: Mapping[str, DeviceSeen] = _NOTHING
    countries: Mapping[str, int] = _NOTHING
    regions: Mapping[str, int] = _NOTHING
    asns: Mapping[int, int] = _NOTHING
    hours: tuple[float, ...] = _EMPTY_HOURS
    hours_at: int = 0
    last_ts: int = 0
    last_lat: float | None = None
    last_lon: float | None = None
    reset_at: int = 0
    """When support reset this profile (0: never, or a verified challenge since): until a
    challenge is verified every login is stepped up with ``PROFILE_RESET``."""

    # -- reading ---------------------------------------------------------------------
    def hour_share(self, hour: int) -> float:
        """Share of (decayed) logins in ``hour`` ±1 h, so 08:59 vs 09:01 is not news."""
        total = sum(self.hours)
        if total <= 0:
            return 0.0
        h = self.hours
        near = h[(hour - 1) % HOURS] * 0.5 + h[hour % HOURS] + h[(hour + 1) % HOURS] * 0.5
        # the smoothed bins sum to 2 × total, so this is a share that sums to 1 over 24 h
        return near / (2.0 * total)

    # -- learning (all return new profiles) -------------------------------------------
    def learned(
        self,
        *,
        now: int,
        device_key: str,
        country: str | None,
        region: str | None,
        asn: int | None,
        latitude: float | None,
        longitude: float | None,
        local_hour: int | None,
        max_devices: int = 8,
        max_places: int = 12,
        half_life_days: float = 90.0,
        max_regions: int | None = None,
        max_asns: int | None = None,
    ) -> UserProfile:
        """The profile after an accepted login (allowed, or challenge verified)."""
        devices: Mapping[str, DeviceSeen]
        seen = self.devices.get(device_key)
        if seen is None:
            devices = _bounded({**self.devices, device_key: DeviceSeen(now, now, 1)}, max_devices,
                               key=_last_seen)
        else:
            devices = dict(self.devices)
            devices[device_key] = DeviceSeen(
                seen.first_seen, now if now > seen.last_seen else seen.last_seen, seen.count + 1,
                seen.trusted_until)
        hours, hours_at = self.hours, self.hours_at
        if local_hour is not None:
            half_life_s = half_life_days * 86400.0
            if now - hours_at > _REBASE_HALF_LIVES * half_life_s or not hours_at:
                # A login adds weight 2^((now − hours_at)/half-life): newer logins weigh more,
                # which is the same as decaying every older bin, at O(1) per login. Only when
                # the weights grow large (every ~8 half-lives) are the bins rescaled to `now`.
                decay = 0.5 ** ((now - hours_at) / half_life_s)
                hours = tuple([round(c * decay, 3) for c in hours])
                hours_at = now
            bins = list(hours)
            bins[local_hour] = round(bins[local_hour] + 2.0 ** ((now - hours_at) / half_life_s), 3)
            hours = tuple(bins)
        newer = now >= self.last_ts
        return UserProfile(
            self.created or now,
            self.logins + 1,
            devices,
            _touch(self.countries, country, now, max_places),
            _touch(self.regions, _region_key(country, region) if region else None, now,
                   max_regions or max_places),
            _touch(self.asns, asn, now, max_asns or max_places),
            hours,
            hours_at,
            now if newer else self.last_ts,
            latitude if newer and latitude is not None else self.last_lat,
            longitude if newer and longitude is not None else self.last_lon,
            self.reset_at,
        )

    def trusted(self, device_key: str, until: int, *, now: int | None = None,
                max_devices: int = 8) -> UserProfile:
        """Trust ``device_key`` until ``until``. With ``now``, a device the profile does not
        hold yet (a freshly minted token device) is added as seen at ``now``."""
        devices = dict(self.devices)
        seen = devices.get(device_key)
        if seen is None:
            if now is None:
                return self
            devices[device_key] = DeviceSeen(now, now, 1, until)
            return self._replace(devices=_bounded(devices, max_devices, key=_last_seen))
        devices[device_key] = replace(seen, trusted_until=until)
        return self._replace(devices=devices)

    def verified(self) -> UserProfile:
        """After a verified challenge: a support reset has been answered."""
        return self._replace(reset_at=0) if self.reset_at else self

    @classmethod
    def reset_marker(cls, now: int) -> UserProfile:
        """What ``reset_user`` leaves: no history, no devices (every token revoked), and the
        mark that keeps logins stepped up until one is verified."""
        return cls(reset_at=max(1, now))

    def untrusted(self, device_key: str | None = None) -> UserProfile:
        devices = {
            k: (replace(v, trusted_until=0) if device_key in (None, k) else v)
            for k, v in self.devices.items()
        }
        return self._replace(devices=devices)

    def merge(self, other: UserProfile, *, max_devices: int = 8, max_places: int = 12) -> UserProfile:
        """Union of two concurrent versions of one user's profile (last-seen = the later)."""
        devices: dict[str, DeviceSeen] = dict(self.devices)
        for k, d in other.devices.items():
            mine = devices.get(k)
            devices[k] = d if mine is None else DeviceSeen(
                min(mine.first_seen, d.first_seen), max(mine.last_seen, d.last_seen),
                max(mine.count, d.count), max(mine.trusted_until, d.trusted_until))
        later = other if other.last_ts >= self.last_ts else self
        return later._replace(
            created=min(x for x in (self.created, other.created) if x) if (self.created or other.created) else 0,
            logins=max(self.logins, other.logins),
            devices=_bounded(devices, max_devices, key=lambda d: d.last_seen),
            countries=_merge_seen(self.countries, other.countries, max_places),
            regions=_merge_seen(self.regions, other.regions, max_places),
            asns=_merge_seen(self.asns, other.asns, max_places),
            hours=tuple(max(a, b) for a, b in zip(self.hours, other.hours, strict=True)),
            hours_at=max(self.hours_at, other.hours_at),
            reset_at=max(self.reset_at, other.reset_at),
        )

    # -- serialisation ----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "c": self.created,
            "n": self.logins,
            "d": {k: [d.first_seen, d.last_seen, d.count, d.trusted_until] for k, d in self.devices.items()},
            "co": dict(self.countries),
            "r": dict(self.regions),
            "a": {str(k): v for k, v in self.asns.items()},
            "h": list(self.hours) if any(self.hours) else [],
            "ha": self.hours_at,
            "l": [self.last_ts, self.last_lat, self.last_lon],
            **({"x": self.reset_at} if self.reset_at else {}),
        }

    def to_bytes(self) -> bytes:
        """Compact JSON; large profiles are zlib-compressed (marker byte ``z``) to stay ≤ 1 KB."""
        raw = json.dumps(self.to_json(), separators=(",", ":")).encode()
        if len(raw) <= _COMPRESS_ABOVE:
            return raw
        return b"z" + zlib.compress(raw, 6)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UserProfile:
        if data.get("v") != FORMAT_VERSION:
            raise ValueError(f"unsupported profile format version {data.get('v')!r}")
        last_ts, last_lat, last_lon = data["l"]
        hours = tuple(float(x) for x in data["h"]) if data["h"] else _EMPTY_HOURS
        if len(hours) != HOURS:
            raise ValueError("profile hour histogram must have 24 bins")
        return cls(
            created=int(data["c"]),
            logins=int(data["n"]),
            devices={k: DeviceSeen(*(int(x) for x in v)) for k, v in data["d"].items()},
            countries={k: int(v) for k, v in data["co"].items()},
            regions={k: int(v) for k, v in data["r"].items()},
            asns={int(k): int(v) for k, v in data["a"].items()},
            hours=hours,
            hours_at=int(data["ha"]),
            last_ts=int(last_ts),
            last_lat=last_lat,
            last_lon=last_lon,
            # "o" (per-session second-factor counts, format 1 before 0.2) is ignored: those
            # counters live in the store now, counted atomically
            reset_at=int(data.get("x", 0)),
        )

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> UserProfile:
        if isinstance(raw, str):
            raw = raw.encode()
        if raw[:1] == b"z":
            raw = zlib.decompress(raw[1:])
        return cls.from_json(json.loads(raw))


def _region_key(country: str | None, region: str | None) -> str | None:
    if not region:
        return None
    return f"{country or '??'}/{region}"[:48]


def region_key(country: str | None, region: str | None) -> str | None:
    """How regions are keyed in the profile: regions are only unique within a country."""
    return _region_key(country, region)


def _touch(seen: Mapping[Any, int], key: Any, now: int, limit: int) -> Mapping[Any, int]:
    if key is None:
        return seen
    last = seen.get(key)
    if last is not None:
        return seen if last >= now else {**seen, key: now}
    return _bounded({**seen, key: now}, limit, key=_identity)


def _identity(t: int) -> int:
    return t


def _merge_seen(a: Mapping[Any, int], b: Mapping[Any, int], limit: int) -> Mapping[Any, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = max(v, out.get(k, 0))
    return _bounded(out, limit, key=lambda t: t)


def _last_seen(d: DeviceSeen) -> int:
    return d.last_seen


def _bounded(items: dict[Any, Any], limit: int, key: Any) -> dict[Any, Any]:
    if len(items) <= limit:
        return items
    keep = sorted(items.items(), key=lambda kv: key(kv[1]), reverse=True)[:limit]
    return dict(keep)
