"""An audit root on object storage: ``s3://bucket/prefix`` (Amazon S3 and S3-compatible stores).

The layout is the local one, ``<root>/<table>/year=YYYY/month=MM/part-….parquet``, as object
keys. Object stores have no rename, so visibility works differently:

- **a segment** is written with one request sequence straight to its final key
  (:meth:`S3Root.put`: a single PUT, or a multipart upload for large objects). Either becomes
  visible only when it completes, all of it at once: a reader never sees a partial segment.
  A writer killed mid-upload leaves nothing a listing shows (an incomplete multipart upload
  is invisible; a bucket lifecycle rule ``AbortIncompleteMultipartUpload`` reclaims it).
- **a compaction** cannot hide its inputs by renaming them. It first writes a marker
  ``_compaction-<id>.json`` naming the inputs, then the merged segment
  ``part-…-compacted-<id>.parquet`` (one atomic PUT), then deletes the inputs, then the
  marker. :func:`segment_files` lists a partition as: every ``*.parquet`` object, minus the
  inputs named by a marker whose merged segment exists. So from one listing each row counts
  exactly once at every step: before the merged segment is published the inputs hold the
  rows; after it, the merged segment does and the inputs still present are ignored.
  (Readers outside Python that glob ``*.parquet`` may count the merged rows twice in the
  window between the PUT and the deletes; see docs/audit.md, "Object storage".)
- **retention** cannot move a month away in one step either: it writes a marker
  ``<table>/_retired-YYYY-MM``, deletes the month's objects (batched), then the marker.
  :func:`partitions` skips a month with a marker, so a month disappears from our readers all
  at once.

Names starting with ``_`` or ``.`` are ignored by Hive, Spark, Trino and Athena, so the
markers never appear as data to them either.

Credentials come from the standard AWS chain (environment, ``~/.aws`` config and
credentials files, instance/container roles: pyarrow's S3 client, the AWS C++ SDK). The
endpoint is ``audit.s3_endpoint_url`` or ``AWS_ENDPOINT_URL`` (MinIO, Ceph, moto, R2, …);
the region ``audit.s3_region`` or ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from riskengine._extras import extra
from riskengine.audit.layout import COMPACTED, PARTITION, S3_SCHEME

with extra("audit", feature="an audit root on object storage (s3://)"):
    import pyarrow.fs as pafs

if TYPE_CHECKING:
    from pyarrow.fs import S3FileSystem

COMPACTION_MARKER = re.compile(r"^_compaction-(?P<id>[0-9a-f]{32})\.json$")
RETIRED_MARKER = re.compile(r"^_retired-(?P<year>\d{4})-(?P<month>\d{2})$")


def retired_marker(table: str, year: int, month: int) -> str:
    return f"{table}/_retired-{year:04d}-{month:02d}"

class ObjectStoreError(OSError):
    """The object store cannot be used as configured (bucket missing, bad credentials,
    endpoint unreachable): raised at start-up, naming the root and the cause."""


@dataclass(frozen=True)
class S3Root:
    """``s3://bucket/prefix`` with the client settings to reach it.

    >>> r = S3Root.parse("s3://audit-logs/prod/riskengine/")
    >>> r.bucket, r.prefix, r.key("decisions", "year=2026"), r.url("decisions")
    ('audit-logs', 'prod/riskengine', 'prod/riskengine/decisions/year=2026', 's3://audit-logs/prod/riskengine/decisions')
    """

    bucket: str
    prefix: str
    endpoint_url: str | None = None
    region: str | None = None
    _fs: list[S3FileSystem] = field(default_factory=list, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def parse(cls, url: str, *, endpoint_url: str | None = None, region: str | None = None) -> S3Root:
        if not url.startswith(S3_SCHEME):
            raise ValueError(f"not an s3:// audit root: {url!r}")
        bucket, _, prefix = url[len(S3_SCHEME):].partition("/")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise ValueError(f"audit root {url!r}: {bucket!r} is not a valid S3 bucket name")
        prefix = prefix.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise ValueError(f"audit root {url!r}: the prefix has an empty, '.' or '..' segment")
        env = os.environ
        endpoint = endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        return cls(bucket, prefix, endpoint, region)

    # ------------------------------------------------------------------ names
    def key(self, *parts: str) -> str:
        """The object key (without the bucket) of ``parts`` under the prefix."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def path(self, *parts: str) -> str:
        """``bucket/key``: the path pyarrow's file system takes."""
        return f"{self.bucket}/{self.key(*parts)}".rstrip("/")

    def url(self, *parts: str) -> str:
        return f"{S3_SCHEME}{self.path(*parts)}"

    def __str__(self) -> str:
        return self.url()

    # ------------------------------------------------------------------ client
    @property
    def fs(self) -> S3FileSystem:
        """pyarrow's S3 client (made once; thread-safe)."""
        with self._lock:
            if not self._fs:
                kwargs: dict[str, Any] = {"retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
                                          "connect_timeout": 5.0, "request_timeout": 30.0}
                if self.region:
                    kwargs["region"] = self.region
                if self.endpoint_url:
                    scheme, sep, rest = self.endpoint_url.partition("://")
                    kwargs["endpoint_override"] = rest.rstrip("/") if sep else scheme.rstrip("/")
                    kwargs["scheme"] = scheme if sep else "https"
                self._fs.append(pafs.S3FileSystem(**kwargs))
            return self._fs[0]

    def check(self, *, write: bool = True) -> None:
        """Raise :class:`ObjectStoreError` unless the bucket exists and these credentials may
        list under the prefix, and with ``write`` write there too (a probe: a zero-byte
        ``_meta/probe-…`` object, deleted again)."""
        try:
            info = self.fs.get_file_info(self.bucket)
        except OSError as exc:
            raise ObjectStoreError(f"audit root {self}: cannot reach the object store "
                                   f"({self.endpoint_url or 'AWS'}): {_short(exc)}") from exc
        if info.type == pafs.FileType.NotFound:
            raise ObjectStoreError(f"audit root {self}: bucket {self.bucket!r} does not exist "
                                   f"(endpoint {self.endpoint_url or 'AWS'}); create it first")
        if not write:
            try:
                self.objects("_meta")
            except OSError as exc:
                raise ObjectStoreError(f"audit root {self}: cannot list the prefix (check the AWS "
                                       f"credentials and the bucket policy): {_short(exc)}") from exc
            return
        probe = f"_meta/probe-{os.getpid()}-{time.time_ns()}"
        try:
            self.put(probe, b"")
            self.delete([probe])
        except OSError as exc:
            raise ObjectStoreError(f"audit root {self}: cannot write under the prefix (check the AWS "
                                   f"credentials and the bucket policy): {_short(exc)}") from exc

    # ------------------------------------------------------------------ objects
    def put(self, rel: str, data: bytes) -> None:
        """Store ``data`` at ``rel`` (relative to the root): visible whole on completion or not at all."""
        with self.fs.open_output_stream(self.path(rel), metadata={"Content-Type": "application/octet-stream"}) as out:
            out.write(data)

    def get(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as src:
            data: bytes = src.read()
        return data

    def exists(self, rel: str) -> bool:
        return bool(self.fs.get_file_info(self.path(rel)).type == pafs.FileType.File)

    def objects(self, rel: str = "", *, recursive: bool = False) -> list[tuple[str, int]]:
        """``(name relative to rel, size)`` of the objects under ``rel``; empty when there are none."""
        base = self.path(rel)
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=recursive, allow_not_found=True))
        except FileNotFoundError:
            return []
        n = len(base) + 1
        return sorted((i.path[n:], int(i.size or 0)) for i in infos if i.type == pafs.FileType.File)

    def folders(self, rel: str) -> list[str]:
        """Names of the "folders" (common prefixes) right under ``rel``."""
        base = self.path(rel)
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=False, allow_not_found=True))
        except FileNotFoundError:
            return []
        n = len(base) + 1
        return sorted(i.path[n:] for i in infos if i.type == pafs.FileType.Directory)

    def delete_folder(self, rel: str) -> None:
        """Delete every object under ``rel`` (batched requests, in no particular order)."""
        try:
            self.fs.delete_dir(self.path(rel))
        except FileNotFoundError:
            pass

    def delete(self, rels: Iterable[str]) -> None:
        for rel in rels:
            try:
                self.fs.delete_file(self.path(rel))
            except FileNotFoundError:
                pass


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


