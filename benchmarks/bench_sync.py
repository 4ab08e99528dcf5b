"""The blocking ``SyncClient`` next to the asyncio ``Client``: sequential ``push``.

* ``test_push[client-1]``: ``PUSHES`` sequential ``await client.push(job)`` in one task
  (uvloop); ``test_push[client-8]``: the same pushes from 8 tasks at once through one
  ``Client`` (the asyncio way to have 8 producers).
* ``test_push[sync-1]``: ``PUSHES`` sequential ``client.push(job)`` from one thread;
  ``test_push[sync-8]``: the same pushes from 8 threads at once through one ``SyncClient``
  (pool of 8): a WSGI server's threads.

The server runs in a child process (its own core).  Gate: the blocking client from one
thread is at least half as fast as the asyncio one (each push is one round trip both
ways; the blocking one pays a system call per send and per receive; measured 0.8x to 1.9x
on this shared machine).  The 8-thread figure is printed, not gated: on 2 cores, with the
server on the other one, the GIL and the system calls bound it (measured 0.8x to 1.5x one
thread, where 8 asyncio tasks pipelined on shared connections reach up to 3x); that threads
do not wait for each other's I/O is a test (``tests/test_sync.py``), not a timing.
``benchmark_report`` prints pushes/s of each.

* ``test_push_cpu``: in interleaved blocks of 50 (``_cpu_round``), ``PUSHES`` sequential
  ``SyncClient.push`` against the least a blocking client can do for the same pushes (the
  library's own payload check and encoding, ``sendall`` of the line and ``recv`` of its
  ``+OK`` on a bare socket): this process's CPU per push, the two sides making the same
  system calls, so what the gate reads is what ``SyncClient`` adds (its pool, its lock, its
  reply parsing), whatever the wall clock does.

Run: ``python -m pytest benchmarks/bench_sync.py --benchmark-only``.
"""
from __future__ import annotations

import asyncio
import os
import socket
import statistics
import threading
import time
from typing import Any, Iterator

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
    uvloop = None

from faktory import Client, Job, SyncClient, commands, protocol
from faktory.server import ServerProcess
from pairs import PAIRS

PUSHES = 2000
THREADS = 8

BENCHMARK_GATES = [
    # ratio = time(slow) / time(fast): "fast at least 0.5x as fast as slow" is min_ratio 0.5
    {"name": "SyncClient.push from 1 thread >= 0.5x Client.push", "slow": "test_push[client-1]",
     "fast": "test_push[sync-1]", "min_ratio": 0.5},
    # median of 9 rounds of interleaved blocks: 7 runs 1.22-1.36 (rounds 1.04-1.50), so a
    # SyncClient.push 25% costlier (1.53-1.70) fails; a bare push's CPU more read 2.56
    {"name": "SyncClient.push: client CPU <= 1.55x a bare blocking socket's", "figure": "sync push CPU ratio",
     "by": "test_push_cpu", "max": 1.55,
     "note": "what SyncClient adds to a blocking round trip (its pool, lock, reply parsing)"},
]

#: ``FAKTORY_BENCH_INJECT=slow-sync-push``: CPU added to each ``SyncClient.push`` of
#: ``test_push_cpu`` (a busy loop), as much as a bare socket's push took in the block
#: before, for the tests of the gates (``tests/test_benchmark_gates.py``): the CPU gate
#: must then fail.
INJECT = os.environ.get("FAKTORY_BENCH_INJECT", "")


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


_BEST: dict[str, float] = {}


def benchmark_report() -> list[str]:
    """pushes/s of each variant (best round)."""
    if not _BEST:
        return []
    lines = [f"{'push, ' + format(PUSHES, ',') + ' jobs':<34}{'pushes/s':>10}"]
    labels = {"client-1": "Client, 1 task", "client-8": "Client, 8 tasks",
              "sync-1": "SyncClient, 1 thread", "sync-8": "SyncClient, 8 threads"}
    for key in ("client-1", "client-8", "sync-1", "sync-8"):
        if key in _BEST:
            lines.append(f"{labels[key]:<34}{PUSHES / _BEST[key]:>10,.0f}")
    return lines


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


def _jobs(n: int, tag: int = 0) -> list[Job]:
    return [Job("BenchSync", tag, i, queue="bench-sync") for i in range(n)]


