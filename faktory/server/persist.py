"""The persistence contract of the embedded server.

The in-memory state of :class:`faktory.server.store.Store` is the only thing the server
serves from.  A :class:`Persistence` is told about every change of that state, in the
order the changes happen, *before* the reply that reveals the change is written to any
client; :meth:`Persistence.load` hands the state back when a server starts on an
existing data set.  :class:`MemoryPersistence` (the default) does nothing.  A durable
implementation (``faktory/server/sqlite.py``: ``SqlitePersistence(path)``) writes each
change through and makes it durable in :meth:`Persistence.commit`.

The model
---------
Every job the server holds is one :class:`JobRecord`, identified by ``rid``.  A record
lives in exactly one place (``where``):

===============  ========  ===========================================================
``where``        ``name``  ``score``
===============  ========  ===========================================================
``"queue"``      queue     position: an increasing enqueue sequence number; a queue is
                           served in ascending ``score`` order (FIFO)
``"scheduled"``  ``""``    epoch seconds at which the job is enqueued (its ``at``)
``"retries"``    ``""``    epoch seconds at which the job is retried (``failure.next_at``)
``"dead"``       ``""``    epoch seconds at which the job is purged (death + 180 days)
``"working"``    ``""``    epoch seconds at which the reservation expires
===============  ========  ===========================================================

``payload`` is the job JSON exactly as FETCH sends it (the server's own encoding, Go
key order); ``jid`` the job id (also inside ``payload``).  Working records also carry
``wid`` (the worker that fetched it, ``""`` for a connection without one) and ``since``
(epoch seconds of the FETCH).  ``score`` values are floats; ties are broken by
``payload`` bytes for the three sets and by ``rid`` for ``"working"``.

A record moves between places keeping its ``rid`` (FETCH: queue -> working; FAIL:
working -> retries/dead; the scheduler: scheduled/retries -> queue; MUTATE kill/requeue:
set -> dead/queue); each move is one :meth:`Persistence.update` call carrying the whole
new state of the record (the payload changes on some moves: FAIL adds ``failure``,
enqueueing sets ``enqueued_at``).  ``rid`` values are unique and increase in creation
order; the store never reuses one, and after :meth:`load` it continues above the
largest ``rid`` returned.

Besides records, the state has: the set of *known queue names* (a queue is known from
its first enqueue until ``QUEUE REMOVE``; it is listed by INFO even when empty), the set
of *paused* queue names, and two counters (``processed``, ``failures``).  Workers,
heartbeats, connections and task statistics are not persisted (the real server keeps
them in memory too).

Calls and ordering
------------------
* All calls come from the server's event-loop thread, synchronously, never
  concurrently; implementations may block briefly (SQLite in WAL mode is fine) but must
  not call back into the store.
* ``add``/``update``/``remove``/``clear_set``/``queue_added``/``queue_removed``/
  ``paused``/``counters``/``flush`` describe changes already made in memory; apply
  them in call order.  They may be buffered: only :meth:`commit` has to make them
  durable.
* :meth:`commit` is called after a batch of changes and before any reply that depends
  on them is written to a socket (when ``durable`` is true the server groups the replies
  of one event-loop pass behind one commit).  It is also called after each periodic
  :meth:`~faktory.server.FaktoryServer.tick` and before :meth:`close`.  A commit with
  nothing pending must be cheap.
* A crash (SIGKILL) may lose changes since the last ``commit`` only; those were never
  acknowledged to any client.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from faktory.protocol import extensions_disabled

__all__ = [
    "QUEUE",
    "SCHEDULED",
    "RETRIES",
    "DEAD",
    "WORKING",
    "SETS",
    "JobRecord",
    "Snapshot",
    "Persistence",
    "MemoryPersistence",
]

QUEUE = "queue"
SCHEDULED = "scheduled"
RETRIES = "retries"
DEAD = "dead"
WORKING = "working"
#: The three sorted sets that MUTATE can target, by their protocol name.
SETS = (SCHEDULED, RETRIES, DEAD)


class JobRecord:
    """One job held by the server, in one place (see the module docstring).

    Persisted fields: ``rid, where, name, score, jid, payload, wid, since``.  The
    remaining slots (``reserve_for``, ``enqueued_at``, ``alive``) are derived by the store
    from ``payload`` and its own bookkeeping; persistence must neither store nor rely on
    them.
    """

    __slots__ = ("rid", "where", "name", "score", "jid", "payload", "wid", "since",
                 "reserve_for", "enqueued_at", "alive")

    def __init__(self, rid: int, where: str, name: str, score: float, jid: str,
                 payload: bytes, wid: str = "", since: float = 0.0,
                 reserve_for: int = 0, enqueued_at: float = 0.0) -> None:
        self.rid = rid
        self.where = where
        self.name = name
        self.score = score
        self.jid = jid
        self.payload = payload
        self.wid = wid
        self.since = since
        self.reserve_for = reserve_for
        self.enqueued_at = enqueued_at
        #: False once the record left the store (lazy deletion in the store's heaps).
        self.alive = True

    def __repr__(self) -> str:
        return (f"JobRecord(rid={self.rid}, where={self.where!r}, name={self.name!r}, "
                f"score={self.score!r}, jid={self.jid!r})")


#: The pure-Python JobRecord (tracked by the cyclic garbage collector, as every instance
#: of a class with ``__slots__`` is).
PyJobRecord = JobRecord
if not TYPE_CHECKING and not extensions_disabled():
    # the compiled twin (faktory/server/_record.pyx): not tracked, so that full
    # collections do not walk every stored job
    try:
        from faktory.server._record import JobRecord
    except ImportError:  # pragma: no cover - the pure-Python installation
        pass


@dataclass
class Snapshot:
    """What :meth:`Persistence.load` returns: the whole persisted state.

    ``records`` in any order (the store sorts them); ``queues`` the known queue names
    (queues holding records are known even if missing here); ``paused`` the paused queue
    names; ``processed``/``failures`` the INFO counters.
    """

    records: Iterable[JobRecord] = ()
    queues: Iterable[str] = ()
    paused: Iterable[str] = ()
    processed: int = 0
    failures: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Persistence:
    """Base class and no-op implementation of the persistence contract.

    Subclasses override what they need; every method here does nothing.
    """

    #: True when changes survive a crash; the server then holds replies until commit().
    durable: bool = False

    def load(self) -> Snapshot:
        """Return the persisted state (called once, before the server listens).

        An empty data set returns ``Snapshot()``.  Records of every ``where`` are returned,
        including ``"working"`` ones: the store rebuilds the reservations from them, and
        they come back to their queue (as a failure, using up a retry) when their
        reservation expires, as on the real server.
        """
        return Snapshot()

    def add(self, rec: JobRecord) -> None:
        """A new record ``rec`` now exists at ``rec.where``.

        Called for PUSH/PUSHB (into a queue, or ``"scheduled"`` for a future ``at``; a job
        handed straight to a blocked FETCH is added directly as ``"working"``).
        In a sorted set, a record whose ``payload`` equals that of a record already in
        the same set replaces it (Redis sorted-set semantics): the store then calls
        :meth:`update` on the existing record instead of ``add``.
        """

    def update(self, rec: JobRecord) -> None:
        """The record with ``rec.rid`` changed: store its new ``where``, ``name``,
        ``score``, ``payload``, ``wid`` and ``since`` (all of them, replacing the old).

        Called for FETCH (queue -> working), FAIL and reservation expiry (working ->
        retries or dead), the scheduler (scheduled/retries -> queue), MUTATE kill
        (-> dead) and requeue (-> queue).
        """

    def remove(self, rec: JobRecord) -> None:
        """The record ``rec.rid`` is gone (ACK; FAIL of a job with retry 0; MUTATE
        discard; dead-set purge; a scheduled job whose queue name is invalid)."""

    def clear_set(self, where: str) -> None:
        """Every record with this ``where`` (one of :data:`SETS`) is gone (MUTATE clear, or
        discard without filter).  Individual ``remove`` calls are not made for them."""

    def queue_added(self, name: str) -> None:
        """Queue ``name`` became known (its first enqueue)."""

    def queue_removed(self, name: str) -> None:
        """``QUEUE REMOVE``: queue ``name`` is no longer known, every ``"queue"`` record with
        this name is gone (no individual ``remove`` calls), and it is no longer paused."""

    def paused(self, name: str, paused: bool) -> None:
        """Queue ``name`` was paused (``True``) or resumed (``False``)."""

    def counters(self, processed: int, failures: int) -> None:
        """The INFO counters changed; these are the new absolute values.

        Called on every ACK/FAIL, so keep the latest values and write them at commit."""

    def flush(self) -> None:
        """FLUSH: every record, known queue, paused name and counter is gone.

        (The running server keeps its in-memory list of known queue names and paused
        queues across a FLUSH, as the real server does; after a restart they are gone.)"""

    def commit(self) -> None:
        """Make every change reported so far durable (durable implementations)."""

    def close(self) -> None:
        """The server stops; :meth:`commit` was called just before."""


class MemoryPersistence(Persistence):
    """The in-memory mode: nothing is kept across restarts."""

    durable = False
