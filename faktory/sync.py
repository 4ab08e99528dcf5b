"""``SyncClient``: the blocking Faktory client, for synchronous code (WSGI views, scripts,
threads), over plain sockets and the same sans-I/O codec as the asyncio ``Client``.

Same constructor, methods, errors and retry policy as :class:`faktory.Client` (see its
module docstring), without ``await``::

    from faktory import Job, SyncClient

    client = SyncClient()                      # FAKTORY_URL..., like Client(); no I/O yet
    jid = client.push(Job("send_email", "ada@example.com"))
    rejected = client.push_bulk(Job("resize", n) for n in range(10_000))
    client.dead.of_type("resize").requeue()

Thread-safe: one client (e.g. a module-level one) serves every thread of a WSGI server.
Each command takes a connection from the client's own pool of up to ``pool_size``
(most recently used first), opens one, or waits for one; a thread holds a connection
only for the duration of one command.  There is no event loop anywhere: each connection
is a blocking socket, a ``Reader`` from the codec, and a timeout.

Faults: a pooled connection the server closed while it sat idle is noticed before the
command is written (the command goes on a fresh connection); a command written when the
connection dropped is sent once more on a fresh one; connecting is retried with capped
backoff for ``reconnect_timeout`` seconds; server errors, ``CommandTimeout`` and bad bytes
are raised as they come.  ``push_bulk`` pipelines its PUSHB chunks: up to ``concurrency``
chunks are written back to back on one connection before their replies are read.

After ``os.fork()`` the child's client forgets the parent's connections (never sharing a
socket between processes) and opens its own.
"""
from __future__ import annotations

import logging
import os
import random
import select
import socket
import ssl as _ssl
import threading
import time
from types import TracebackType
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from faktory import _testmode, commands, protocol
from faktory._const import NEED_DATA
from faktory._checks import client_target
from faktory.bulk import BulkState, Chunk, pack_chunk, record_reply, take_chunk, too_big
from faktory.client import FETCH_BLOCK, MAX_COMMAND_BYTES
from faktory.connection import hello_payload, parse_greeting
from faktory.errors import (
    CommandTimeout,
    ConnectionProtocolError,
    FaktoryConnectionError,
    HandshakeError,
    ProtocolError,
    ServerError,
)
from faktory.job import Job
from faktory.mutation import Mutation
from faktory.url import DEFAULT_URL

__all__ = ["SyncClient", "SyncConnection", "SyncMutation", "DEFAULT_URL"]

log = logging.getLogger("faktory.sync")

BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
_END = b"END\r\n"
_RECV = 65536
_DEFAULT: Any = object()


def _readable(sock: socket.socket) -> bool:
    # Non-blocking "is there anything to read (or EOF)?": poll where it exists (no fd limit).
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))
    ready, _, _ = select.select([sock], [], [], 0)  # pragma: no cover - Windows
    return bool(ready)