# ---------------------------------------------------------------------- layout on S3
def partition_rel(table: str, year: int, month: int) -> str:
    return f"{table}/year={year:04d}/month={month:02d}"


def partitions(root: S3Root, table: str) -> list[tuple[int, int, str]]:
    """``(year, month, folder)`` of every partition of ``table`` (``folder`` relative to the
    root), oldest first, without the months retention is dropping (``_retired`` marker)."""
    out: list[tuple[int, int, str]] = []
    retired = {(int(m.group("year")), int(m.group("month")))
               for name, _size in root.objects(table) if (m := RETIRED_MARKER.match(name))}
    for ydir in root.folders(table):
        ym = PARTITION[0].match(ydir)
        if not ym:
            continue
        for mdir in root.folders(f"{table}/{ydir}"):
            mm = PARTITION[1].match(mdir)
            if mm and (int(ym.group(1)), int(mm.group(1))) not in retired:
                out.append((int(ym.group(1)), int(mm.group(1)), f"{table}/{ydir}/{mdir}"))
    return sorted(out)


def segment_files(root: S3Root, folder: str) -> list[str]:
    """The segments (relative to the root) of one partition that hold its rows, each row
    exactly once, at every step of a compaction. One listing,
    plus one small GET per marker of a published compaction (normally none)."""
    listing = root.objects(folder)
    names = {name for name, _size in listing}
    return _visible(names, lambda marker: marker_inputs(root, f"{folder}/{marker}"), folder)


