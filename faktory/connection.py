"""``Connection``: one TCP (or TLS) connection to a Faktory server.

The connection *is* the ``asyncio.Protocol``: ``data_received`` feeds the codec's
``Reader`` and hands each complete reply to the oldest waiting future (one FIFO of
futures; Faktory answers every command in order).  ``execute(data)`` is one
``transport.write`` and one future: no task, no StreamReader, no timer per command.

Timeouts use one watchdog timer per connection, not one per command: each pending
command's deadline sits in a deque beside its future, and the timer fires at the
earliest one.  When a command times out the whole connection is closed (its FIFO can
no longer be matched to replies) and every pending command fails with the same
``CommandTimeout``.  Losing the connection or receiving bytes that are not RESP
likewise fails every pending command with one ``FaktoryConnectionError`` (for bad
bytes, a ``ConnectionProtocolError``, which is also a ``ProtocolError``).

A caller that is cancelled while waiting leaves its future in the FIFO; the reply
still arrives, is consumed and dropped, and the connection stays usable.
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
from typing import Any

from faktory import protocol
from faktory._const import NEED_DATA
from faktory.errors import (
    CommandTimeout,
    FaktoryConnectionError,
    HandshakeError,
    ProtocolError,
    ServerError,
)

__all__ = ["Connection", "ConnectionProtocolError", "hash_password", "PROTOCOL_VERSION"]

log = logging.getLogger("faktory.connection")

PROTOCOL_VERSION = 2
_END = b"END\r\n"
_INF = float("inf")


class ConnectionProtocolError(ProtocolError, FaktoryConnectionError):
    """The server sent bytes that are not valid RESP (or a reply nobody asked for);
    the connection was aborted.  Both a ``ProtocolError`` and a ``FaktoryConnectionError``."""


class NotSentError(FaktoryConnectionError):
    """The connection was already closed: the command was never written, so it is
    always safe to send it again on another connection."""


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


class Connection(asyncio.Protocol):
    """One connection to a Faktory server; create it with ``await Connection.open(...)``.

    ``execute(packed_command)`` returns the reply (``str`` for simple strings, ``bytes``
    for bulk strings, ``None`` for null) or raises the ``ServerError`` the server sent.
    Several commands may be in flight at once (pipelining); replies are matched in order.
    """

    __slots__ = ("host", "port", "command_timeout", "codec", "_reader", "_loop", "_transport",
                 "_waiters", "_deadlines", "_timer", "_timer_at", "_paused", "_drain_waiters",
                 "_exc", "closed", "server_info")

    def __init__(self, host: str, port: int, *, command_timeout: float | None = 10.0,
                 codec: ModuleType | None = None) -> None:
        self.host = host
        self.port = port
        self.command_timeout = command_timeout
        self.codec = codec or protocol.codec
        self._reader = self.codec.Reader()
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._deadlines: deque[float] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._exc: FaktoryConnectionError | None = None  # why the connection is gone
        self.closed = False
        self.server_info: dict[str, Any] = {}

    # -- opening -----------------------------------------------------------------------
    @classmethod
    async def open(cls, host: str, port: int, *, password: str | None = None,
                   ssl: _ssl.SSLContext | None = None, server_hostname: str | None = None,
                   hello: dict[str, Any] | None = None, connect_timeout: float = 5.0,
                   command_timeout: float | None = 10.0, codec: ModuleType | None = None) -> Connection:
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
        conn = cls(host, port, command_timeout=command_timeout, codec=codec)
        try:
            await asyncio.wait_for(conn._handshake(password, ssl, server_hostname, hello),
                                   connect_timeout)
        except asyncio.TimeoutError:
            conn._abort(None)
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
        except OSError as exc:
            raise FaktoryConnectionError(
                f"cannot connect to Faktory at {self.host}:{self.port}: {exc}") from exc
        try:
            greeting = await hi
        except FaktoryConnectionError as exc:
            raise HandshakeError(
                f"{self.host}:{self.port} closed the connection before HI: {exc}") from exc
        if isinstance(greeting, ServerError):
            raise greeting
        if not isinstance(greeting, str) or not greeting.startswith("HI "):
            raise HandshakeError(f"expected HI from {self.host}:{self.port}, got {greeting!r}")
        try:
            info = json.loads(greeting[3:])
            version = info["v"]
        except (ValueError, KeyError, TypeError):
            raise HandshakeError(f"malformed HI from {self.host}:{self.port}: {greeting!r}") from None
        if version != PROTOCOL_VERSION:
            err = HandshakeError(
                f"{self.host}:{self.port} speaks Faktory protocol v{version}, this client v{PROTOCOL_VERSION}")
            err.permanent = True  # type: ignore[attr-defined]
            raise err
        self.server_info = info
        payload: dict[str, Any] = {"v": PROTOCOL_VERSION, "hostname": socket.gethostname()}
        if hello:
            payload.update(hello)
        payload["v"] = PROTOCOL_VERSION
        salt = info.get("s")
        if salt is not None and password is not None:
            payload["pwdhash"] = hash_password(password, str(salt), int(info.get("i", 1)))
        try:
            reply = await self.execute(self.codec.pack_json("HELLO", payload), timeout=None)
        except ServerError:
            raise
        except FaktoryConnectionError as exc:
            raise HandshakeError(
                f"{self.host}:{self.port} closed the connection during HELLO: {exc}") from exc
        if reply != "OK":
            raise HandshakeError(f"unexpected reply to HELLO from {self.host}:{self.port}: {reply!r}")

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
        reader = self._reader
        reader.feed(data)
        waiters = self._waiters
        deadlines = self._deadlines
        try:
            reply = reader.gets()
            while reply is not NEED_DATA:
                if not waiters:
                    self._unexpected(reply)
                    return
                fut = waiters.popleft()
                deadlines.popleft()
                if not fut.done():  # a cancelled caller's reply is consumed and dropped
                    fut.set_result(reply)
                reply = reader.gets()
        except ProtocolError as exc:
            err = ConnectionProtocolError(f"bad data from Faktory at {self.host}:{self.port}: {exc}")
            err.__cause__ = exc
            self._abort(err)

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
        self._wake_writers()

    def pause_writing(self) -> None:  # noqa: D102
        self._paused = True

    def resume_writing(self) -> None:  # noqa: D102
        self._paused = False
        self._wake_writers()

    def _wake_writers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # -- commands ------------------------------------------------------------------------
    async def execute(self, data: bytes, *, timeout: float | None = None) -> Any:
        """Send one packed command and return its reply; a ``ServerError`` reply is raised.

        ``timeout`` (seconds) defaults to the connection's ``command_timeout``; ``None``
        there means no limit.  On timeout the connection is closed and ``CommandTimeout``
        raised.  Raises ``NotSentError`` when the connection was already closed (nothing
        was written), ``FaktoryConnectionError`` when it is lost before the reply.
        """
        if self._exc is not None:
            raise NotSentError(str(self._exc)) from self._exc
        if self._paused:
            await self._wait_writable()
        fut = self._loop.create_future()
        self._waiters.append(fut)
        if timeout is None:
            timeout = self.command_timeout
        if timeout is None:
            self._deadlines.append(_INF)
        else:
            deadline = self._loop.time() + timeout
            self._deadlines.append(deadline)
            if self._timer is None or deadline < self._timer_at:
                self._arm(deadline)
        self._transport.write(data)  # type: ignore[union-attr]
        reply = await fut
        if isinstance(reply, ServerError):
            raise reply
        return reply

    async def _wait_writable(self) -> None:
        while self._paused:
            if self._exc is not None:
                raise NotSentError(str(self._exc)) from self._exc
            fut = self._loop.create_future()
            self._drain_waiters.append(fut)
            await fut
        if self._exc is not None:
            raise NotSentError(str(self._exc)) from self._exc

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._deadlines:
            return
        earliest = min(self._deadlines)
        if earliest == _INF:
            return
        now = self._loop.time()
        if earliest <= now + 0.001:  # loops may fire a timer up to their clock resolution early
            self._abort(CommandTimeout(
                f"no reply from Faktory at {self.host}:{self.port} within a command's timeout "
                f"(the connection's default is {self.command_timeout}s); connection closed"))
        else:
            self._arm(earliest)

    # -- closing -------------------------------------------------------------------------
    def close(self) -> None:
        """Send ``END`` and close; never waits for a reply (the server sends none).
        Commands still pending fail with ``FaktoryConnectionError``."""
        if self.closed:
            return
        self._fail(FaktoryConnectionError(f"connection to {self.host}:{self.port} closed by the client"))
        transport = self._transport
        if transport is not None and not transport.is_closing():
            try:
                transport.write(_END)
            except Exception:  # pragma: no cover - transport already broken
                pass
            transport.close()

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
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = self._waiters
        self._deadlines.clear()
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_exception(self._exc)
                fut.exception()  # mark retrieved: a future nobody awaits must not log
        self._wake_writers()

    @property
    def pending(self) -> int:
        """Commands written whose replies have not arrived yet."""
        return len(self._waiters)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"open, {len(self._waiters)} pending"
        return f"<Connection {self.host}:{self.port} {state}>"
