"""The loads the benchmarks time: each is one round, in a fresh event loop (``pairs.run``),
against a server given by URL, returning per-job figures (see ``pairs.Meter``)."""
from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from faktory import protocol
from faktory.client import Client
from faktory.connection import Connection
from faktory.job import Job
from faktory.worker import Worker
from pairs import Meter

JOBS = int(os.environ.get("FAKTORY_BENCH_JOBS", "20000"))
PRODUCERS = 10
CONCURRENCY = 20
QUEUE = "bench"


async def prefill(url: str, jobs: int) -> None:
    """FLUSH the server and queue ``jobs`` no-op jobs (not measured)."""
    async with Client(url) as client:
        await client.flush()
        rejected = await client.push_bulk(
            {"jid": f"bench{i:012d}", "jobtype": "noop", "args": [], "queue": QUEUE, "retry": 0}
            for i in range(jobs))
        assert not rejected


async def worker_round(url: str, worker_class: type[Worker] = Worker, jobs: int = JOBS,
                       codec: str | None = None) -> dict[str, float]:
    """``jobs`` no-op jobs pre-filled, drained by a worker at concurrency 20 (measured from
    its start to the last job run)."""
    await prefill(url, jobs)
    done = asyncio.Event()
    count = 0

    async def noop() -> None:
        nonlocal count
        count += 1
        if count == jobs:
            done.set()

    with protocol.selected(codec or protocol.IMPLEMENTATION):
        worker = worker_class(url=url, concurrency=CONCURRENCY, queues=[QUEUE])
    worker.register("noop", noop)
    meter = Meter()
    task = asyncio.ensure_future(worker.work(handle_signals=False))
    await asyncio.wait_for(done.wait(), 300)
    figures = meter.stop(jobs)
    # Not measured: the queue is empty, so a graceful stop would wait for the FETCHes the
    # server holds (2 s each); kill() drops them at once.
    await worker.kill()
    await task
    assert worker.processed == jobs, (worker.processed, jobs)
    return figures


async def bare_round(url: str, jobs: int = JOBS) -> dict[str, float]:
    """The same jobs through the least a client can do: 20 coroutines, each on its own
    connection, FETCH then ACK, one command at a time (no worker machinery at all)."""
    await prefill(url, jobs)
    host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
    codec = protocol.codec
    fetch = codec.pack_fetch([QUEUE])
    pack_ack = codec.pack_ack
    decode = json.JSONDecoder().decode
    remaining = jobs
    meter = Meter()
    conns = [await Connection.open(host, int(port)) for _ in range(CONCURRENCY)]

    async def loop_one(conn: Connection) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            reply = await conn.execute(fetch)
            await conn.execute(pack_ack(decode(reply.decode())["jid"]))

    await asyncio.gather(*(loop_one(conn) for conn in conns))
    figures = meter.stop(jobs)
    for conn in conns:
        conn.close()
    return figures


async def push_round(url: str, client_class: type[Client] = Client, jobs: int = JOBS) -> dict[str, float]:
    """``PRODUCERS`` tasks each calling ``push`` ``jobs / PRODUCERS`` times."""
    per = jobs // PRODUCERS
    async with client_class(url) as client:
        await client.flush()
        batch = [[Job("noop", p, n, queue=QUEUE, retry=0) for n in range(per)] for p in range(PRODUCERS)]

        async def producer(mine: list[Job]) -> None:
            push = client.push
            for job in mine:
                await push(job)

        meter = Meter()
        await asyncio.gather(*(producer(mine) for mine in batch))
        figures = meter.stop(per * PRODUCERS)
        assert (await client.info())["faktory"]["queues"][QUEUE] == per * PRODUCERS
    return figures


async def bulk_round(url: str, client_class: type[Client] = Client, jobs: int = 5 * JOBS) -> dict[str, float]:
    """``push_bulk`` of ``jobs`` jobs (chunks of 1,000)."""
    async with client_class(url) as client:
        await client.flush()
        batch = [Job("noop", n, queue=QUEUE, retry=0) for n in range(jobs)]
        meter = Meter()
        rejected = await client.push_bulk(batch)
        figures = meter.stop(jobs)
        assert not rejected
    return figures


def figures_of(fig: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    """``pairs.compare``'s keys with ``a``/``b`` renamed (``new``/``baseline``, say)."""
    out: dict[str, Any] = {}
    for key, value in fig.items():
        if key.startswith("a "):
            key = a + key[1:]
        elif key.startswith("b "):
            key = b + key[1:]
        out[key] = value
    return out
