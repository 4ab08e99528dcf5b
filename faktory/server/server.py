"""The embedded Faktory-protocol server: network side, commands, workers, INFO, tasks.

One :class:`ServerConnection` (an ``asyncio.Protocol``) per client socket: bytes are split on
``\\n`` (a trailing ``\\r`` dropped), each line is dispatched through a dict of command
handlers that return the reply bytes, and the replies of one ``data_received`` are
written with one ``transport.write``.  A FETCH that finds nothing parks the connection
(later pipelined lines wait) and registers it as a waiter; a push to one of its queues
hands the job over directly.  Nothing creates a task per command.

Replies and errors are byte for byte those of the real server (Faktory 1.10.0): see
``../shared/protocol.md`` and the comments in :mod:`faktory.server.store` and
:mod:`faktory.server.gojson`.
"""
from __future__ import annotations

import asyncio
import dataclasses
import gc
import hashlib
import hmac
import logging
import os
import random
import re
import secrets
import socket
import ssl as _ssl
import time
from typing import Any, Callable, Generator
from urllib.parse import quote

from faktory import protocol
from faktory.server import bigline, gojson
from faktory.server.clock import Clock
from faktory.server.persist import JobRecord, MemoryPersistence, Persistence
from faktory.server.store import Store

__all__ = ["FaktoryServer", "ServerConnection", "WorkerRecord", "ScanIntervals", "VERSION", "DEFAULT_PORT"]

log = logging.getLogger("faktory.server")

VERSION = "1.10.0"
DEFAULT_PORT = 7419
HEARTBEAT_TTL = 60.0

RUNNING, QUIET, TERMINATE = 0, 1, 2
STATE_NAMES = {RUNNING: "running", QUIET: "quiet", TERMINATE: "terminate"}

OK = b"+OK\r\n"
NULL = b"$-1\r\n"
INTERNAL = b"-ERR internal error\r\n"
_BEAT_REPLY = {QUIET: b'$17\r\n{"state":"quiet"}\r\n', TERMINATE: b'$21\r\n{"state":"terminate"}\r\n'}


#: a decoded job costing more than this (``gojson._cost``) to normalise or encode is pushed
#: in steps (a tenth of a 10 MB line; the cost of a few hundred kilobytes of numbers)
_HUGE_JOB_COST = 16384


def _has_huge_job(jobs: list[Any]) -> Generator[None, None, bool]:
    # whether any element of a decoded PUSHB is a huge job, a run of elements per step
    cost = gojson._cost
    for i in range(0, len(jobs), 1024):
        for item in jobs[i:i + 1024]:
            if cost(item, _HUGE_JOB_COST) > _HUGE_JOB_COST:
                return True
        yield
    return False


def _too_deep(size: int) -> bytes:
    # A payload nested so deep that Python's recursion ran out on it (in a decoder, an
    # encoder or a normaliser; Go nests 10,000 deep): refused as Go refuses what is deeper,
    # not as an internal error with a thousand-frame traceback.
    log.warning("refused a %d-byte command nested deeper than this server can decode", size)
    return b"-ERR invalid JSON: exceeded max depth\r\n"


def _err(message: str) -> bytes:
    try:
        data = message.encode("utf-8")
    except UnicodeEncodeError:
        data = message.encode("utf-8", "surrogateescape" if _only_escapes(message) else "replace")
    return b"-ERR " + data + b"\r\n"


def _only_escapes(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _state_from_string(text: str) -> int:
    return {"quiet": QUIET, "terminate": TERMINATE}.get(text, RUNNING)


TASKS = ("scheduled", "retries", "dead", "reservations", "workers")


@dataclasses.dataclass(frozen=True)
class ScanIntervals:
    """Seconds between two runs of each periodic task of the server, and the heartbeat TTL.

    ``scheduled`` and ``retries``: jobs due in those sets are enqueued; ``dead``: dead jobs
    older than 180 days are purged; ``reservations``: expired reservations become failures;
    ``workers``: workers without a BEAT for ``worker_ttl`` seconds are forgotten and their
    connections closed.  The default (every task each second) makes a laptop or a test
    see ``at`` and retries on time; :meth:`faktory` gives the real server's timing.
    """

    scheduled: float = 1.0
    retries: float = 1.0
    dead: float = 1.0
    reservations: float = 1.0
    workers: float = 1.0
    worker_ttl: float = HEARTBEAT_TTL

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"ScanIntervals.{field.name} must be a positive number of seconds, "
                                 f"not {value!r}")

    @classmethod
    def faktory(cls) -> "ScanIntervals":
        """The real Faktory's timing: scheduled and retries every 5 s, dead every 60 s,
        reservations and workers every 15 s, workers forgotten after 60 s without a BEAT."""
        return cls(scheduled=5.0, retries=5.0, dead=60.0, reservations=15.0, workers=15.0)

    @classmethod
    def every(cls, seconds: float) -> "ScanIntervals":
        """Every task each ``seconds``."""
        return cls(seconds, seconds, seconds, seconds, seconds)

    @classmethod
    def parse(cls, spec: str) -> "ScanIntervals":
        """``"faktory"``, ``"fast"`` (the default), a number (every task), or
        ``"scheduled=5,retries=5,dead=60,reservations=15,workers=15,worker_ttl=60"``
        (names left out keep the default)."""
        spec = spec.strip()
        if spec == "faktory":
            return cls.faktory()
        if spec == "fast":
            return cls()
        try:
            seconds = float(spec)
        except ValueError:
            pass
        else:
            return cls.every(seconds)
        values: dict[str, float] = {}
        names = {f.name for f in dataclasses.fields(cls)}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, value = part.partition("=")
            if not sep or name.strip() not in names:
                raise ValueError(f"bad scan interval {part!r} (expected NAME=SECONDS, NAME one of "
                                 f"{', '.join(sorted(names))}; or 'faktory', 'fast', SECONDS)")
            try:
                values[name.strip()] = float(value)
            except ValueError:
                raise ValueError(f"bad scan interval {part!r}: {value!r} is not a number") from None
        return cls(**values)

    def periods(self) -> dict[str, float]:
        """Task name -> seconds between runs."""
        return {task: getattr(self, task) for task in TASKS}


class WorkerRecord:
    """A worker process as the server knows it (``ClientData`` of the real server)."""

    __slots__ = ("wid", "hostname", "pid", "labels", "rss_kb", "version", "started_at",
                 "last_beat", "state", "connections")

    def __init__(self, hello: dict[str, Any], now: float) -> None:
        self.wid: str = hello.get("wid", "")
        self.hostname: str = hello.get("hostname", "")
        self.pid: int = hello.get("pid", 0)
        self.labels: list[str] = list(hello.get("labels") or [])
        self.rss_kb: int = hello.get("rss_kb", 0)
        self.version: int = hello.get("v", 0)
        self.started_at = now
        self.last_beat = now
        self.state = RUNNING
        self.connections: set[ServerConnection] = set()

    def signal(self, state: int) -> None:
        """Move the state forward only: running -> quiet -> terminate."""
        if state > self.state:
            self.state = state

    def as_dict(self) -> dict[str, Any]:
        """The operator view of this worker."""
        return {"wid": self.wid, "hostname": self.hostname, "pid": self.pid,
                "labels": list(self.labels), "state": STATE_NAMES[self.state],
                "last_beat": self.last_beat, "started_at": self.started_at,
                "rss_kb": self.rss_kb, "connections": len(self.connections)}