@pytest.mark.parametrize("variant", ["client-1", "client-8", "sync-1", "sync-8"])
def test_push(benchmark, server_url: str, loop: asyncio.AbstractEventLoop, variant: str) -> None:
    kind, _, count = variant.partition("-")
    producers = int(count)
    per = PUSHES // producers
    if kind == "client":
        client = Client(server_url, pool_size=producers)
        loop.run_until_complete(client.connect())

        async def one(jobs: list[Job]) -> None:
            push = client.push
            for job in jobs:
                await push(job)

        async def run(batches: list[list[Job]]) -> None:
            await asyncio.gather(*(one(batch) for batch in batches))

        def setup() -> tuple[tuple[list[list[Job]]], dict[str, object]]:
            return ([_jobs(per, t) for t in range(producers)],), {}

        try:
            benchmark.pedantic(lambda batches: loop.run_until_complete(run(batches)), setup=setup,
                               rounds=7, warmup_rounds=1)
            loop.run_until_complete(client.flush())
        finally:
            loop.run_until_complete(client.close())
    else:
        sync = SyncClient(server_url, pool_size=producers)
        sync.connect()

        def worker(jobs: list[Job]) -> None:
            push = sync.push
            for job in jobs:
                push(job)

        def run_threads(batches: list[list[Job]]) -> None:
            if producers == 1:
                worker(batches[0])
                return
            threads = [threading.Thread(target=worker, args=(batch,)) for batch in batches]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        def setup_sync() -> tuple[tuple[list[list[Job]]], dict[str, object]]:
            return ([_jobs(per, t) for t in range(producers)],), {}

        try:
            benchmark.pedantic(run_threads, setup=setup_sync, rounds=7, warmup_rounds=1)
            sync.flush()
        finally:
            sync.close()
    _BEST[variant] = benchmark.stats.stats.min


def _bare_socket(url: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert sock.recv(4096).startswith(b"+HI")
    sock.sendall(b'HELLO {"v":2}\r\n')
    assert sock.recv(4096) == b"+OK\r\n"
    return sock


#: Pushes per block of the interleaved CPU comparison (see ``_cpu_round``).
BLOCK = 50


def _cpu_round(url: str) -> tuple[float, float]:
    """``PUSHES`` sequential ``SyncClient.push`` and as many pushes on a bare socket, in
    interleaved blocks of ``BLOCK`` (the two sides swapping places every block): this
    process's CPU per push of each.  On this machine the CPU of a blocking round trip
    moves 24-90 us from one second to the next (the kernel's wake-ups): rounds of the two
    sides back to back saw a slow spell on one side only and read 1.25 to 2.1 for the
    same code; blocks of 50 pushes see the same spells on both sides."""
    sync_jobs, bare_jobs = _jobs(PUSHES, 1), _jobs(PUSHES, 2)
    sync = SyncClient(url, pool_size=1)
    sync.connect()
    sock = _bare_socket(url)
    codec, payload_of, pack = protocol.codec, commands.job_payload, commands.pack_push
    send, recv = sock.sendall, sock.recv
    push = sync.push
    if INJECT == "slow-sync-push":
        # as much CPU again as a bare push: a fixed 20 us was +0.8 on the ratio where a
        # bare push cost 24 us, +0.23 where it cost 87 us
        extra = [20e-6]

        def push(job: Job, _push: Any = sync.push) -> None:
            _spin(extra[0])
            _push(job)
    cpu_sync = cpu_bare = 0.0
    clock = time.process_time
    try:
        for block, at in enumerate(range(0, PUSHES, BLOCK)):
            for side in ((0, 1) if block % 2 else (1, 0)):
                started = clock()
                if side == 0:
                    for job in sync_jobs[at:at + BLOCK]:
                        push(job)
                    cpu_sync += clock() - started
                else:
                    for job in bare_jobs[at:at + BLOCK]:
                        send(pack(codec, payload_of(job)))
                        assert recv(64) == b"+OK\r\n"
                    took = clock() - started
                    cpu_bare += took
                    if INJECT == "slow-sync-push":
                        extra[0] = took / BLOCK
    finally:
        sync.close()
        sock.sendall(b"END\r\n")
        sock.close()
    return cpu_sync / PUSHES, cpu_bare / PUSHES


def test_push_cpu(benchmark, record_figure, server_url: str) -> None:
    """SyncClient.push against a bare blocking socket: client CPU per push, interleaved
    blocks within each round, the median of ``2 * PAIRS - 1`` rounds (after a warm-up)."""
    rounds: list[tuple[float, float]] = []

    def measure() -> None:
        _cpu_round(server_url)  # warm-up
        rounds.extend(_cpu_round(server_url) for _ in range(2 * PAIRS - 1))

    benchmark.group = "SyncClient: CPU per push, interleaved blocks"
    benchmark.pedantic(measure, rounds=1, iterations=1)
    ratios = sorted(round(a / b, 3) for a, b in rounds)
    record_figure("sync push CPU ratio", statistics.median(ratios))
    benchmark.extra_info.update({"cpu ratios": ratios,
                                 "sync cpu": statistics.median(a for a, _ in rounds),
                                 "bare cpu": statistics.median(b for _, b in rounds)})
