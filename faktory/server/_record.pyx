# cython: language_level=3
"""The compiled :class:`faktory.server.persist.JobRecord`: the same fields and behaviour,
not tracked by the cyclic garbage collector.

Every job the server holds is one record; a record holds only strings, bytes and numbers,
so it can never be part of a reference cycle, yet the pure-Python class (``__slots__``)
is tracked, and each full collection walks every stored job: 80-110 ms of another client's
latency with the 100,000 jobs of a 10 MB PUSHB stored.  Instances of this class are not
tracked (``cython.no_gc``), so the collector never visits them; the deques, dicts and heap
tuples that hold them are visited as before (a pointer each).
"""
cimport cython


@cython.no_gc
cdef class JobRecord:
    """One job held by the server, in one place (see :mod:`faktory.server.persist`)."""

    cdef public object rid
    cdef public object where
    cdef public object name
    cdef public object score
    cdef public object jid
    cdef public object payload
    cdef public object wid
    cdef public object since
    cdef public object reserve_for
    cdef public object enqueued_at
    cdef public object alive

    def __init__(self, rid, where, name, score, jid, payload, wid="", since=0.0,
                 reserve_for=0, enqueued_at=0.0):
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
        self.alive = True

    def __repr__(self):
        return (f"JobRecord(rid={self.rid}, where={self.where!r}, name={self.name!r}, "
                f"score={self.score!r}, jid={self.jid!r})")
