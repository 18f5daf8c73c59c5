"""Rollups on an object-store audit root (``s3://bucket/prefix``): built, published, found.

Object stores have no rename, so a rollup cannot appear by renaming a finished folder as it
does on disk. Every build of a month gets its own prefix, and its manifest is what publishes
it::

    <root>/_rollups/YYYY-MM/<build>/decisions.parquet …   (every part: one PUT each)
    <root>/_rollups/YYYY-MM/<build>/manifest.json          (one PUT, last: the build is visible)

``<build>`` is ``<UTC time>-<random>``. A build stores every part, then deletes the
manifests of the month's other builds (from here until the next step the month is answered
from raw segments: never wrong, only slower), then stores its own manifest, then deletes the
other builds' parts. So at most one build of a month is published at any time, and all its
parts were stored before it was. A reader lists ``_rollups/`` once and takes, for each month,
the build that has a manifest (the newest, should a stray object make two): it never opens a
missing or half-written part. A builder killed before its manifest leaves a prefix no reader
uses, and possibly a month with no published build (raw answers); the next build deletes the
leftovers. A manifest is never rewritten (a new build is a new prefix), so readers keep the
manifests they fetched (:func:`_manifest`): finding the rollups costs one listing of
``_rollups/`` plus one listing of each source table.

Currency is the local rule (:func:`riskengine.analytics.rollups.sources_match`): the
manifest names the segments the build read, and the rollup is used only while the exact
listing (:func:`riskengine.audit.objectstore.table_segments`: compaction markers and
retention markers applied) shows exactly those. A build reads the segments of one listing
taken when it starts (:class:`~riskengine.analytics.rollups.ObjectSnapshot`) and names those,
so a segment written meanwhile makes the new rollup stale rather than silently missing.

A reader that planned on a build the next build then deletes gets "no such key" from the
store: the query is listed, planned and run again (``_Reader._frame``), on the newer build.
"""

from __future__ import annotations

import json
import tempfile
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riskengine.analytics._objectstore import duck_path
from riskengine.analytics.rollups import (
    MANIFEST,
    PARTS,
    ROLLUP_DIR,
    ROLLUP_VERSION,
    SOURCE_TABLES,
    ObjectSnapshot,
    Rollup,
    RollupResult,
    _next_month_start,
    _sources,
    _write_month,
    manifest_of,
    month_of_folder,
    sources_match,
)
from riskengine.audit.objectstore import S3Root, table_segments

_MANIFESTS: dict[str, dict[str, Any] | None] = {}
_MANIFESTS_LOCK = threading.Lock()
_MANIFESTS_MAX = 4096


def build_name(now: datetime | None = None) -> str:
    """A build prefix name, unique, sorting by creation time."""
    return f"{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex}"


def month_folder(key: int) -> str:
    return f"{ROLLUP_DIR}/{key // 100:04d}-{key % 100:02d}"


def builds(store: S3Root) -> dict[int, dict[str, set[str]]]:
    """``YYYYMM`` → build name → the names of the objects stored under that build: one
    (paginated) listing of ``_rollups/``."""
    out: dict[int, dict[str, set[str]]] = {}
    for name, _size in store.objects(ROLLUP_DIR, recursive=True):
        parts = name.split("/")
        if len(parts) != 3:
            continue
        key = month_of_folder(parts[0])
        if key is not None:
            out.setdefault(key, {}).setdefault(parts[1], set()).add(parts[2])
    return out


def published(month_builds: dict[str, set[str]]) -> str | None:
    """The newest build that has its manifest (the one readers use), if any."""
    done = sorted(b for b, names in month_builds.items() if MANIFEST in names)
    return done[-1] if done else None


def _manifest(store: S3Root, rel: str) -> dict[str, Any] | None:
    """The manifest at ``rel``, fetched once per process (a build's manifest never changes)."""
    url = store.url(rel)
    with _MANIFESTS_LOCK:
        if url in _MANIFESTS:
            return _MANIFESTS[url]
    try:
        doc = manifest_of(store.get(rel))
    except FileNotFoundError:  # deleted by a newer build since the listing: not cached
        return None
    with _MANIFESTS_LOCK:
        if len(_MANIFESTS) >= _MANIFESTS_MAX:
            _MANIFESTS.clear()
        _MANIFESTS[url] = doc
    return doc


