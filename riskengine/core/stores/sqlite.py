"""``sqlite:///path``: the embedded default. WAL, several worker processes on one host.

One connection per thread; the read path is one statement; updates take
``BEGIN IMMEDIATE`` so concurrent read-modify-writes from several processes serialise.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

from riskengine.core.profile import UserProfile
from riskengine.core.stores.base import (
    MAX_ROWS,
    PENDING_GRACE_S,
    OtpCounts,
    SendCounts,
    Snapshot,
    StoreError,
    ThreadOffload,
    Updater,
    session_key,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (user_id TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failures (kind TEXT NOT NULL, key TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failures_key_ts ON failures (kind, key, ts);
CREATE TABLE IF NOT EXISTS pending (decision_id TEXT PRIMARY KEY, expires_at REAL NOT NULL,
                                    payload BLOB NOT NULL, user_id TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS population (country TEXT PRIMARY KEY, weight REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budget (key TEXT PRIMARY KEY, weight REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sends (kind TEXT NOT NULL, key TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sends_key_ts ON sends (kind, key, ts);
CREATE TABLE IF NOT EXISTS send_prefixes (user_id TEXT NOT NULL, prefix TEXT NOT NULL, ts REAL NOT NULL,
                                          PRIMARY KEY (user_id, prefix)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS send_links (decision_id TEXT PRIMARY KEY, prefix TEXT NOT NULL,
                                       expires_at REAL NOT NULL) WITHOUT ROWID;
"""
# sends.kind: 'p' second-factor send to a prefix, 'v' verified send to a prefix, 'u' send of a user
# failures.kind: 'u' failed password (and second factor) per user, 'i' per address (or IPv6
# prefix), 'o' failed second factor per user, 's' per user session (key: session_key())

_MIGRATIONS = (
    # 0.2: parked challenges know their user, for the per-user cap
    ("pending", "user_id", "ALTER TABLE pending ADD COLUMN user_id TEXT NOT NULL DEFAULT ''"),
)
_INDEXES = "CREATE INDEX IF NOT EXISTS pending_user ON pending (user_id, expires_at);"

_SNAPSHOT = """
SELECT (SELECT data FROM profiles WHERE user_id = ?1),
       (SELECT count(*) FROM failures WHERE kind = 'u' AND key = ?1 AND ts >= ?3),
       (SELECT count(*) FROM failures WHERE kind = 'i' AND key = ?2 AND ts >= ?3),
       (SELECT count(*) FROM failures WHERE kind = 'o' AND key = ?1 AND ts >= ?4),
       (SELECT count(*) FROM failures WHERE kind = 's' AND key = ?5 AND ts >= ?6)
"""
_NEVER: Final = float("inf")


def _retry_busy(fn: Callable[[], object], timeout_s: float) -> None:
    """Run ``fn`` until SQLite stops answering "database is locked" (or ``timeout_s`` passes)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while True:
        try:
            fn()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


class _ForkGate:
    """Keeps ``fork()`` out while any thread of this process is inside SQLite.

    SQLite guards its allocator and other globals with process-wide mutexes; a fork while a
    background thread (the write-behind writer, the WAL checkpointer) holds one leaves the
    child's copy locked forever, and the child's first ``sqlite3.connect`` hangs (seen as a
    ~1-in-5 hang of a forked worker). Every store call passes through the gate; a fork waits
    until none is in flight, and the child starts with a fresh gate.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside = 0
        self._forking = False

    def __enter__(self) -> None:
        with self._cond:
            while self._forking:
                self._cond.wait()
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._inside -= 1
            if not self._inside:
                self._cond.notify_all()

    def before_fork(self) -> None:
        with self._cond:
            self._forking = True
            self._cond.wait_for(lambda: self._inside == 0, timeout=30.0)

    def after_fork_in_parent(self) -> None:
        with self._cond:
            self._forking = False
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        self.reset()  # the other threads did not come along


_GATES: weakref.WeakSet[_ForkGate] = weakref.WeakSet()


def _before_fork() -> None:
    for gate in list(_GATES):
        gate.before_fork()