_HANDSHAKE, _READY, _CLOSED = 0, 1, 2


class _GcHold:
    """The cyclic garbage collector held off while big commands are worked through in
    slices.

    A 10 MB PUSHB makes some hundred thousand short-lived dicts and lists at once; with
    the collector on they set off full collections that walk every stored job, 100-200 ms
    each (measured: a good client's worst INFO 126-213 ms, 36-55 ms with the collector
    held), stalling every other connection.  Reference counting still frees them as
    usual; the collector is on again when the last holder is done (or gone), and is
    never turned on by this when something else had turned it off.  One per process,
    since the collector is."""

    def __init__(self) -> None:
        self.holders: set[object] = set()
        self._disabled = False  # by us

    def hold(self, who: object) -> None:
        if not self.holders and gc.isenabled():
            gc.disable()
            self._disabled = True
        self.holders.add(who)

    def release(self, who: object) -> None:
        self.holders.discard(who)
        if not self.holders and self._disabled:
            self._disabled = False
            gc.enable()


_gc_hold = _GcHold()


class ServerConnection(asyncio.Protocol):
    """One client socket."""

    __slots__ = ("srv", "store", "transport", "state", "worker", "wid", "queues", "_buf",
                 "_out", "_blocked", "_timer", "_salt", "_iters", "_counted", "_fetch_line",
                 "_fetch_queues", "_close_after_flush", "_paused_reading", "_write_paused",
                 "_resume_scheduled", "_acct", "_active", "_idle_since", "_work", "_held")

    def __init__(self, srv: "FaktoryServer") -> None:
        self.srv = srv
        self.store = srv.store
        self.transport: asyncio.Transport | None = None
        self.state = _HANDSHAKE
        self.worker: WorkerRecord | None = None
        self.wid = ""
        self.queues: tuple[str, ...] = ()
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._blocked = False
        self._timer: asyncio.TimerHandle | None = None
        self._salt = ""
        self._iters = 0
        self._counted = False
        self._fetch_line = b""
        self._fetch_queues: tuple[str, ...] = ()
        self._close_after_flush = False
        self._paused_reading = False
        self._write_paused = False
        self._resume_scheduled = False
        self._acct = 0          # bytes of _buf (and _held) counted in srv.buffered
        self._work: Generator[None, None, bytes | None] | None = None  # a big line's sliced parse
        self._held = 0          # bytes of the line that _work parses
        self._active = True     # a command ran since the idle sweep last looked
        self._idle_since = 0.0

    # ------------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        srv = self.srv
        srv._conns.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - not TCP
                pass
        if srv.password:
            self._iters = 4000 + random.randrange(4096)
            self._salt = format(secrets.randbelow((1 << 63) - 1), "x")
            hi = b'+HI {"v":2,"i":%d,"s":"%s"}\r\n' % (self._iters, self._salt.encode())
        else:
            hi = b'+HI {"v":2}\r\n'
        transport.write(hi)  # type: ignore[attr-defined]
        self._timer = srv._loop.call_later(srv.handshake_timeout, self._handshake_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        srv = self.srv
        srv._conns.discard(self)
        self._buf.clear()
        self._drop_work()
        _gc_hold.release(self)
        self._account()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._blocked:
            self._blocked = False
            self.store.remove_waiter(self)
        if self._counted:
            self._counted = False
            srv.connections -= 1
        if self.state == _READY and self.wid:
            srv._remove_worker_connection(self)
        self.state = _CLOSED

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.transport is not None and not self._paused_reading:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is not None and not self._paused_reading:
            self.transport.resume_reading()

    def _handshake_expired(self) -> None:
        self._timer = None
        if self.state == _HANDSHAKE and self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close the socket after writing what is pending."""
        if self.transport is not None and self.state != _CLOSED:
            if self._out:
                if self.srv._durable:
                    self.srv.persistence.commit()  # never a reply before its change is durable
                self._write_out()
            self.transport.close()

    # ------------------------------------------------------------------ input

    def data_received(self, data: bytes) -> None:
        if self._close_after_flush or self.state == _CLOSED:
            return  # END (or an error that closes) was read: the rest is ignored
        buf = self._buf
        if not buf and not self._blocked and self.state == _READY and data[-1:] == b"\n" \
                and data.find(b"\n") == len(data) - 1 and len(data) <= self.srv.max_line:
            # the common case of a client waiting for each reply: exactly one whole line
            self._active = True
            reply = self._dispatch(data[:-2] if data[-2:-1] == b"\r" else data[:-1])
            if reply is not None:
                if self.srv._durable or self._out:
                    self._out.append(reply)
                    self._flush()
                else:
                    self.transport.write(reply)  # type: ignore[union-attr]
                    if self._close_after_flush:
                        self.transport.close()
            elif self._close_after_flush:
                self.close()
            return
        if buf or self._blocked:
            buf += data
            if self._blocked:
                if len(buf) > 1 << 20 and not self._paused_reading:
                    self._paused_reading = True
                    self.transport.pause_reading()  # type: ignore[union-attr]
                self._account()
                return
            nl = data.find(b"\n")
            if nl < 0:
                if len(buf) > self.srv.max_line:
                    self._line_too_long()
                self._account()
                return
            if nl == len(data) - 1 and self.state == _READY and len(buf) > bigline.BIG_LINE:
                self._one_line()
                self._account()
                return
            data = bytes(buf)
            buf.clear()
        self._run(data)
        self._account()

    def _one_line(self) -> None:
        """Answer the one whole line the input buffer holds, a long one (a big command
        arrives in many reads): copied out of the buffer once, where ``_run`` would copy it
        twice (the buffer to bytes, then the line cut from them), 10-30 ms a copy for
        10 MB on a loaded machine."""
        buf = self._buf
        end = len(buf) - 1
        if end and buf[end - 1] == 13:
            end -= 1
        if end > self.srv.max_line:
            self._line_too_long()
            return
        with memoryview(buf) as view:
            line = view[:end].tobytes()
        buf.clear()
        self._active = True
        reply = self._dispatch(line)
        if reply is not None:
            self._out.append(reply)
        if self._out:
            self._flush()
        elif self._close_after_flush:
            self.close()

    def _account(self) -> None:
        """Keep ``srv.buffered`` (bytes held in every connection's input buffer, and the big
        lines being parsed) current; over ``srv.max_buffered``, the largest buffers are
        dropped with their connections."""
        size = len(self._buf) + self._held
        delta = size - self._acct
        if delta:
            self._acct = size
            srv = self.srv
            srv.buffered += delta
            if delta > 0 and srv.buffered > srv.max_buffered:
                srv._shed_buffers()

    def _line_too_long(self) -> None:
        log.info("closing a connection: line longer than %d bytes", self.srv.max_line)
        self._buf.clear()
        self._account()
        self.transport.abort()  # type: ignore[union-attr]
        self.state = _CLOSED

    def _run(self, data: bytes) -> None:
        pos = 0
        n = len(data)
        out = self._out
        srv = self.srv
        max_line = srv.max_line
        self._active = True
        started = time.perf_counter()
        count = 0
        while pos < n:
            count += 1
            if not count & 63 and time.perf_counter() - started > srv.slice_seconds:
                # a long pipeline: answer what is done, let the other connections run, go on
                # with the rest in a later pass of the loop (no more input read meanwhile)
                if not self._paused_reading:
                    self._paused_reading = True
                    self.transport.pause_reading()  # type: ignore[union-attr]
                if not self._resume_scheduled:
                    self._resume_scheduled = True
                    srv._loop.call_soon(self._resume)
                break
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            end = nl - 1 if nl > pos and data[nl - 1] == 13 else nl
            if end - pos > max_line:
                self._line_too_long()
                return
            line = data[pos:end]
            pos = nl + 1
            if self.state == _READY:
                reply = self._dispatch(line)
            elif self.state == _HANDSHAKE:
                reply = self._hello(line)
            else:
                return
            if reply is not None:
                out.append(reply)
            if self._blocked or self.state == _CLOSED or self._close_after_flush:
                break
        if pos < n and self.state != _CLOSED:
            self._buf += data[pos:] if pos else data
            if not self._blocked and len(self._buf) > max_line and self._buf.find(b"\n") < 0:
                self._line_too_long()
                return
        if out:
            self._flush()
        elif self._close_after_flush:
            self.close()

    def _resume(self) -> None:
        self._resume_scheduled = False
        if self._blocked or self.state != _READY:
            return
        if self._paused_reading:
            self._paused_reading = False
            if not self._write_paused:
                self.transport.resume_reading()  # type: ignore[union-attr]
        if self._buf and self._buf.find(b"\n") >= 0:
            data = bytes(self._buf)
            self._buf.clear()
            self._run(data)
            self._account()

    # ------------------------------------------------------------------ big lines

    def _start_work(self, line: bytes, work: Generator[None, None, bytes | None]) -> None:
        """Answer a big line by ``work``, a generator run a slice per pass of the event loop
        (:mod:`faktory.server.bigline`) that returns the reply (``None``: it handed the
        command on to later passes, as a big PUSHB does); meanwhile this connection's
        later commands wait, as behind a FETCH, and the line counts as buffered input."""
        self._blocked = True
        self.queues = ()
        self._work = work
        self._held = len(line)
        self._account()
        _gc_hold.hold(self)
        self.srv._loop.call_soon(self._step)

    def _step(self) -> None:
        work = self._work
        if work is None:
            return  # the connection went away
        srv = self.srv
        if srv._closing:
            self._drop_work()
            self._close_after_flush = True
            self._finish_blocked(b"-ERR shutdown in progress\r\n")
            return
        deadline = time.perf_counter() + srv.slice_seconds
        try:
            while True:
                next(work)
                if time.perf_counter() >= deadline:
                    break
        except StopIteration as done:
            self._drop_work()
            if done.value is not None:
                self._finish_blocked(done.value)
            return
        except RecursionError:
            self._drop_work()
            self._finish_blocked(_too_deep(self._held))
            return
        except Exception:  # the real server recovers panics the same way
            log.exception("internal error while handling a %d-byte line", self._held)
            self._drop_work()
            self._finish_blocked(INTERNAL)
            return
        srv._loop.call_soon(self._step)

    def _drop_work(self) -> None:
        if self._work is not None:
            self._work.close()
            self._work = None
        if self._held:
            self._held = 0
            self._account()

    def _unblock(self) -> None:
        self._blocked = False
        if self._buf and not self._resume_scheduled:
            self._resume_scheduled = True
            self.srv._loop.call_soon(self._resume)
        elif self._paused_reading:
            self._paused_reading = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    # ------------------------------------------------------------------ output

    def _flush(self) -> None:
        if self.srv._durable:
            self.srv._schedule_write(self)
        else:
            self._write_out()

    def _write_out(self) -> None:
        out = self._out
        if out and self.state != _CLOSED:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))  # type: ignore[union-attr]
        out.clear()
        if self._close_after_flush and self.state != _CLOSED:
            self.transport.close()  # type: ignore[union-attr]

    # ------------------------------------------------------------------ handshake

    def _hello(self, line: bytes) -> bytes | None:
        srv = self.srv
        if not line.startswith(b"HELLO {"):
            self._abort_handshake()
            return None
        try:
            hello = gojson.decode_struct(gojson.loads(line[5:]), gojson.CLIENT_DATA) or {}
        except gojson.JSONError as exc:
            log.info("Invalid client data in HELLO: %s", exc)
            self._abort_handshake()
            return None
        if srv.password:
            iters = self._iters if hello.get("v", 0) >= 2 else 1
            expected = _pwdhash(srv.password, self._salt, iters)
            given = hello.get("pwdhash", "")
            if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode()):
                self.transport.write(b"-ERR Invalid password\r\n")  # type: ignore[union-attr]
                self._abort_handshake(graceful=True)
                return None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wid = hello.get("wid", "")
        self.state = _READY
        if wid:
            self.wid = wid
            self.worker = srv._register_worker(hello, self)
        else:
            self.worker = None
        self.transport.write(OK)  # type: ignore[union-attr]
        srv.connections += 1
        self._counted = True
        if srv.connections > srv.max_connections:
            log.warning("too many connections: %d (max %d)", srv.connections, srv.max_connections)
            self.transport.write(_err(f"too many connections: {srv.connections}"))  # type: ignore[union-attr]
            self._close_after_flush = True
            self.transport.close()  # type: ignore[union-attr]
        return None

    def _abort_handshake(self, graceful: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if graceful:
            self.transport.close()  # type: ignore[union-attr]
        else:
            self.transport.abort()  # type: ignore[union-attr]
        self.state = _CLOSED

    # ------------------------------------------------------------------ commands

    def _dispatch(self, line: bytes) -> bytes | None:
        sp = line.find(b" ")
        verb = line if sp < 0 else line[:sp]
        srv = self.srv
        if srv._closing:
            self._close_after_flush = True
            return b"-ERR shutdown in progress\r\n"
        handler = _COMMANDS.get(verb)
        if handler is None:
            return b"-ERR unknown command " + verb + b"\r\n"
        srv.command_count += 1
        try:
            return handler(self, line)
        except RecursionError:
            return _too_deep(len(line))
        except Exception:  # the real server recovers panics the same way
            log.exception("internal error while handling %r", line[:200])
            return INTERNAL

    def cmd_end(self, line: bytes) -> None:
        self._close_after_flush = True
        return None

    def cmd_push(self, line: bytes) -> bytes | None:
        if len(line) < 5:
            return INTERNAL
        if len(line) > bigline.BIG_LINE and bigline.available():
            self._start_work(line, self._push_sliced(line))
            return None
        store = self.store
        now = store.clock.now()
        # the common payload: validated and turned into the stored bytes in one pass
        scanned = self.srv._scan_push(line, 5, self.srv._stamp(now))
        if scanned is not None:
            error = store.push_scanned(scanned[0], scanned[1], scanned[2], scanned[3], now)
            return OK if error is None else _err(error)
        try:
            obj = gojson.loads(line[5:])
        except gojson.JSONError as exc:
            return _err(f"invalid JSON: {exc}")
        return self._push_obj(obj)

    @staticmethod
    def _parse_sliced(line: bytes, start: int) -> Generator[None, None, tuple[Any, bytes | None]]:
        """The JSON of a big line from ``start``, parsed a slice per step: ``(value, None)``,
        or ``(None, the -ERR reply)``."""
        kind, obj = yield from bigline.parse(line, start)
        if kind == "error":
            return None, _err(f"invalid JSON: {obj}")
        return obj, None

    def _push_sliced(self, line: bytes) -> Generator[None, None, bytes]:
        obj, error = yield from self._parse_sliced(line, 5)
        if error is not None:
            return error
        # the big fields of a huge job normalised in steps (for the fast and the general path)
        known = yield from bigline.normalize_known(obj)
        job = self._job_of(obj, known)
        if isinstance(job, bytes):
            reply = job
        else:
            # its stored bytes encoded in steps: stored after the last one
            error_text = yield from self.store.push_steps(job)
            reply = OK if error_text is None else _err(error_text)
        del job
        self.srv.dispose_later(obj, *(v for pair in known.values() for v in pair))
        return reply

    def _push_obj(self, obj: Any) -> bytes:
        job = self._job_of(obj, None)
        if isinstance(job, bytes):
            return job
        error = self.store.push(job)
        return OK if error is None else _err(error)

    @staticmethod
    def _job_of(obj: Any, known: dict[int, tuple[Any, Any]] | None) -> dict[str, Any] | bytes:
        # the decoded job (retry defaulted) a PUSH pushes, or its -ERR reply
        job = gojson.fast_job(obj, known)
        if job is None:
            errs = gojson.errors()
            job = gojson.decode_struct(obj, gojson.JOB, errs, known=known)
            if errs.first is not None:
                return _err(f"invalid JSON: {errs.first}")
            if job is None:
                job = {}
        if job.get("retry") is None:
            job["retry"] = 25
        return job

    def cmd_pushb(self, line: bytes) -> bytes | None:
        if len(line) < 6:
            return INTERNAL
        if len(line) > bigline.BIG_LINE and bigline.available():
            self._start_work(line, self._pushb_sliced(line))
            return None
        now = self.store.clock.now()
        stamp = self.srv._stamp(now)
        ts = stamp.decode()
        # the common batch: each element validated and turned into its stored bytes in one pass
        scanned, end = self.srv._scan_pushb(line, 6, stamp, len(line))
        if end == len(line):
            return self._pushb_jobs(scanned, now, ts)
        try:
            obj = gojson.loads(line[6:])
        except gojson.JSONError as exc:
            return _err(f"invalid JSON: {exc}")
        return self._pushb_obj(obj, now, ts, scanned)

    def _pushb_sliced(self, line: bytes) -> Generator[None, None, bytes | None]:
        now = self.store.clock.now()
        stamp = self.srv._stamp(now)
        ts = stamp.decode()
        scan = self.srv._scan_pushb
        # the fast path a run of elements per step, as long as they qualify
        scanned, end = scan(line, 6, stamp, bigline.CHUNK)
        while 0 < end < len(line):
            yield
            more, end = scan(line, end, stamp, bigline.CHUNK)
            scanned += more
        if end == len(line):
            return self._pushb_jobs(scanned, now, ts)
        obj, error = yield from self._parse_sliced(line, 6)
        if error is not None:
            return error
        if type(obj) is list and obj and (len(line) // len(obj) > bigline.BIG_LINE
                                          or (yield from _has_huge_job(obj))):
            # a few huge jobs, or one among many small ones: each normalised and encoded in
            # steps, as a big PUSH's
            return (yield from self._pushb_huge(obj))
        return self._pushb_obj(obj, now, ts, scanned)

    def _pushb_huge(self, obj: list[Any]) -> Generator[None, None, bytes]:
        errs = gojson.errors()
        jobs = []
        held: list[Any] = []  # the normalised fields' originals: freed by dispose_later
        for item in obj:  # all decoded first: a type error anywhere refuses the whole command
            known = yield from bigline.normalize_known(item)
            jobs.append(gojson.decode_job(item, errs, known))
            held.extend(v for pair in known.values() for v in pair)
            yield
            if errs.first is not None:
                self.srv.dispose_later(jobs, obj, held)
                return _err(f"invalid JSON: {errs.first}")
        now = self.store.clock.now()
        ts = gojson.format_time(now)
        result: dict[str, str] = {}
        for job in jobs:  # (a client gone meanwhile: the jobs pushed so far stay, as below)
            job = _pushb_defaults(job, ts)
            error = yield from self.store.push_steps(job, now, ts)
            if error is not None:
                result[job.get("jid", "")] = error
            yield  # (a small job's push takes no step of its own)
        del job
        self.srv.dispose_later(jobs, obj, held)
        return _pushb_reply(result)

    def _pushb_obj(self, obj: Any, now: float, ts: str, scanned: list[Any]) -> bytes | None:
        """PUSHB's general path for the decoded array ``obj``, whose first ``len(scanned)``
        elements the fast path took (as ``scan_pushb`` tuples: they decode without error)."""
        if obj is None:
            obj = []
        if not isinstance(obj, list):
            return _err(f"invalid JSON: json: cannot unmarshal {gojson.kind_of(obj)} "
                        "into Go value of type []client.Job")
        errs = gojson.errors()
        decode = gojson.decode_job
        start = len(scanned)
        if len(obj) <= _PUSHB_SLICE:
            jobs = scanned + [decode(item, errs) for item in obj[start:]]
            if errs.first is not None:
                return _err(f"invalid JSON: {errs.first}")
            return self._pushb_jobs(jobs, now, ts)
        # a big batch: decoded (all of it first: a type error anywhere refuses the whole
        # command) then pushed, a slice per pass of the event loop, so that other
        # connections are served in between; this client's later commands wait, as behind
        # a FETCH
        self._blocked = True
        self.queues = ()
        _gc_hold.hold(self)
        self._decode_slices(obj, start, scanned, errs, now, ts)
        return None

    def _pushb_jobs(self, jobs: list[Any], now: float, ts: str) -> bytes | None:
        """Push the checked elements of a PUSHB (decoded jobs, or ``scan_pushb`` tuples):
        the reply, or None when a big batch goes on in slices."""
        if len(jobs) <= _PUSHB_SLICE:
            result: dict[str, str] = {}
            self._push_jobs(jobs, now, ts, result)
            return _pushb_reply(result)
        self._blocked = True
        self.queues = ()
        _gc_hold.hold(self)
        self.srv._loop.call_soon(self._push_slices, jobs, 0, now, ts, {})
        return None

    def _decode_slices(self, obj: list[Any], start: int, jobs: list[Any], errs: Any, now: float,
                       ts: str) -> None:
        if self.state == _CLOSED:
            self.srv.dispose_later(jobs, obj)
            return
        srv = self.srv
        deadline = time.perf_counter() + srv.slice_seconds
        decode = gojson.decode_job
        n = len(obj)
        while True:
            end = start + _PUSHB_STEP
            jobs.extend(decode(item, errs) for item in obj[start:end])
            if errs.first is not None:
                srv.dispose_later(jobs, obj)
                self._finish_blocked(_err(f"invalid JSON: {errs.first}"))
                return
            if end >= n:
                break
            start = end
            if time.perf_counter() >= deadline:
                srv._loop.call_soon(self._decode_slices, obj, start, jobs, errs, now, ts)
                return
        # one now/ts for the whole batch: the fast path's elements were stamped with it
        srv._loop.call_soon(self._push_slices, jobs, 0, now, ts, {})

    def _finish_blocked(self, reply: bytes) -> None:
        _gc_hold.release(self)
        self._out.append(reply)
        self._unblock()
        self._flush()

    def _push_jobs(self, jobs: list[Any], now: float, ts: str, result: dict[str, str]) -> None:
        store = self.store
        push_scanned = store.push_scanned
        for job in jobs:
            if type(job) is tuple:  # the fast path's (jid, queue, reserve_for, payload)
                error = push_scanned(job[0], job[1], job[2], job[3], now)
                if error is not None:
                    result[job[0]] = error
                continue
            job = _pushb_defaults(job, ts)
            error = store.push(job, now, ts)
            if error is not None:
                result[job.get("jid", "")] = error

    def _push_slices(self, jobs: list[Any], start: int, now: float, ts: str, result: dict[str, str]) -> None:
        if self.state == _CLOSED:
            # gone: the jobs pushed so far stay (PUSHB is not atomic on the real server either)
            self.srv.dispose_later(jobs)
            return
        deadline = time.perf_counter() + self.srv.slice_seconds
        while True:
            end = start + _PUSHB_STEP
            self._push_jobs(jobs[start:end], now, ts, result)
            if end >= len(jobs):
                break
            start = end
            if time.perf_counter() >= deadline:
                self.srv._loop.call_soon(self._push_slices, jobs, start, now, ts, result)
                return
        # the decoded jobs (100,000 dicts for 10 MB) freed in later passes, not all at once
        # (first: the collector stays held until they are gone)
        self.srv.dispose_later(jobs)
        self._finish_blocked(_pushb_reply(result))

    def cmd_fetch(self, line: bytes) -> bytes | None:
        worker = self.worker
        if worker is not None and worker.state != RUNNING:
            return self._block(())
        if line == self._fetch_line:
            queues = self._fetch_queues
        else:
            queues = tuple(q.decode("utf-8", "surrogateescape") for q in line.split(b" ")[1:])
            self._fetch_line = line
            self._fetch_queues = queues
        if not queues:
            return b"-ERR must call fetch with at least one queue\r\n"
        store = self.store
        if store.paused:
            paused = store.paused
            queues = tuple(q for q in queues if q not in paused)
            if not queues:
                return self._block(())
        rec = store.fetch(queues, self.wid)
        if rec is not None:
            payload = rec.payload
            return b"$%d\r\n%s\r\n" % (len(payload), payload)
        return self._block(queues)

    def _block(self, queues: tuple[str, ...]) -> bytes | None:
        """Park the connection in FETCH (no reply yet: ``None``)."""
        self._blocked = True
        self.queues = queues
        if queues:
            self.store.add_waiter(self, queues)
        self._timer = self.srv._loop.call_later(self.srv.fetch_timeout, self._fetch_expired)
        return None

    def _fetch_expired(self) -> None:
        self._timer = None
        if not self._blocked:
            return
        if self.queues:
            self.store.remove_waiter(self)
        self._out.append(NULL)
        self._unblock()
        self._flush()

    def deliver(self, rec: JobRecord) -> None:
        """A job pushed while this connection waited in FETCH (already reserved)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        payload = rec.payload
        self._out.append(b"$%d\r\n%s\r\n" % (len(payload), payload))
        self._unblock()
        self._flush()

    def cmd_ack(self, line: bytes) -> bytes:
        if len(line) < 4:
            return INTERNAL
        data = line[4:]
        m = _ACK_RE.fullmatch(data)
        if m is not None:
            try:
                jid = m.group(1).decode("utf-8")
            except UnicodeDecodeError:
                jid = None
            if jid is not None:
                self.store.ack(jid)
                return OK
        try:
            obj = gojson.loads(data)
        except gojson.JSONError:
            return b"-ERR invalid ACK " + data + b"\r\n"
        if not isinstance(obj, dict) or "jid" not in obj or any(
                v is not None and type(v) is not str for v in obj.values()):
            return b"-ERR invalid ACK " + data + b"\r\n"
        self.store.ack(obj["jid"] or "")
        return OK

    def cmd_fail(self, line: bytes) -> bytes | None:
        if len(line) < 5:
            return INTERNAL
        return self._json_command(line, 5, lambda kind, obj: self._fail_value(line, kind, obj))

    def _fail_value(self, line: bytes, kind: str, obj: Any) -> bytes | Generator[None, None, bytes]:
        try:
            if kind != "value":
                raise gojson.JSONError(obj)
            payload = gojson.decode_struct(obj, gojson.FAIL_PAYLOAD) or {}
        except gojson.JSONError:
            return b"-ERR invalid FAIL " + line[5:] + b"\r\n"
        args = (payload.get("jid", ""), payload.get("errtype", ""), payload.get("message", ""),
                payload.get("backtrace") or [])
        if self.store.fail_payload_size(args[0]) > bigline.BIG_LINE:
            return self._fail_steps(args)  # a huge job re-encoded: a step at a time
        error = self.store.fail(*args)
        return OK if error is None else _err(error)

    def _fail_steps(self, args: tuple[str, str, str, list[str]]) -> Generator[None, None, bytes]:
        error = yield from self.store.fail_steps(*args)
        return OK if error is None else _err(error)

    def _json_command(self, line: bytes, start: int,
                      finish: Callable[[str, Any], bytes | Generator[None, None, bytes]]) -> bytes | None:
        """A command whose argument, from ``start``, is one JSON value: parsed in one call,
        or a slice per step when the line is big (the reply then comes later: None);
        ``finish(kind, obj)`` makes the reply of ``("value", the value)`` or
        ``("error", Go's text)``, or a generator of it to run a step at a time."""
        if len(line) > bigline.BIG_LINE and bigline.available():
            self._start_work(line, self._sliced(line, start, finish))
            return None
        try:
            obj = gojson.loads(line[start:])
        except gojson.JSONError as exc:
            reply = finish("error", str(exc))
        else:
            reply = finish("value", obj)
        if isinstance(reply, bytes):
            return reply
        self._start_work(line, reply)
        return None

    def _sliced(self, line: bytes, start: int,
                finish: Callable[[str, Any], bytes | Generator[None, None, bytes]]) -> Generator[None, None, bytes]:
        """A big line's command: its JSON from ``start`` parsed a slice per step, then
        ``finish(kind, obj)``: ``("value", the value)`` or ``("error", Go's text)``."""
        kind, obj = yield from bigline.parse(line, start)
        reply = finish(kind, obj)
        if not isinstance(reply, bytes):
            reply = yield from reply
        if kind == "value":
            self.srv.dispose_later(obj)
        return reply

    def cmd_beat(self, line: bytes) -> bytes | None:
        if len(line) < 5:
            return INTERNAL
        return self._json_command(line, 5, lambda kind, obj: self._beat_value(line, kind, obj))

    def _beat_value(self, line: bytes, kind: str, obj: Any) -> bytes:
        try:
            if kind != "value":
                raise gojson.JSONError(obj)
            beat = gojson.decode_struct(obj, gojson.CLIENT_BEAT) or {}
        except gojson.JSONError:
            return b"-ERR invalid BEAT " + line[5:] + b"\r\n"
        wid = beat.get("wid", "")
        worker = self.srv._workers.get(wid)
        if worker is None:
            return _err(f"unknown worker {wid}")
        worker.rss_kb = beat.get("rss_kb", 0)
        worker.last_beat = self.store.clock.now()
        current = beat.get("current_state", "")
        if current:
            worker.signal(_state_from_string(current))
        if worker.state == RUNNING:
            return OK
        return _BEAT_REPLY[worker.state]

    def cmd_info(self, line: bytes) -> bytes:
        return _bulk(self.srv.info_bytes())

    def cmd_flush(self, line: bytes) -> bytes:
        log.info("Flushing dataset")
        self.store.flush()
        return OK

    def cmd_mutate(self, line: bytes) -> bytes | None:
        sp = line.find(b" ")
        if sp < 0 or line.find(b" ", sp + 1) >= 0:  # not two words (without splitting a big line)
            return b"-ERR invalid format\r\n"
        return self._json_command(line, sp + 1, self._mutate_value)

    def _mutate_value(self, kind: str, obj: Any) -> bytes:
        try:
            if kind != "value":
                raise gojson.JSONError(obj)
            op = gojson.decode_struct(obj, gojson.OPERATION) or {}
        except gojson.JSONError as exc:
            return _err(str(exc))
        error = self.store.mutate(op)
        return OK if error is None else _err(error)

    def cmd_queue(self, line: bytes) -> bytes:
        qs = [q.decode("utf-8", "surrogateescape") for q in line.split(b" ")[1:]]
        if len(qs) < 2:
            return INTERNAL  # the real server indexes qs[0] and qs[1] and panics
        sub = gojson.go_upper(qs[0])
        store = self.store
        if sub == "LATENCY":
            if qs[1] == "*":
                return b"-ERR QUEUE LATENCY does not support wildcards\r\n"
            now = store.clock.now()
            items = sorted({name: store.latency(name, now) for name in qs[1:]}.items())
            body = "{" + ",".join(
                gojson.encode(name).decode("utf-8", "surrogateescape") + ":" + gojson.format_float(v)
                for name, v in items) + "}"
            return _bulk(body.encode("utf-8", "surrogateescape"))
        if sub == "PAUSE":
            action = store.pause
        elif sub == "RESUME":
            action = store.resume
        elif sub == "REMOVE":
            action = store.remove_queue
        else:
            return _err(f"no such QUEUE subcommand: {sub}")
        names = list(store.queues) if qs[1] == "*" else qs[1:]
        for name in names:
            action(name)
        return OK

    def cmd_batch(self, line: bytes) -> bytes:
        return b"-ERR batch subsystem is only available in Faktory Enterprise\r\n"

    def cmd_track(self, line: bytes) -> bytes:
        return b"-ERR tracking subsystem is only available in Faktory Enterprise\r\n"


_PUSHB_SLICE = 2000
#: jobs of a big PUSHB decoded or pushed between two looks at the clock (a pass of the
#: loop decodes or pushes them until ``slice_seconds`` are up)
_PUSHB_STEP = 128


def _pushb_defaults(job: dict[str, Any] | None, ts: str) -> dict[str, Any]:
    """A decoded PUSHB element with what the server fills in: ``null`` is an empty job,
    ``created_at`` the batch's stamp, ``retry`` 25."""
    if job is None:
        job = {}
    if not job.get("created_at"):
        job["created_at"] = ts
    if job.get("retry") is None:
        job["retry"] = 25
    return job


def _pushb_reply(result: dict[str, str]) -> bytes:
    if not result:
        return b"$2\r\n{}\r\n"
    return _bulk(gojson.dumps_map(result))


_ACK_RE = re.compile(rb'\{"jid":"([^"\\\x00-\x1f]*)"\}')

_COMMANDS = {
    b"END": ServerConnection.cmd_end,
    b"PUSH": ServerConnection.cmd_push,
    b"PUSHB": ServerConnection.cmd_pushb,
    b"FETCH": ServerConnection.cmd_fetch,
    b"ACK": ServerConnection.cmd_ack,
    b"FAIL": ServerConnection.cmd_fail,
    b"BEAT": ServerConnection.cmd_beat,
    b"INFO": ServerConnection.cmd_info,
    b"FLUSH": ServerConnection.cmd_flush,
    b"MUTATE": ServerConnection.cmd_mutate,
    b"BATCH": ServerConnection.cmd_batch,
    b"TRACK": ServerConnection.cmd_track,
    b"QUEUE": ServerConnection.cmd_queue,
}


def _pwdhash(password: str, salt: str, iterations: int) -> str:
    digest = hashlib.sha256((password + salt).encode("utf-8")).digest()
    sha = hashlib.sha256
    for _ in range(iterations - 1):
        digest = sha(digest).digest()
    return digest.hex()


def _used_memory_mb() -> int:
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (OSError, ValueError, IndexError, AttributeError):
        try:
            import resource
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        except Exception:  # pragma: no cover
            return 0


def _open_storage(storage: Any) -> Persistence:
    if storage is None:
        return MemoryPersistence()
    if isinstance(storage, Persistence):
        return storage
    try:
        from faktory.server.sqlite import SqlitePersistence
    except ImportError as exc:
        raise RuntimeError(
            f"durable storage ({storage!r}) needs faktory.server.sqlite, which is not "
            f"available in this installation ({exc})") from exc
    return SqlitePersistence(os.fspath(storage))


class FaktoryServer:
    """A Faktory-protocol server on the running event loop (see ``docs/interfaces.md``).

    ``storage``: ``None`` (in memory), a path (durable, SQLite), or a
    :class:`~faktory.server.persist.Persistence`.  ``ssl``: a server-side
    ``ssl.SSLContext`` (clients use ``tcp+tls://``).  ``clock``: a
    :class:`~faktory.server.clock.Clock` (``ManualClock`` in tests; then no real-time
    ticker runs unless ``tick_interval`` or ``intervals`` is given).  ``intervals``: a
    :class:`ScanIntervals`, the period of each periodic task (default: each second, or each
    ``tick_interval``; ``ScanIntervals.faktory()`` is the real server's timing).
    ``web``: ``"host:port"`` of the
    small operator HTTP endpoint, or ``None``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                 password: str | None = None, storage: Any = None,
                 ssl: _ssl.SSLContext | None = None, clock: Clock | None = None,
                 max_connections: int = 2000, max_line: int = 16 * 1024 * 1024,
                 fetch_timeout: float = 2.0, handshake_timeout: float = 2.0,
                 web: str | tuple[str, int] | None = None,
                 tick_interval: float | None = None,
                 intervals: ScanIntervals | None = None,
                 max_buffered: int = 128 * 1024 * 1024,
                 idle_timeout: float | None = None) -> None:
        self.host = host
        self.port = port
        self.password = password or None
        self.ssl = ssl
        self.clock = clock or Clock()
        self.max_connections = max_connections
        self.max_line = max_line
        self.fetch_timeout = fetch_timeout
        self.handshake_timeout = handshake_timeout
        self.web = web
        if tick_interval is None:
            tick_interval = 0.0 if clock is not None and type(clock) is not Clock and intervals is None else 1.0
        self.tick_interval = tick_interval
        if max_buffered < max_line:
            raise ValueError(f"max_buffered ({max_buffered}) must be at least max_line ({max_line})")
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be a positive number of seconds or None, not {idle_timeout!r}")
        #: bound on the bytes held in all connections' input buffers together (unfinished
        #: lines, commands waiting behind a FETCH); past it the largest buffers are dropped
        #: with their connections
        self.max_buffered = max_buffered
        self.buffered = 0
        #: close a connection after HELLO that sent no whole command for this long (seconds;
        #: None: never, as the real Faktory); one waiting in FETCH is not idle
        self.idle_timeout = idle_timeout
        #: a connection's pipelined commands run for at most this long in one pass of the
        #: event loop before the others get a turn
        self.slice_seconds = 0.005
        self._disposing: set[Generator[None, None, None]] = set()  # dispose_later's work
        self._idle_task: asyncio.Task[None] | None = None
        if intervals is None:
            intervals = ScanIntervals.every(tick_interval) if tick_interval > 0 else ScanIntervals()
        #: the periods of the periodic tasks (none run on their own when ``tick_interval`` is
        #: 0, the default with a ManualClock: the test calls :meth:`tick`)
        self.intervals = intervals
        self.persistence = _open_storage(storage)
        self.store = Store(self.clock, self.persistence)
        self.connections = 0
        self.command_count = 0
        self.started_at = 0.0
        self.web_port: int | None = None
        self._durable = bool(self.persistence.durable)
        #: the PUSH fast path of the codec active when the server was made (compiled, or
        #: its pure twin: ``faktory.protocol.selected`` picks one in tests)
        self._scan_push = protocol.codec.scan_push
        self._scan_pushb = protocol.codec.scan_pushb
        #: ``gojson.format_time`` as bytes, in C: the time stamp of the fast paths
        self._stamp = protocol.codec.format_stamp
        self._conns: set[ServerConnection] = set()
        self._workers: dict[str, WorkerRecord] = {}
        self._workers_reaped = 0
        self._server: asyncio.base_events.Server | None = None
        self._web_server: asyncio.base_events.Server | None = None
        self._web_app: Any = None
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._closing = False
        self._dirty: list[ServerConnection] = []
        self._write_scheduled = False
        self._tick_lock: asyncio.Lock | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``tcp://[:password@]host:port`` (``tcp+tls://`` with TLS)."""
        scheme = "tcp+tls" if self.ssl is not None else "tcp"
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"{scheme}://{auth}{self.host}:{self.port}"

    async def start(self) -> None:
        """Load the stored state and start listening (``port=0``: a free port)."""
        self._loop = asyncio.get_running_loop()
        self._tick_lock = asyncio.Lock()
        self.store.load()
        self.started_at = self.clock.now()
        self._server = await self._loop.create_server(
            lambda: ServerConnection(self), self.host, self.port, ssl=self.ssl,
            reuse_address=True, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.web is not None:
            from faktory.server.web import start_web
            self._web_server = await start_web(self, self.web)
            self.web_port = self._web_server.sockets[0].getsockname()[1]
        if self.tick_interval > 0:
            self._ticker = self._loop.create_task(self._tick_forever())
        if self.idle_timeout is not None:
            self._idle_task = self._loop.create_task(self._close_idle_forever())

    async def stop(self) -> None:
        """Stop listening, close every connection, commit and close the storage."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        if self._web_server is not None:
            self._web_server.close()
            if self._web_app is not None:
                self._web_app.close_connections()
        for task in (self._ticker, self._idle_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._ticker = self._idle_task = None
        if self._write_scheduled:
            self._commit_and_write()
        for conn in list(self._conns):
            conn.close()
        await asyncio.sleep(0)
        for conn in list(self._conns):
            if conn.transport is not None:
                conn.transport.abort()
        try:
            await asyncio.wait_for(self._server.wait_closed(), 5)
        except asyncio.TimeoutError:  # pragma: no cover
            log.warning("server did not close in time")
        if self._web_server is not None:
            try:
                await asyncio.wait_for(self._web_server.wait_closed(), 5)
            except asyncio.TimeoutError:  # pragma: no cover
                pass
        for work in list(self._disposing):
            self._end_dispose(work)  # what is left goes at once
        self.persistence.commit()
        self.persistence.close()
        self._server = None

    async def __aenter__(self) -> "FaktoryServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        await asyncio.Event().wait()

    # ------------------------------------------------------------------ durable replies

    def dispose_later(self, *values: Any) -> None:
        """Let go of the big lists and dicts ``values`` (this server's own, nothing else
        holding them) a slice per pass of the loop (:func:`bigline.dispose`), rather than
        all at once when the last reference goes."""
        work = bigline.dispose(*values)
        # the collector held off meanwhile: once on again, its first collection would walk
        # every object still waiting here (200-300 ms for the jobs of a 10 MB PUSHB)
        _gc_hold.hold(work)
        self._disposing.add(work)
        self._dispose_step(work)  # (the first slice now)

    def _dispose_step(self, work: Generator[None, None, None]) -> None:
        if work not in self._disposing:
            return  # the server stopped meanwhile
        deadline = time.perf_counter() + self.slice_seconds
        try:
            while True:
                next(work)
                if time.perf_counter() >= deadline:
                    break
        except StopIteration:
            self._end_dispose(work)
            return
        self._loop.call_soon(self._dispose_step, work)

    def _end_dispose(self, work: Generator[None, None, None]) -> None:
        self._disposing.discard(work)
        work.close()
        _gc_hold.release(work)

    def _schedule_write(self, conn: ServerConnection) -> None:
        self._dirty.append(conn)
        if not self._write_scheduled:
            self._write_scheduled = True
            self._loop.call_soon(self._commit_and_write)

    def _commit_and_write(self) -> None:
        self._write_scheduled = False
        self.persistence.commit()
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn._write_out()

    # ------------------------------------------------------------------ periodic tasks

    async def _tick_forever(self) -> None:
        # each task on its own period (ScanIntervals), on the loop's monotonic time
        loop = self._loop
        periods = self.intervals.periods()
        due = {task: loop.time() + period for task, period in periods.items()}
        while True:
            await asyncio.sleep(max(0.0, min(due.values()) - loop.time()))
            now = loop.time()
            ready = [task for task, at in due.items() if at <= now]
            for task in ready:
                due[task] = max(due[task] + periods[task], now)
            try:
                self._run_tasks(ready)
            except Exception:  # pragma: no cover - keep the ticker alive
                log.exception("periodic task failed")

    async def tick(self) -> None:
        """Run every periodic task once at ``clock.now()``: scheduled and retry jobs due
        are enqueued, expired dead jobs purged, expired reservations failed, workers
        without a BEAT for ``intervals.worker_ttl`` seconds forgotten (their connections
        closed)."""
        self._run_tasks(TASKS)

    def _run_tasks(self, tasks: "list[str] | tuple[str, ...]") -> None:
        now = self.clock.now()
        store = self.store
        scanners = [name for name in ("scheduled", "retries", "dead") if name in tasks]
        if scanners:
            store.run_scanners(now, scanners)
        if "reservations" in tasks:
            store.reap_reservations(now)
        if "workers" in tasks:
            self._reap_workers(now)
        self.persistence.commit()

    async def _close_idle_forever(self) -> None:
        timeout = self.idle_timeout
        assert timeout is not None
        period = min(timeout / 4, 5.0)
        loop = self._loop
        while True:
            await asyncio.sleep(period)
            self.close_idle(loop.time())

    def close_idle(self, now: float) -> int:
        """Close every connection past its handshake that ran no whole command for
        ``idle_timeout`` seconds before ``now`` (the loop's time); one waiting in FETCH is
        not idle.  Returns how many (called by the server's own sweep)."""
        timeout = self.idle_timeout
        if timeout is None:
            return 0
        closed = 0
        for conn in list(self._conns):
            if conn.state != _READY or conn._blocked or conn._active:
                conn._active = False
                conn._idle_since = now
                continue
            if now - conn._idle_since >= timeout:
                log.info("closing a connection idle for %.0f s (idle_timeout)", now - conn._idle_since)
                if conn.transport is not None:
                    conn.transport.close()
                closed += 1
        return closed

    def _shed_buffers(self) -> None:
        # over max_buffered: drop the largest input buffers (and their connections) first
        for conn in sorted(self._conns, key=lambda c: c._acct, reverse=True):
            if self.buffered <= self.max_buffered or conn._acct == 0:
                break
            log.warning("closing a connection holding %d buffered bytes: all connections hold %d, "
                        "more than max_buffered (%d)", conn._acct, self.buffered, self.max_buffered)
            conn._buf.clear()
            conn._drop_work()
            conn._account()
            if conn.transport is not None:
                conn.transport.abort()
            conn.state = _CLOSED

    def _reap_workers(self, now: float) -> int:
        limit = now - self.intervals.worker_ttl
        dead = [w for w in self._workers.values() if w.last_beat < limit]
        conns = 0
        for worker in dead:
            del self._workers[worker.wid]
            for conn in list(worker.connections):
                conn.close()
                conns += 1
        if dead:
            self._workers_reaped += len(dead)
            log.debug("Reaped %d worker heartbeats", len(dead))
            if conns:
                log.warning("Reaped %d lingering connections, this is a sign your workers "
                            "are having problems", conns)
        return len(dead)

    # ------------------------------------------------------------------ workers

    def _register_worker(self, hello: dict[str, Any], conn: ServerConnection) -> WorkerRecord:
        wid = hello["wid"]
        entry = self._workers.get(wid)
        own = WorkerRecord(hello, self.clock.now())
        if entry is None:
            entry = self._workers[wid] = own
        entry.connections.add(conn)
        # as on the real server, only the first connection of a wid shares the
        # registered state (FETCH gating); later ones keep their own running state
        return entry if entry is own else own

    def _remove_worker_connection(self, conn: ServerConnection) -> None:
        entry = self._workers.get(conn.wid)
        if entry is not None:
            entry.connections.discard(conn)
            if not entry.connections:
                del self._workers[conn.wid]

    def workers(self) -> list[dict[str, Any]]:
        """Registered workers: wid, hostname, pid, labels, state, last_beat, connections..."""
        return [w.as_dict() for w in self._workers.values()]

    def quiet_worker(self, wid: str) -> None:
        """Signal quiet: the worker's next BEAT gets ``{"state":"quiet"}``.
        Raises ``KeyError`` for an unknown wid."""
        self._workers[wid].signal(QUIET)

    def terminate_worker(self, wid: str) -> None:
        """Signal terminate: the worker's next BEAT gets ``{"state":"terminate"}``.
        Raises ``KeyError`` for an unknown wid."""
        self._workers[wid].signal(TERMINATE)

    def drop_connections(self) -> int:
        """Abort every client socket (no END, no reply); returns how many."""
        conns = list(self._conns)
        for conn in conns:
            if conn.transport is not None:
                conn.transport.abort()
        return len(conns)

    # ------------------------------------------------------------------ INFO

    def info(self) -> dict[str, Any]:
        """The INFO reply as a dict."""
        import json
        info: dict[str, Any] = json.loads(self.info_bytes())
        return info

    def info_bytes(self) -> bytes:
        """The INFO reply body, encoded exactly as the real server encodes it."""
        now = self.clock.now()
        store = self.store
        queues = store.queue_sizes()
        sets = store.set_sizes()
        stats = store.scan_stats

        def scan(name: str, size: int) -> str:
            s = stats[name]
            return (f'{{"cycles":{s.cycles},"enqueued":{s.enqueued},"size":{size},'
                    f'"wall_time_sec":{gojson.format_float(s.wall_ns / 1e9)}}}')

        tasks = (f'{{"Busy":{{"reaped":{store.reaped},"size":{len(store.reservations)}}},'
                 f'"Dead":{scan("Dead", sets["dead"])},'
                 f'"Retries":{scan("Retries", sets["retries"])},'
                 f'"Scheduled":{scan("Scheduled", sets["scheduled"])},'
                 f'"Workers":{{"reaped":{self._workers_reaped},"size":{len(self._workers)}}}}}')
        body = (
            f'{{"now":"{gojson.format_time(now)}",'
            f'"server_utc_time":"{time.strftime("%H:%M:%S", time.gmtime(now))} UTC",'
            f'"faktory":{{"queues":{gojson.dumps_map(queues).decode()},'
            f'"sets":{{"dead":{sets["dead"]},"retries":{sets["retries"]},'
            f'"scheduled":{sets["scheduled"]},"working":{sets["working"]}}},'
            f'"tasks":{tasks},'
            f'"total_failures":{store.failures},"total_processed":{store.processed},'
            f'"total_enqueued":{sum(queues.values())},"total_queues":{len(queues)}}},'
            f'"server":{{"description":"Faktory","faktory_version":"{VERSION}",'
            f'"uptime":{max(0, int(now - self.started_at))},"connections":{self.connections},'
            f'"command_count":{self.command_count},"used_memory_mb":{_used_memory_mb()}}}}}'
        )
        return body.encode()


_RENAMED = {"Worker": "WorkerRecord", "_Connection": "ServerConnection"}


def __getattr__(name: str) -> Any:
    # the old names of the server's classes (the same as the client side's ``Worker``)
    # keep working for one release, with a warning
    new = _RENAMED.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings
    warnings.warn(f"faktory.server.server.{name} is now {new}", DeprecationWarning, stacklevel=2)
    return globals()[new]