class SyncConnection:
    """One blocking connection: a socket (TCP or TLS), a codec ``Reader``, a timeout.

    Used by one thread at a time (the pool hands it out exclusively)."""

    __slots__ = ("host", "port", "command_timeout", "codec", "sock", "_reader", "closed",
                 "server_info", "generation", "_timeout")

    def __init__(self, host: str, port: int, sock: socket.socket, *, command_timeout: float | None,
                 codec: Any) -> None:
        self.host = host
        self.port = port
        self.sock = sock
        self.command_timeout = command_timeout
        self.codec = codec
        self._reader = codec.Reader()
        self.closed = False
        self.server_info: dict[str, Any] = {}
        self.generation = 0  # the pool's generation when opened (see SyncClient.reconnect)
        self._timeout: float | None = sock.gettimeout()  # what the socket has now

    @classmethod
    def open(cls, host: str, port: int, *, password: str | None = None,
             ssl: _ssl.SSLContext | None = None, server_hostname: str | None = None,
             hello: dict[str, Any] | None = None, connect_timeout: float = 5.0,
             command_timeout: float | None = 10.0, codec: Any = None) -> SyncConnection:
        """Connect, read ``HI``, send ``HELLO`` and read ``+OK`` within ``connect_timeout``;
        the errors of ``Connection.open``."""
        deadline = time.monotonic() + connect_timeout
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except socket.timeout:
            raise CommandTimeout(
                f"connecting to Faktory at {host}:{port} timed out after {connect_timeout}s") from None
        except OSError as exc:
            raise FaktoryConnectionError(f"cannot connect to Faktory at {host}:{port}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl is not None:
                try:
                    sock = ssl.wrap_socket(sock, server_hostname=server_hostname or host)
                except _ssl.SSLCertVerificationError as exc:
                    err = HandshakeError(f"TLS certificate of {host}:{port} rejected: {exc}")
                    err.permanent = True  # type: ignore[attr-defined]  # retrying cannot help
                    raise err from exc
                except socket.timeout:
                    raise CommandTimeout(f"TLS handshake with {host}:{port} timed out") from None
                except OSError as exc:
                    raise FaktoryConnectionError(f"TLS handshake with {host}:{port} failed: {exc}") from exc
            conn = cls(host, port, sock, command_timeout=command_timeout, codec=codec or protocol.codec)
        except BaseException:
            sock.close()
            raise
        try:
            conn._handshake(password, hello, deadline, connect_timeout)
        except BaseException:
            conn.abort()
            raise
        return conn

    def _handshake(self, password: str | None, hello: dict[str, Any] | None, deadline: float,
                   connect_timeout: float) -> None:
        where = f"{self.host}:{self.port}"
        try:
            greeting = self._read(connect_timeout, deadline)
        except CommandTimeout:
            raise CommandTimeout(f"connecting to Faktory at {where} timed out after {connect_timeout}s") from None
        except FaktoryConnectionError as exc:
            if isinstance(exc, ProtocolError):
                raise
            raise HandshakeError(f"{where} closed the connection before HI: {exc}") from exc
        info = parse_greeting(greeting, where)
        self.server_info = info
        payload = hello_payload(info, hello, password)
        try:
            remaining = max(0.001, deadline - time.monotonic())
            self._send(self.codec.pack_json("HELLO", payload), remaining)
            reply = self._read(remaining, deadline)
        except CommandTimeout:
            raise CommandTimeout(f"connecting to Faktory at {where} timed out after {connect_timeout}s") from None
        except FaktoryConnectionError as exc:
            if isinstance(exc, ProtocolError):
                raise
            raise HandshakeError(f"{where} closed the connection during HELLO: {exc}") from exc
        if isinstance(reply, ServerError):
            raise reply
        if reply != "OK":
            raise HandshakeError(f"unexpected reply to HELLO from {where}: {reply!r}")

    # -- bytes in, bytes out -------------------------------------------------------------
    def _set_timeout(self, timeout: float | None) -> None:
        # settimeout() is a system call: skip it when the value is already in force (the
        # usual case: one command's timeout after another's).
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def _send(self, data: bytes, timeout: float | None) -> None:
        self._set_timeout(timeout)
        try:
            self.sock.sendall(data)
        except socket.timeout:
            self.abort()
            raise CommandTimeout(f"sending to Faktory at {self.host}:{self.port} timed out; "
                                 "connection closed") from None
        except OSError as exc:
            self.abort()
            raise FaktoryConnectionError(f"connection to Faktory at {self.host}:{self.port} lost: {exc}") from exc

    def _read(self, timeout: float | None, deadline: float | None) -> Any:
        """The next reply (a ``ServerError`` reply is returned, not raised), within
        ``deadline`` (``time.monotonic()``; ``timeout`` is the budget it was made from)."""
        reader = self._reader
        first = True
        while True:
            try:
                reply = reader.gets()
            except ProtocolError as exc:
                self.abort()
                err = ConnectionProtocolError(f"bad data from Faktory at {self.host}:{self.port}: {exc}")
                raise err from exc
            if reply is not NEED_DATA:
                return reply
            if deadline is None:
                self._set_timeout(None)
            elif first:
                self._set_timeout(timeout)  # the same value as the write's: no system call
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._timed_out()
                self._set_timeout(remaining)
            first = False
            try:
                data = self.sock.recv(_RECV)
            except socket.timeout:
                self._timed_out()
            except OSError as exc:
                self.abort()
                raise FaktoryConnectionError(
                    f"connection to Faktory at {self.host}:{self.port} lost: {exc}") from exc
            if not data:
                self.abort()
                raise FaktoryConnectionError(f"Faktory at {self.host}:{self.port} closed the connection")
            reader.feed(data)

    def _timed_out(self) -> None:
        self.abort()
        raise CommandTimeout(
            f"no reply from Faktory at {self.host}:{self.port} within a command's timeout "
            f"(the connection's default is {self.command_timeout}s); connection closed")

    def _budget(self, timeout: float | None) -> tuple[float | None, float | None]:
        if timeout is _DEFAULT:
            timeout = self.command_timeout
        return timeout, None if timeout is None else time.monotonic() + timeout

    def execute(self, data: bytes, *, timeout: float | None = _DEFAULT) -> Any:
        """Send one packed command and return its reply; a ``ServerError`` reply is raised.
        ``CommandTimeout`` (connection closed) after ``timeout`` seconds (default: the
        connection's ``command_timeout``; ``None``: no limit)."""
        timeout, deadline = self._budget(timeout)
        self._send(data, timeout)
        reply = self._read(timeout, deadline)
        if isinstance(reply, ServerError):
            raise reply
        return reply

    def execute_many(self, commands: list[bytes], *,
                     timeout: float | None = _DEFAULT) -> tuple[list[Any], FaktoryConnectionError | None]:
        """Pipeline: write every command, then read their replies in order, all within
        ``timeout``.

        Returns the replies read (``ServerError`` instances included, not raised) and the
        connection error that stopped the reading early, if any (the connection is then
        closed; the commands after the replies read may or may not have been applied)."""
        timeout, deadline = self._budget(timeout)
        replies: list[Any] = []
        try:
            self._send(b"".join(commands), timeout)
            for _ in commands:
                replies.append(self._read(timeout, deadline))
        except FaktoryConnectionError as exc:
            return replies, exc
        return replies, None

    def usable(self) -> bool:
        """False when the server closed the connection (or sent something unasked) while it
        sat idle: checked without blocking before a command is written on it."""
        if self.closed:
            return False
        sock = self.sock
        try:
            if not _readable(sock):
                return True
            if isinstance(sock, _ssl.SSLSocket):
                # TLS records without application data (session tickets) make it readable too.
                sock.setblocking(False)
                self._timeout = 0.0
                try:
                    sock.recv(1)
                except _ssl.SSLWantReadError:
                    return True
                except OSError:
                    pass
        except (OSError, ValueError):
            pass
        self.abort()
        return False

    def close(self) -> None:
        """Send ``END`` and close (never waits for a reply)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._set_timeout(0.5)
            self.sock.sendall(_END)
        except OSError:
            pass
        self.sock.close()

    def abort(self) -> None:
        """Close without ``END``."""
        self.closed = True
        try:
            self.sock.close()
        except OSError:  # pragma: no cover
            pass

    def __repr__(self) -> str:
        return f"<SyncConnection {self.host}:{self.port} {'closed' if self.closed else 'open'}>"


class SyncMutation:
    """``client.retries`` / ``scheduled`` / ``dead`` of a ``SyncClient``: the filters of
    :class:`faktory.Mutation`, and blocking ``clear``, ``kill``, ``discard``, ``requeue``."""

    __slots__ = ("_client", "_m")

    def __init__(self, client: SyncClient, mutation: Mutation) -> None:
        self._client = client
        self._m = mutation

    @property
    def target(self) -> str:
        return self._m.target

    @property
    def filter(self) -> dict[str, Any] | None:
        return self._m.filter

    def payload(self, cmd: str) -> dict[str, Any]:
        return self._m.payload(cmd)

    def of_type(self, jobtype: str) -> SyncMutation:
        """Only jobs of this job type."""
        return SyncMutation(self._client, self._m.of_type(jobtype))

    def with_jids(self, *jids: str) -> SyncMutation:
        """Only jobs with these jids."""
        return SyncMutation(self._client, self._m.with_jids(*jids))

    def matching(self, glob: str) -> SyncMutation:
        """Only jobs whose stored JSON matches this Redis glob (no spaces)."""
        return SyncMutation(self._client, self._m.matching(glob))

    def _run(self, cmd: str) -> None:
        data = self._client.codec.pack_json("MUTATE", self.payload(cmd))
        if b" " in data[7:]:
            raise ValueError(f"MUTATE payload would contain a space: {data!r}")
        self._client._call(data)

    def clear(self) -> None:
        """Empty the whole set (refused on a filtered mutation: use ``discard()``)."""
        if self.filter is not None:
            raise ValueError("clear() empties the whole set and ignores filters; use discard() "
                             "to delete only the matching jobs")
        self._run("clear")

    def kill(self) -> None:
        """Move the matching jobs to the dead set."""
        self._run("kill")

    def discard(self) -> None:
        """Delete the matching jobs."""
        self._run("discard")

    def requeue(self) -> None:
        """Put the matching jobs back on their queues now."""
        self._run("requeue")

    def __repr__(self) -> str:
        return f"<SyncMutation {self.target} filter={self.filter!r}>"


class SyncClient:
    """A blocking Faktory client with a thread-safe pool of up to ``pool_size`` connections.

    The arguments are ``Client``'s (``url``, ``host``, ``port``, ``password``, ``tls``,
    ``wid``, ``labels``, ``hostname``, ``pid``, ``connect_timeout``, ``command_timeout``,
    ``reconnect_timeout``), with the same defaults and the same checks.  Creating one does
    no I/O.  See the module docstring.
    """

    def __init__(self, url: str | None = None, *, host: str | None = None, port: int | None = None,
                 password: str | None = None, wid: str | None = None, labels: Iterable[str] = (),
                 pool_size: int = 10, tls: bool | _ssl.SSLContext | None = None,
                 connect_timeout: float = 5.0, command_timeout: float | None = 10.0,
                 hostname: str | None = None, pid: int | None = None,
                 reconnect_timeout: float = 30.0, first_connect_timeout: float = 3.0,
                 max_command_bytes: int | None = MAX_COMMAND_BYTES) -> None:
        target = client_target(
            url, host=host, port=port, password=password, tls=tls, wid=wid,
            connect_timeout=connect_timeout, command_timeout=command_timeout,
            reconnect_timeout=reconnect_timeout, first_connect_timeout=first_connect_timeout,
            max_command_bytes=max_command_bytes, hostname=hostname, pid=pid, labels=labels)
        self.host: str = target.host
        self.port: int = target.port
        self.password: str | None = target.password
        self.ssl: _ssl.SSLContext | None = target.ssl
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise ValueError(f"pool_size must be an int >= 1, got {pool_size!r}")
        self.wid = wid
        self.labels: list[str] = target.labels
        self.hostname = hostname
        self.pid = pid
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.reconnect_timeout = reconnect_timeout
        self.first_connect_timeout = first_connect_timeout
        self.max_command_bytes = max_command_bytes
        self.codec = protocol.codec
        self._cond = threading.Condition(threading.Lock())
        self._idle: list[SyncConnection] = []
        self._size = 0  # connections open or being opened
        self._closed = False
        self._generation = 0
        self._ever_connected = False  # until then, connecting is retried for first_connect_timeout
        self._owner_pid = os.getpid()

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
        return f"<SyncClient {self.url} pool {self._size}/{self.pool_size}{' wid=' + self.wid if self.wid else ''}>"

    def _hello(self) -> dict[str, Any]:
        return commands.hello_fields(self.hostname, self.wid, self.pid, self.labels)

    # -- lifecycle ---------------------------------------------------------------------
    def connect(self) -> SyncClient:
        """Open one connection now (so that a wrong address or password shows at once).
        Under ``faktory.testing.fake()``/``inline()`` nothing is opened."""
        with self._cond:
            self._closed = False
        if _testmode.current is None:
            self._checkin(self._checkout())
        return self

    def close(self) -> None:
        """Close idle connections (with ``END``) and refuse new commands; connections in
        use close when their command ends.  ``connect()`` reopens the client."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()

    def reconnect(self) -> None:
        """Retire every connection: idle ones are closed now, those in use when their command
        ends; later commands open new ones (with a fresh HELLO: after the server forgot the
        worker, say)."""
        with self._cond:
            self._generation += 1
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()

    def __enter__(self) -> SyncClient:
        return self.connect()

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the pool ----------------------------------------------------------------------
    @contextmanager
    def acquire(self) -> Iterator[SyncConnection]:
        """``with client.acquire() as conn:`` exclusive use of one pooled connection; a
        connection that failed (``conn.closed``) is discarded, not returned."""
        conn = self._checkout()
        try:
            yield conn
        finally:
            self._checkin(conn)

    def _after_fork(self) -> None:
        # In a forked child: the parent's sockets are not ours to use (nor to END): close
        # this process's file descriptors only (the parent's connections stay up).
        self._cond = threading.Condition(threading.Lock())
        for conn in self._idle:
            conn.abort()
        self._idle = []
        self._size = 0
        self._owner_pid = os.getpid()

    def _checkout(self) -> SyncConnection:
        if self._owner_pid != os.getpid():
            self._after_fork()
        with self._cond:
            while True:
                if self._closed:
                    raise FaktoryConnectionError(f"client for {self.address} is closed")
                idle = self._idle
                while idle:
                    conn = idle.pop()
                    if conn.usable():
                        return conn
                    self._size -= 1  # dropped while idle: never written to
                if self._size < self.pool_size:
                    self._size += 1
                    break
                self._cond.wait()
        try:
            conn = self._open()
            conn.generation = self._generation
            return conn
        except BaseException:
            with self._cond:
                self._size -= 1
                self._cond.notify()
            raise

    def _checkin(self, conn: SyncConnection) -> None:
        with self._cond:
            if conn.closed or self._closed or conn.generation != self._generation:
                self._size -= 1
            else:
                self._idle.append(conn)
                conn = None  # type: ignore[assignment]
            self._cond.notify()
        if conn is not None and not conn.closed:
            conn.close()

    def _open(self) -> SyncConnection:
        started = time.monotonic()
        # a server never reached yet: the short first_connect_timeout; one that went away,
        # reconnect_timeout (as Client)
        budget = self.reconnect_timeout if self._ever_connected else self.first_connect_timeout
        deadline = started + budget
        delay = BACKOFF_MIN
        attempts = 0
        while True:
            attempts += 1
            try:
                conn = SyncConnection.open(
                    self.host, self.port, password=self.password, ssl=self.ssl, hello=self._hello(),
                    connect_timeout=self.connect_timeout, command_timeout=self.command_timeout,
                    codec=self.codec)
                self._ever_connected = True
                return conn
            except FaktoryConnectionError as exc:
                if getattr(exc, "permanent", False):
                    raise
                pause = delay * random.uniform(0.5, 1.0)
                now = time.monotonic()
                if now + pause > deadline:
                    raise FaktoryConnectionError(
                        f"cannot connect to Faktory at {self.address} "
                        f"({attempts} attempt{'s' if attempts > 1 else ''} in "
                        f"{now - started:.1f}s): {exc}") from exc
                if attempts == 1:
                    log.warning("cannot connect to Faktory at %s (%s); retrying for up to %gs",
                                self.address, exc, budget)
                else:
                    log.debug("connection attempt %d to %s failed: %s", attempts, self.address, exc)
                time.sleep(pause)
                delay = min(delay * 2, BACKOFF_MAX)

    # -- sending -----------------------------------------------------------------------
    def _call(self, data: bytes, timeout: float | None = _DEFAULT, resend: bool = True) -> Any:
        """Send one packed command on a pooled connection and return the reply, retrying
        as ``Client`` does (see the module docstring of ``faktory.client``)."""
        resent = False
        while True:
            conn = self._checkout()
            try:
                reply = conn.execute(data, timeout=timeout)
            except ServerError:
                self._checkin(conn)
                raise
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
                conn.abort()  # interrupted mid-command: its reply can no longer be matched
                self._checkin(conn)
                raise
            self._checkin(conn)
            return reply

    def send(self, verb: str, *args: str) -> Any:
        """Send a raw command ``VERB arg...`` and return the raw reply; resent only when it
        was never written."""
        return self._call(self.codec.pack_command(verb, *args), resend=False)

    def job(self, jobtype: str, *args: Any, **options: Any) -> Job:
        """A ``Job`` (push it with ``client.push(job)``)."""
        return Job(jobtype, *args, **options)

    def push(self, job: Job | dict[str, Any]) -> str:
        """Enqueue one job (a ``Job`` or a payload dict, validated like a ``Job``); return its
        jid.  Bad fields raise ``TypeError``/``ValueError`` before anything is sent."""
        payload = commands.job_payload(job)
        data = commands.pack_push(self.codec, payload)
        limit = self.max_command_bytes
        if limit is not None and len(data) > limit:
            raise ValueError(too_big(payload, len(data), limit))
        if _testmode.current is not None:  # faktory.testing.fake()/inline(): nothing is sent
            _testmode.current.push((payload,))
            return str(payload["jid"])
        self._call(data)
        return str(payload["jid"])

    def push_bulk(self, jobs: Iterable[Job | dict[str, Any]], *, chunk_size: int = 1000,
                  concurrency: int | None = None) -> dict[str | int, tuple[str, dict[str, Any]]]:
        """Enqueue many jobs with PUSHB; return ``{key: (reason, payload)}`` for every job not
        enqueued (``{}`` when all were), keyed by jid, or by the job's index in ``jobs``
        when it has no usable jid: exactly ``Client.push_bulk``'s chunking, validation,
        rejections and ``BulkPushError`` (the same code, ``faktory.bulk``).

        ``jobs`` is consumed lazily, ``chunk_size`` jobs at a time; up to ``concurrency``
        chunks (default ``min(pool_size, 4)``) are pipelined on one connection (written back
        to back, then their replies read).  Chunks written when the connection dropped are
        sent once more on a fresh one.  If a chunk fails for good, no more of ``jobs`` is
        consumed and ``BulkPushError`` is raised with the rejections so far and how many
        jobs were certainly enqueued, certainly not, and unknown (with their jids)."""
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        if concurrency is None:
            concurrency = min(self.pool_size, 4)
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        state = BulkState()
        it = enumerate(jobs)
        window: list[tuple[bytes, Chunk]] = []
        exhausted = False
        while not exhausted and state.error is None:
            chunk, exhausted = take_chunk(it, chunk_size, state, commands.job_payload)
            for part, data in pack_chunk(chunk, state, self.codec, self.max_command_bytes):
                window.append((data, part))
            if window and (len(window) >= concurrency or exhausted):
                self._push_window(window, state)
                window = []
        for _, part in window:  # taken, never sent: the push stopped before them
            state.not_enqueued += len(part)
        state.raise_if_failed(self.address)
        return state.rejected

    def _push_window(self, window: list[tuple[bytes, Chunk]], state: BulkState) -> None:
        mode = _testmode.current
        if mode is not None:  # faktory.testing.fake()/inline(): nothing is sent
            for _, chunk in window:
                mode.push([payload for _, payload in chunk])
                state.enqueued += len(chunk)
            return
        pending = window
        resent = False
        while pending:
            try:
                conn = self._checkout()
            except FaktoryConnectionError as exc:  # nothing of these chunks was written
                for _, chunk in pending:
                    state.not_sent(chunk, exc)
                return
            try:
                replies, error = conn.execute_many([data for data, _ in pending])
            except BaseException:
                conn.abort()
                self._checkin(conn)
                for _, chunk in pending:
                    state.unsure(chunk)
                raise
            self._checkin(conn)
            for reply, (_, chunk) in zip(replies, pending, strict=False):
                if isinstance(reply, ServerError):
                    state.unsure(chunk, reply)  # as Client: a chunk whose PUSHB failed stops the push
                else:
                    record_reply(reply, chunk, state)
            pending = pending[len(replies):]
            if error is None or not pending:
                return
            if resent or isinstance(error, (CommandTimeout, ConnectionProtocolError)):
                for _, chunk in pending:
                    state.unsure(chunk, error)
                return
            resent = True
            log.info("connection to %s lost during PUSHB (%s); sending %d chunk(s) again",
                     self.address, error, len(pending))

    # -- consuming ---------------------------------------------------------------------
    def fetch(self, *queues: str) -> dict[str, Any] | None:
        """FETCH a job from the first non-empty queue in the order given; ``None`` when none
        arrived within the server's 2 s wait.  Blocks up to that long."""
        data = commands.pack_fetch(self.codec, queues)
        timeout = self.command_timeout
        reply = self._call(data, None if timeout is None else timeout + FETCH_BLOCK)
        if reply is None:
            return None
        job: dict[str, Any] = commands.loads(reply)
        return job

    def ack(self, jid: str) -> None:
        """Acknowledge a fetched job."""
        self._call(self.codec.pack_ack(jid))

    def fail(self, jid: str, exc: BaseException | None = None, *, errtype: str | None = None,
             message: str | None = None, backtrace: list[str] | None = None,
             backtrace_limit: int = commands.MAX_BACKTRACE) -> None:
        """Report a fetched job as failed (as ``Client.fail``)."""
        payload = commands.fail_payload(jid, exc, errtype=errtype, message=message, backtrace=backtrace,
                                        backtrace_limit=backtrace_limit)
        self._call(self.codec.pack_json("FAIL", payload))

    def beat(self, current_state: str | None = None, rss_kb: int | None = None) -> str:
        """Heartbeat for this client's ``wid``: ``"OK"``, ``"quiet"`` or ``"terminate"``."""
        payload = commands.beat_payload(self.wid, current_state, rss_kb)
        return commands.parse_beat(self._call(self.codec.pack_json("BEAT", payload)))

    # -- administration ----------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The server's INFO document."""
        info: dict[str, Any] = commands.loads(self._call(b"INFO\r\n"))
        return info

    def flush(self) -> None:
        """Delete every queue, set and counter on the server."""
        self._call(b"FLUSH\r\n")

    def queue_pause(self, *queues: str) -> None:
        """Pause queues (``"*"`` = all)."""
        self._call(self.codec.pack_command("QUEUE", "PAUSE", *commands.queue_args(queues, True)))

    def queue_resume(self, *queues: str) -> None:
        """Resume paused queues (``"*"`` = all)."""
        self._call(self.codec.pack_command("QUEUE", "RESUME", *commands.queue_args(queues, True)))

    def queue_remove(self, *queues: str) -> None:
        """Delete queues and their jobs (``"*"`` = all)."""
        self._call(self.codec.pack_command("QUEUE", "REMOVE", *commands.queue_args(queues, True)))

    def queue_latency(self, *queues: str) -> dict[str, float]:
        """Seconds since the oldest job of each queue was enqueued (no wildcard)."""
        reply = self._call(self.codec.pack_command("QUEUE", "LATENCY", *commands.queue_args(queues, False)))
        return commands.queue_latency(reply)

    @property
    def retries(self) -> SyncMutation:
        """The retry set, for MUTATE operations (``client.retries.of_type("X").kill()``)."""
        return SyncMutation(self, Mutation(self, "retries"))  # type: ignore[arg-type]

    @property
    def scheduled(self) -> SyncMutation:
        """The scheduled set, for MUTATE operations."""
        return SyncMutation(self, Mutation(self, "scheduled"))  # type: ignore[arg-type]

    @property
    def dead(self) -> SyncMutation:
        """The dead set, for MUTATE operations."""
        return SyncMutation(self, Mutation(self, "dead"))  # type: ignore[arg-type]
