"""``Client``: the producer/consumer API over a pool of ``Connection``\\ s.

Retry policy on transport faults (documented once here, referred to by the methods):

- A command whose connection was already dead when it was picked from the pool is
  never written; it is sent on another connection, always.
- Opening a connection is retried with capped exponential backoff (50 ms doubling up
  to 2 s, with jitter) for at most ``reconnect_timeout`` seconds in all; then
  ``FaktoryConnectionError`` naming the address is raised.  A refused password
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
from collections import deque
from itertools import islice
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Iterable, Iterator
from urllib.parse import unquote, urlsplit

from faktory import protocol
from faktory.connection import Connection, ConnectionProtocolError, NotSentError
from faktory.errors import CommandTimeout, FaktoryConnectionError, ServerError
from faktory.job import Job, check_json, validate_queue

if TYPE_CHECKING:  # pragma: no cover
    from faktory.mutation import Mutation

__all__ = ["Client", "parse_url", "format_backtrace", "DEFAULT_URL"]

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


def format_backtrace(exc: BaseException, limit: int = MAX_BACKTRACE) -> list[str]:
    """The frames of ``exc``'s traceback, innermost first (as Faktory's web UI, and the
    Ruby and Go clients, show them), at most ``limit`` lines, each
    ``File "path", line N, in function``.  No source files are read."""
    frames = [(tb_frame.f_code.co_filename, lineno, tb_frame.f_code.co_name)
              for tb_frame, lineno in traceback.walk_tb(exc.__traceback__)]
    frames.reverse()
    return [f'File "{filename}", line {lineno}, in {name}' for filename, lineno, name in frames[:limit]]


def _collect(done: Iterable[asyncio.Task[Any]], rejected: dict[str, tuple[str, dict[str, Any]]]) -> None:
    # Merge the rejections of finished PUSHB chunks; look at every task's outcome (so no
    # exception goes unretrieved), then raise the first error, if any.
    error: BaseException | None = None
    for task in done:
        if task.cancelled():
            error = error or asyncio.CancelledError()
            continue
        exc = task.exception()
        if exc is not None:
            error = error or exc
        else:
            result = task.result()
            if result:
                rejected.update(result)
    if error is not None:
        raise error


class _Lease:
    """``async with client.acquire() as conn``: exclusive use of one pooled connection."""

    __slots__ = ("_client", "_conn")

    def __init__(self, client: Client) -> None:
        self._client = client
        self._conn: Connection | None = None

    async def __aenter__(self) -> Connection:
        self._conn = await self._client._checkout()
        return self._conn

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._checkin(conn)


class Client:
    """A Faktory client: a lazily-filled pool of up to ``pool_size`` connections.

    ``url``: ``tcp://[:password@]host[:port]`` or ``tcp+tls://...`` (TLS with
    certificate verification).  Without one, the URL comes from the environment
    variable named by ``FAKTORY_PROVIDER`` (default ``FAKTORY_URL``), else
    ``tcp://127.0.0.1:7419``.  ``host``, ``port``, ``password`` and ``tls`` given
    explicitly override the URL; ``tls`` may be ``True`` (default verifying context),
    ``False`` or an ``ssl.SSLContext``.

    ``wid`` (with ``labels``, ``hostname``, ``pid``) makes every connection HELLO as
    that worker.  ``command_timeout`` bounds each command (FETCH gets 2 s more for the
    server's blocking wait); ``None`` disables it.  ``connect_timeout`` bounds each
    connection attempt (TCP, TLS, HI and HELLO); ``reconnect_timeout`` bounds the total
    time spent retrying connection attempts while the server is down.

    Safe for many concurrent tasks on one event loop: each command takes a connection
    from the pool (most recently used first), or opens one, or waits for one.  See the
    module docstring for which commands are retried after a transport fault.
    """

    def __init__(self, url: str | None = None, *, host: str | None = None, port: int | None = None,
                 password: str | None = None, wid: str | None = None, labels: Iterable[str] = (),
                 pool_size: int = 10, tls: bool | _ssl.SSLContext | None = None,
                 connect_timeout: float = 5.0, command_timeout: float | None = 10.0,
                 hostname: str | None = None, pid: int | None = None,
                 codec: ModuleType | None = None, reconnect_timeout: float = 30.0) -> None:
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
        if wid is not None and (not isinstance(wid, str) or not wid):
            raise ValueError(f"wid must be a non-empty str, got {wid!r}")
        self.wid = wid
        self.labels: list[str] = list(labels)
        self.hostname = hostname
        self.pid = pid
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.reconnect_timeout = reconnect_timeout
        self.codec: ModuleType = codec or protocol.codec
        self._pack_ack = self.codec.pack_ack
        self._pack_push = self.codec.pack_push
        self._pack_json = self.codec.pack_json
        self._idle: list[Connection] = []
        self._size = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
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
        """Open one connection now (so that a wrong address or password shows at once)."""
        self._closed = False
        self._checkin(await self._checkout())
        return self

    async def close(self) -> None:
        """Close idle connections (with ``END``) and refuse new commands.  Connections in
        use are closed when their command finishes.  ``connect()`` reopens the client."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            self._size -= 1
        waiters, self._waiters = self._waiters, deque()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- the pool ----------------------------------------------------------------------
    def acquire(self) -> _Lease:
        """``async with client.acquire() as conn:`` exclusive use of one pooled connection
        (e.g. for a long-held FETCH loop).  A connection that failed (``conn.closed``) is
        discarded on exit, not returned to the pool."""
        return _Lease(self)

    async def _checkout(self) -> Connection:
        idle = self._idle
        while True:
            if self._closed:
                raise FaktoryConnectionError(f"client for {self.address} is closed")
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    return conn
                self._size -= 1
            if self._size < self.pool_size:
                self._size += 1
                try:
                    return await self._open()
                except BaseException:
                    self._size -= 1
                    self._wake()
                    raise
            fut: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                conn_or_none = await fut
            except BaseException:
                if fut.done() and not fut.cancelled():
                    handed = fut.result()
                    if handed is not None:
                        self._checkin(handed)
                    else:
                        self._wake()
                else:
                    try:
                        self._waiters.remove(fut)
                    except ValueError:
                        pass
                raise
            if conn_or_none is not None:
                if not conn_or_none.closed:
                    return conn_or_none
                self._size -= 1

    def _checkin(self, conn: Connection) -> None:
        if conn.closed or self._closed:
            if not conn.closed:
                conn.close()
            self._size -= 1
            self._wake()
            return
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        self._idle.append(conn)

    def _wake(self) -> None:
        # A slot freed up: let one waiter open a connection.
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    async def _open(self) -> Connection:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.reconnect_timeout
        delay = BACKOFF_MIN
        attempts = 0
        while True:
            attempts += 1
            try:
                return await Connection.open(
                    self.host, self.port, password=self.password, ssl=self.ssl,
                    hello=self._hello(), connect_timeout=self.connect_timeout,
                    command_timeout=self.command_timeout, codec=self.codec)
            except FaktoryConnectionError as exc:
                if getattr(exc, "permanent", False):
                    raise
                pause = delay * random.uniform(0.5, 1.0)
                if loop.time() + pause > deadline:
                    raise FaktoryConnectionError(
                        f"cannot connect to Faktory at {self.address} "
                        f"({attempts} attempt{'s' if attempts > 1 else ''} in "
                        f"{loop.time() - started:.1f}s): {exc}") from exc
                if attempts == 1:
                    log.warning("cannot connect to Faktory at %s (%s); retrying for up to %.0fs",
                                self.address, exc, self.reconnect_timeout)
                else:
                    log.debug("connection attempt %d to %s failed: %s", attempts, self.address, exc)
                await asyncio.sleep(pause)
                delay = min(delay * 2, BACKOFF_MAX)

    # -- sending -----------------------------------------------------------------------
    async def _call(self, data: bytes, timeout: float | None = None, resend: bool = True) -> Any:
        """Send one packed command on a pooled connection and return the reply,
        retrying as the module docstring says."""
        not_sent = 0
        resent = False
        idle = self._idle
        while True:
            if idle and not self._closed:
                conn = idle.pop()
                if conn.closed:
                    self._size -= 1
                    continue
            else:
                conn = await self._checkout()
            try:
                reply = await conn.execute(data, timeout=timeout)
            except ServerError:
                self._checkin(conn)
                raise
            except NotSentError:
                self._checkin(conn)
                not_sent += 1
                if not_sent > _MAX_NOT_SENT:
                    raise
                continue
            except (CommandTimeout, ConnectionProtocolError):
                self._checkin(conn)
                raise
            except FaktoryConnectionError as exc:
                self._checkin(conn)
                if not resend or resent:
                    raise
                resent = True
                log.info("connection to %s lost during a command (%s); sending it again", self.address, exc)
                continue
            except BaseException:
                self._checkin(conn)
                raise
            self._checkin(conn)
            return reply

    async def send(self, verb: str, *args: str) -> Any:
        """Send a raw command ``VERB arg...`` and return the raw reply (``str``, ``bytes``
        or ``None``); a server error is raised.  Arguments must not contain spaces.
        Resent on another connection only when it was never written."""
        return await self._call(self.codec.pack_command(verb, *args), resend=False)

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
                        concurrency: int | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
        """Enqueue many jobs with PUSHB; return ``{jid: (reason, payload)}`` for the jobs
        that were *not* enqueued (``{}`` when all were).

        ``jobs`` may be any iterable, a generator included: it is consumed in chunks of
        ``chunk_size`` jobs, each encoded once into one PUSHB line, with up to
        ``concurrency`` chunks (default ``min(pool_size, 4)``) in flight at once over
        pooled connections, so memory stays bounded by the chunks in flight.

        Rejections come from the server (e.g. a dict without ``jobtype``) or from the
        client: a dict that fails ``Job`` validation or a job whose arguments are not
        JSON-serialisable is left out of its chunk and reported here with the error
        text, so one bad job never stops the others.  A chunk is resent once after a
        dropped connection (duplicates possible, see the module docstring).  If a chunk
        fails for good, the chunks still in flight are cancelled (whether they were
        enqueued is unknown) and the error is raised; earlier chunks stay enqueued.
        """
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        if concurrency is None:
            concurrency = min(self.pool_size, 4)
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        loop = asyncio.get_running_loop()
        rejected: dict[str, tuple[str, dict[str, Any]]] = {}
        in_flight: set[asyncio.Task[dict[str, tuple[str, dict[str, Any]]] | None]] = set()
        it = iter(jobs)
        try:
            while True:
                chunk, exhausted = self._bulk_chunk(it, chunk_size, rejected)
                if chunk:
                    data = self._pack_bulk(chunk, rejected)
                    if data is not None:
                        while len(in_flight) >= concurrency:
                            done, in_flight = await asyncio.wait(
                                in_flight, return_when=asyncio.FIRST_COMPLETED)
                            _collect(done, rejected)
                        in_flight.add(loop.create_task(self._push_chunk(data, chunk)))
                if exhausted:
                    break
            while in_flight:
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                _collect(done, rejected)
        except BaseException:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            raise
        return rejected

    def _bulk_chunk(self, it: Iterator[Job | dict[str, Any]], size: int,
                    rejected: dict[str, tuple[str, dict[str, Any]]]) -> tuple[list[dict[str, Any]], bool]:
        chunk: list[dict[str, Any]] = []
        append = chunk.append
        taken = 0
        for item in islice(it, size):
            taken += 1
            if type(item) is Job:
                append(item._d)
                continue
            try:
                append(self._payload(item))
            except (TypeError, ValueError) as exc:
                jid = item.get("jid") if isinstance(item, dict) else None
                payload = item if isinstance(item, dict) else {"job": item}
                rejected[jid if isinstance(jid, str) else ""] = (str(exc), payload)
        return chunk, taken < size

    def _pack_bulk(self, chunk: list[dict[str, Any]],
                   rejected: dict[str, tuple[str, dict[str, Any]]]) -> bytes | None:
        pack_pushb = self.codec.pack_pushb
        try:
            return pack_pushb(chunk)
        except (TypeError, ValueError, OverflowError):
            pass
        # Some job cannot be encoded: find it (them), report, send the rest.
        dumps = self.codec.dumps
        good = []
        for payload in chunk:
            try:
                dumps(payload)
            except (TypeError, ValueError, OverflowError):
                try:
                    check_json(payload, dumps)
                    reason = "job is not JSON-serialisable"
                except (TypeError, ValueError, OverflowError) as exc:
                    reason = str(exc)
                rejected[payload.get("jid", "")] = (reason, payload)
            else:
                good.append(payload)
        chunk[:] = good
        return pack_pushb(good) if good else None

    async def _push_chunk(self, data: bytes,
                          chunk: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]] | None:
        reply = await self._call(data)
        if reply == b"{}" or not reply:
            return None
        errors = _loads(reply)
        if not errors:
            return None
        by_jid = {payload.get("jid", ""): payload for payload in chunk}
        return {jid: (reason, by_jid.get(jid, {})) for jid, reason in errors.items()}

    # -- consuming ---------------------------------------------------------------------
    async def fetch(self, *queues: str) -> dict[str, Any] | None:
        """FETCH a job from the first non-empty queue, in the order given (at least one
        queue, names checked before sending); ``None`` when none arrived within the
        server's 2 s wait.  Resent once after a dropped connection."""
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
        reply = await self._call(data, None if timeout is None else timeout + FETCH_BLOCK)
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
        await self._call(self._pack_json("FAIL", payload))

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
        reply = await self._call(self._pack_json("BEAT", payload))
        if reply == "OK":
            return "OK"
        try:
            state = _loads(reply)["state"]
        except (TypeError, ValueError, KeyError):
            raise ConnectionProtocolError(f"unexpected reply to BEAT: {reply!r}") from None
        return str(state) if state else "OK"

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
