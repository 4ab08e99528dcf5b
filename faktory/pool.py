"""``Pool``: the pipelined connections of a ``Client``, and how commands travel on them.

Commands the server answers at once share connections (see ``Pool``); FETCH leases one.

Retry policy on transport faults (documented once here, referred to by the methods):

- A command whose connection was already dead when it was picked from the pool is
  never written; it is sent on another connection, always.
- While no connection can be opened (the server is down), every call waits at most
  ``reconnect_timeout`` seconds from its own start, however many calls wait: they share
  one series of connection attempts (capped exponential backoff, 50 ms doubling up to
  2 s, with jitter), and each then raises ``FaktoryConnectionError`` naming the address,
  the attempts made and the last error.  A refused password
  (``InvalidPasswordError``), a server speaking another protocol version or a TLS
  certificate that fails verification (``HandshakeError``) are not retried.
- A command that *was written* when the connection dropped (reset, server restart,
  ``END`` from the other side...) is sent once more on a fresh connection, for every
  command the client defines: ACK, BEAT, INFO, QUEUE, MUTATE and FLUSH are idempotent;
  FETCH is retried too (a job reserved by the lost FETCH is not lost: the server
  hands it out again when its reservation expires); FAIL too (if the first FAIL did
  reach the server, the second one gets ``JobNotFoundError``, which the caller treats
  as final).  PUSH and PUSHB are retried as well: *nothing lost on a fault* weighs
  more than a rare duplicate, so a job whose PUSH reached the server just before the
  connection dropped can be enqueued twice (same jid).  ``send()`` (raw commands)
  is only resent when it was never written.
- Never retried: server errors (``ServerError`` and subclasses, raised as they come),
  ``CommandTimeout`` (the caller's time budget is spent; the connection is closed),
  and bad bytes from the server (``ConnectionProtocolError``).
"""
from __future__ import annotations

import asyncio
import logging
import random
import ssl as _ssl
from types import ModuleType, TracebackType
from typing import Any, Callable, Coroutine, TypeVar

from faktory import _testmode
from faktory.connection import Connection, Orphan
from faktory.errors import (
    CommandTimeout,
    ConnectionProtocolError,
    FaktoryConnectionError,
    NotSentError,
    ServerError,
    ServerUnreachableError,
)

__all__ = ["Pool"]

log = logging.getLogger("faktory.client")

BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
_MAX_NOT_SENT = 5
#: A busy client's pipelined commands go out in at least this many batches at a time
#: (see ``Pool``).
SPREAD = 3
#: Samples per window of the load estimate (``Pool._sample``): the batches of about a
#: thousand commands.  Shorter windows missed the full count often enough to shrink a
#: batch (10 producers: a limit of 3 instead of 4 in 2.6% of the samples with 64).
WINDOW = 256
_P = TypeVar("_P", bound="Pool")


