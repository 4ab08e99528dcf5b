"""Raw-socket peers for what only a fake can show: garbage bytes, a close in the middle
of a reply, a server speaking another protocol version, one that never answers.
Everything a real server decides is tested against ``faktory.server`` instead."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

HI = b'+HI {"v":2}\r\n'


class FakePeer:
    """``async with FakePeer(script) as peer:`` a TCP listener on 127.0.0.1 (free port)
    running ``script(reader, writer)`` for each connection; ``peer.received`` collects
    the lines each connection sent, ``peer.connections`` counts accepted connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.port = 0
        self.connections = 0
        self.received: list[list[bytes]] = []
        self._server: asyncio.base_events.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task] = set()
        self.closed = asyncio.Event()  # set when a connection's client side reached EOF

    async def __aenter__(self) -> "FakePeer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=1 << 24)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()  # the scripts' reads then see EOF and they return
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        lines: list[bytes] = []
        self.received.append(lines)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        recording = _Recording(reader, lines)
        try:
            await self.script(recording, writer)  # type: ignore[arg-type]
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)


class _Recording:
    """A StreamReader wrapper that records every line read."""

    def __init__(self, reader: asyncio.StreamReader, lines: list[bytes]) -> None:
        self._reader = reader
        self.lines = lines

    async def readline(self) -> bytes:
        line = await self._reader.readline()
        if line:
            self.lines.append(line)
        return line

    async def read(self, n: int = -1) -> bytes:
        return await self._reader.read(n)


async def handshake(reader, writer, hi: bytes = HI) -> bytes:
    """Play the server side of HI/HELLO/OK; return the HELLO line."""
    writer.write(hi)
    hello = await reader.readline()
    writer.write(b"+OK\r\n")
    await writer.drain()
    return hello


# -- scripts more than one test module plays ----------------------------------------------------

def answers(*replies: bytes, hi: bytes = HI) -> Script:
    """A peer that completes the handshake, answers the commands it reads with ``replies``
    (one each, in order) and then waits for the client to hang up."""
    async def script(reader, writer) -> None:
        await handshake(reader, writer, hi)
        for reply in replies:
            await reader.readline()
            writer.write(reply)
            await writer.drain()
        await reader.read()

    return script


async def closes_mid_reply(reader, writer) -> None:
    """Handshake, read one command, send the start of a bulk reply and close."""
    await handshake(reader, writer)
    await reader.readline()
    writer.write(b'$100\r\n{"jid":')
    await writer.drain()
    writer.close()


async def rejects_password(reader, writer) -> None:
    """Ask for a password (HI with a salt), answer the HELLO with ``Invalid password``, close."""
    writer.write(b'+HI {"v":2,"i":2,"s":"00ff"}\r\n')
    await reader.readline()
    writer.write(b"-ERR Invalid password\r\n")
    writer.close()
