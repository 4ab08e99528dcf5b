"""A fault-injecting TCP proxy for the chaos tests: clients connect to it, it forwards to a
server on 127.0.0.1, and on the way it splits writes into small pieces, delays them,
resets connections and half-closes them, at random (seeded, so a run can be replayed).

    async with ChaosProxy(upstream_port, seed=7) as proxy:
        client = Client(proxy.url)

Every fault is counted in ``proxy.stats``.  Faults hit a connection after a random number
of bytes has passed (so handshakes, commands and replies are all cut somewhere).
"""
from __future__ import annotations

import asyncio
import collections
import random
from typing import Any


class ChaosProxy:
    """See the module docstring.  ``fault_rate``: the share of connections that get a fault
    (a reset or a half-close) after ``1..fault_after`` bytes; ``split_rate``: the share of
    reads forwarded in several pieces; ``max_delay``: seconds a piece may wait."""

    def __init__(self, upstream_port: int, *, seed: int = 0, fault_rate: float = 0.5,
                 fault_after: int = 40_000, split_rate: float = 0.2, max_delay: float = 0.003) -> None:
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.fault_rate = fault_rate
        self.fault_after = fault_after
        self.split_rate = split_rate
        self.max_delay = max_delay
        self.stats: collections.Counter[str] = collections.Counter()
        self.enabled = True  # False: forward cleanly (e.g. to let a test settle)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def __aenter__(self) -> "ChaosProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            self.stats["upstream refused"] += 1
            cwriter.transport.abort()
            return
        self._writers.update((cwriter, swriter))
        fault = None
        if self.enabled and self.rng.random() < self.fault_rate:
            fault = (self.rng.choice(("reset", "half-close")), self.rng.randint(1, self.fault_after))
        state = {"bytes": 0}
        pumps = [asyncio.ensure_future(self._pump(creader, swriter, state, fault, cwriter, swriter)),
                 asyncio.ensure_future(self._pump(sreader, cwriter, state, fault, cwriter, swriter))]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.wait(pumps, timeout=1.0)
        finally:
            for pump in pumps:
                pump.cancel()
                self._tasks.discard(pump)
            for writer in (cwriter, swriter):
                writer.transport.abort()
                self._writers.discard(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict[str, int],
                    fault: tuple[str, int] | None, cwriter: asyncio.StreamWriter,
                    swriter: asyncio.StreamWriter) -> None:
        rng = self.rng
        while True:
            data = await reader.read(65536)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            pieces = [data]
            if self.enabled and len(data) > 1 and rng.random() < self.split_rate:
                cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 4))))
                pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
                self.stats["split writes"] += 1
            for piece in pieces:
                if fault is not None and state["bytes"] + len(piece) >= fault[1]:
                    kind = fault[0]
                    self.stats[kind] += 1
                    if kind == "reset":
                        cwriter.transport.abort()
                        swriter.transport.abort()
                    else:  # the client reads EOF; what it sends still goes through
                        cut = fault[1] - state["bytes"]
                        writer.write(piece[:max(cut, 0)])
                        if cwriter.can_write_eof():
                            cwriter.write_eof()
                        await asyncio.sleep(0.05)
                        cwriter.transport.abort()
                        swriter.transport.abort()
                    return
                state["bytes"] += len(piece)
                writer.write(piece)
                await writer.drain()
                if len(pieces) > 1 and self.max_delay:
                    await asyncio.sleep(rng.uniform(0, self.max_delay))
