"""``faktory bench``: the embedded server, a producer and a worker, with throughput figures.

Starts the embedded server in a child process (so that server and client do not share a
GIL), pushes jobs through the library's client (single PUSHes from concurrent tasks, then
PUSHB batches), runs a worker over them with a no-op job, and prints jobs per second for
each phase.  ``--url`` points it at a running server instead (it FLUSHes nothing and uses
its own queue).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import uuid
from typing import Sequence

__all__ = ["main"]


def _start_server(stack: contextlib.ExitStack, loop: str, storage: str | None) -> str:
    """Start the embedded server in a child process (stopped when ``stack`` closes)."""
    from faktory.server.process import ServerProcess, ServerStartError

    try:
        return stack.enter_context(ServerProcess(storage, loop=loop, start_timeout=15)).url
    except ServerStartError as exc:
        raise SystemExit(f"faktory bench: {exc}") from exc


def _payload(queue: str, arg: int) -> dict:
    return {"jid": uuid.uuid4().hex, "jobtype": "noop", "args": [arg], "queue": queue, "retry": 25}


async def _run(url: str, jobs: int, concurrency: int, out) -> dict[str, float]:
    from faktory.client import Client
    from faktory.worker import Worker

    queue = "bench-" + uuid.uuid4().hex[:8]
    results: dict[str, float] = {}
    async with Client(url, pool_size=20) as client:
        # Phase 1: single PUSHes from 20 concurrent tasks.
        singles = max(jobs // 4, 1)
        per_task = -(-singles // 20)

        async def pusher(n: int) -> None:
            for _ in range(n):
                await client.push(_payload(queue, 1))

        start = time.perf_counter()
        await asyncio.gather(*(pusher(per_task) for _ in range(20)))
        elapsed = time.perf_counter() - start
        results["push/s"] = per_task * 20 / elapsed

        # Phase 2: PUSHB in batches of 1000.
        start = time.perf_counter()
        rejected = await client.push_bulk(_payload(queue, i) for i in range(jobs))
        elapsed = time.perf_counter() - start
        if rejected:
            raise SystemExit(f"faktory bench: the server rejected {len(rejected)} jobs")
        results["push_bulk jobs/s"] = jobs / elapsed
        total = per_task * 20 + jobs

    # Phase 3: a worker drains the queue with a no-op job.
    done = 0
    finished = asyncio.Event()
    worker = Worker(url=url, concurrency=concurrency, queues=[queue])

    async def noop(*_args: object) -> None:
        nonlocal done
        done += 1
        if done >= total:
            finished.set()

    worker.register("noop", noop)
    cpu0 = time.process_time()
    start = time.perf_counter()
    task = asyncio.ensure_future(worker.work(handle_signals=False))
    try:
        await asyncio.wait_for(finished.wait(), timeout=max(60.0, total / 500))
    finally:
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        await worker.stop()
        await asyncio.wait_for(task, 30)
    results["worker jobs/s"] = total / elapsed
    results["worker CPU ms/1000 jobs"] = cpu * 1e6 / total
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faktory bench", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs pushed with PUSHB (default 20000)")
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    parser.add_argument("--url", help="use a running server instead of starting the embedded one")
    parser.add_argument("--storage", help="run the embedded server durable, on this SQLite file")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=None)
    args = parser.parse_args(argv)

    from faktory.cli import loop_choice, run_loop
    from faktory.protocol import IMPLEMENTATION

    loop = loop_choice(args.loop)
    with contextlib.ExitStack() as stack:
        url = args.url or _start_server(stack, loop, args.storage)
        where = args.url or f"embedded server ({'durable: ' + args.storage if args.storage else 'in memory'})"
        print(f"faktory bench: {where}, codec {IMPLEMENTATION}, loop {loop}, pid {os.getpid()}")
        results = run_loop(lambda: _run(url, args.jobs, args.concurrency, sys.stdout), loop)
    width = max(map(len, results))
    for name, value in results.items():
        print(f"  {name:<{width}}  {value:>10,.1f}")
    return 0