def _after_fork_in_parent() -> None:
    for gate in list(_GATES):
        gate.after_fork_in_parent()


def _after_fork_in_child() -> None:
    for gate in list(_GATES):
        gate.after_fork_in_child()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)

F = TypeVar("F", bound=Callable[..., Any])


def _gated(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: SqliteStore, *args: Any, **kwargs: Any) -> Any:
        with self._gate:
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


def _serialised(method: F) -> F:
    """Writers of this process take turns on a lock before asking SQLite for its write lock:
    SQLite's busy handler sleeps and retries (unfair, coarse), so eight threads of one process
    contending there starve each other past a short busy timeout; queued on a lock they don't.
    The wait is bounded by the same timeout (then a StoreError, the engine's fail mode); the
    busy timeout itself is left to what other processes hold."""
    @functools.wraps(method)
    def wrapper(self: SqliteStore, *args: Any, **kwargs: Any) -> Any:
        if not self._writers.acquire(timeout=max(self._timeout, 0.001) * 2):
            raise StoreError(f"sqlite store {self.path}: this process's writers are backed up")
        try:
            return method(self, *args, **kwargs)
        finally:
            self._writers.release()
    return wrapper  # type: ignore[return-value]


_TRIM_EVERY: Final = 1000  # writes between checks of the failures/pending table sizes


