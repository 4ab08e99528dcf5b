"""The embedded server's state: queues, sorted sets, reservations, counters.

This is the source of truth the server serves from; every change is reported to a
:class:`~faktory.server.persist.Persistence` (see that module for the contract).  The
semantics follow the real server (``manager/*.go`` and its Redis storage), quirks
included where a client could tell the difference: a job fetched twice under one jid
leaves two working entries, FLUSH keeps the known queue names and paused queues of the
running server, requeue from a set does not touch ``enqueued_at``, ...

All methods run on the server's event-loop thread.
"""
from __future__ import annotations

import heapq
import logging
import random
import re
import time
from collections import deque
from typing import Any, Callable, Generator, Iterable, Iterator, Protocol

from faktory.server import bigline, gojson
from faktory.server.clock import Clock
from faktory.server.persist import (
    DEAD, QUEUE, RETRIES, SCHEDULED, SETS, WORKING, JobRecord, MemoryPersistence,
    Persistence,
)

__all__ = ["Store", "SortedSet", "Waiter", "DEFAULT_RESERVE", "DEAD_TTL", "next_retry_delay",
           "glob_to_regex"]

log = logging.getLogger("faktory.server")

DEFAULT_RESERVE = 1800
MIN_RESERVE = 60
MAX_RESERVE = 86400
DEAD_TTL = 180 * 24 * 3600.0
DEFAULT_RETRY = 25
VALID_QUEUE = re.compile(r"[a-zA-Z0-9._-]+\Z")
QUEUE_RULE = "queue names must match \\A[a-zA-Z0-9._-]+\\z"
_GO_WS = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" \
         "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def next_retry_delay(count: int, rand: Callable[[int], int] = random.randrange) -> int:
    """Seconds until retry number ``count``: ``count^4 + 15 + rand(0..29) * (count + 1)``."""
    return count ** 4 + 15 + rand(30) * (count + 1)


def _clamp_reserve(seconds: int) -> int:
    if seconds == 0:
        return DEFAULT_RESERVE
    if seconds < MIN_RESERVE:
        return MIN_RESERVE
    if seconds > MAX_RESERVE:
        return MAX_RESERVE
    return seconds


