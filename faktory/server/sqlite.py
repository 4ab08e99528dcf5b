"""Durable storage for the embedded server: :class:`SqlitePersistence` (``--storage PATH``).

One SQLite file (standard-library :mod:`sqlite3`) in WAL mode holds every job record, the
known and paused queue names and the INFO counters, following the contract in
:mod:`faktory.server.persist`.

What is guaranteed
------------------
The store reports each change as it happens; this class buffers them (one entry per
record: a job pushed and acknowledged between two commits is never written) and writes
them in **one transaction per** :meth:`SqlitePersistence.commit` (group commit:
``executemany`` of prepared statements, ``INSERT OR REPLACE`` upserts).  The server calls
``commit()`` before it writes any reply that reveals a change, so when a client reads
``+OK`` for a PUSH (or any other state change) the change is already in the WAL file.

* ``synchronous="normal"`` (the default): the transaction is written to the WAL with
  ``write()`` before ``commit()`` returns, but not ``fsync``-ed.  Everything acknowledged
  survives the server process being killed (SIGKILL, OOM killer, a crash): the data is in
  the operating system's page cache and reaches the disk although the process is gone.
  It does **not** survive a power loss or a kernel crash (the last transactions before
  the outage may be lost; the file itself stays consistent).
* ``synchronous="full"``: the WAL is also ``fsync``-ed at every commit, so acknowledged
  changes survive a power loss too, at the price of one ``fsync`` per group commit (on
  the 2-core test machine, where an ``fsync`` takes ~0.15 ms: single pushes ~27,000/s
  instead of ~45,000/s, fetch+ack ~17,000/s instead of ~34,000/s, PUSHB unchanged; with
  a disk whose ``fsync`` takes milliseconds, far less).  Choose it with
  ``SqlitePersistence(path, synchronous="full")`` or, for ``faktory server --storage``,
  the environment variable ``FAKTORY_STORAGE_SYNC=full``.

If a write fails (disk full, I/O error) the instance becomes *failed*: that ``commit()``
and every later one raise :class:`StorageError` (the other calls only record the failure,
since they run in the middle of the store's operations), so the server never
acknowledges a change that is not on disk.  Restart the server once the cause is fixed:
the file holds the state of the last successful commit.

Cost
----
Only three partial indexes exist (one per sorted set, for MUTATE clear), so the hot path
(PUSH into a queue, FETCH into ``working``, ACK) maintains no index; ``QUEUE REMOVE``
scans the table (~0.1 s per million jobs).  A commit of ~15 changes costs ~50-80 us, a
PUSHB of 1,000 jobs ~3 ms.  Checkpoints (copying the WAL back into the main file, with
its ``fsync``) run on a background thread; the WAL stays bounded under sustained load
(see :class:`_Checkpointer`).

The file
--------
``PRAGMA application_id`` marks the file as ours and ``PRAGMA user_version`` is the
schema version (:data:`SCHEMA_VERSION`).  Opening a file that is not an SQLite database,
an SQLite database of another application, or a file written by a newer schema raises
:class:`StorageError` with a message saying which.  While a server uses the file it holds
an advisory lock on it (``flock``, where the platform has it), so a second server on the
same file fails at start instead of corrupting the first one's state.  A clean stop
checkpoints and removes the ``-wal`` file; after a crash the next start replays it.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Any

from faktory.errors import StorageError
from faktory.server.persist import SETS, JobRecord, Persistence, Snapshot

try:  # advisory whole-file lock; not available on Windows
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX platforms
    fcntl = None  # type: ignore[assignment]

__all__ = ["SqlitePersistence", "StorageError", "SCHEMA_VERSION", "APPLICATION_ID"]

log = logging.getLogger(__name__)

#: ``PRAGMA application_id`` of our files: "Fktb" in ASCII.
APPLICATION_ID = 0x466B7462
#: ``PRAGMA user_version``: the schema this module reads and writes.
SCHEMA_VERSION = 1

_SCHEMA = (
    # where: queue | scheduled | retries | dead | working (persist.py's model)
    """CREATE TABLE jobs (
        rid     INTEGER PRIMARY KEY,
        place   TEXT    NOT NULL,
        name    TEXT    NOT NULL,
        score   REAL    NOT NULL,
        jid     TEXT    NOT NULL,
        payload BLOB    NOT NULL,
        wid     TEXT    NOT NULL DEFAULT '',
        since   REAL    NOT NULL DEFAULT 0
    )""",
    # MUTATE clear deletes a whole sorted set without scanning every job.  Partial indexes,
    # so the hot path (PUSH into a queue, FETCH into working, ACK) never maintains them;
    # QUEUE REMOVE (rare) scans the table (~0.1 s per million jobs).
    "CREATE INDEX jobs_scheduled ON jobs (place) WHERE place = 'scheduled'",
    "CREATE INDEX jobs_retries ON jobs (place) WHERE place = 'retries'",
    "CREATE INDEX jobs_dead ON jobs (place) WHERE place = 'dead'",
    "CREATE TABLE queues (name TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE paused (name TEXT PRIMARY KEY) WITHOUT ROWID",
    # one row, rewritten by one statement at each commit after an ACK or FAIL
    """CREATE TABLE counters (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        processed INTEGER NOT NULL,
        failures  INTEGER NOT NULL
    )""",
    "INSERT INTO counters VALUES (1, 0, 0)",
)

_UPSERT = "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_DELETE = "DELETE FROM jobs WHERE rid = ?"
_COUNTERS = "UPDATE counters SET processed = ?, failures = ? WHERE id = 1"
# literal places, so that SQLite can use the partial indexes jobs_<set>
_SET_DELETES = {where: f"DELETE FROM jobs WHERE place = '{where}'" for where in SETS}

_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}

#: The WAL file is truncated to this size after a checkpoint that reset it.
_JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


class SqlitePersistence(Persistence):
    """Durable :class:`~faktory.server.persist.Persistence` in one SQLite file.

    ``path``: the database file (created with its schema when missing or empty).
    ``synchronous``: ``"normal"`` (survives a killed process) or ``"full"`` (also survives
    a power loss); see the module docstring.  Default: ``$FAKTORY_STORAGE_SYNC``, else
    ``"normal"``.
    ``background_checkpoint``: copy the WAL into the database on a helper thread (default)
    instead of inside ``commit()`` on the event loop.
    """

    durable = True

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str | None = None,
                 background_checkpoint: bool = True) -> None:
        self.path = os.fspath(path)
        if synchronous is None:
            synchronous = os.environ.get("FAKTORY_STORAGE_SYNC") or "normal"
        mode = _SYNCHRONOUS.get(str(synchronous).lower())
        if mode is None:
            raise ValueError(f"synchronous (or FAKTORY_STORAGE_SYNC) must be 'normal' or "
                             f"'full', not {synchronous!r}")
        self.synchronous = mode.lower()
        # rid -> full row tuple (upsert) or None (delete), the final state since the last
        # write into the open transaction; dict order is irrelevant (one entry per rid).
        self._pending: dict[int, tuple[Any, ...] | None] = {}
        # rids added since they were last written: removing one just forgets it.
        self._fresh: set[int] = set()
        self._counters: tuple[int, int] | None = None
        self._in_txn = False
        self._failed: BaseException | None = None
        self._closed = False
        self._lock_fd: int | None = None
        self._checkpointer: _Checkpointer | None = None
        #: commits that wrote something, and the seconds they took (logged at close)
        self.commits = 0
        self.commit_seconds = 0.0
        self._db = self._open(mode)
        if background_checkpoint:
            page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
            self._checkpointer = _Checkpointer(self.path, mode, page_size)
            self._db.execute("PRAGMA wal_autocheckpoint = 0")

    # -- opening -------------------------------------------------------------------------

    def _open(self, mode: str) -> sqlite3.Connection:
        """Connect, lock, check the file is ours, create or check the schema."""
        if not self.path or self.path == ":memory:" or self.path.startswith("file:"):
            raise StorageError(f"storage needs the path of a file, not {self.path!r}")
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StorageError(f"storage {self.path!r}: directory {directory!r} does not exist")
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                 cached_statements=32)
        except sqlite3.Error as exc:
            raise StorageError(f"storage {self.path!r}: cannot open: {exc}") from exc
        try:
            self._lock(db)
            try:
                app_id = db.execute("PRAGMA application_id").fetchone()[0]
                version = db.execute("PRAGMA user_version").fetchone()[0]
                tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise StorageError(f"storage {self.path!r} is not a faktory-turbo data file "
                                   f"(not an SQLite database: {exc})") from exc
            if app_id != APPLICATION_ID and (app_id != 0 or tables):
                raise StorageError(f"storage {self.path!r} is an SQLite database of another "
                                   f"application (application_id {app_id:#x}), not a "
                                   f"faktory-turbo data file")
            if app_id == APPLICATION_ID and version > SCHEMA_VERSION:
                raise StorageError(f"storage {self.path!r} has schema version {version}, newer "
                                   f"than this faktory-turbo understands ({SCHEMA_VERSION}); "
                                   f"upgrade faktory-turbo")
            journal = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(journal).lower() != "wal":
                raise StorageError(f"storage {self.path!r}: the file system does not support "
                                   f"SQLite's WAL mode (journal_mode is {journal!r})")
            db.execute(f"PRAGMA synchronous = {mode}")
            db.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
            db.execute("PRAGMA temp_store = MEMORY")
            # some builds (Debian's) zero every deleted cell and freed page, which costs
            # extra WAL frames on each ACK; FAST zeroes only where it costs no extra I/O
            db.execute("PRAGMA secure_delete = FAST")
            db.execute("PRAGMA cache_size = -16384")  # 16 MiB
            if app_id == 0:
                self._create_schema(db)
            elif version < SCHEMA_VERSION:  # pragma: no cover - no older schema exists yet
                raise StorageError(f"storage {self.path!r}: unknown schema version {version}")
        except sqlite3.Error as exc:  # read-only file or directory, I/O error...
            db.close()
            self._unlock()
            raise StorageError(f"storage {self.path!r}: cannot use it: {exc}") from exc
        except BaseException:
            db.close()
            self._unlock()
            raise
        log.info("storage %s opened (schema %d, synchronous=%s)", self.path, SCHEMA_VERSION,
                 mode.lower())
        return db

    def _lock(self, db: sqlite3.Connection) -> None:
        """Take an exclusive advisory lock on the database file for this instance's life.

        ``flock`` locks are independent of the POSIX record locks SQLite uses, and the
        descriptor stays open until :meth:`close`, after SQLite's own descriptors closed,
        so closing it can never drop SQLite's locks.
        """
        if fcntl is None:  # pragma: no cover
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise StorageError(f"storage {self.path!r}: cannot open: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"storage {self.path!r} is in use by another server "
                               f"(cannot lock it: {exc.strerror})") from exc
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @staticmethod
    def _create_schema(db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- the contract ----------------------------------------------------------------------

    def load(self) -> Snapshot:
        """Read the whole persisted state (every record, queues, paused names, counters)."""
        db = self._db
        records = [JobRecord(rid, where, name, score, jid, bytes(payload), wid, since)
                   for rid, where, name, score, jid, payload, wid, since
                   in db.execute("SELECT rid, place, name, score, jid, payload, wid, since "
                                 "FROM jobs")]
        queues = [row[0] for row in db.execute("SELECT name FROM queues")]
        paused = [row[0] for row in db.execute("SELECT name FROM paused")]
        processed, failures = db.execute("SELECT processed, failures FROM counters").fetchone()
        log.info("storage %s: loaded %d jobs, %d queues, %d paused", self.path, len(records),
                 len(queues), len(paused))
        return Snapshot(records=records, queues=queues, paused=paused,
                        processed=int(processed), failures=int(failures),
                        extra={"path": self.path, "schema_version": SCHEMA_VERSION})

    def add(self, rec: JobRecord) -> None:
        """Buffer a new record (written at the next commit)."""
        rid = rec.rid
        self._pending[rid] = (rid, rec.where, rec.name, rec.score, rec.jid, rec.payload,
                              rec.wid, rec.since)
        self._fresh.add(rid)

    def update(self, rec: JobRecord) -> None:
        """Buffer the new full state of record ``rec.rid``."""
        rid = rec.rid
        self._pending[rid] = (rid, rec.where, rec.name, rec.score, rec.jid, rec.payload,
                              rec.wid, rec.since)

    def remove(self, rec: JobRecord) -> None:
        """Buffer the deletion of record ``rec.rid`` (nothing to write if it never was)."""
        rid = rec.rid
        if rid in self._fresh:
            self._fresh.discard(rid)
            self._pending.pop(rid, None)
        else:
            self._pending[rid] = None

    def clear_set(self, where: str) -> None:
        """Delete every record in the sorted set ``where`` (inside the open transaction)."""
        if where not in _SET_DELETES:
            raise ValueError(f"clear_set: {where!r} is not one of {sorted(_SET_DELETES)}")
        self._write_pending()
        self._execute(_SET_DELETES[where])

    def queue_added(self, name: str) -> None:
        """Record a newly known queue name."""
        self._execute("INSERT OR IGNORE INTO queues VALUES (?)", (name,))

    def queue_removed(self, name: str) -> None:
        """Forget queue ``name``: its name, its jobs and its paused flag."""
        self._write_pending()
        self._execute("DELETE FROM jobs WHERE place = 'queue' AND name = ?", (name,))
        self._execute("DELETE FROM queues WHERE name = ?", (name,))
        self._execute("DELETE FROM paused WHERE name = ?", (name,))

    def paused(self, name: str, paused: bool) -> None:
        """Record that queue ``name`` was paused or resumed."""
        if paused:
            self._execute("INSERT OR IGNORE INTO paused VALUES (?)", (name,))
        else:
            self._execute("DELETE FROM paused WHERE name = ?", (name,))

    def counters(self, processed: int, failures: int) -> None:
        """Keep the latest INFO counters; written at commit."""
        self._counters = (processed, failures)

    def flush(self) -> None:
        """FLUSH: drop every record, queue name, paused name; counters back to zero."""
        self._pending.clear()
        self._fresh.clear()
        self._execute("DELETE FROM jobs")
        self._execute("DELETE FROM queues")
        self._execute("DELETE FROM paused")
        self._counters = (0, 0)

    def commit(self) -> None:
        """Write every buffered change in one transaction and commit it (see the module
        docstring for what "durable" means with each ``synchronous`` mode).

        Raises :class:`StorageError` when this or any earlier write failed: nothing
        reported since the last successful commit is on disk, and nothing will be."""
        if self._failed is None:
            if not (self._in_txn or self._pending or self._counters is not None):
                return
            start = time.perf_counter()
            self._write_pending()
            if self._counters is not None:
                self._execute(_COUNTERS, self._counters)
                self._counters = None
            if self._failed is None:
                try:
                    self._db.execute("COMMIT")
                    self._in_txn = False
                except sqlite3.Error as exc:
                    self._record_failure(exc)
            if self._failed is None:
                self.commits += 1
                self.commit_seconds += time.perf_counter() - start
                if self._checkpointer is not None and self._checkpointer.committed():
                    self._finish_checkpoint()
                return
        self._pending.clear()
        self._fresh.clear()
        self._counters = None
        raise StorageError(f"storage {self.path!r}: write failed ({self._failed}); no change "
                           f"since the last successful commit is stored, and none will be: "
                           f"restart the server once the cause is fixed")

    def close(self) -> None:
        """Commit anything still buffered, close the file (SQLite checkpoints and removes
        the WAL) and release the lock."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._failed is None:
                self.commit()
        finally:
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
            try:
                self._db.close()  # the last connection: SQLite checkpoints and drops the WAL
            finally:
                self._unlock()
            log.info("storage %s closed after %d commits (%.1f us each on average)", self.path,
                     self.commits, 1e6 * self.commit_seconds / max(1, self.commits))

    # -- internals -------------------------------------------------------------------------
    # Only commit() raises on a failed write: the other calls come from inside the store's
    # operations, which must not be interrupted half-way; they record the failure.

    def _begin(self) -> bool:
        """Open the transaction if needed; False once the storage has failed."""
        if self._failed is not None:
            return False
        if not self._in_txn:
            try:
                self._db.execute("BEGIN")
            except sqlite3.Error as exc:
                self._record_failure(exc)
                return False
            self._in_txn = True
        return True

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """One statement inside the open transaction (a failure is recorded)."""
        if self._begin():
            try:
                self._db.execute(sql, params)
            except sqlite3.Error as exc:
                self._record_failure(exc)

    def _write_pending(self) -> None:
        """Move the buffered record changes into the open transaction."""
        pending = self._pending
        if not self._begin() or not pending:
            return
        upserts = []
        deletes = []
        for rid, row in pending.items():
            if row is None:
                deletes.append((rid,))
            else:
                upserts.append(row)
        pending.clear()
        self._fresh.clear()
        try:
            if deletes:
                self._db.executemany(_DELETE, deletes)
            if upserts:
                self._db.executemany(_UPSERT, upserts)
        except sqlite3.Error as exc:
            self._record_failure(exc)

    def _finish_checkpoint(self) -> None:
        """Copy the last WAL frames on the writer's connection, so that the next
        transaction starts the WAL over (see :class:`_Checkpointer`)."""
        try:
            busy, frames, copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # pragma: no cover - harmless, retried later
            log.warning("storage %s: checkpoint failed: %s", self.path, exc)
            return
        log.debug("storage %s: final checkpoint busy=%s wal=%s copied=%s", self.path, busy,
                  frames, copied)

    def _record_failure(self, exc: BaseException) -> None:
        """A write failed: roll back; every later commit() raises StorageError."""
        self._failed = exc
        log.error("storage %s: write failed, refusing further changes: %s", self.path, exc)
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:  # pragma: no cover - best effort
            pass
        self._in_txn = False

    def __repr__(self) -> str:
        return f"SqlitePersistence({self.path!r}, synchronous={self.synchronous!r})"


