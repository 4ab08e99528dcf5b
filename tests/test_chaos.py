"""Chaos: jobs pushed and worked through a proxy that resets, splits, delays and half-closes
connections, while the durable server is SIGKILLed and restarted twice.  Nothing may be
lost: at the end every job was either run or is still held by the server (queued,
reserved, or to be retried), read back from its storage file; jobs run twice are bounded by
what can be in flight when a fault strikes.

CI runs 10,000 jobs; the long run is

    FAKTORY_CHAOS_JOBS=100000 python -m pytest tests/test_chaos.py -s -p no:cacheprovider

which prints the same summary line.
"""
from __future__ import annotations

import asyncio
import collections
import os

import pytest

from chaos import ChaosProxy
from faktory import Client, Job, Worker
from faktory.errors import FaktoryError
from faktory.server import ServerProcess, free_port
from faktory.server.sqlite import SqlitePersistence

JOBS = int(os.environ.get("FAKTORY_CHAOS_JOBS", "10000"))
BATCH = 100
CONCURRENCY = 20

pytestmark = [pytest.mark.slow, pytest.mark.internals]


@pytest.mark.timeout_s(max(300, JOBS // 50))
async def test_nothing_is_lost_through_resets_split_writes_and_two_sigkills(tmp_path):
    storage = str(tmp_path / "chaos.db")
    port = free_port()
    servers = [ServerProcess(storage, port=port).start()]
    runs: collections.Counter[int] = collections.Counter()
    progress = asyncio.Event()
    kills = 0
    try:
        async with ChaosProxy(port, seed=20261201) as proxy:
            worker = Worker(url=proxy.url, concurrency=CONCURRENCY, queues=["chaos"], timeout=5)

            @worker.register
            async def chaos(n: int) -> None:
                runs[n] += 1
                progress.set()

            work = asyncio.ensure_future(worker.work(handle_signals=False))
            pushed = 0
            async with Client(proxy.url, reconnect_timeout=60) as producer:
                for start in range(0, JOBS, BATCH):
                    batch = [Job("chaos", n, jid=f"chaos-{n:010d}", queue="chaos", retry=3, reserve_for=60)
                             for n in range(start, min(start + BATCH, JOBS))]
                    while True:  # the application's retry: a batch that failed is pushed again
                        try:
                            assert await producer.push_bulk(batch) == {}
                            break
                        except FaktoryError:
                            proxy.stats["batches pushed again"] += 1
                    pushed += len(batch)
                    if kills < 2 and pushed >= JOBS * (kills + 1) // 3:
                        servers[-1].kill()  # SIGKILL: no goodbye, whatever was in flight
                        kills += 1
                        servers.append(ServerProcess(storage, port=port).start())
            # Work until everything ran, or nothing moved for 10 s (what is left is held by
            # the server: reserved by a FETCH whose reply died with a connection).
            while len(runs) < JOBS:
                progress.clear()
                try:
                    await asyncio.wait_for(progress.wait(), 10)
                except asyncio.TimeoutError:
                    break
            proxy.enabled = False
            await worker.stop()
            await work
    finally:
        for server in servers:  # stop() is a no-op on one already killed
            server.stop()
    persistence = SqlitePersistence(storage)
    try:
        held = {record.jid for record in persistence.load().records}
    finally:
        persistence.close()
    everything = {f"chaos-{n:010d}" for n in range(JOBS)}
    ran = {f"chaos-{n:010d}" for n in runs}
    lost = everything - ran - held
    duplicates = sum(count - 1 for count in runs.values())
    faults = proxy.stats["reset"] + proxy.stats["half-close"] + kills
    print(f"\nchaos: {JOBS} jobs, {len(ran)} ran, {len(held - ran)} held by the server, lost {len(lost)}, "
          f"{duplicates} duplicate runs; {kills} SIGKILLs, {dict(proxy.stats)}")
    assert not lost, sorted(lost)[:10]
    assert kills == 2 and proxy.stats["reset"] and proxy.stats["half-close"] and proxy.stats["split writes"]
    # A fault can make run again at most the jobs in flight: the worker's slots, and a PUSHB
    # batch pushed again after its reply was lost.
    assert duplicates <= faults * (CONCURRENCY + BATCH), (duplicates, faults)
    assert len(ran) >= JOBS * 0.9  # the chaos did not stop the work