def _private_file(path: Path) -> None:
    """Create the database 0600 in a folder created 0700 (SQLite gives its -wal and -shm files
    the database file's mode): profiles say where and when people log in."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # another process created it first


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: committed when the block ends, rolled back on any exception
    (an interrupt included), so no transaction is ever left open on the connection."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteStore(ThreadOffload):
    """Profiles, failure windows and pending challenges in one SQLite file (WAL mode).

    WAL checkpoints (which fsync) run on a background thread every ``checkpoint_s`` instead
    of inside whichever commit crosses SQLite's auto-checkpoint size: that moved the
    multi-millisecond stalls out of ``score()``'s tail. ``synchronous=NORMAL``: a power cut
    can lose the last moments of profile learning, never corrupt the file.
    """

    def __init__(self, path: str, failure_window_s: float = 1800.0, timeout_s: float = 1.0,
                 checkpoint_s: float = 1.0, retain_s: float | None = None) -> None:
        if path != ":memory:":
            _private_file(Path(path))
        self.path = path
        self._gate = _ForkGate()
        _GATES.add(self._gate)
        self._window = failure_window_s
        # counters older than this may be trimmed: twice the longest window that reads them
        self._retain = retain_s if retain_s is not None else 2 * failure_window_s
        self._timeout = timeout_s
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._writers = threading.Lock()
        self._writes = 0
        self.max_rows = MAX_ROWS  # per table, failures and pending challenges (see _trim)
        self._wal_set = path == ":memory:"
        conn = self._conn()
        _retry_busy(lambda: self._create_schema(conn), max(timeout_s, 5.0))
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if path != ":memory:" and checkpoint_s > 0:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, args=(checkpoint_s,), name="riskengine-sqlite-wal",
                daemon=True)
            self._checkpointer.start()

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        with conn:
            conn.executescript(_SCHEMA)
        for table, column, ddl in _MIGRATIONS:
            # look and alter in one write transaction: two processes (or threads) opening an old
            # file at once both saw the column missing and the second ALTER failed
            with _immediate(conn):
                columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if column not in columns:
                    conn.execute(ddl)
        conn.executescript(_INDEXES)

    def _checkpoint_loop(self, every_s: float) -> None:
        with self._gate:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        try:
            while not self._stop.wait(every_s):
                try:
                    with self._gate:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    continue  # busy or briefly unavailable: the next round will do it
        finally:
            conn.close()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid != os.getpid():
            # forked (gunicorn --preload): a SQLite connection must not cross fork(); leave the
            # parent's alone and open this process's own
            conn = None
            # a lock held by a parent thread at fork would never be released here: start afresh
            self._all_lock = threading.Lock()
            self._all = []
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None,
                                       check_same_thread=False)
                if not self._wal_set:
                    # WAL is a property of the file: set once per store, retried because a
                    # journal-mode change can meet SQLITE_BUSY without waiting for the timeout
                    _retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"), max(self._timeout, 5.0))
                    self._wal_set = True
                conn.execute("PRAGMA synchronous=NORMAL")
                # checkpoints happen on the background thread, not in a login's commit;
                # a very large WAL still checkpoints inline as a safety net
                conn.execute("PRAGMA wal_autocheckpoint=20000")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open sqlite store {self.path}: {exc}") from exc
            self._local.conn = conn
            self._local.pid = os.getpid()
            with self._all_lock:
                self._all.append(conn)
        return conn

    @_gated
    def get(self, user_id: str) -> UserProfile | None:
        try:
            row = self._conn().execute(
                "SELECT data FROM profiles WHERE user_id = ?", (user_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return UserProfile.from_bytes(row[0]) if row else None

    @_gated
    @_serialised
    def put(self, user_id: str, profile: UserProfile) -> None:
        try:
            self._conn().execute(
                "INSERT INTO profiles (user_id, data) VALUES (?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET data = excluded.data",
                (user_id, profile.to_bytes()))
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection inside one write transaction (``BEGIN IMMEDIATE``:
        concurrent read-modify-writes from several processes serialise on SQLite's write
        lock); an SQLite error becomes a :class:`StoreError`."""
        try:
            conn = self._conn()
            with _immediate(conn):
                yield conn
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    @_gated
    @_serialised
    def update(self, user_id: str, fn: Updater) -> UserProfile | None:
        with self._write() as conn:
            row = conn.execute(
                "SELECT data FROM profiles WHERE user_id = ?", (user_id,)).fetchone()
            new = fn(UserProfile.from_bytes(row[0]) if row else None)
            if new is None:
                conn.execute("DELETE FROM profiles WHERE user_id = ?", (user_id,))
            else:
                conn.execute(
                    "INSERT INTO profiles (user_id, data) VALUES (?, ?) "
                    "ON CONFLICT (user_id) DO UPDATE SET data = excluded.data",
                    (user_id, new.to_bytes()))
        return new

    @_gated
    @_serialised
    def delete(self, user_id: str) -> None:
        try:
            conn = self._conn()
            conn.execute("DELETE FROM profiles WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM failures WHERE kind = 'u' AND key = ?", (user_id,))
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    @_gated
    @_serialised
    def add_failure(self, user_id: str, ip: str, at: float) -> int:
        with self._write() as conn:
            conn.execute("INSERT INTO failures VALUES ('u', ?, ?), ('i', ?, ?)",
                         (user_id, at, ip, at))
            self._writes += 1
            if self._writes % _TRIM_EVERY == 0:
                self._trim(conn, "failures", "ts", at - self._retain)
            (count,) = conn.execute(
                "SELECT count(*) FROM failures WHERE kind = 'u' AND key = ? AND ts >= ?",
                (user_id, at - self._window)).fetchone()
            return int(count)

    def _trim(self, conn: sqlite3.Connection, table: str, column: str, horizon: float,
              evict: str | None = None) -> None:
        """Keep ``table`` bounded: past ``max_rows`` rows, drop those before ``horizon`` and,
        with ``evict`` (the key column), the oldest quarter if that was not enough. Failures
        pass no ``evict``: a live failure is never dropped, whatever a stuffing wave costs.
        Only past the bound, because ``horizon`` comes from the caller's clock: threads
        replaying different users' histories run days apart, and pruning on every call
        dropped other threads' live failures and parked challenges."""
        # table and column names are this module's constants, never input
        (rows,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        if rows < self.max_rows:
            return
        conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (horizon,))
        if evict is None:
            return
        (rows,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        excess = rows - self.max_rows * 3 // 4
        if excess > 0:
            conn.execute(f"DELETE FROM {table} WHERE {evict} IN "
                         f"(SELECT {evict} FROM {table} ORDER BY {column} LIMIT ?)", (excess,))

    @_gated
    @_serialised
    def reset_failures(self, user_id: str) -> None:
        try:
            self._conn().execute("DELETE FROM failures WHERE kind = 'u' AND key = ?", (user_id,))
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    @_gated
    @_serialised
    def add_otp_failures(self, user_id: str, session: str, count: int, at: float, *,
                         otp_since: float, session_since: float) -> OtpCounts:
        skey = session_key(user_id, session)
        # one write transaction: concurrent writers (threads or processes) serialise on
        # SQLite's write lock, so every failure is counted and each caller sees its own
        with self._write() as conn:
            if count > 0:
                conn.executemany("INSERT INTO failures VALUES (?, ?, ?)",
                                 [(kind, key, at) for kind, key in (("u", user_id), ("o", user_id), ("s", skey))
                                  for _ in range(count)])
            session_n, user_n = conn.execute(
                "SELECT (SELECT count(*) FROM failures WHERE kind = 's' AND key = ? AND ts >= ?), "
                "(SELECT count(*) FROM failures WHERE kind = 'o' AND key = ? AND ts >= ?)",
                (skey, session_since, user_id, otp_since)).fetchone()
            return OtpCounts(int(session_n), int(user_n))

    @_gated
    @_serialised
    def reset_otp_failures(self, user_id: str) -> None:
        prefix = session_key(user_id, "")
        try:
            conn = self._conn()
            conn.execute("DELETE FROM failures WHERE kind = 'o' AND key = ?", (user_id,))
            # the session keys of this user: [prefix, prefix + U+10FFFF) in key order
            conn.execute("DELETE FROM failures WHERE kind = 's' AND key >= ? AND key < ?",
                         (prefix, prefix + "\U0010ffff"))
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    @_gated
    def snapshot(self, user_id: str, ip: str, since: float, *, session: str = "",
                 otp_since: float | None = None, session_since: float | None = None) -> Snapshot:
        try:
            data, uf, ipf, of, sf = self._conn().execute(_SNAPSHOT, (
                user_id, ip, since, _NEVER if otp_since is None else otp_since,
                session_key(user_id, session), _NEVER if session_since is None else session_since,
            )).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return Snapshot(UserProfile.from_bytes(data) if data else None, int(uf), int(ipf), int(of), int(sf))

    @_gated
    @_serialised
    def population_add(self, country: str, weight: float) -> None:
        try:
            self._conn().execute(
                "INSERT INTO population VALUES (?, ?) "
                "ON CONFLICT (country) DO UPDATE SET weight = weight + excluded.weight", (country, weight))
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    @_gated
    def population(self) -> dict[str, float]:
        try:
            return {c: float(w) for c, w in self._conn().execute("SELECT country, weight FROM population")}
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    @_gated
    @_serialised
    def history_start(self, now: float) -> float:
        with self._write() as conn:  # first writer wins; every caller reads the winner back
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('history_start', ?)", (float(now),))
            row = conn.execute("SELECT value FROM meta WHERE key = 'history_start'").fetchone()
        return float(row[0])

    @_gated
    @_serialised
    def budget_merge(self, delta: Mapping[str, float]) -> dict[str, float]:
        with self._write() as conn:  # add and read back in one write transaction
            conn.executemany(
                "INSERT INTO budget VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET weight = weight + excluded.weight", list(delta.items()))
            merged = {k: float(w) for k, w in conn.execute("SELECT key, weight FROM budget")}
        return merged

    @_gated
    @_serialised
    def put_pending(self, decision_id: str, payload: bytes, expires_at: float, *,
                    user_id: str = "", max_per_user: int = 0) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO pending (decision_id, expires_at, payload, user_id) "
                         "VALUES (?, ?, ?, ?)", (decision_id, expires_at, payload, user_id))
            if max_per_user:
                # this user's own earliest-expiring challenges make room, nobody else's
                conn.execute(
                    "DELETE FROM pending WHERE decision_id IN (SELECT decision_id FROM pending "
                    "WHERE user_id = ? ORDER BY expires_at DESC LIMIT -1 OFFSET ?)", (user_id, max_per_user))
            self._writes += 1
            if self._writes % _TRIM_EVERY == 0:
                self._trim(conn, "pending", "expires_at", expires_at - PENDING_GRACE_S, evict="decision_id")

    @_gated
    def pop_pending(self, decision_id: str, now: float) -> bytes | None:
        try:
            row = self._conn().execute(
                "DELETE FROM pending WHERE decision_id = ? RETURNING expires_at, payload",
                (decision_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        if row is None or row[0] < now:
            return None
        return bytes(row[1])

    @_gated
    def peek_pending(self, decision_id: str, now: float) -> bytes | None:
        try:
            row = self._conn().execute(
                "SELECT expires_at, payload FROM pending WHERE decision_id = ?", (decision_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        if row is None or row[0] < now:
            return None
        return bytes(row[1])

    # -- second-factor sends -----------------------------------------------------------
    @_gated
    @_serialised
    def add_send(self, user_id: str, prefix: str, at: float, *, prefix_since: float,
                 ratio_since: float, user_since: float) -> SendCounts:
        with self._write() as conn:
            conn.execute("INSERT INTO sends VALUES ('p', ?, ?), ('u', ?, ?)", (prefix, at, user_id, at))
            conn.execute("INSERT INTO send_prefixes VALUES (?, ?, ?) ON CONFLICT (user_id, prefix) "
                         "DO UPDATE SET ts = max(ts, excluded.ts)", (user_id, prefix, at))
            self._writes += 1
            if self._writes % _TRIM_EVERY == 0:
                horizon = min(prefix_since, ratio_since, user_since)
                self._trim(conn, "sends", "ts", horizon)
                self._trim(conn, "send_prefixes", "ts", horizon)
            row = conn.execute(
                "SELECT (SELECT count(*) FROM sends WHERE kind = 'p' AND key = ?1 AND ts >= ?2), "
                "(SELECT count(*) FROM sends WHERE kind = 'p' AND key = ?1 AND ts >= ?3), "
                "(SELECT count(*) FROM sends WHERE kind = 'v' AND key = ?1 AND ts >= ?3), "
                "(SELECT count(*) FROM sends WHERE kind = 'u' AND key = ?4 AND ts >= ?5), "
                "(SELECT count(*) FROM send_prefixes WHERE user_id = ?4 AND ts >= ?5)",
                (prefix, prefix_since, ratio_since, user_id, user_since)).fetchone()
            return SendCounts(*(int(v) for v in row))

    @_gated
    @_serialised
    def link_send(self, decision_id: str, prefix: str, expires_at: float) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO send_links VALUES (?, ?, ?)", (decision_id, prefix, expires_at))
            self._writes += 1
            if self._writes % _TRIM_EVERY == 0:
                self._trim(conn, "send_links", "expires_at", expires_at - PENDING_GRACE_S, evict="decision_id")

    @_gated
    @_serialised
    def verify_send(self, decision_id: str, at: float) -> str | None:
        with self._write() as conn:
            row = conn.execute("DELETE FROM send_links WHERE decision_id = ? RETURNING prefix, expires_at",
                               (decision_id,)).fetchone()
            if row is not None and row[1] >= at:
                conn.execute("INSERT INTO sends VALUES ('v', ?, ?)", (row[0], at))
        if row is None or row[1] < at:
            return None
        return str(row[0])

    @_gated
    def user_ids(self, limit: int = 1000) -> list[str]:
        rows = self._conn().execute(
            "SELECT user_id FROM profiles ORDER BY user_id LIMIT ?", (limit,)).fetchall()
        return [r[0] for r in rows]

    @_gated
    def ping(self) -> bool:
        """True when the database file answers ``SELECT 1`` (for health checks)."""
        try:
            return bool(self._conn().execute("SELECT 1").fetchone() == (1,))
        except (sqlite3.Error, StoreError):
            return False

    def close(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        if getattr(self, "_checkpointer", None) is not None and self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
        with self._gate, self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
