"""``Connection``: one TCP (or TLS) connection to a Faktory server, used as a pipeline.

The connection *is* the ``asyncio.Protocol``.  Its state machine:

* **Commands out.**  ``send(data)`` appends the packed command to an output batch and
  its future to the FIFO of pending replies, and returns the future at once.  The batch
  leaves in one ``transport.write`` at the end of the event-loop iteration (``call_soon``),
  so the commands of many callers issued in one iteration cost one system call.
  ``execute(data)`` is ``send`` plus waiting for the reply.
* **Replies in.**  ``data_received`` feeds the codec's ``Reader``; the codec calls back
  once per complete reply, which resolves the oldest pending future (Faktory answers
  every command in order).  No task, no StreamReader, no timer per command.
* **Cancellation.**  A caller that stops waiting (cancelled, ``wait_for`` timed out)
  leaves its entry in the FIFO: the reply is still read and matched in order, so the
  connection never desynchronises.  A command sent with an ``orphan`` callback (FETCH)
  gets its reply handed to that callback instead of being dropped, so a job nobody waits
  for any more goes back to the server at once.
* **Deadlines.**  One watchdog timer per connection, at the earliest pending deadline.
  A command that gets no reply within its timeout means the server is not answering
  this connection: the command fails with ``CommandTimeout``, the connection is closed,
  and the commands queued behind it fail with a ``FaktoryConnectionError`` (they may be
  sent again elsewhere).
* **Faults.**  A failed write, bytes that are not RESP, a reply nobody asked for or the
  socket closing all end the connection: every pending command fails with the same
  cause, and a closed connection is never used again (``send`` raises ``NotSentError``,
  which means "not written, safe to send elsewhere").
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import ssl as _ssl
from collections import deque
from types import ModuleType
from typing import Any, Callable

from faktory import protocol
from faktory.errors import (
    CommandTimeout,
    ConnectionProtocolError,
    FaktoryConnectionError,
    HandshakeError,
    NotSentError,
    ProtocolError,
    ServerError,
)

__all__ = ["Callback", "Connection", "ConnectionProtocolError", "NotSentError", "hash_password",
           "PROTOCOL_VERSION", "TransportStats"]

log = logging.getLogger("faktory.connection")

PROTOCOL_VERSION = 2
_END = b"END\r\n"
_INF = float("inf")

#: ``orphan(reply)``: what to do with the reply of a command whose caller stopped waiting.
Orphan = Callable[[Any], None]


class TransportStats:
    """Counts of what every ``Connection`` of this process asked the kernel to do:
    ``writes`` (one per batch written) and ``reads`` (one per ``data_received``), and
    ``commands`` sent.  Benchmarks read them per job; they cost one integer add each."""

    writes = 0
    reads = 0
    commands = 0

    @classmethod
    def snapshot(cls) -> tuple[int, int, int]:
        """``(writes, reads, commands)`` now."""
        return cls.writes, cls.reads, cls.commands


def hash_password(password: str, salt: str, iterations: int) -> str:
    """The ``pwdhash`` of HELLO: hex SHA-256 applied ``iterations`` times, first over the
    UTF-8 bytes of ``password + salt``, then over the previous 32-byte digest."""
    if iterations < 1:
        iterations = 1
    sha256 = hashlib.sha256
    digest = sha256((password + salt).encode("utf-8")).digest()
    for _ in range(iterations - 1):
        digest = sha256(digest).digest()
    return digest.hex()


def parse_greeting(greeting: Any, where: str) -> dict[str, Any]:
    """The server's first reply checked (``HI {json}``, protocol v2): its fields
    (``v``, and ``s``/``i`` when it wants a password).  Shared by ``Connection`` and
    ``SyncConnection``; ``where`` is ``host:port`` for the messages."""
    if isinstance(greeting, ServerError):
        raise greeting
    if not isinstance(greeting, str) or not greeting.startswith("HI "):
        raise HandshakeError(f"expected HI from {where}, got {greeting!r}")
    try:
        info = json.loads(greeting[3:])
        if not isinstance(info, dict):
            raise TypeError
        version = info["v"]
    except (ValueError, KeyError, TypeError):
        raise HandshakeError(f"malformed HI from {where}: {greeting!r}") from None
    if version != PROTOCOL_VERSION:
        err = HandshakeError(f"{where} speaks Faktory protocol v{version}, this client v{PROTOCOL_VERSION}")
        err.permanent = True  # type: ignore[attr-defined]  # retrying cannot help
        raise err
    return info


def hello_payload(info: dict[str, Any], hello: dict[str, Any] | None, password: str | None) -> dict[str, Any]:
    """HELLO's fields for a server that greeted with ``info``: the identity in ``hello``
    (``commands.hello_fields``), and ``pwdhash`` when the server asked for a password."""
    payload: dict[str, Any] = {"v": PROTOCOL_VERSION, "hostname": socket.gethostname()}
    if hello:
        payload.update(hello)
    payload["v"] = PROTOCOL_VERSION
    salt = info.get("s")
    if salt is not None and password is not None:
        payload["pwdhash"] = hash_password(password, str(salt), int(info.get("i", 1)))
    return payload


class Callback:
    """A pending command whose reply goes to ``fn(arg, reply)``, called straight from
    ``data_received`` (no future, no loop callback: the worker's hot path).

    ``reply`` is what a future would hold: the reply (a ``ServerError`` instance for an
    error line), or the ``FaktoryConnectionError`` the command failed with (the
    connection was lost, a write failed, or no reply came in time: ``CommandTimeout``).
    It quacks like the part of ``asyncio.Future`` the FIFO uses."""

    __slots__ = ("fn", "arg", "called")

    def __init__(self, fn: Callable[[Any, Any], None], arg: Any) -> None:
        self.fn = fn
        self.arg = arg
        self.called = False

    def done(self) -> bool:
        return self.called

    def set_result(self, reply: Any) -> None:
        if self.called:  # as a done future does: the FIFO's reader relies on it
            raise asyncio.InvalidStateError("this command's reply was handled already")
        self.called = True
        try:
            self.fn(self.arg, reply)
        except Exception:  # pragma: no cover - a handler must not break the connection
            log.exception("handling the reply of a command failed")

    set_exception = set_result

    def exception(self) -> None:
        return None


class _Unexpected(Exception):
    """Internal: a reply arrived with no command pending (raised out of the codec's
    dispatch loop, which leaves the replies after it buffered)."""

    def __init__(self, reply: Any) -> None:
        super().__init__()
        self.reply = reply


class Connection(asyncio.Protocol):
    """One connection to a Faktory server; create it with ``await Connection.open(...)``.

    ``await execute(packed_command)`` returns the reply (``str`` for simple strings,
    ``bytes`` for bulk strings, ``None`` for null) or raises the ``ServerError`` the
    server sent.  Any number of commands may be in flight at once, from any number of
    tasks; replies are matched in order, and commands issued in the same event-loop
    iteration are written together.
    """

    __slots__ = ("host", "port", "command_timeout", "codec", "_reader", "_loop", "_transport",
                 "_waiters", "_deadlines", "_orphans", "_out", "_batch_deadline", "_flush_handle", "_timer", "_timer_at",
                 "_paused", "_drain_waiters", "_idle_waiters", "_close_callbacks", "_exc", "closed",
                 "closing", "server_info", "_resolve", "_received")

    def __init__(self, host: str, port: int, *, command_timeout: float | None = 10.0,
                 codec: ModuleType | None = None, _codec: ModuleType | None = None) -> None:
        self.host = host
        self.port = port
        self.command_timeout = command_timeout
        if codec is not None:
            _codec = protocol.deprecated_codec_argument(codec, "Connection")
        self.codec = _codec or protocol.codec
        self._reader = self.codec.Reader()
        self._resolve = self._reader.resolve
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._deadlines: deque[float] = deque()
        self._orphans: dict[asyncio.Future[Any], Orphan] = {}
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        # The deadline of the commands in _out sent with the default timeout (None: none yet).
        self._batch_deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._close_callbacks: list[Callable[[Connection], None]] = []
        self._exc: FaktoryConnectionError | None = None  # why the connection is gone
        self.closed = False  # no command can be sent or answered any more
        self.closing = False  # aclose() started: no new commands, pending ones still answered
        self._received = False  # any byte from the server yet
        self.server_info: dict[str, Any] = {}

    # -- opening -----------------------------------------------------------------------
    @classmethod
    async def open(cls, host: str, port: int, *, password: str | None = None,
                   ssl: _ssl.SSLContext | None = None, server_hostname: str | None = None,
                   hello: dict[str, Any] | None = None, connect_timeout: float = 5.0,
                   command_timeout: float | None = 10.0, codec: ModuleType | None = None,
                   _codec: ModuleType | None = None) -> Connection:
        """Connect, read ``HI``, send ``HELLO`` and wait for ``+OK``, all within
        ``connect_timeout`` seconds.

        ``hello`` adds fields to HELLO (``wid``, ``hostname``, ``pid``, ``labels``);
        ``hostname`` defaults to this machine's.  Raises ``HandshakeError`` for a server
        that does not speak protocol v2 or closes during the handshake,
        ``InvalidPasswordError`` for a refused password, ``CommandTimeout`` when the
        whole handshake takes longer than ``connect_timeout``, and
        ``FaktoryConnectionError`` (from the ``OSError``) when the TCP/TLS connection
        cannot be made.
        """
        if codec is not None:
            _codec = protocol.deprecated_codec_argument(codec, "Connection.open")
        conn = cls(host, port, command_timeout=command_timeout, _codec=_codec)
        try:
            await asyncio.wait_for(conn._handshake(password, ssl, server_hostname, hello),
                                   connect_timeout)
        except asyncio.TimeoutError:
            silent = conn._transport is not None and not conn._received
            conn._abort(None)
            if silent:  # TCP is up, and not one byte in connect_timeout
                raise conn._no_greeting(f"sent nothing within {connect_timeout}s", ssl) from None
            raise CommandTimeout(
                f"connecting to Faktory at {host}:{port} timed out after {connect_timeout}s"
            ) from None
        except BaseException:
            conn._abort(None)
            raise
        return conn

    async def _handshake(self, password: str | None, ssl: _ssl.SSLContext | None,
                         server_hostname: str | None, hello: dict[str, Any] | None) -> None:
        hi = self._loop.create_future()
        self._waiters.append(hi)  # the server speaks first: HI is the first reply
        self._deadlines.append(_INF)
        try:
            await self._loop.create_connection(
                lambda: self, self.host, self.port, ssl=ssl,
                server_hostname=(server_hostname or self.host) if ssl is not None else None,
            )
        except _ssl.SSLCertVerificationError as exc:
            err = HandshakeError(f"TLS certificate of {self.host}:{self.port} rejected: {exc}")
            err.permanent = True  # type: ignore[attr-defined]  # retrying cannot help
            raise err from exc
        except _ssl.SSLError as exc:
            # A plain server greets first (+HI), which is no TLS record.
            err = HandshakeError(
                f"TLS handshake with {self.host}:{self.port} failed ({exc}): the server does not speak "
                "TLS on this port? Then use tcp:// rather than tcp+tls://")
            err.permanent = True  # type: ignore[attr-defined]
            raise err from exc
        except OSError as exc:
            raise FaktoryConnectionError(
                f"cannot connect to Faktory at {self.host}:{self.port}: {exc}") from exc
        try:
            greeting = await hi
        except FaktoryConnectionError as exc:
            if not self._received:  # a server restarting, or a TLS one: retried, with the hint
                err = self._no_greeting("closed the connection without a word", ssl)
                err.no_greeting = False  # type: ignore[attr-defined]
                raise err from exc
            raise HandshakeError(
                f"{self.host}:{self.port} closed the connection before HI: {exc}") from exc
        info = parse_greeting(greeting, f"{self.host}:{self.port}")
        self.server_info = info
        payload = hello_payload(info, hello, password)
        try:
            reply = await self.execute(self.codec.pack_json("HELLO", payload), timeout=None)
        except ServerError:
            raise
        except FaktoryConnectionError as exc:
            raise HandshakeError(
                f"{self.host}:{self.port} closed the connection during HELLO: {exc}") from exc
        if reply != "OK":
            raise HandshakeError(f"unexpected reply to HELLO from {self.host}:{self.port}: {reply!r}")

    def _no_greeting(self, what: str, ssl: _ssl.SSLContext | None) -> HandshakeError:
        # The server accepted the connection but sent no HI: a TLS server waits for the
        # client to speak first.  ``no_greeting`` lets the pool fail fast on a server it
        # never reached (a wrong scheme), and retry one it had reached (a restart).
        hint = "" if ssl is not None else ": a TLS server? Then use tcp+tls:// rather than tcp://"
        err = HandshakeError(f"{self.host}:{self.port} {what} instead of greeting with HI{hint}")
        err.no_greeting = True  # type: ignore[attr-defined]
        return err

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):  # not TCP (tests may use other families)
                pass

    def data_received(self, data: bytes) -> None:  # noqa: D102
        TransportStats.reads += 1
        self._received = True
        self._reader.feed(data)
        try:
            # The codec hands replies to waiting futures (and Callbacks) itself; what it
            # cannot (no waiter, a cancelled one, orphan handlers to consult) comes back
            # here one at a time.
            resolve, waiters, deadlines, orphans = self._resolve, self._waiters, self._deadlines, self._orphans
            while (left := resolve(waiters, deadlines, orphans)) is not None:
                self._on_reply(left[0])
        except ProtocolError as exc:
            err = ConnectionProtocolError(f"bad data from Faktory at {self.host}:{self.port}: {exc}")
            err.__cause__ = exc
            self._abort(err)
            return
        except _Unexpected as exc:
            self._unexpected(exc.reply)
            return
        if not self._waiters and self._idle_waiters:
            self._wake(self._idle_waiters)

    def _on_reply(self, reply: Any) -> None:
        # Called by the codec once per complete reply, in order.
        try:
            fut = self._waiters.popleft()
        except IndexError:
            raise _Unexpected(reply) from None
        self._deadlines.popleft()
        if not fut.done():
            fut.set_result(reply)
            if self._orphans:
                self._orphans.pop(fut, None)
        elif self._orphans:
            # The caller stopped waiting; the reply still belongs to this command.
            orphan = self._orphans.pop(fut, None)
            if orphan is not None:
                try:
                    orphan(reply)
                except Exception:  # pragma: no cover - a handler must not break the connection
                    log.exception("handling the reply of a cancelled command failed")

    def _unexpected(self, reply: Any) -> None:
        # A reply nobody asked for: the server reports a fatal condition (e.g. "too many
        # connections") before closing, or it does not speak Faktory.
        if isinstance(reply, ServerError):
            err: FaktoryConnectionError = FaktoryConnectionError(
                f"Faktory at {self.host}:{self.port} closed the connection: {reply}")
            err.__cause__ = reply
        else:
            err = ConnectionProtocolError(
                f"unsolicited reply from Faktory at {self.host}:{self.port}: {reply!r}")
        self._abort(err)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if self._exc is None:
            if exc is None:
                err = FaktoryConnectionError(f"Faktory at {self.host}:{self.port} closed the connection")
            else:
                err = FaktoryConnectionError(f"connection to Faktory at {self.host}:{self.port} lost: {exc}")
                err.__cause__ = exc
            self._fail(err)
        self._transport = None
        self._wake(self._drain_waiters)

    def pause_writing(self) -> None:  # noqa: D102
        self._paused = True

    def resume_writing(self) -> None:  # noqa: D102
        self._paused = False
        self._wake(self._drain_waiters)

    @staticmethod
    def _wake(waiters: list[asyncio.Future[None]]) -> None:
        pending = waiters[:]
        waiters.clear()
        for fut in pending:
            if not fut.done():
                fut.set_result(None)

    # -- commands ------------------------------------------------------------------------
    def send(self, data: bytes, timeout: float | None = None, orphan: Orphan | None = None,
             _entry: Any = None) -> asyncio.Future[Any]:
        """Queue one packed command and return the future of its reply (a ``ServerError``
        reply is the future's *result*, not its exception: see ``execute``).

        The command is written with the others of this event-loop iteration.  ``timeout``
        (seconds) defaults to the connection's ``command_timeout`` (``None``: no limit),
        counted from the first command of this iteration's batch that took the default.
        ``orphan(reply)`` is called with the reply if the future was cancelled before it
        arrived.  Raises ``NotSentError`` when the connection is closed or closing.
        """
        # The one place a command joins the pending FIFO (``send_callback`` passes its
        # ``Callback`` as ``_entry``), kept in one frame: it runs for every command.
        if self._exc is not None or self.closing:
            raise self._not_sent()
        if type(data) is not bytes:
            raise TypeError(f"a packed command must be bytes, not {type(data).__name__}")
        fut = self._loop.create_future() if _entry is None else _entry
        self._waiters.append(fut)
        out = self._out
        if timeout is None and out and self._batch_deadline is not None:
            # Not the first of this iteration's batch: the batch's deadline (its commands
            # are queued within one loop iteration, so at most that much early).
            self._deadlines.append(self._batch_deadline)
            out.append(data)
            if orphan is not None:
                self._orphans[fut] = orphan
            return fut
        default = timeout is None
        if default:
            timeout = self.command_timeout
        if timeout is None:
            deadline = _INF
        else:
            deadline = self._loop.time() + timeout
            if self._timer is None or deadline < self._timer_at:
                self._arm(deadline)
        self._deadlines.append(deadline)
        if not out:
            self._batch_deadline = deadline if default else None
        elif default and self._batch_deadline is None:
            self._batch_deadline = deadline
        self._out.append(data)
        if self._flush_handle is None:  # the first command of this iteration's batch
            self._schedule_flush()
        if orphan is not None:
            self._orphans[fut] = orphan
        return fut

    def _schedule_flush(self) -> None:
        # The batch leaves at the end of this loop iteration, with whatever else joins it.
        self._flush_handle = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the queued commands now, in one ``transport.write``.  A write that fails
        ends the connection (its state is then unknown)."""
        self._flush_handle = None
        out = self._out
        if not out or self._exc is not None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        TransportStats.writes += 1
        TransportStats.commands += len(out)
        out.clear()
        try:
            self._transport.write(data)  # type: ignore[union-attr]
        except Exception as exc:
            err = FaktoryConnectionError(f"writing to Faktory at {self.host}:{self.port} failed: {exc!r}")
            err.__cause__ = exc
            self._abort(err)

    def send_callback(self, data: bytes, fn: Callable[[Any, Any], None], arg: Any = None,
                      timeout: float | None = None) -> None:
        """Queue one packed command whose reply (or failure) is passed to ``fn(arg, reply)``
        (see ``Callback``).  Raises ``NotSentError`` when the connection is closed or
        closing; after that, ``fn`` is called exactly once."""
        self.send(data, timeout, None, Callback(fn, arg))

    async def execute(self, data: bytes, *, timeout: float | None = None) -> Any:
        """Send one packed command and return its reply; a ``ServerError`` reply is raised.

        ``timeout`` (seconds) defaults to the connection's ``command_timeout``; ``None``
        there means no limit.  Raises ``CommandTimeout`` when no reply came in time (the
        connection is then closed), ``NotSentError`` when the connection was already
        closed (nothing was written), ``FaktoryConnectionError`` when it is lost before
        the reply.  Cancelling the caller leaves the connection in step (the reply is read
        and dropped).
        """
        if self._paused:
            await self._wait_writable()
        reply = await self.send(data, timeout)
        if isinstance(reply, ServerError):
            raise reply
        return reply

    def _not_sent(self) -> NotSentError:
        if self._exc is not None:
            err = NotSentError(str(self._exc))
            err.__cause__ = self._exc
            return err
        return NotSentError(f"connection to {self.host}:{self.port} is closing")

    async def _wait_writable(self) -> None:
        while self._paused:
            if self._exc is not None:
                raise self._not_sent()
            fut = self._loop.create_future()
            self._drain_waiters.append(fut)
            await fut
        if self._exc is not None:
            raise self._not_sent()

    async def wait_idle(self) -> None:
        """Wait until no command is pending (returns at once when none is, or when the
        connection is closed)."""
        while self._waiters and not self.closed:
            fut = self._loop.create_future()
            self._idle_waiters.append(fut)
            await fut

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadlines = self._deadlines
        if not deadlines:
            return
        earliest = min(deadlines)
        if earliest == _INF:
            return
        now = self._loop.time()
        if earliest > now + 0.001:  # loops may fire a timer up to their clock resolution early
            self._arm(earliest)
            return
        # The server has not answered in time.  The commands that timed out get
        # CommandTimeout; those behind them a plain connection error (they may be resent).
        timeout = CommandTimeout(
            f"no reply from Faktory at {self.host}:{self.port} within a command's timeout "
            f"(the connection's default is {self.command_timeout}s); connection closed")
        behind = FaktoryConnectionError(
            f"connection to Faktory at {self.host}:{self.port} closed: an earlier command timed out")
        behind.__cause__ = timeout
        for fut, deadline in zip(self._waiters, deadlines, strict=True):
            if deadline <= now + 0.001 and not fut.done():
                fut.set_exception(timeout)
                fut.exception()
        log.warning("%s", timeout)
        self._fail(behind)
        if self._transport is not None:
            self._transport.abort()

    # -- closing -------------------------------------------------------------------------
    def add_close_callback(self, callback: Callable[[Connection], None]) -> None:
        """Call ``callback(self)`` once, when the connection ends (at once if it has)."""
        if self.closed:
            self._loop.call_soon(callback, self)
        else:
            self._close_callbacks.append(callback)

    async def aclose(self, timeout: float | None = None) -> None:
        """Close gracefully: refuse new commands, wait (at most ``timeout`` seconds) for
        the replies of those pending, then send ``END`` and close."""
        if self.closed:
            return
        self.closing = True
        if self._waiters:
            self.flush()
            try:
                await asyncio.wait_for(self.wait_idle(), timeout)
            except asyncio.TimeoutError:
                pass
        self.close()

    def close(self) -> None:
        """Send ``END`` and close now; never waits for a reply (the server sends none).
        Commands still pending fail with ``FaktoryConnectionError``."""
        if self.closed:
            return
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if self._out and self._exc is None:
                self.flush()
            try:
                transport.write(_END)
            except Exception:  # pragma: no cover - transport already broken
                pass
            transport.close()
        self._fail(FaktoryConnectionError(f"connection to {self.host}:{self.port} closed by the client"))

    def _abort(self, exc: FaktoryConnectionError | None) -> None:
        # Fail everything pending with ``exc`` and drop the socket without END.
        if exc is not None and self._exc is None:
            log.warning("%s", exc)
        self._fail(exc or FaktoryConnectionError(f"connection to {self.host}:{self.port} aborted"))
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, exc: FaktoryConnectionError) -> None:
        if self._exc is None:
            self._exc = exc
        first = not self.closed
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._out.clear()
        waiters = self._waiters
        self._deadlines.clear()
        self._orphans.clear()
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_exception(self._exc)
                fut.exception()  # mark retrieved: a future nobody awaits must not log
        self._wake(self._drain_waiters)
        self._wake(self._idle_waiters)
        if first:
            callbacks, self._close_callbacks = self._close_callbacks, []
            for callback in callbacks:
                try:
                    callback(self)
                except Exception:  # pragma: no cover
                    log.exception("a connection close callback failed")

    @property
    def pending(self) -> int:
        """Commands sent (or queued) whose replies have not arrived yet."""
        return len(self._waiters)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"open, {len(self._waiters)} pending"
        return f"<Connection {self.host}:{self.port} {state}>"