class _Checkpointer:
    """Copies the WAL back into the database file from a daemon thread.

    The event-loop connection runs with ``wal_autocheckpoint = 0``, so its commits only
    append to the WAL.  This thread runs a PASSIVE checkpoint (which never blocks the
    writer) on its own connection every :attr:`EVERY_COMMITS` commits, and
    :attr:`IDLE_SECONDS` after the last commit it has not copied yet.  :mod:`sqlite3`
    releases the GIL while SQLite works, so the copy and its ``fsync`` overlap with the
    event loop.

    Under sustained load a checkpoint running beside the writer never copies the very
    last frames, and SQLite only starts the WAL over from its beginning when everything
    was copied; so once the WAL is :attr:`RESET_FRAMES` frames long, the thread asks the
    writer (:meth:`committed` returns True) to run one PASSIVE checkpoint itself right
    after a commit: only the few frames written since the thread's pass are left to
    copy, and the next transaction restarts the WAL.  Until the writer has done so the
    thread starts no pass (a concurrent checkpoint would make the writer's one busy).
    The WAL stays bounded (tens of MiB) instead of growing for as long as the load lasts.

    The thread may also fall behind (a busy machine gives it no CPU for a while): every
    :attr:`EVERY_COMMITS` commits the writer looks at the WAL's size, and past
    :attr:`HARD_FRAMES_FACTOR` x :attr:`RESET_FRAMES` frames it runs that checkpoint
    itself, thread or no thread.
    """

    EVERY_COMMITS = 256
    IDLE_SECONDS = 1.0
    RESET_FRAMES = 4096
    HARD_FRAMES_FACTOR = 4

    def __init__(self, path: str, mode: str, page_size: int = 4096) -> None:
        self._path = path
        self._wal = path + "-wal"
        self._page_size = page_size
        self._mode = mode
        self._cond = threading.Condition()
        self._wanted = False      # EVERY_COMMITS reached (under _cond)
        self._uncopied = False    # commits since the last checkpoint started (under _cond)
        self._stopping = False
        self._commits = 0         # commits since the last wake-up (event-loop thread only)
        #: Set by the thread (under _cond): the WAL is long and mostly copied, the writer
        #: should finish; the thread waits until it did.
        self.finish = False
        self.checkpoints = 0
        self._thread = threading.Thread(target=self._run, name="faktory-checkpoint",
                                        daemon=True)
        self._thread.start()

    def committed(self) -> bool:
        """Called after each commit (event-loop thread); cheap.  True: the writer should run
        a PASSIVE checkpoint now (see the class docstring)."""
        self._commits += 1
        if self._commits == 1 or self._commits >= self.EVERY_COMMITS:
            overdue = self._commits >= self.EVERY_COMMITS and self._wal_too_long()
            with self._cond:
                self._uncopied = True
                if self._commits >= self.EVERY_COMMITS:
                    self._commits = 0
                    self._wanted = True
                self._cond.notify()
            if overdue:
                return True
        if self.finish:
            with self._cond:
                self.finish = False
                self._cond.notify()
            return True
        return False

    def _wal_too_long(self) -> bool:
        # Past HARD_FRAMES_FACTOR x RESET_FRAMES frames: the thread has fallen behind.
        try:
            size = os.path.getsize(self._wal)
        except OSError:
            return False
        return size > self.HARD_FRAMES_FACTOR * self.RESET_FRAMES * (self._page_size + 24)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=10.0)

    def _wait(self) -> bool:
        """Block until a checkpoint is due; False when stopping."""
        with self._cond:
            while not self._stopping:
                if self.finish:
                    # the writer's turn: a pass now would make its checkpoint busy
                    self._cond.wait()
                elif self._wanted:
                    break
                elif self._uncopied:
                    if not self._cond.wait(self.IDLE_SECONDS) and not self.finish:
                        break  # idle with commits not copied yet
                else:
                    self._cond.wait()
            if self._stopping:
                return False
            self._wanted = False
            self._uncopied = False
            return True

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # pragma: no cover - the main connection just opened it
            log.warning("storage %s: checkpoint thread cannot open the file: %s", self._path, exc)
            return
        try:
            db.execute(f"PRAGMA synchronous = {self._mode}")
            db.execute("PRAGMA wal_autocheckpoint = 0")
            while self._wait():
                try:
                    busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # pragma: no cover - retried next time
                    log.warning("storage %s: checkpoint failed: %s", self._path, exc)
                    continue
                self.checkpoints += 1
                log.debug("storage %s: checkpoint busy=%s wal=%s copied=%s", self._path,
                          busy, frames, copied)
                if frames >= self.RESET_FRAMES:
                    with self._cond:
                        self.finish = True
        finally:
            db.close()
