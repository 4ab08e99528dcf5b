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


#: Pushes per block of ``push_blocks`` (each side's blocks alternate within one round).
BLOCK_JOBS = 2000


async def push_blocks(url: str, classes: tuple[type[Client], type[Client]],
                      jobs: int = JOBS) -> tuple[dict[str, float], dict[str, float]]:
    """``PRODUCERS`` tasks each calling ``push`` in a loop, for two clients in one round:
    both open, the producers pushing ``BLOCK_JOBS`` jobs through one, then through the
    other, in the order ABBA BAAB...; each side's figures summed over its ``jobs /
    BLOCK_JOBS`` blocks, after one warm-up block each (the client opens its connections
    and its batches settle).  The two sides of a ratio so see the same spells of the
    machine and of the server (a durable server's checkpoints, say) to within a block
    (50-100 ms), where whole rounds back to back saw them a second apart: the durable
    push ratio of single round pairs read 0.65-1.43, of these rounds 1.10-1.30."""
    blocks = max(2, jobs // BLOCK_JOBS)
    per = BLOCK_JOBS // PRODUCERS
    sums = [{"writes": 0.0, "cpu": 0.0, "wall": 0.0}, {"writes": 0.0, "cpu": 0.0, "wall": 0.0}]
    async with classes[0](url) as a, classes[1](url) as b:
        await a.flush()
        clients = (a, b)
        batches = [[[Job("noop", p, n, queue=QUEUE, retry=0) for n in range(per)]
                    for p in range(PRODUCERS)] for _ in range(2 * (blocks + 1))]

        async def producer(push: Any, mine: list[Job]) -> None:
            for job in mine:
                await push(job)

        for index, jobs_of_block in enumerate(batches):
            side = (0, 1, 1, 0)[index % 4] ^ (index // 4) % 2
            push = clients[side].push
            meter = Meter()
            await asyncio.gather(*(producer(push, mine) for mine in jobs_of_block))
            figures = meter.stop(per * PRODUCERS)
            if index >= 2:  # the first block of each side warms it up
                for key in ("writes", "cpu"):
                    sums[side][key] += figures[key] / blocks
                sums[side]["wall"] += figures["wall"]
        assert (await a.info())["faktory"]["queues"][QUEUE] == per * PRODUCERS * len(batches)
    first, second = ({"writes": s["writes"], "cpu": s["cpu"], "rate": per * PRODUCERS * blocks / s["wall"],
                      "wall": s["wall"]} for s in sums)
    return first, second


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
