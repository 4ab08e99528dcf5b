"""``Client``: the producer/consumer API over a pool of pipelined ``Connection``\\ s.

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
import json
import logging
import os
import random
import socket
import ssl as _ssl
import traceback
from itertools import islice
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Iterable, Iterator
from urllib.parse import unquote, urlsplit

from faktory import protocol
from faktory.connection import Connection, Orphan
from faktory.errors import (
    BulkPushError,
    CommandTimeout,
    ConnectionProtocolError,
    FaktoryConnectionError,
    FaktoryError,
    NotSentError,
    ServerError,
)
from faktory.job import Job, check_json, validate_queue

if TYPE_CHECKING:  # pragma: no cover
    from faktory.mutation import Mutation

__all__ = ["Client", "parse_url", "parse_beat", "format_backtrace", "DEFAULT_URL"]

log = logging.getLogger("faktory.client")

DEFAULT_URL = "tcp://127.0.0.1:7419"
DEFAULT_PORT = 7419
FETCH_BLOCK = 2.0  # seconds the server blocks a FETCH on empty queues
MAX_BACKTRACE = 50  # lines the server keeps
BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
_MAX_NOT_SENT = 5
_FETCH_CACHE_MAX = 256
_STATES = ("quiet", "terminate")
_decode = json.JSONDecoder().decode


def _loads(reply: bytes | str) -> Any:
    # json.loads(bytes) sniffs the encoding first; the server always sends UTF-8.
    return _decode(reply.decode("utf-8") if isinstance(reply, bytes) else reply)


def parse_url(url: str) -> tuple[str, int, str | None, bool]:
    """Split a Faktory URL into ``(host, port, password, tls)``.

    ``tcp://[:password@]host[:port]`` or ``tcp+tls://...``; the password is
    percent-decoded; the port defaults to 7419.  Raises ``ValueError`` otherwise.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("tcp", "tcp+tls"):
        raise ValueError(f"Faktory URL must start with tcp:// or tcp+tls://, got {url!r}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"invalid port in Faktory URL {url!r}") from None
    host = parts.hostname or "127.0.0.1"
    password = unquote(parts.password) if parts.password is not None else None
    return host, port, password, scheme == "tcp+tls"


def _url_from_env() -> str:
    provider = os.environ.get("FAKTORY_PROVIDER") or "FAKTORY_URL"
    if ":" in provider:
        raise ValueError(
            "FAKTORY_PROVIDER must name the environment variable that holds the URL "
            f"(e.g. FAKTORY_PROVIDER=MY_FAKTORY_URL), not the URL itself: {provider!r}")
    return os.environ.get(provider) or DEFAULT_URL


def parse_beat(reply: Any) -> str:
    """The worker state in a BEAT reply: ``"OK"`` (``+OK``), or the ``state`` of the JSON
    the server sends once a worker is told to quiet or terminate (a bulk string on the
    real server, a simple string in the spec): ``"quiet"`` or ``"terminate"``.  Anything
    else is a ``ConnectionProtocolError``."""
    if reply == "OK":
        return "OK"
    try:
        state = _loads(reply)["state"]
    except (TypeError, ValueError, KeyError, AttributeError, UnicodeDecodeError):
        raise ConnectionProtocolError(f"unexpected reply to BEAT: {reply!r}") from None
    if state in _STATES:
        return str(state)
    if not state:
        return "OK"
    raise ConnectionProtocolError(f"unexpected worker state in the reply to BEAT: {reply!r}")


def format_backtrace(exc: BaseException, limit: int = MAX_BACKTRACE) -> list[str]:
    """The frames of ``exc``'s traceback, innermost first (as Faktory's web UI, and the
    Ruby and Go clients, show them), at most ``limit`` lines, each
    ``File "path", line N, in function``.  No source files are read."""
    frames = [(tb_frame.f_code.co_filename, lineno, tb_frame.f_code.co_name)
              for tb_frame, lineno in traceback.walk_tb(exc.__traceback__)]
    frames.reverse()
    return [f'File "{filename}", line {lineno}, in {name}' for filename, lineno, name in frames[:limit]]


def _resolve_none(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Bulk:
    """What one ``push_bulk`` call knows so far (see ``BulkPushError``)."""

    __slots__ = ("rejected", "enqueued", "not_enqueued", "unknown", "unknown_jids", "error")

    def __init__(self) -> None:
        self.rejected: dict[str | int, tuple[str, dict[str, Any]]] = {}
        self.enqueued = 0
        self.not_enqueued = 0
        self.unknown = 0
        self.unknown_jids: list[str] = []
        self.error: BaseException | None = None

    def reject(self, jid: Any, index: int, reason: str, payload: dict[str, Any]) -> None:
        # Keyed by jid, or by the index in the input when the jid cannot be a key.
        key: str | int = jid if isinstance(jid, str) and jid not in self.rejected else index
        self.rejected[key] = (reason, payload)
        self.not_enqueued += 1

    def unsure(self, chunk: list[tuple[int, dict[str, Any]]]) -> None:
        self.unknown += len(chunk)
        self.unknown_jids.extend(payload["jid"] for _, payload in chunk)


class _Lease:
    """``async with client.acquire() as conn``: exclusive use of one pooled connection."""

    __slots__ = ("_client", "_conn")

    def __init__(self, client: Client) -> None:
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


class Client:
    """A Faktory client: a lazily-filled pool of up to ``pool_size`` pipelined connections.

    ``url``: ``tcp://[:password@]host[:port]`` or ``tcp+tls://...`` (TLS with
    certificate verification).  Without one, the URL comes from the environment
    variable named by ``FAKTORY_PROVIDER`` (default ``FAKTORY_URL``), else
    ``tcp://127.0.0.1:7419``.  ``host``, ``port``, ``password`` and ``tls`` given
    explicitly override the URL; ``tls`` may be ``True`` (default verifying context),
    ``False`` or an ``ssl.SSLContext``.

    ``wid`` (with ``labels``, ``hostname``, ``pid``) makes every connection HELLO as
    that worker.  ``command_timeout`` bounds each command (FETCH gets 2 s more for the
    server's blocking wait); ``None`` disables it.  ``connect_timeout`` bounds each
    connection attempt (TCP, TLS, HI and HELLO); ``reconnect_timeout`` is the longest
    any one call waits for a connection while the server is down (the waiting calls
    share one series of attempts, with capped backoff).

    How commands use the pool: commands the server answers at once (PUSH, PUSHB, ACK,
    FAIL, BEAT, INFO, QUEUE, MUTATE, FLUSH) are *pipelined* on shared connections: a
    command goes to the connection already collecting this event-loop iteration's batch,
    while that one has fewer than ``pipeline_depth`` replies outstanding, else to the
    least busy connection; when every connection has ``pipeline_depth`` outstanding, one
    more is opened (up to ``pool_size``).  So commands issued together leave in one
    write, and a busy client still spreads over several connections (a real Faktory
    server runs each connection's commands one after the other).  FETCH, which the
    server may hold for 2 s, takes a connection to itself (``acquire()``), so nothing
    ever waits behind it.

    Safe for many concurrent tasks on one event loop.  See the module docstring for
    which commands are retried after a transport fault.
    """

    #: The connection class (benchmarks swap in a one-command-per-write baseline).
    _connection_class: type[Connection] = Connection

    def __init__(self, url: str | None = None, *, host: str | None = None, port: int | None = None,
                 password: str | None = None, wid: str | None = None, labels: Iterable[str] = (),
                 pool_size: int = 10, tls: bool | _ssl.SSLContext | None = None,
                 connect_timeout: float = 5.0, command_timeout: float | None = 10.0,
                 hostname: str | None = None, pid: int | None = None,
                 codec: ModuleType | None = None, reconnect_timeout: float = 30.0,
                 pipeline_depth: int = 8) -> None:
        if url is None:
            url = _url_from_env()
        url_host, url_port, url_password, url_tls = parse_url(url)
        self.host: str = host if host is not None else url_host
        self.port: int = port if port is not None else url_port
        self.password: str | None = password if password is not None else url_password
        if tls is None:
            tls = url_tls
        if tls is True:
            self.ssl: _ssl.SSLContext | None = _ssl.create_default_context()
        elif tls is False:
            self.ssl = None
        elif isinstance(tls, _ssl.SSLContext):
            self.ssl = tls
        else:
            raise TypeError(f"tls must be None, a bool or an ssl.SSLContext, not {type(tls).__name__}: {tls!r}")
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be an int >= 1, got {pool_size!r}")
        if not isinstance(pipeline_depth, int) or isinstance(pipeline_depth, bool) or pipeline_depth < 1:
            raise ValueError(f"pipeline_depth must be an int >= 1, got {pipeline_depth!r}")
        if wid is not None and (not isinstance(wid, str) or not wid):
            raise ValueError(f"wid must be a non-empty str, got {wid!r}")
        self.wid = wid
        self.labels: list[str] = list(labels)
        self.hostname = hostname
        self.pid = pid
        self.pool_size = pool_size
        self.pipeline_depth = pipeline_depth
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.reconnect_timeout = reconnect_timeout
        self.codec: ModuleType = codec or protocol.codec
        self._pack_ack = self.codec.pack_ack
        self._pack_push = self.codec.pack_push
        self._pack_json = self.codec.pack_json
        # The pool.  Every open connection is in exactly one of: _shared (pipelined
        # commands), _leased (exclusive, FETCH), _returning (a lease given back with
        # replies still due); _size counts them.  _connector opens one more, if running.
        self._shared: list[Connection] = []
        self._current: Connection | None = None  # the shared one collecting this iteration's batch
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
        self._fetch_cache: dict[tuple[str, ...], bytes] = {}

    # -- identity ----------------------------------------------------------------------
    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The server URL, without the password."""
        return f"{'tcp+tls' if self.ssl else 'tcp'}://{self.address}"

    def __repr__(self) -> str:
        return f"<Client {self.url} pool {self._size}/{self.pool_size}{' wid=' + self.wid if self.wid else ''}>"

    def _hello(self) -> dict[str, Any]:
        hello: dict[str, Any] = {"hostname": self.hostname or socket.gethostname()}
        if self.wid:
            hello["wid"] = self.wid
            hello["pid"] = self.pid if self.pid is not None else os.getpid()
            hello["labels"] = self.labels
        return hello

    # -- lifecycle ---------------------------------------------------------------------
    async def connect(self) -> Client:
        """Make sure one connection is open now (so that a wrong address or password
        shows at once); reopens a closed client."""
        self._closed = False
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

    async def __aenter__(self) -> Client:
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
        depth = self.pipeline_depth
        conn = self._current
        if conn is not None and conn._out and len(conn._waiters) < depth and not conn.closed:
            return conn  # joins the batch that is already due to be written
        best: Connection | None = None
        best_n = 1 << 60
        for conn in self._shared:
            n = len(conn._waiters)
            if n < best_n:
                best, best_n = conn, n
        if best is not None and best_n >= depth:
            self._ensure_connector()  # spread: every connection is a full pipeline
        self._current = best
        return best

    async def _wait_change(self, started: float, failed_before: int) -> None:
        """Wait for the pool to change.  A call that has waited ``reconnect_timeout``
        since ``started`` and seen at least one connection attempt fail since then
        (``failed_before`` is the count when it began) raises the reason instead."""
        loop = asyncio.get_running_loop()
        deadline = started + self.reconnect_timeout
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

    def _forget_waiter(self, fut: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass
        if not self._waiters and self._connector is not None and not self._shared:
            # The last call waiting for the server gave up: stop trying until the next one.
            self._connector.cancel()
            self._connector = None

    def _unreachable(self) -> FaktoryConnectionError:
        attempts = self._connect_attempts
        elapsed = asyncio.get_running_loop().time() - self._connect_started
        reason = self._connect_error
        err = FaktoryConnectionError(
            f"cannot connect to Faktory at {self.address} ({attempts} attempt{'s' if attempts != 1 else ''} "
            f"in {elapsed:.1f}s, waited up to reconnect_timeout={self.reconnect_timeout:g}s)"
            + (f": {reason}" if reason is not None else ""))
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
                        command_timeout=self.command_timeout, codec=self.codec)
                except (FaktoryConnectionError, ServerError) as exc:
                    if isinstance(exc, ServerError) or getattr(exc, "permanent", False):
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
                    heavy: bool = False) -> Any:
        """Send one packed command on a shared (pipelined) connection and return the reply,
        retrying as the module docstring says.  A ``heavy`` command (a PUSHB chunk: a
        thousand commands' worth of work for the server) goes to a connection with
        nothing pending, opening one when the pool has room, so that chunks in flight
        run side by side on a server that serves each connection in turn."""
        not_sent = 0
        resent = False
        while True:
            picked = None if self._closed or heavy else self._pick()
            conn = picked if picked is not None else (
                await self._wait_empty() if heavy else await self._wait_shared())
            try:
                if conn._paused:
                    await conn._wait_writable()
                reply = await conn.send(data, timeout)
            except NotSentError:
                not_sent += 1
                if not_sent > _MAX_NOT_SENT:
                    raise
                continue
            except (CommandTimeout, ConnectionProtocolError):
                raise
            except FaktoryConnectionError as exc:
                if not resend or resent:
                    raise
                resent = True
                log.info("connection to %s lost during a command (%s); sending it again", self.address, exc)
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
        return True

    async def _exclusive(self, data: bytes, timeout: float | None, orphan: Orphan | None,
                         resend: bool = True) -> Any:
        """Send a command that may be held by the server (FETCH) on a leased connection;
        resent once after a dropped connection (with ``resend``)."""
        not_sent = 0
        resent = False
        while True:
            async with self.acquire() as conn:
                try:
                    reply = await conn.send(data, timeout, orphan)
                except NotSentError:
                    not_sent += 1
                    if not_sent > _MAX_NOT_SENT:
                        raise
                    continue
                except (CommandTimeout, ConnectionProtocolError):
                    raise
                except FaktoryConnectionError as exc:
                    if resent or not resend:
                        raise
                    resent = True
                    log.info("connection to %s lost during a FETCH (%s); sending it again", self.address, exc)
                    continue
            if isinstance(reply, ServerError):
                raise reply
            return reply

    def _orphaned_fetch(self, reply: Any) -> None:
        # The caller of a FETCH stopped waiting before its job arrived: give the job back.
        if isinstance(reply, bytes) and not self._closed:
            self._spawn(self._hand_back(reply))
        elif isinstance(reply, bytes):
            log.warning("a FETCH was cancelled while the client closed: job %.200r stays reserved "
                        "until its reservation expires", reply)

    async def _hand_back(self, reply: bytes) -> None:
        """Return a FETCHed job nobody will run: PUSH it again (same payload and jid), then
        ACK the reservation, so it is fetched again at once instead of waiting out its
        reservation.  A fault between the two leaves a duplicate, never a loss."""
        job = _loads(reply)
        jid = job.get("jid")
        try:
            await self._call(self._pack_push(job))
            await self._call(self._pack_ack(jid))
        except FaktoryError as exc:
            log.warning("could not hand back job %s after its FETCH was cancelled (%s); the server "
                        "requeues it when its reservation expires", jid, exc)
            return
        log.info("FETCH cancelled: job %s (%s) pushed back to queue %r", jid, job.get("jobtype"),
                 job.get("queue"))

    async def send(self, verb: str, *args: str) -> Any:
        """Send a raw command ``VERB arg...`` and return the raw reply (``str``, ``bytes``
        or ``None``); a server error is raised.  Arguments must not contain spaces.
        Resent on another connection only when it was never written.  A raw ``FETCH``
        takes a connection of its own, like ``fetch()``."""
        data = self.codec.pack_command(verb, *args)
        if verb == "FETCH":
            timeout = self.command_timeout
            return await self._exclusive(data, None if timeout is None else timeout + FETCH_BLOCK,
                                         self._orphaned_fetch, resend=False)
        return await self._call(data, resend=False)

    def job(self, jobtype: str, *args: Any, **options: Any) -> Job:
        """A ``Job`` bound to this client (``await client.job("Email", 1).push()``);
        ``options`` are ``Job``'s keyword arguments (queue, retry, at, ...)."""
        return Job(jobtype, *args, client=self, **options)

    def _payload(self, job: Job | dict[str, Any]) -> dict[str, Any]:
        if isinstance(job, Job):
            return job._d
        if isinstance(job, dict):
            return Job.from_payload(job)._d
        raise TypeError(f"a job must be a Job or a dict, not {type(job).__name__}: {job!r}")

    async def push(self, job: Job | dict[str, Any]) -> str:
        """Enqueue one job (a ``Job`` or a payload dict, validated like a ``Job``); return its jid.

        Bad fields (and arguments that are not JSON-serialisable) raise ``TypeError`` or
        ``ValueError`` before anything is sent.  A PUSH written when the connection
        dropped is sent again, so a rare duplicate is possible (see the module docstring).
        """
        payload = self._payload(job)
        try:
            data = self._pack_push(payload)
        except (TypeError, ValueError, OverflowError):
            check_json(payload, self.codec.dumps)
            raise
        await self._call(data)
        return payload["jid"]

    async def push_bulk(self, jobs: Iterable[Job | dict[str, Any]], *, chunk_size: int = 1000,
                        concurrency: int | None = None) -> dict[str | int, tuple[str, dict[str, Any]]]:
        """Enqueue many jobs with PUSHB; return ``{key: (reason, payload)}`` for every job
        that was *not* enqueued (``{}`` when all were).

        ``key`` is the job's jid; a job without a usable jid (not a dict, a jid that is
        not a str) or whose jid is already a key of the result is keyed by its index in
        ``jobs`` (an ``int``, so it cannot collide with a jid).

        ``jobs`` may be any iterable, a generator included: it is consumed in chunks of
        ``chunk_size`` jobs, each encoded once into one PUSHB line, with up to
        ``concurrency`` chunks (default ``min(pool_size, 4)``) in flight at once over
        pooled connections, so memory stays bounded by the chunks in flight.

        Rejections come from the server (e.g. a dict without ``jobtype``) or from the
        client: a dict that fails ``Job`` validation or a job whose arguments are not
        JSON-serialisable is left out of its chunk and reported here with the error
        text, so one bad job never stops the others.  A chunk is resent once after a
        dropped connection (duplicates possible, see the module docstring).  If a chunk
        fails for good, no more of ``jobs`` is consumed, the chunks already sent are
        waited for, and ``BulkPushError`` is raised: it carries the rejections so far and
        how many jobs were certainly enqueued, certainly not, and unknown (with their jids).
        """
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        if concurrency is None:
            concurrency = min(self.pool_size, 4)
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        loop = asyncio.get_running_loop()
        bulk = _Bulk()
        in_flight: set[asyncio.Task[None]] = set()
        it = enumerate(jobs)
        try:
            while bulk.error is None:
                chunk, exhausted = self._bulk_chunk(it, chunk_size, bulk)
                if chunk:
                    data = self._pack_bulk(chunk, bulk)
                    if data is not None:
                        while len(in_flight) >= concurrency:
                            _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                        if bulk.error is not None:
                            bulk.not_enqueued += len(chunk)
                            break
                        in_flight.add(loop.create_task(self._push_chunk(data, chunk, bulk)))
                if exhausted:
                    break
            if in_flight:
                await asyncio.wait(in_flight)
        except BaseException:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            raise
        if bulk.error is not None:
            raise BulkPushError(
                f"push_bulk to {self.address} stopped: {bulk.error} ({bulk.enqueued} jobs enqueued, "
                f"{bulk.not_enqueued} not, {bulk.unknown} unknown)",
                rejected=bulk.rejected, enqueued=bulk.enqueued, not_enqueued=bulk.not_enqueued,
                unknown=bulk.unknown, unknown_jids=bulk.unknown_jids) from bulk.error
        return bulk.rejected

    def _bulk_chunk(self, it: Iterator[tuple[int, Job | dict[str, Any]]], size: int,
                    bulk: _Bulk) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
        chunk: list[tuple[int, dict[str, Any]]] = []
        append = chunk.append
        taken = 0
        for index, item in islice(it, size):
            taken += 1
            if type(item) is Job:
                append((index, item._d))
                continue
            try:
                append((index, self._payload(item)))
            except (TypeError, ValueError) as exc:
                if isinstance(item, dict):
                    bulk.reject(item.get("jid"), index, str(exc), item)
                else:
                    bulk.reject(None, index, str(exc), {"job": item})
        return chunk, taken < size

    def _pack_bulk(self, chunk: list[tuple[int, dict[str, Any]]], bulk: _Bulk) -> bytes | None:
        pack_pushb = self.codec.pack_pushb
        try:
            return pack_pushb([payload for _, payload in chunk])
        except (TypeError, ValueError, OverflowError):
            pass
        # Some job cannot be encoded: find it (them), report, send the rest.
        dumps = self.codec.dumps
        good = []
        for index, payload in chunk:
            try:
                dumps(payload)
            except (TypeError, ValueError, OverflowError):
                try:
                    check_json(payload, dumps)
                    reason = "job is not JSON-serialisable"
                except (TypeError, ValueError, OverflowError) as exc:
                    reason = str(exc)
                bulk.reject(payload.get("jid"), index, reason, payload)
            else:
                good.append((index, payload))
        chunk[:] = good
        return pack_pushb([payload for _, payload in good]) if good else None

    async def _push_chunk(self, data: bytes, chunk: list[tuple[int, dict[str, Any]]], bulk: _Bulk) -> None:
        try:
            reply = await self._call(data, heavy=True)
        except asyncio.CancelledError:
            bulk.unsure(chunk)
            raise
        except NotSentError as exc:
            bulk.error = bulk.error or exc
            bulk.not_enqueued += len(chunk)
            return
        except Exception as exc:
            bulk.error = bulk.error or exc
            bulk.unsure(chunk)
            return
        if reply == b"{}" or not reply:
            bulk.enqueued += len(chunk)
            return
        errors = _loads(reply)
        if not errors:
            bulk.enqueued += len(chunk)
            return
        by_jid = {payload.get("jid"): (index, payload) for index, payload in chunk}
        for jid, reason in errors.items():
            index, payload = by_jid.get(jid, (-1, {}))
            bulk.reject(jid, index, reason, payload)
        bulk.enqueued += len(chunk) - len(errors)

    # -- consuming ---------------------------------------------------------------------
    async def fetch(self, *queues: str) -> dict[str, Any] | None:
        """FETCH a job from the first non-empty queue, in the order given (at least one
        queue, names checked before sending); ``None`` when none arrived within the
        server's 2 s wait.  Resent once after a dropped connection.

        The FETCH has a connection to itself while the server holds it.  If the caller
        is cancelled (or its ``wait_for`` times out) before the job arrives, the job is
        not lost with the reply: it is pushed back to its queue and its reservation
        ACKed, so another worker gets it at once."""
        data = self._fetch_cache.get(queues)
        if data is None:
            if not queues:
                raise ValueError("fetch needs at least one queue name")
            for queue in queues:
                validate_queue(queue)
            data = self.codec.pack_fetch(queues)
            if len(self._fetch_cache) < _FETCH_CACHE_MAX:
                self._fetch_cache[queues] = data
        timeout = self.command_timeout
        reply = await self._exclusive(data, None if timeout is None else timeout + FETCH_BLOCK,
                                      self._orphaned_fetch)
        if reply is None:
            return None
        return _loads(reply)

    async def ack(self, jid: str) -> None:
        """Acknowledge a fetched job (the server answers OK even for unknown jids)."""
        await self._call(self._pack_ack(jid))

    async def fail(self, jid: str, exc: BaseException | None = None, *, errtype: str | None = None,
                   message: str | None = None, backtrace: list[str] | None = None,
                   backtrace_limit: int = MAX_BACKTRACE) -> None:
        """Report a fetched job as failed.

        From ``exc``: ``errtype`` = the exception class name, ``message`` = ``str(exc)``,
        ``backtrace`` = its traceback (innermost frame first); explicit values win.
        At most ``backtrace_limit`` lines (clamped to 0..50, what the server keeps).
        ``JobNotFoundError`` when the server does not hold the job (final: do not retry).
        """
        await self._call(self._fail_command(jid, exc, errtype=errtype, message=message, backtrace=backtrace,
                                            backtrace_limit=backtrace_limit))

    def _fail_command(self, jid: str, exc: BaseException | None = None, *, errtype: str | None = None,
                      message: str | None = None, backtrace: list[str] | None = None,
                      backtrace_limit: int = MAX_BACKTRACE) -> bytes:
        """The packed FAIL command of ``fail()`` (the worker sends it on its hot path)."""
        if not isinstance(jid, str):
            raise TypeError(f"jid must be a str, not {type(jid).__name__}: {jid!r}")
        limit = max(0, min(int(backtrace_limit), MAX_BACKTRACE))
        if exc is not None:
            if errtype is None:
                errtype = type(exc).__name__
            if message is None:
                message = str(exc)
            if backtrace is None:
                backtrace = format_backtrace(exc, limit)
        payload: dict[str, Any] = {"jid": jid}
        if errtype is not None:
            payload["errtype"] = str(errtype)
        if message is not None:
            payload["message"] = str(message)
        if backtrace is not None:
            payload["backtrace"] = [str(line) for line in backtrace[:limit]]
        return self._pack_json("FAIL", payload)

    async def beat(self, current_state: str | None = None, rss_kb: int | None = None) -> str:
        """Heartbeat for this client's ``wid``; returns ``"OK"``, ``"quiet"`` or ``"terminate"``.

        ``current_state`` (``"quiet"``/``"terminate"``) tells the server the worker's own
        state; ``rss_kb`` its memory use.  ``UnknownWorkerError`` when the server forgot
        the worker (reconnect with HELLO)."""
        if not self.wid:
            raise ValueError("beat() needs a worker id: create the client with Client(wid=...)")
        payload: dict[str, Any] = {"wid": self.wid}
        if current_state:
            if current_state not in _STATES:
                raise ValueError(f"current_state must be 'quiet' or 'terminate', got {current_state!r}")
            payload["current_state"] = current_state
        if rss_kb is not None:
            if not isinstance(rss_kb, int) or isinstance(rss_kb, bool) or rss_kb < 0:
                raise TypeError(f"rss_kb must be an int >= 0, got {rss_kb!r}")
            payload["rss_kb"] = rss_kb
        return parse_beat(await self._call(self._pack_json("BEAT", payload)))

    # -- administration ----------------------------------------------------------------
    async def info(self) -> dict[str, Any]:
        """The server's INFO document (queues, sets, counters, server details)."""
        return _loads(await self._call(b"INFO\r\n"))

    async def flush(self) -> None:
        """Delete every queue, set and counter on the server."""
        await self._call(b"FLUSH\r\n")

    def _queue_args(self, queues: tuple[str, ...], wildcard: bool) -> tuple[str, ...]:
        if not queues:
            raise ValueError("give at least one queue name" + (' (or "*")' if wildcard else ""))
        for queue in queues:
            if queue == "*":
                if not wildcard:
                    raise ValueError('QUEUE LATENCY does not support the wildcard "*"')
            else:
                validate_queue(queue)
        return queues

    async def queue_pause(self, *queues: str) -> None:
        """Pause queues (``"*"`` = every known queue): FETCH skips them."""
        await self._call(self.codec.pack_command("QUEUE", "PAUSE", *self._queue_args(queues, True)))

    async def queue_resume(self, *queues: str) -> None:
        """Resume paused queues (``"*"`` = all)."""
        await self._call(self.codec.pack_command("QUEUE", "RESUME", *self._queue_args(queues, True)))

    async def queue_remove(self, *queues: str) -> None:
        """Delete queues and every job in them (``"*"`` = all)."""
        await self._call(self.codec.pack_command("QUEUE", "REMOVE", *self._queue_args(queues, True)))

    async def queue_latency(self, *queues: str) -> dict[str, float]:
        """Seconds since the oldest job of each queue was enqueued (0 for empty or unknown
        queues).  No wildcard."""
        reply = await self._call(self.codec.pack_command("QUEUE", "LATENCY", *self._queue_args(queues, False)))
        return {name: float(value) for name, value in _loads(reply).items()}

    @property
    def retries(self) -> Mutation:
        """The retry set, for MUTATE operations (``await client.retries.of_type("X").kill()``)."""
        from faktory.mutation import Mutation
        return Mutation(self, "retries")

    @property
    def scheduled(self) -> Mutation:
        """The scheduled set, for MUTATE operations."""
        from faktory.mutation import Mutation
        return Mutation(self, "scheduled")

    @property
    def dead(self) -> Mutation:
        """The dead set, for MUTATE operations."""
        from faktory.mutation import Mutation
        return Mutation(self, "dead")