class _Listing:
    """The exact segment listing of each table, taken the first time a manifest asks for it."""

    def __init__(self, store: S3Root) -> None:
        self.store = store
        self.tables: dict[str, dict[int, list[str]]] = {}

    def names(self, table: str, key: int) -> list[str]:
        if table not in self.tables:
            self.tables[table] = table_segments(self.store, table)
        return [rel.rpartition("/")[2] for rel in self.tables[table].get(key, [])]


def current_object_rollups(store: S3Root) -> dict[int, Rollup]:
    """``YYYYMM`` → the published rollup of each month whose sources are the segments there now."""
    out: dict[int, Rollup] = {}
    listing = _Listing(store)
    for key, month_builds in sorted(builds(store).items()):
        build = published(month_builds)
        if build is None:
            continue
        prefix = f"{month_folder(key)}/{build}"
        manifest = _manifest(store, f"{prefix}/{MANIFEST}")
        if manifest is not None and sources_match(manifest, listing.names):
            out[key] = Rollup(duck_path(store, prefix), frozenset(month_builds[build]), manifest)
    return out


def build_object_rollups(store: S3Root, *, now: datetime, rebuild: bool,
                         after_step: Callable[[str, str], None] | None) -> RollupResult:
    """:func:`riskengine.analytics.rollups.build_rollups` on object storage."""
    step = after_step or _no_step
    snapshot = ObjectSnapshot.take(store)
    result = RollupResult()
    existing = builds(store)
    keys = sorted(set().union(*(snapshot.segments[t] for t in SOURCE_TABLES)))
    for key in keys:
        if _next_month_start(key) > now:
            continue  # still being written: raw segments answer for it
        month_builds = existing.get(key, {})
        build = published(month_builds)
        if not rebuild and build is not None:
            manifest = _manifest(store, f"{month_folder(key)}/{build}/{MANIFEST}")
            if (manifest is not None and sources_match(manifest, _snapshot_names(snapshot))
                    and set(PARTS) <= month_builds[build]):
                result.current += 1
                continue
        result.rows += _build_month(snapshot, key, month_builds, step)
        result.built.append(month_folder(key).rpartition("/")[2])
    _prune(store)
    return result


def _snapshot_names(snapshot: ObjectSnapshot) -> Callable[[str, int], list[str]]:
    def names(table: str, key: int) -> list[str]:
        return [rel.rpartition("/")[2] for rel in snapshot.segments.get(table, {}).get(key, [])]

    return names


def _build_month(snapshot: ObjectSnapshot, key: int, month_builds: dict[str, set[str]],
                 step: Callable[[str, str], None]) -> int:
    store = snapshot.store
    build = build_name()
    prefix = f"{month_folder(key)}/{build}"
    with tempfile.TemporaryDirectory(prefix="riskengine-rollup-") as tmp:
        out = Path(tmp)
        rows, legacy, probe = _write_month(snapshot, key, out)
        manifest = {"version": ROLLUP_VERSION, "month": month_folder(key).rpartition("/")[2], "build": build,
                    "built_at": datetime.now(UTC).isoformat(), "legacy_challenges": legacy, "hll_probe": probe,
                    "sources": _sources(snapshot, key, legacy)}
        for part in sorted(out.iterdir()):  # every file the month's rollup has, whatever their list
            store.put(f"{prefix}/{part.name}", part.read_bytes())
    step("uploaded", prefix)
    # unpublish the month's other builds first, so at most one is ever published: in between,
    # raw segments answer for the month (never wrong, only slower), and a build with a newer
    # name (a skewed clock, a stray object) cannot hide this one
    store.delete(f"{month_folder(key)}/{b}/{MANIFEST}" for b, names in sorted(month_builds.items())
                 if MANIFEST in names)
    step("unpublished", prefix)
    store.put(f"{prefix}/{MANIFEST}", json.dumps(manifest, indent=1).encode())  # publishes the build
    step("published", prefix)
    return rows


def _prune(store: S3Root) -> None:
    """Delete every build but the one readers use: unpublished ones (a builder died before
    the manifest, or they were replaced) and any other published one (manifest first, so a
    reader listing meanwhile never takes a build whose parts are going)."""
    for key, month_builds in builds(store).items():
        keep = published(month_builds)
        for build, names in sorted(month_builds.items()):
            if build == keep:
                continue
            prefix = f"{month_folder(key)}/{build}"
            if MANIFEST in names:
                store.delete([f"{prefix}/{MANIFEST}"])
            store.delete(f"{prefix}/{n}" for n in sorted(names) if n != MANIFEST)


def _no_step(step: str, prefix: str) -> None:
    pass


__all__ = ["build_name", "build_object_rollups", "builds", "current_object_rollups", "month_folder", "published"]
