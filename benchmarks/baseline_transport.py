"""The baseline the transport benchmarks compare against: one command per write.

This is the transport the library had before pipelining, rebuilt on today's classes so
that the same ``Client`` and ``Worker`` code runs over it:

* ``OneCommandPerWrite``: every command is written the moment it is issued (one
  ``transport.write``, so one system call, per command); replies still resolve a FIFO
  of futures.
* ``LeasePerCommandClient``: every command leases a connection for itself (exclusive
  use from write to reply), as the old pool did; no callback fast path, so a worker's
  ACK/FAIL is one awaited command each, on a connection of its own (``BaselineWorker``
  never sends it on a fetch connection, as the pipelined worker does).

Nothing here is used by the library; it exists so that a benchmark can show what the
pipelined transport saves, measured in the same run on the same machine.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable

from faktory.client import Client
from faktory.connection import Connection
from faktory.worker import Worker

class OneCommandPerWrite(Connection):
    """A ``Connection`` that writes each command at once, by itself."""

    __slots__ = ()

    def _schedule_flush(self) -> None:
        self.flush()  # now, by itself


class LeasePerCommandClient(Client):
    """A ``Client`` whose every command takes a connection to itself, one write each:
    the old pool (idle connections most recent first, a FIFO of waiting callers, each
    given back connection handed straight to the next one in line)."""

    _connection_class = OneCommandPerWrite

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: list[Connection] = []
        self._open_count = 0
        self._queue: deque[asyncio.Future[Connection | None]] = deque()

    async def connect(self) -> Client:
        self._closed = False
        self._checkin(await self._checkout())
        return self

    async def close(self, timeout: float = 5.0) -> None:
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        await super().close(timeout)

    async def _checkout(self) -> Connection:
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
                self._open_count -= 1
            if self._open_count < self.pool_size:
                self._open_count += 1
                try:
                    return await self._connection_class.open(
                        self.host, self.port, password=self.password, ssl=self.ssl,
                        hello=self._hello(), connect_timeout=self.connect_timeout,
                        command_timeout=self.command_timeout, _codec=self.codec)
                except BaseException:
                    self._open_count -= 1
                    raise
            fut: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            self._queue.append(fut)
            conn_or_none = await fut
            if conn_or_none is not None and not conn_or_none.closed:
                return conn_or_none

    def _checkin(self, conn: Connection) -> None:
        if conn.closed or self._closed:
            conn.close()
            self._open_count -= 1
            conn = None  # type: ignore[assignment]
        while self._queue:
            fut = self._queue.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        if conn is not None:
            self._idle.append(conn)

    async def _call(self, data: bytes, timeout: float | None = None, resend: bool = True,
                    heavy: bool = False) -> Any:
        conn = await self._checkout()
        try:
            return await conn.execute(data, timeout=timeout)
        finally:
            self._checkin(conn)

    def _send_callback(self, data: bytes, fn: Callable[[Any, Any], None], arg: Any) -> bool:
        return False  # the worker then awaits each ACK/FAIL through _call

    def _pick(self) -> Connection | None:
        return None  # no shared connection: every command (``push`` included) leases one in _call


class BaselineWorker(Worker):
    """The same ``Worker``, over the baseline transport: each ACK/FAIL leases a
    connection of the report client for itself (never joining the FETCHes' write)."""

    _client_class = LeasePerCommandClient

    def _idle_fetch_conn(self) -> Connection | None:
        return None