def glob_to_regex(pattern: str) -> re.Pattern[bytes]:
    """Compile a Redis ``MATCH`` glob (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes)."""
    src = pattern.encode("utf-8", "surrogateescape")
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i:i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(src[i:i + 1]))
        elif c == b"[":
            j = i + 1
            negate = j < n and src[j:j + 1] == b"^"
            if negate:
                j += 1
            items = []
            while j < n and src[j:j + 1] != b"]":
                ch = src[j:j + 1]
                if ch == b"\\" and j + 1 < n:
                    j += 1
                    items.append(re.escape(src[j:j + 1]))
                elif j + 2 < n and src[j + 1:j + 2] == b"-" and src[j + 2:j + 3] != b"]":
                    lo, hi = sorted((src[j], src[j + 2]))
                    items.append(re.escape(bytes([lo])) + b"-" + re.escape(bytes([hi])))
                    j += 2
                else:
                    items.append(re.escape(ch))
                j += 1
            body = b"".join(items)
            if not body:
                out.append(b"[^\\x00-\\xff]" if not negate else b"[\\x00-\\xff]")
            else:
                out.append(b"[" + (b"^" if negate else b"") + body + b"]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out), re.DOTALL)


class SortedSet:
    """A Redis-style sorted set of records: unique by payload, ordered by (score, payload)."""

    __slots__ = ("where", "members", "_heap", "_stale")

    def __init__(self, where: str) -> None:
        self.where = where
        self.members: dict[bytes, JobRecord] = {}
        self._heap: list[tuple[float, bytes, int, JobRecord]] = []
        self._stale = 0

    def __len__(self) -> int:
        return len(self.members)

    def add(self, rec: JobRecord) -> JobRecord:
        """Insert ``rec`` (its ``where``/``score`` already set); returns the member now
        holding that payload: ``rec``, or an equal-payload member re-scored instead."""
        existing = self.members.get(rec.payload)
        if existing is not None and existing is not rec:
            existing.score = rec.score
            rec.alive = False
            rec = existing
            self._stale += 1
        else:
            self.members[rec.payload] = rec
        heapq.heappush(self._heap, (rec.score, rec.payload, rec.rid, rec))
        return rec

    def _valid(self, score: float, rec: JobRecord) -> bool:
        return rec.alive and rec.where == self.where and rec.score == score \
            and self.members.get(rec.payload) is rec

    def pop_due(self, now: float) -> Iterator[JobRecord]:
        """Remove and yield, in order, every member with ``score <= now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            score, _, _, rec = heapq.heappop(heap)
            if self._valid(score, rec):
                del self.members[rec.payload]
                yield rec
            else:
                self._stale -= 1

    def remove(self, rec: JobRecord) -> bool:
        """Remove member ``rec``; False when it was not a member."""
        if self.members.get(rec.payload) is not rec:
            return False
        del self.members[rec.payload]
        self._stale += 1
        if self._stale > 64 and self._stale > 2 * len(self.members):
            self._compact()
        return True

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if self._valid(e[0], e[3])]
        heapq.heapify(self._heap)
        self._stale = 0

    def clear(self) -> list[JobRecord]:
        """Remove every member; returns them."""
        recs = list(self.members.values())
        self.members.clear()
        self._heap.clear()
        self._stale = 0
        return recs

    def ordered(self) -> list[JobRecord]:
        """Members in (score, payload) order."""
        return sorted(self.members.values(), key=lambda r: (r.score, r.payload))


class Waiter(Protocol):
    """A blocked FETCH (implemented by the server's connection)."""

    wid: str
    queues: tuple[str, ...]

    def deliver(self, rec: JobRecord) -> None:
        """Hand ``rec`` (already reserved) to the waiting FETCH."""


class ScanStats:
    """INFO ``tasks`` statistics of one periodic scanner."""

    __slots__ = ("enqueued", "cycles", "wall_ns")

    def __init__(self) -> None:
        self.enqueued = 0
        self.cycles = 0
        self.wall_ns = 0


class Store:
    """All jobs and queues of one server (see the module docstring)."""

    def __init__(self, clock: Clock | None = None, persistence: Persistence | None = None,
                 *, rand: Callable[[int], int] = random.randrange) -> None:
        self.clock = clock or Clock()
        self.persist = persistence or MemoryPersistence()
        self.rand = rand
        self.queues: dict[str, deque[JobRecord]] = {}
        self.paused: set[str] = set()
        self.sets: dict[str, SortedSet] = {name: SortedSet(name) for name in SETS}
        self.scheduled = self.sets[SCHEDULED]
        self.retries = self.sets[RETRIES]
        self.dead = self.sets[DEAD]
        self.working: dict[int, JobRecord] = {}
        self._working_heap: list[tuple[float, int, JobRecord]] = []
        self.reservations: dict[str, JobRecord] = {}
        self.waiters: dict[str, dict[Any, None]] = {}
        self.processed = 0
        self.failures = 0
        self.reaped = 0
        self.scan_stats = {"Scheduled": ScanStats(), "Retries": ScanStats(), "Dead": ScanStats()}
        self._rid = 0
        self._seq = 0

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        """Rebuild the in-memory state from ``persistence.load()``."""
        snap = self.persist.load()
        records = sorted(snap.records, key=lambda r: (r.score, r.rid))
        for name in snap.queues:
            self.queues.setdefault(name, deque())
        max_rid = 0
        for rec in records:
            max_rid = max(max_rid, rec.rid)
            rec.alive = True
            self._hydrate(rec)
            if rec.where == QUEUE:
                self.queues.setdefault(rec.name, deque()).append(rec)
                self._seq = max(self._seq, int(rec.score))
            elif rec.where == WORKING:
                self.working[rec.rid] = rec
                heapq.heappush(self._working_heap, (rec.score, rec.rid, rec))
                self.reservations[rec.jid] = rec
            elif rec.where in self.sets:
                self.sets[rec.where].add(rec)
            else:
                log.warning("ignoring a persisted job in unknown place %r", rec.where)
        self.paused.update(n for n in snap.paused if n in self.queues)
        self.processed = snap.processed
        self.failures = snap.failures
        self._rid = max(self._rid, max_rid)

    @staticmethod
    def _hydrate(rec: JobRecord) -> None:
        try:
            job = bigline.top_fields(rec.payload)
        except ValueError:
            return
        rf = job.get("reserve_for")
        rec.reserve_for = rf if type(rf) is int else 0
        enq = job.get("enqueued_at")
        if enq:
            try:
                rec.enqueued_at = gojson.parse_time(enq)
            except ValueError:
                rec.enqueued_at = 0.0

    def new_rid(self) -> int:
        """A fresh record id."""
        self._rid += 1
        return self._rid

    # ------------------------------------------------------------------ queues

    def _known_queue(self, name: str) -> deque[JobRecord] | str:
        # GetQueue: the queue, created if needed, or the Go error text
        q = self.queues.get(name)
        if q is not None:
            return q
        if name == "":
            return "queue name cannot be blank"
        if VALID_QUEUE.match(name) is None:
            return QUEUE_RULE
        q = self.queues[name] = deque()
        self.persist.queue_added(name)
        return q

    def _enqueue(self, rec: JobRecord, q: deque[JobRecord], new: bool) -> None:
        """Put ``rec`` (payload final) at the tail of its queue, or straight into a waiting
        FETCH.  ``new``: the record was not persisted yet."""
        name = rec.name
        waiting = self.waiters.get(name)
        if waiting:
            waiter = next(iter(waiting))
            self.remove_waiter(waiter)
            self._reserve(rec, waiter.wid)
            self.persist.add(rec) if new else self.persist.update(rec)
            waiter.deliver(rec)
            return
        self._seq += 1
        rec.where = QUEUE
        rec.score = float(self._seq)
        q.append(rec)
        self.persist.add(rec) if new else self.persist.update(rec)

    def add_waiter(self, waiter: Any, queues: tuple[str, ...]) -> None:
        """Register a blocked FETCH on ``queues`` (first come, first served)."""
        for name in queues:
            self.waiters.setdefault(name, {})[waiter] = None

    def remove_waiter(self, waiter: Any) -> None:
        """Forget a blocked FETCH (served, timed out or its connection closed)."""
        for name in waiter.queues:
            waiting = self.waiters.get(name)
            if waiting is not None:
                waiting.pop(waiter, None)
                if not waiting:
                    del self.waiters[name]

    def pause(self, name: str) -> None:
        """QUEUE PAUSE of one name (known queues only)."""
        if name in self.queues:
            self.paused.add(name)
            self.persist.paused(name, True)

    def resume(self, name: str) -> None:
        """QUEUE RESUME of one name (known queues only)."""
        if name in self.queues:
            self.paused.discard(name)
            self.persist.paused(name, False)

    def remove_queue(self, name: str) -> None:
        """QUEUE REMOVE of one name: its jobs are gone and it is no longer known."""
        q = self.queues.pop(name, None)
        if q is not None:
            for rec in q:
                rec.alive = False
            self.persist.queue_removed(name)
        self.paused.discard(name)

    def latency(self, name: str, now: float) -> float:
        """Seconds since the oldest job of ``name`` was enqueued (0 when none)."""
        q = self.queues.get(name)
        if not q or not q[0].enqueued_at:
            return 0.0
        return max(0.0, round(now - q[0].enqueued_at, 9))

    # ------------------------------------------------------------------ push

    def push(self, job: dict[str, Any], now: float | None = None, ts: str | None = None) -> str | None:
        """Push a decoded job (``gojson.decode_struct(..., JOB)``, retry defaulted).

        ``now`` and its ``gojson.format_time`` text ``ts`` may be given by a caller pushing
        many jobs at one time.  Returns ``None``, or the error text of the real server's
        ``manager.Push``.
        """
        plan = self._admit(job, now, ts)
        if isinstance(plan, str):
            return plan
        return self._place(plan, gojson.marshal_job(job))

    def push_steps(self, job: dict[str, Any], now: float | None = None,
                   ts: str | None = None) -> Generator[None, None, str | None]:
        """:meth:`push` with the job's bytes encoded a step at a time
        (``gojson.encode_steps``), for a huge job: what is checked first is checked before
        the first step, the job is stored after the last one (so a caller that stops
        in between leaves nothing behind)."""
        plan = self._admit(job, now, ts)
        if isinstance(plan, str):
            return plan
        if plan[0] is None and plan[2] not in self.queues:
            error = self._queue_error(plan[2])
            if error is not None:  # what push_scanned would say: no need to encode for it
                return error
        payload = yield from gojson.encode_steps(gojson.job_object(job))
        return self._place(plan, payload)

    def _admit(self, job: dict[str, Any], now: float | None,
               ts: str | None) -> str | tuple[float | None, str, str, int, float]:
        # manager.Push's checks and defaults: the error text, or (the time it is scheduled
        # for or None, jid, queue, reserve_for, now) with the job ready to be encoded
        get = job.get
        jid = get("jid", "")
        # Go's len() counts bytes: five two-byte characters make a valid jid
        if len(jid) < 8 and len(jid.encode("utf-8", "surrogatepass")) < 8:
            return "jobs must have a reasonable jid parameter"
        if not get("jobtype"):
            return "jobs must have a jobtype parameter"
        if get("args") is None:
            return "jobs must have an args parameter"
        reserve_for = get("reserve_for", 0)
        if reserve_for > 86400:
            return "jobs cannot be reserved for more than one day"
        if now is None:
            now = self.clock.now()
        if ts is None:
            ts = gojson.format_time(now)
        if not get("created_at"):
            job["created_at"] = ts
        name = get("queue")
        if not name:
            name = job["queue"] = "default"
        at = get("at")
        if at:
            try:
                when = gojson.parse_time(at)
            except gojson.TimeParseError as exc:
                return f"invalid timestamp for 'at': {gojson.go_quote(at)}: {exc}"
            if when > now:
                return (when, jid, name, reserve_for, now)
        job["enqueued_at"] = ts
        return (None, jid, name, reserve_for, now)

    def _place(self, plan: tuple[float | None, str, str, int, float], payload: bytes) -> str | None:
        # the end of push: the job (its bytes final) scheduled or enqueued
        when, jid, name, reserve_for, now = plan
        if when is not None:
            rec = JobRecord(self.new_rid(), SCHEDULED, "", when, jid, payload,
                            reserve_for=reserve_for)
            kept = self.scheduled.add(rec)
            self.persist.add(rec) if kept is rec else self.persist.update(kept)
            return None
        return self.push_scanned(jid, name, reserve_for, payload, now)

    @staticmethod
    def _queue_error(name: str) -> str | None:
        # push_scanned's error for a queue not known yet, or None
        if name == "":
            known = "queue name cannot be blank"
        elif VALID_QUEUE.match(name) is None:
            known = QUEUE_RULE
        else:
            return None
        return f"cannot get {gojson.go_quote(name)} queue: {known}"

    def push_scanned(self, jid: str, name: str, reserve_for: int, payload: bytes, now: float) -> str | None:
        """Enqueue a job whose stored bytes are final (``payload``, ``enqueued_at`` ``now``):
        the end of :meth:`push`, and what the codec's ``scan_push`` fast path feeds.  Returns
        ``None`` or the error text of an unusable queue name."""
        q = self.queues.get(name)
        if q is None:
            known = self._known_queue(name)
            if isinstance(known, str):
                return f"cannot get {gojson.go_quote(name)} queue: {known}"
            q = known
        self._rid += 1
        self._enqueue(JobRecord(self._rid, QUEUE, name, 0.0, jid, payload,
                                reserve_for=reserve_for, enqueued_at=now), q, True)
        return None

    # ------------------------------------------------------------------ fetch / ack / fail

    def fetch(self, queues: tuple[str, ...] | list[str], wid: str) -> JobRecord | None:
        """Pop the first job of the first non-empty queue (argument order) and reserve it.

        Paused queues must already be filtered out by the caller."""
        all_queues = self.queues
        for name in queues:
            q = all_queues.get(name)
            if q:
                rec = q.popleft()
                self._reserve(rec, wid)
                self.persist.update(rec)
                return rec
        return None

    def _reserve(self, rec: JobRecord, wid: str) -> None:
        now = self.clock.now()
        rec.where = WORKING
        rec.name = ""
        rec.score = now + _clamp_reserve(rec.reserve_for)
        rec.wid = wid
        rec.since = now
        working = self.working
        working[rec.rid] = rec
        heap = self._working_heap
        heapq.heappush(heap, (rec.score, rec.rid, rec))
        self.reservations[rec.jid] = rec
        if len(heap) > 2 * len(working) + 1024:
            # ACKed reservations leave their heap entries behind until they would have
            # expired (30 min by default): rebuild from the live ones now and then
            self._working_heap = [(r.score, r.rid, r) for r in working.values()]
            heapq.heapify(self._working_heap)

    def ack(self, jid: str) -> None:
        """ACK: the reservation of ``jid`` is released and counted as processed."""
        res = self.reservations.pop(jid, None)
        if res is None:
            log.info("No such job to acknowledge %s", jid)
            return
        if self.working.pop(res.rid, None) is not None:
            res.alive = False
            self.persist.remove(res)
        self.processed += 1
        self.persist.counters(self.processed, self.failures)

    def fail(self, jid: str, errtype: str, message: str, backtrace: list[str]) -> str | None:
        """FAIL of a reserved job: ``None`` or the error text (``Job not found <jid>``)."""
        if not jid:
            return "missing JID"
        errtype, message = _failure_texts(errtype, message)
        return self._process_failure(jid, errtype, message, backtrace[:50], None)

    def fail_payload_size(self, jid: str) -> int:
        """The size of the stored job a FAIL of ``jid`` would re-encode (0: none reserved)."""
        res = self.reservations.get(jid)
        return 0 if res is None else len(res.payload)

    def fail_steps(self, jid: str, errtype: str, message: str,
                   backtrace: list[str]) -> Generator[None, None, str | None]:
        """:meth:`fail` for a huge reserved job.  When only its ``args`` and ``custom`` are
        big, they are kept as stored and the rest re-encoded in one call (one compiled scan
        of the payload, ``bigline.rewritten``), as :meth:`fail` does too; otherwise its
        payload is decoded, normalised and re-encoded a step at a time
        (``faktory.server.bigline``) while it stays reserved, and the failure is recorded in
        the last step, all at once, as :meth:`fail` records it.
        A caller that stops in between leaves the job reserved, as before the FAIL; one whose
        job was ACKed, failed or reaped meanwhile gets what :meth:`fail` says then."""
        if not jid:
            return "missing JID"
        errtype, message = _failure_texts(errtype, message)
        backtrace = backtrace[:50]
        res = self.reservations.get(jid)
        if res is None or not bigline.available() or res.rid not in self.working:
            return self._process_failure(jid, errtype, message, backtrace, None)
        done = self._fail_spliced(jid, res, None, errtype, message, backtrace)
        if done is not _NOT_SPLICED:  # only args and custom are big: re-encoded without them
            return done  # type: ignore[return-value]
        payload = res.payload
        kind, job = yield from bigline.parse(payload, 0)
        if kind != "value" or type(job) is not dict:  # (not this server's payload)
            return self._process_failure(jid, errtype, message, backtrace, None)
        known = yield from bigline.normalize_known(job)
        for key in ("args", "custom"):
            pair = known.get(id(job.get(key)))
            if pair is not None and not isinstance(pair[1], Exception):
                job[key] = pair[1]
        plan = self._failure_plan(job, errtype, message, backtrace, self.clock.now())
        encoded = None if plan is None else (yield from gojson.encode_steps(gojson.job_object(job)))
        yield from bigline.dispose(job, *(v for pair in known.values() for v in pair))
        if self.reservations.get(jid) is not res or res.payload is not payload:
            return self._process_failure(jid, errtype, message, backtrace, None)
        return self._commit_failure(jid, res, None, plan, encoded)

    def _process_failure(self, jid: str, errtype: str, message: str, backtrace: list[str],
                         expired: JobRecord | None) -> str | None:
        res = self.reservations.get(jid)
        if res is None:
            return f"Job not found {jid}"
        if expired is None and res.rid not in self.working:
            self.reservations.pop(jid)
            return None  # its working entry is gone (FLUSH): nothing more happens
        if len(res.payload) > bigline.BIG_LINE:
            # a huge job (a reservation expired, say): its big args and custom kept as stored
            done = self._fail_spliced(jid, res, expired, errtype, message, backtrace)
            if done is not _NOT_SPLICED:
                return done  # type: ignore[return-value]
        job = gojson.reparse_job(res.payload)
        plan = self._failure_plan(job, errtype, message, backtrace, self.clock.now())
        if plan is not None:
            job["args"] = gojson.normalize_any(job.get("args"))
            if job.get("custom") is not None:
                job["custom"] = gojson.normalize_any(job["custom"])
        return self._commit_failure(jid, res, expired, plan,
                                    None if plan is None else gojson.marshal_job(job))

    def _fail_spliced(self, jid: str, res: JobRecord, expired: JobRecord | None, errtype: str,
                      message: str, backtrace: list[str]) -> object:
        # the failure of a huge job recorded with its big args and custom kept as stored
        # (bigline.rewritten): what _commit_failure returns, or _NOT_SPLICED
        now = self.clock.now()
        spliced = bigline.rewritten(
            res.payload, lambda job: self._failure_plan(job, errtype, message, backtrace, now))
        if spliced is None:
            return _NOT_SPLICED
        return self._commit_failure(jid, res, expired, spliced[1], spliced[0])

    def _failure_plan(self, job: dict[str, Any], errtype: str, message: str, backtrace: list[str],
                      now: float) -> tuple[SortedSet, float] | None:
        # the job's failure recorded in ``job`` (decoded), and where it goes: (the retries
        # or the dead set, its score), or None when it has no retry (it is gone)
        failure = job.get("failure")
        retry = job.get("retry")
        if failure is not None:
            failure["retry_count"] = failure.get("retry_count", 0) + 1
            if failure.get("remaining", 0) > 0:
                failure["remaining"] -= 1
            failure["message"] = message
            failure["errtype"] = errtype
            failure["backtrace"] = backtrace
        else:
            if retry is None:
                retry = job["retry"] = DEFAULT_RETRY
            failure = job["failure"] = {
                "retry_count": 0, "remaining": retry, "failed_at": gojson.format_time(now),
                "message": message, "errtype": errtype, "backtrace": backtrace,
            }
        if not retry:
            return None  # no retry, no death
        if failure["retry_count"] < retry:
            when = now + next_retry_delay(failure["retry_count"], self.rand)
            failure["next_at"] = gojson.format_time(when)
            return self.retries, when
        return self.dead, now + DEAD_TTL

    def _commit_failure(self, jid: str, res: JobRecord, expired: JobRecord | None,
                        plan: tuple[SortedSet, float] | None, payload: bytes | None) -> str | None:
        # the failure of the reservation ``res`` of ``jid`` recorded, all in this call
        self.reservations.pop(jid, None)
        if expired is None:
            if self.working.pop(res.rid, None) is None:
                return None  # its working entry is gone (FLUSH): nothing more happens
        self.failures += 1
        self.processed += 1
        self.persist.counters(self.processed, self.failures)
        # the record that carries the job on, unless it still holds a working entry
        owned = res if res.rid not in self.working else None
        if plan is None or payload is None:
            # no retry, no death: the job is gone
            if owned is not None:
                owned.alive = False
                self.persist.remove(owned)
            return None
        target, score = plan
        if owned is not None:
            rec, new = owned, False
            rec.where, rec.name, rec.score, rec.payload = target.where, "", score, payload
            rec.wid, rec.since = "", 0.0
        else:
            rec, new = JobRecord(self.new_rid(), target.where, "", score, jid, payload,
                                 reserve_for=res.reserve_for), True
        kept = target.add(rec)
        if kept is not rec:
            if not new:
                self.persist.remove(rec)
            self.persist.update(kept)
        elif new:
            self.persist.add(rec)
        else:
            self.persist.update(rec)
        return None

    # ------------------------------------------------------------------ periodic tasks

    def enqueue_due(self, sset: SortedSet, now: float) -> int:
        """Move every job of ``sset`` due at ``now`` to its queue; returns how many."""
        count = 0
        for rec in sset.pop_due(now):
            big = len(rec.payload) > bigline.BIG_LINE
            job = bigline.top_fields(rec.payload)  # (reparse_job's, for a small one)
            name = job.get("queue") or ""
            q = self._known_queue(name)
            if isinstance(q, str):
                log.warning("Unable to process timed job: cannot push job to %s queue: "
                            "cannot get %s queue: %s", gojson.go_quote(name),
                            gojson.go_quote(name), q)
                rec.alive = False
                self.persist.remove(rec)
                continue
            stamp = gojson.format_time(now)
            # a huge job's big members are not decoded again, nor re-encoded
            payload = bigline.restamped(rec.payload, {"enqueued_at": stamp}) if big else None
            if payload is None:
                if big:
                    job = gojson.reparse_job(rec.payload)
                job["args"] = gojson.normalize_any(job.get("args"))
                if job.get("custom") is not None:
                    job["custom"] = gojson.normalize_any(job["custom"])
                job["enqueued_at"] = stamp
                payload = gojson.marshal_job(job)
            rec.payload = payload
            rec.name = name
            rec.enqueued_at = now
            self._enqueue(rec, q, False)
            count += 1
        return count

    def purge_dead(self, now: float) -> int:
        """Drop dead jobs whose 180 days are over; returns how many."""
        count = 0
        for rec in self.dead.pop_due(now):
            rec.alive = False
            self.persist.remove(rec)
            count += 1
        return count

    def reap_reservations(self, now: float) -> int:
        """Expired reservations become failures (``ReservationExpired``)."""
        heap = self._working_heap
        count = 0
        while heap and heap[0][0] <= now:
            score, rid, rec = heapq.heappop(heap)
            if self.working.get(rid) is not rec or rec.score != score:
                continue
            del self.working[rid]
            if self.reservations.get(rec.jid) is not rec:
                # the jid's reservation is another entry (fetched twice) or gone
                rec.alive = False
                self.persist.remove(rec)
            err = self._process_failure(rec.jid, "ReservationExpired",
                                        "Faktory job reservation expired", [], rec)
            if err is not None:
                log.warning("cannot retry reservation: %s", err)
                continue
            count += 1
        self.reaped += count
        return count

    def run_scanners(self, now: float,
                     which: "Iterable[str]" = ("scheduled", "retries", "dead")) -> None:
        """One pass of the Scheduled, Retries and Dead scanners, or of those named in
        ``which`` (INFO ``tasks`` stats)."""
        wanted = set(which)
        scans: tuple[tuple[str, Callable[[], int]], ...] = (
            ("Scheduled", lambda: self.enqueue_due(self.scheduled, now)),
            ("Retries", lambda: self.enqueue_due(self.retries, now)),
            ("Dead", lambda: self.purge_dead(now)))
        for name, fn in scans:
            if name.lower() not in wanted:
                continue
            stats = self.scan_stats[name]
            start = time.perf_counter_ns()
            count = fn()
            stats.wall_ns += time.perf_counter_ns() - start
            stats.cycles += 1
            stats.enqueued += count
            if count:
                log.info("%s processed %d jobs", name, count)

    # ------------------------------------------------------------------ admin

    def flush(self) -> None:
        """FLUSH: every job, set and counter is gone (known queue names and the paused
        list survive in memory, as on the real server)."""
        for q in self.queues.values():
            for rec in q:
                rec.alive = False
            q.clear()
        for sset in self.sets.values():
            for rec in sset.clear():
                rec.alive = False
        for rec in self.working.values():
            rec.alive = False
        self.working.clear()
        self._working_heap.clear()
        self.processed = 0
        self.failures = 0
        self.persist.flush()

    def mutate(self, op: dict[str, Any]) -> str | None:
        """MUTATE: ``None`` or the error text."""
        cmd = op.get("cmd") or ""
        target = op.get("target") or ""
        if cmd not in ("clear", "kill", "discard", "requeue"):
            return "unknown mutate operation"
        sset = self.sets.get(target)
        if sset is None:
            return "invalid target for mutation command"
        flt = op.get("filter")
        if cmd == "clear" or (cmd == "discard" and flt is None):
            for rec in sset.clear():
                rec.alive = False
            self.persist.clear_set(sset.where)
            return None
        match = _matcher(flt)
        now = self.clock.now()
        for rec in sset.ordered():
            if not match(rec.payload):
                continue
            if cmd == "discard":
                self.discard(sset, rec)
            elif cmd == "kill":
                self.kill(sset, rec, now)
            else:
                error = self.requeue(sset, rec)
                if error is not None:
                    return error
        return None

    # -- one member of a sorted set (MUTATE and the web UI's actions) -------------------

    def discard(self, sset: SortedSet, rec: JobRecord) -> bool:
        """Delete member ``rec`` of ``sset``; False when it was no longer there."""
        if not sset.remove(rec):
            return False
        rec.alive = False
        self.persist.remove(rec)
        return True

    def kill(self, sset: SortedSet, rec: JobRecord, now: float | None = None) -> bool:
        """Move member ``rec`` of ``sset`` to the dead set (180 days); False when gone."""
        if not sset.remove(rec):
            return False
        rec.where, rec.score = DEAD, (self.clock.now() if now is None else now) + DEAD_TTL
        kept = self.dead.add(rec)
        if kept is not rec:
            self.persist.remove(rec)
        self.persist.update(kept)
        return True

    def requeue(self, sset: SortedSet, rec: JobRecord) -> str | None:
        """Put member ``rec`` of ``sset`` back on its queue, its stored payload as it is
        (MUTATE requeue; "retry now" in the web UI).  ``None``, or why it could not."""
        if sset.members.get(rec.payload) is not rec:
            return "no such job"
        try:
            job = bigline.top_fields(rec.payload)
        except ValueError as exc:
            return str(exc)
        name = job.get("queue") or ""
        q = self._known_queue(name)
        if isinstance(q, str):
            return q
        sset.remove(rec)
        rec.name = name
        self._hydrate(rec)
        self._enqueue(rec, q, False)
        return None

    def find(self, sset: SortedSet, rid: int) -> JobRecord | None:
        """The member of ``sset`` with record id ``rid``, or ``None``."""
        for rec in sset.members.values():
            if rec.rid == rid:
                return rec
        return None

    def clear_queue(self, name: str) -> int:
        """Delete every job waiting in queue ``name`` (the queue stays known, its pause
        state too); returns how many."""
        q = self.queues.get(name)
        if not q:
            return 0
        count = len(q)
        for rec in q:
            rec.alive = False
            self.persist.remove(rec)
        q.clear()
        return count

    # ------------------------------------------------------------------ INFO

    def queue_sizes(self) -> dict[str, int]:
        """Known queue -> number of jobs waiting."""
        return {name: len(q) for name, q in self.queues.items()}

    def set_sizes(self) -> dict[str, int]:
        """INFO ``sets``: dead, retries, scheduled, working."""
        return {"dead": len(self.dead), "retries": len(self.retries),
                "scheduled": len(self.scheduled), "working": len(self.working)}


_NOT_SPLICED = object()  # (Store._fail_spliced: the payload could not be rewritten so)


def _failure_texts(errtype: str, message: str) -> tuple[str, str]:
    # FAIL's errtype and message as the real server keeps them: trimmed, "unknown" when
    # empty, cut to 100 and 1,000 characters
    errtype = errtype.strip(_GO_WS)
    message = message.strip(_GO_WS)
    return (_truncate(errtype, 100) if errtype else "unknown",
            _truncate(message, 1000) if message else "unknown")


def _truncate(text: str, limit: int) -> str:
    # Go slices strings by bytes; a cut multi-byte rune becomes U+FFFD per byte on output
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return gojson._fix_text(data[:limit].decode("utf-8", "surrogateescape"))


def _matcher(flt: dict[str, Any] | None) -> Callable[[bytes], bool]:
    # MUTATE filter precedence of the 1.10 server: jids, else regexp (+ jobtype), else jobtype
    if flt is None:
        return lambda payload: True
    jids = flt.get("jids") or []
    if jids:
        needles = [('"jid":' + gojson.go_quote(j)).encode("utf-8", "surrogateescape")
                   for j in jids]
        return lambda payload: any(payload.find(n) > 0 for n in needles)
    regexp = flt.get("regexp") or ""
    jobtype = flt.get("jobtype") or ""
    if regexp:
        rx = glob_to_regex(regexp)
        if jobtype:
            typematch = ('"jobtype":' + gojson.go_quote(jobtype)).encode("utf-8", "surrogateescape")
            return lambda payload: rx.fullmatch(payload) is not None and payload.find(typematch) > 0
        return lambda payload: rx.fullmatch(payload) is not None
    if jobtype:
        rx = glob_to_regex('*"jobtype":' + gojson.go_quote(jobtype) + "*")
        return lambda payload: rx.fullmatch(payload) is not None
    return lambda payload: True
