"""Client-side costs: what the pool adds to a round trip, and the CPU cost of PUSHB encoding.

* ``test_roundtrip[connection]`` vs ``test_roundtrip[client]``: ``ROUNDTRIPS`` sequential
  ACKs over one open ``Connection`` (``execute``) and through ``Client.ack`` (choosing a
  pooled connection, resend bookkeeping).  The server runs in a child process (its own
  core); both sides on uvloop.  Gate: the client is at most 25 % slower than the bare
  connection.
* ``test_bulk_encode[job|dict]``: turning 1,000 jobs into one PUSHB line as
  ``push_bulk`` does (``Job`` objects are sent as they are; dicts are validated first).
* ``test_build_jobs``: constructing 1,000 ``Job`` objects.

Run: ``python -m pytest benchmarks/bench_client.py --benchmark-only``.
"""
from __future__ import annotations

import asyncio
from typing import Any, Iterator

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
    uvloop = None

from faktory.bulk import BulkState, pack_chunk, take_chunk
from faktory.client import Client
from faktory.connection import Connection
from faktory.job import Job
from faktory.server import ServerProcess

ROUNDTRIPS = 2000
BULK = 1000

BENCHMARK_GATES = [
    {"name": "Client.ack within 1.25x of Connection.execute", "slow": "test_roundtrip[connection]",
     "fast": "test_roundtrip[client]", "min_ratio": 1 / 1.25},
]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The embedded server in a child process (its own core), stopped by its pid."""
    with ServerProcess(args=["--log-level", "warning"]) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.mark.parametrize("via", ["connection", "client"])
def test_roundtrip(benchmark, server_url: str, loop: asyncio.AbstractEventLoop, via: str) -> None:
    client = Client(server_url, pool_size=1)
    loop.run_until_complete(client.connect())
    data = client.codec.pack_ack("bench-no-such-jid")
    try:
        if via == "connection":
            conn: Connection = client._shared[0]

            async def many() -> None:
                execute = conn.execute
                for _ in range(ROUNDTRIPS):
                    await execute(data)
        else:
            ack = client.ack

            async def many() -> None:
                for _ in range(ROUNDTRIPS):
                    await ack("bench-no-such-jid")

        benchmark.pedantic(lambda: loop.run_until_complete(many()), rounds=7, warmup_rounds=1)
    finally:
        loop.run_until_complete(client.close())


def _chunk_jobs(kind: str) -> list[Any]:
    if kind == "job":
        return [Job("SendEmail", i, "user@example.com", {"k": i}, queue="mail") for i in range(BULK)]
    return [{"jobtype": "SendEmail", "args": [i, "user@example.com", {"k": i}], "queue": "mail"}
            for i in range(BULK)]


@pytest.mark.parametrize("kind", ["job", "dict"])
def test_bulk_encode(benchmark, kind: str) -> None:
    client = Client("tcp://127.0.0.1:1")
    jobs = _chunk_jobs(kind)

    def encode() -> bytes | None:
        state = BulkState()
        chunk, _ = take_chunk(enumerate(jobs), BULK, state, client._payload)
        (_, data), = pack_chunk(chunk, state, client.codec, client.max_command_bytes)
        return data

    data = benchmark(encode)
    assert data is not None and data.startswith(b"PUSHB [")


def test_build_jobs(benchmark) -> None:
    benchmark(lambda: [Job("SendEmail", i, "user@example.com", queue="mail") for i in range(BULK)])