def _resolve_none(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Retry:
    """The retry policy of one command (see the module docstring), consulted after each
    transport fault: ``again(exc)`` returns when the command is to be sent again, else
    raises ``exc``."""

    __slots__ = ("resend", "resent", "not_sent")

    def __init__(self, resend: bool) -> None:
        self.resend = resend  # may a command that was written be sent once more?
        self.resent = False
        self.not_sent = 0

    def again(self, exc: FaktoryConnectionError, address: str) -> None:
        if isinstance(exc, ServerUnreachableError):  # the call waited all it may
            raise exc
        if isinstance(exc, NotSentError):  # never written: always safe, a bounded number of times
            self.not_sent += 1
            if self.not_sent > _MAX_NOT_SENT:
                raise exc
            return
        if isinstance(exc, (CommandTimeout, ConnectionProtocolError)) or not self.resend or self.resent:
            raise exc
        self.resent = True
        log.info("connection to %s lost during a command (%s); sending it again", address, exc)


class _Lease:
    """``async with client.acquire() as conn``: exclusive use of one pooled connection."""

    __slots__ = ("_client", "_conn")

    def __init__(self, client: Pool) -> None:
        self._client = client
        self._conn: Connection | None = None

    async def __aenter__(self) -> Connection:
        self._conn = await self._client._lease()
        return self._conn

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._release(conn)


class Pool:
    """Up to ``pool_size`` connections to one server, filled lazily.

    Commands the server answers at once (PUSH, PUSHB, ACK,
    FAIL, BEAT, INFO, QUEUE, MUTATE, FLUSH) are *pipelined* on shared connections: a
    command goes to the connection already collecting this event-loop iteration's batch
    while that batch is not full, else to the least busy connection; when every
    connection has a full batch outstanding, one more is opened (up to ``pool_size``).
    A batch is full at ``pipeline_depth`` replies outstanding, or earlier when the
    client is busy: at a third (``SPREAD``) of the most commands it had outstanding at
    once lately, so that a busy client keeps at least three batches in flight.  With
    fewer, the client and the server take turns waiting for each other: measured on
    the embedded server, 10 tasks pushing in a loop did 51,000-61,000 jobs/s in two
    batches of 5 and 105,000-140,000 in batches of 4, 4 and 2, with less client CPU a
    job (and a server whose commands wait on storage, or a real Faktory, which runs each
    connection's commands one after the other, gets them side by side).  A batch that
    fills is written at once, so the server starts on it while the next one fills;
    the others leave at the end of the loop iteration.  So commands issued together
    leave in one write per connection, and a busy client spreads over several.  FETCH,
    which the server may hold for 2 s, takes a connection to itself (``acquire()``), so
    nothing ever waits behind it.


    While no connection can be opened, every call waits at most ``reconnect_timeout``
    seconds from its own start; the waiting calls share one series of attempts.  Safe for
    many concurrent tasks on one event loop.
    """

    #: The connection class (benchmarks swap in a one-command-per-write baseline).
    _connection_class: type[Connection] = Connection

    def __init__(self, host: str, port: int, *, password: str | None, ssl: _ssl.SSLContext | None,
                 pool_size: int, pipeline_depth: int, connect_timeout: float,
                 command_timeout: float | None, reconnect_timeout: float, codec: ModuleType,
                 first_connect_timeout: float = 3.0) -> None:
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise ValueError(f"pool_size must be an int >= 1, got {pool_size!r}")
        if not isinstance(pipeline_depth, int) or isinstance(pipeline_depth, bool) or pipeline_depth < 1:
            raise ValueError(f"pipeline_depth must be an int >= 1, got {pipeline_depth!r}")
        self.host = host
        self.port = port
        self.password = password
        self.ssl = ssl
        self.pool_size = pool_size
        self.pipeline_depth = pipeline_depth
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.reconnect_timeout = reconnect_timeout
        self.first_connect_timeout = first_connect_timeout
        self.codec = codec
        self._ever_connected = False  # until then calls wait first_connect_timeout, not reconnect_timeout
        # The pool.  Every open connection is in exactly one of: _shared (pipelined
        # commands), _leased (exclusive, FETCH), _returning (a lease given back with
        # replies still due); _size counts them.  _connector opens one more, if running.
        self._shared: list[Connection] = []
        self._current: Connection | None = None  # the shared one collecting this iteration's batch
        # How many pipelined commands a batch may hold (see _pick): the most commands this
        # client had outstanding at once lately (sampled by _sample once per event-loop
        # iteration in which a batch started, the maximum over a window of WINDOW samples)
        # over SPREAD, at most pipeline_depth.
        self._limit = pipeline_depth
        self._load = 0  # the most outstanding at once in the last window of samples
        self._window_max = 0  # the most in this window so far
        self._samples = 0
        self._sampling = False
        self._leased: set[Connection] = set()
        self._returning: set[Connection] = set()
        self._size = 0  # connections open (not the one being opened)
        self._connector: asyncio.Task[None] | None = None
        self._connect_attempts = 0
        self._attempts_failed = 0  # ever: lets a waiting call see that an attempt ended
        self._connect_started = 0.0
        self._connect_error: BaseException | None = None
        self._waiters: list[asyncio.Future[None]] = []  # woken on every change of the pool
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _hello(self) -> dict[str, Any]:
        """The extra HELLO fields of every connection (``Client`` adds its identity)."""
        return {}

    # -- lifecycle ---------------------------------------------------------------------
    async def connect(self: _P) -> _P:
        """Make sure one connection is open now (so that a wrong address or password
        shows at once); reopens a closed client.  Under ``faktory.testing.fake()`` /
        ``inline()`` nothing is opened."""
        self._closed = False
        if _testmode.current is not None:
            return self
        if not self._shared:
            await self._wait_shared()
        return self

    async def close(self, timeout: float = 5.0) -> None:
        """Refuse new commands, let those in flight get their replies (at most
        ``timeout`` seconds), then close every connection with ``END``.  A leased
        connection is closed when its lease ends.  ``connect()`` reopens the client."""
        self._closed = True
        self._notify()
        if self._connector is not None:
            self._connector.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._background:  # FETCHed jobs being handed back need the connections
            await asyncio.wait(set(self._background), timeout=max(0.0, deadline - loop.time()))
            for task in self._background:
                task.cancel()
        conns = [*self._shared, *self._returning]
        self._shared.clear()
        self._current = None
        if conns:
            await asyncio.gather(*(conn.aclose(max(0.0, deadline - loop.time())) for conn in conns))

    def reconnect(self) -> None:
        """Retire every connection: each is closed once its pending replies are in, and
        later commands open new ones (with a fresh HELLO: after the server forgot the
        worker, say)."""
        retired = self._shared[:]
        self._shared.clear()
        self._current = None
        for conn in retired:
            self._returning.add(conn)
            self._spawn(conn.aclose(self.command_timeout))

    async def __aenter__(self: _P) -> _P:
        return await self.connect()

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- the pool ----------------------------------------------------------------------
    def acquire(self) -> _Lease:
        """``async with client.acquire() as conn:`` exclusive use of one pooled connection
        (for a long-held FETCH loop).  On exit the connection goes back to the pool once
        its pending replies are in; a failed one (``conn.closed``) is dropped."""
        return _Lease(self)

    def _notify(self, error: BaseException | None = None) -> None:
        # Wake every call waiting for the pool to change; with ``error``, make them raise it.
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)

    def _pick(self) -> Connection | None:
        # The connection for the next pipelined command (see the class docstring).
        conn = self._current
        if conn is not None and conn._out and len(conn._waiters) < self._limit and not conn.closed:
            return conn  # joins the batch that is already due to be written
        best: Connection | None = None
        best_n = 1 << 60
        total = 0
        for conn in self._shared:
            n = len(conn._waiters)
            total += n
            if n < best_n:
                best, best_n = conn, n
        if best is not None:
            load = max(self._load, self._window_max, total + 1)
            limit = self._limit = min(self.pipeline_depth, -(-load // SPREAD))
            if best_n >= limit:
                self._ensure_connector()  # spread: every connection has a full batch out
            if not self._sampling:
                self._sampling = True
                best._loop.call_soon(self._sample)
        self._current = best
        return best

    def _sample(self) -> None:
        # Once per event-loop iteration that started a batch, after the commands of that
        # iteration joined it: how many commands are outstanding now.  The load is the
        # most seen in the last WINDOW to 2 * WINDOW samples (some samples come after a
        # few replies were read, and see less).
        self._sampling = False
        total = 0
        for conn in self._shared:
            total += len(conn._waiters)
        if total > self._window_max:
            self._window_max = total
        self._samples += 1
        if self._samples >= WINDOW:
            self._load, self._window_max, self._samples = self._window_max, 0, 0

    async def _wait_change(self, started: float, failed_before: int) -> None:
        """Wait for the pool to change.  A call that has waited ``reconnect_timeout``
        since ``started`` and seen at least one connection attempt fail since then
        (``failed_before`` is the count when it began) raises the reason instead."""
        loop = asyncio.get_running_loop()
        deadline = started + self._patience()
        if loop.time() >= deadline and self._attempts_failed > failed_before:
            raise self._unreachable()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        # Past the deadline with no attempt ended yet: wait for the attempt under way
        # (bounded by connect_timeout) rather than give up without one.
        timer = loop.call_at(deadline, _resolve_none, fut) if loop.time() < deadline else None
        try:
            await fut
        except BaseException:
            self._forget_waiter(fut)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if loop.time() >= deadline and self._attempts_failed > failed_before:
            self._forget_waiter(fut)
            raise self._unreachable()

    def _patience(self) -> float:
        # A server that was never reached is most likely a wrong address or port, or not
        # up yet: the short first_connect_timeout; one that went away, reconnect_timeout.
        return self.reconnect_timeout if self._ever_connected else self.first_connect_timeout

    def _forget_waiter(self, fut: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass
        if not self._waiters and self._connector is not None and not self._shared:
            # The last call waiting for the server gave up: stop trying until the next one.
            self._connector.cancel()
            self._connector = None

    def _unreachable(self) -> ServerUnreachableError:
        attempts = self._connect_attempts
        elapsed = asyncio.get_running_loop().time() - self._connect_started
        reason = self._connect_error
        detail = str(reason) if reason is not None else ""
        prefix = f"cannot connect to Faktory at {self.host}:{self.port}: "
        if detail.startswith(prefix):
            detail = detail[len(prefix):]
        err = ServerUnreachableError(
            f"cannot connect to Faktory at {self.address} ({attempts} attempt{'s' if attempts != 1 else ''} "
            + (f"in {elapsed:.1f}s, waited up to reconnect_timeout={self.reconnect_timeout:g}s)" if self._ever_connected
               else f"in {elapsed:.1f}s; never reached: waited up to first_connect_timeout="
                    f"{self.first_connect_timeout:g}s)")
            + (f": {detail}" if detail else ""))
        err.__cause__ = reason
        return err

    def _check_open(self) -> None:
        if self._closed:
            raise NotSentError(f"client for {self.address} is closed")

    async def _wait_shared(self) -> Connection:
        """A connection for pipelined commands, waiting (at most ``reconnect_timeout``)
        while none is open."""
        started = asyncio.get_running_loop().time()
        failed_before = self._attempts_failed
        while True:
            self._check_open()
            conn = self._pick()
            if conn is not None:
                return conn
            self._ensure_connector()
            await self._wait_change(started, failed_before)

    async def _wait_empty(self) -> Connection:
        """A shared connection with nothing pending, if there is or can be one; else the
        least busy one."""
        started = asyncio.get_running_loop().time()
        failed_before = self._attempts_failed
        while True:
            self._check_open()
            for conn in self._shared:
                if not conn._waiters and not conn.closed:
                    self._current = conn
                    return conn
            if self._size + (self._connector is not None) >= self.pool_size and self._shared:
                least_busy = self._pick()
                if least_busy is not None:
                    return least_busy
            self._ensure_connector()
            await self._wait_change(started, failed_before)

    async def _lease(self) -> Connection:
        """A connection for exclusive use: an idle shared one, a new one, or (with the pool
        full) the least busy shared one once its pending replies are in."""
        started = asyncio.get_running_loop().time()
        failed_before = self._attempts_failed
        shared = self._shared
        while True:
            self._check_open()
            for i in range(len(shared) - 1, -1, -1):
                conn = shared[i]
                if not conn._waiters and not conn.closed:
                    del shared[i]
                    return self._take(conn)
            if self._size + (self._connector is not None) < self.pool_size:
                self._ensure_connector()
            elif len(shared) > 1:
                conn = min(shared, key=lambda c: len(c._waiters))
                shared.remove(conn)
                self._take(conn)
                try:
                    await conn.wait_idle()
                except BaseException:
                    self._release(conn)
                    raise
                if not conn.closed:
                    return conn
                continue
            await self._wait_change(started, failed_before)

    def _take(self, conn: Connection) -> Connection:
        if self._current is conn:
            self._current = None
        self._leased.add(conn)
        return conn

    def _release(self, conn: Connection) -> None:
        # A lease ends.
        self._leased.discard(conn)
        if conn.closed:
            return  # the close callback did the accounting
        if self._closed:
            conn.close()
            return
        if conn._waiters:  # e.g. a cancelled FETCH: its reply is still due
            self._returning.add(conn)
            self._spawn(self._return_when_idle(conn))
            return
        self._shared.append(conn)
        self._notify()

    async def _return_when_idle(self, conn: Connection) -> None:
        await conn.wait_idle()
        self._returning.discard(conn)
        if conn.closed:
            return
        if self._closed:
            conn.close()
            return
        self._shared.append(conn)
        self._notify()

    def _on_conn_closed(self, conn: Connection) -> None:
        self._size -= 1
        if self._current is conn:
            self._current = None
        try:
            self._shared.remove(conn)
        except ValueError:
            pass
        self._leased.discard(conn)
        self._returning.discard(conn)
        self._notify()

    def _ensure_connector(self) -> None:
        if self._connector is None and not self._closed and self._size < self.pool_size:
            self._connector = asyncio.get_running_loop().create_task(self._connect_loop())

    async def _connect_loop(self) -> None:
        """Open one connection, retrying with capped backoff while any call waits for it.

        One such loop runs at a time: the calls waiting for a connection share its
        attempts, each with its own deadline (``reconnect_timeout`` from its start).
        A refused password or another protocol version ends it at once: every waiting
        call raises that error (retrying cannot help)."""
        loop = asyncio.get_running_loop()
        if self._connect_error is None:  # a new outage: count its attempts from here
            self._connect_attempts = 0
            self._connect_started = loop.time()
        delay = BACKOFF_MIN
        fatal: BaseException | None = None
        me = asyncio.current_task()
        try:
            while not self._closed:
                self._connect_attempts += 1
                try:
                    conn = await self._connection_class.open(
                        self.host, self.port, password=self.password, ssl=self.ssl,
                        hello=self._hello(), connect_timeout=self.connect_timeout,
                        command_timeout=self.command_timeout, _codec=self.codec)
                except (FaktoryConnectionError, ServerError) as exc:
                    if isinstance(exc, ServerError) or getattr(exc, "permanent", False) or (
                            getattr(exc, "no_greeting", False) and not self._ever_connected):
                        fatal = exc
                        self._connect_error = None
                        return
                    self._connect_error = exc
                    self._attempts_failed += 1
                    if not self._waiters:
                        log.debug("connection attempt to %s failed: %s", self.address, exc)
                        return  # nobody waits (the pool was growing in the background)
                    self._notify()  # waiting calls past their deadline give up now
                    if self._connect_attempts == 1:
                        log.warning("cannot connect to Faktory at %s (%s); retrying", self.address, exc)
                    else:
                        log.debug("connection attempt %d to %s failed: %s", self._connect_attempts,
                                  self.address, exc)
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                if self._closed:
                    conn.close()
                    return
                self._connect_error = None
                self._ever_connected = True
                self._size += 1
                conn.add_close_callback(self._on_conn_closed)
                self._shared.append(conn)
                return
        finally:
            if self._connector is me:
                self._connector = None
            self._notify(fatal)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task of the client for %s failed", self.address, exc_info=task.exception())

    # -- sending -----------------------------------------------------------------------
    async def _call(self, data: bytes, timeout: float | None = None, resend: bool = True,
                    heavy: bool = False, first_error: FaktoryConnectionError | None = None) -> Any:
        """Send one packed command on a shared (pipelined) connection and return the reply,
        retrying as the module docstring says.  A ``heavy`` command (a PUSHB chunk: a
        thousand commands' worth of work for the server) goes to a connection with
        nothing pending, opening one when the pool has room, so that chunks in flight
        run side by side on a server that serves each connection in turn.
        ``first_error``: the fault of an attempt made already (by ``Client.push``'s fast
        path), counted by the retry policy as this call's first."""
        retry: _Retry | None = None
        if first_error is not None:
            retry = _Retry(resend)
            retry.again(first_error, self.address)
        while True:
            picked = None if self._closed or heavy else self._pick()
            conn = picked if picked is not None else (
                await self._wait_empty() if heavy else await self._wait_shared())
            try:
                if conn._paused:
                    await conn._wait_writable()
                fut = conn.send(data, timeout)
                if len(conn._waiters) == self._limit > 1:
                    conn.flush()  # a full batch leaves now (see _pick)
                reply = await fut
            except FaktoryConnectionError as exc:
                retry = retry or _Retry(resend)
                retry.again(exc, self.address)
                continue
            if type(reply) is not str and isinstance(reply, ServerError):
                raise reply
            return reply

    def _send_callback(self, data: bytes, fn: Callable[[Any, Any], None], arg: Any) -> bool:
        """The worker's hot path: queue a pipelined command now, its reply (or failure) to
        go to ``fn(arg, reply)`` (see ``connection.Callback``); False when no connection
        can take it right now (then use ``_call``, which waits and retries)."""
        if self._closed:
            return False
        conn = self._pick()
        if conn is None or conn._paused:
            return False
        try:
            conn.send_callback(data, fn, arg)
        except NotSentError:
            return False
        if len(conn._waiters) == self._limit > 1:
            conn.flush()  # a full batch leaves now (see _pick)
        return True

    async def _exclusive(self, data: bytes, timeout: float | None, orphan: Orphan | None,
                         resend: bool = True) -> Any:
        """Send a command that may be held by the server (FETCH) on a leased connection;
        resent once after a dropped connection (with ``resend``)."""
        retry: _Retry | None = None
        while True:
            async with self.acquire() as conn:
                try:
                    reply = await conn.send(data, timeout, orphan)
                except FaktoryConnectionError as exc:
                    retry = retry or _Retry(resend)
                    retry.again(exc, self.address)
                    continue
            if isinstance(reply, ServerError):
                raise reply
            return reply