def table_segments(root: S3Root, table: str) -> dict[int, list[str]]:
    """``YYYYMM`` -> the segments (relative to the root) of every partition of ``table``, as
    :func:`segment_files` lists each, from one recursive listing of the table (plus one small
    GET per marker of a published compaction): what a rollup's currency is checked against
    without one request per month. Months retention is dropping are left out."""
    by_folder: dict[tuple[int, int], set[str]] = {}
    retired: set[tuple[int, int]] = set()
    for name, _size in root.objects(table, recursive=True):
        folder, _, base = name.rpartition("/")
        if not folder:
            if m := RETIRED_MARKER.match(base):
                retired.add((int(m.group("year")), int(m.group("month"))))
            continue
        ydir, _, mdir = folder.partition("/")
        ym, mm = PARTITION[0].match(ydir), PARTITION[1].match(mdir)
        if ym and mm:
            by_folder.setdefault((int(ym.group(1)), int(mm.group(1))), set()).add(base)
    out: dict[int, list[str]] = {}
    for (year, month), names in sorted(by_folder.items()):
        if (year, month) in retired:
            continue
        folder = partition_rel(table, year, month)
        out[year * 100 + month] = _visible(names, partial(_inputs_in, root, folder), folder)
    return out


def _inputs_in(root: S3Root, folder: str, marker: str) -> list[str]:
    return marker_inputs(root, f"{folder}/{marker}")


def _visible(names: set[str], inputs_of: Callable[[str], list[str]], folder: str) -> list[str]:
    published = {m.group("id") for n in names if (m := COMPACTED.search(n))}
    redundant: set[str] = set()
    for name in names:
        m = COMPACTION_MARKER.match(name)
        if m and m.group("id") in published:
            try:
                redundant.update(inputs_of(name))
            except FileNotFoundError:  # the compactor finished meanwhile: its inputs are gone
                pass
    return sorted(f"{folder}/{n}" for n in names
                  if n.endswith(".parquet") and not n.startswith((".", "_")) and n not in redundant)


def marker_inputs(root: S3Root, rel: str) -> list[str]:
    doc = json.loads(root.get(rel))
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
        raise ValueError(f"compaction marker {root.url(rel)} has no list of inputs")
    return list(inputs)


def marker_body(inputs: list[str]) -> bytes:
    return json.dumps({"inputs": inputs}).encode()


__all__ = ["COMPACTION_MARKER", "RETIRED_MARKER", "ObjectStoreError", "S3Root", "marker_body",
           "marker_inputs", "partition_rel", "partitions", "retired_marker", "segment_files", "table_segments"]
