"""Worker throughput and client CPU: a no-op job, concurrency 20, 20,000 jobs pre-filled.

The embedded server runs in a child process (uvloop), so that it does not share this
process's GIL or its CPU accounting; the worker runs here, on uvloop.  Each round
pre-fills the queue (not timed) and then drains it with a fresh worker (timed).

Two measures, each with its own benchmark (pytest-benchmark's ``timer``):

* ``wall``: seconds to drain the queue (jobs/s = 20,000 / time);
* ``cpu``: CPU seconds this process spent doing it (``time.process_time``), i.e. the
  client's CPU (ms per 1,000 jobs = time / 20).

for the compiled and the pure-Python codec (``protocol.selected(name)``), and for a baseline: a
bare FETCH/ACK loop (20 coroutines, each FETCH then ACK on its own connection, no worker
machinery): about the least client CPU a job can cost, and what the server and codec
allow.  The gates (``BENCHMARK_GATES``, see
``benchmarks/conftest.py``) are ratios measured in the same run.

Run: ``python -m pytest benchmarks/bench_worker.py --benchmark-only``, or
``python benchmarks/bench_worker.py`` for plain figures (jobs/s, CPU ms per 1,000 jobs).
``FAKTORY_BENCH_JOBS`` changes the number of jobs.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Iterator

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
    uvloop = None

from faktory import protocol
from faktory.server import ServerProcess

JOBS = int(os.environ.get("FAKTORY_BENCH_JOBS", "20000"))
CONCURRENCY = 20
QUEUE = "bench"
ROUNDS = 2
WORKER_OPTIONS: dict = {}  # experiments: e.g. {"fetchers": 8}

BENCHMARK_GATES = [
    {
        # Both are bound by this process's CPU when the machine is quiet (the bare loop
        # spends ~25 % less per job), and the bare loop keeps 20 commands in flight
        # against the worker's 4 FETCHes, so it rides out scheduling stalls better:
        # measured 0.5-0.8x.  A quarter catches a stall or a lost slot, not noise.
        "name": "worker throughput >= 1/4 of a bare FETCH/ACK loop",
        "slow": "test_bare_loop[wall]",
        "fast": "test_worker[wall-cython]",
        "min_ratio": 0.25,
    },
    {
        # The worker's machinery (slots, a task per job, contexts, heartbeat, pools)
        # costs at most as much client CPU again as the bare protocol work.
        "name": "worker client CPU <= 2x a bare FETCH/ACK loop",
        "slow": "test_bare_loop[cpu]",
        "fast": "test_worker[cpu-cython]",
        "min_ratio": 0.5,
    },
    {
        # The codec is a small part of a worker's CPU (most goes to the event loop and
        # the job machinery): measured 1.0-1.4x in favour of the compiled codec over two
        # rounds; 15 % of slack keeps the noise of a shared machine from failing the run
        # while a compiled codec that got slower than the pure one still does.
        "name": "worker client CPU, compiled codec <= pure codec + 15%",
        "slow": "test_worker[cpu-python]",
        "fast": "test_worker[cpu-cython]",
        "min_ratio": 1 / 1.15,
    },
]

#: Targets of the worker issue on this 2-core machine (the official Go worker's figure).
TARGET_JOBS_PER_S = 7_000
TARGET_CPU_MS_PER_1000 = 40.0
_FIGURES: dict[tuple[str, str], float] = {}


def benchmark_report() -> list[str]:
    """jobs/s and client CPU per 1,000 jobs of each variant, next to the targets."""
    variants = sorted({variant for variant, _ in _FIGURES})
    if not variants:
        return []
    lines = [f"{'worker, ' + str(JOBS) + ' no-op jobs':<28}{'jobs/s':>10}{'CPU ms/1000 jobs':>18}"]
    for variant in variants:
        wall, cpu = _FIGURES.get((variant, "wall")), _FIGURES.get((variant, "cpu"))
        lines.append(f"{variant:<28}{'-' if wall is None else format(JOBS / wall, ',.0f'):>10}"
                     f"{'-' if cpu is None else format(cpu * 1e6 / JOBS, '.1f'):>18}")
    lines.append(f"(best round; targets: >= {TARGET_JOBS_PER_S:,} jobs/s, "
                 f"< {TARGET_CPU_MS_PER_1000:.0f} ms CPU per 1,000 jobs)")
    return lines


class LoopThread:
    """An event loop (uvloop) in a thread of this process.

    Each round's timed part (``call``) ends the moment the last job is done; stopping the
    worker (which lets its FETCHes in flight end: up to 2 s on an empty queue) happens
    in the next round's untimed setup.  CPU accounting (``time.process_time``) covers
    every thread of this process, so it still counts the worker's whole CPU.
    """

    def __init__(self) -> None:
        import threading

        self.loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-loop", daemon=True)
        self.thread.start()
        self.cleanup: list = []  # coroutine functions to run before the next round

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(300)

    def tidy(self) -> None:
        while self.cleanup:
            self.call(self.cleanup.pop()())

    def close(self) -> None:
        self.tidy()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


# -- one round ---------------------------------------------------------------------------------


async def prefill(url: str, jobs: int = JOBS) -> None:
    from faktory.client import Client

    async with Client(url) as client:
        await client.queue_remove(QUEUE)
        rejected = await client.push_bulk(
            {"jid": f"bench{i:012d}", "jobtype": "noop", "args": [], "queue": QUEUE, "retry": 0}
            for i in range(jobs))
        assert not rejected, list(rejected.items())[:3]


async def drain_with_worker(lt: LoopThread, url: str, codec_name: str,
                            jobs: int = JOBS) -> dict[str, float]:
    """Start a Worker and return (wall and CPU seconds) once ``jobs`` no-op jobs ran;
    the worker is stopped by ``lt.tidy()``."""
    from faktory.worker import Worker

    done = asyncio.Event()
    count = 0

    async def noop() -> None:
        nonlocal count
        count += 1
        if count == jobs:
            done.set()

    with protocol.selected(codec_name):
        worker = Worker(url=url, concurrency=CONCURRENCY, queues=[QUEUE], **WORKER_OPTIONS)
    worker.register("noop", noop)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    task = asyncio.ensure_future(worker.work(handle_signals=False))

    async def stop() -> None:
        await worker.stop()
        await task

    lt.cleanup.append(stop)
    await done.wait()
    return {"wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0}


async def drain_bare(lt: LoopThread, url: str, codec_name: str = "cython",
                     jobs: int = JOBS) -> dict[str, float]:
    """The baseline: CONCURRENCY coroutines, each FETCH -> json.loads -> ACK on its own
    connection, until ``jobs`` jobs were acknowledged."""
    from faktory.connection import Connection

    codec = protocol.CODECS[codec_name]
    fetch = codec.pack_fetch([QUEUE])
    pack_ack = codec.pack_ack
    host, port = url.rsplit("/", 1)[1].split(":")
    remaining = jobs
    acked = 0
    done = asyncio.Event()

    async def loop_one(conn: Connection) -> None:
        nonlocal remaining, acked
        loads = json.loads
        while remaining > 0:
            reply = await conn.execute(fetch)
            if reply is None:
                continue
            remaining -= 1
            await conn.execute(pack_ack(loads(reply)["jid"]))
            acked += 1
            if acked == jobs:
                done.set()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    with protocol.selected(codec_name):
        conns = [await Connection.open(host, int(port)) for _ in range(CONCURRENCY)]
    loops = asyncio.gather(*(loop_one(conn) for conn in conns))

    async def stop() -> None:
        await loops
        for conn in conns:
            conn.close()

    lt.cleanup.append(stop)
    await done.wait()
    return {"wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0}


# -- benchmarks ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with ServerProcess(loop="uvloop") as srv:
        yield srv.url


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


MEASURES = [
    pytest.param("wall", id="wall", marks=pytest.mark.benchmark(timer=time.perf_counter)),
    pytest.param("cpu", id="cpu", marks=pytest.mark.benchmark(timer=time.process_time)),
]


def _codec_param(name: str):
    return pytest.param(name, id=name, marks=pytest.mark.skipif(
        name not in protocol.CODECS, reason=f"{name} codec not built"))


def _bench(benchmark, lt: LoopThread, url: str, measure: str, drain, variant: str) -> None:
    figures: list[dict[str, float]] = []

    def setup() -> None:
        lt.tidy()  # stop the previous round's worker
        lt.call(prefill(url))

    benchmark.group = f"worker, {JOBS} no-op jobs ({measure})"
    benchmark.pedantic(lambda: figures.append(lt.call(drain())), setup=setup,
                       rounds=ROUNDS, iterations=1)
    best = min(figures, key=lambda f: f[measure])
    _FIGURES[(variant, measure)] = best[measure]
    benchmark.extra_info.update(jobs_per_s=round(JOBS / best["wall"]),
                                cpu_ms_per_1000_jobs=round(best["cpu"] * 1e6 / JOBS, 1))


@pytest.mark.parametrize("codec_name", [_codec_param("cython"), _codec_param("python")])
@pytest.mark.parametrize("measure", MEASURES)
def test_worker(benchmark, server_url, loop_thread, measure, codec_name):
    """20,000 no-op jobs through a Worker (concurrency 20)."""
    _bench(benchmark, loop_thread, server_url, measure,
           lambda: drain_with_worker(loop_thread, server_url, codec_name),
           f"Worker, {codec_name} codec")


@pytest.mark.parametrize("measure", MEASURES)
def test_bare_loop(benchmark, server_url, loop_thread, measure):
    """The same jobs through a bare FETCH/ACK loop (compiled codec): the baseline."""
    if "cython" not in protocol.CODECS:
        pytest.skip("compiled codec not built")
    _bench(benchmark, loop_thread, server_url, measure,
           lambda: drain_bare(loop_thread, server_url), "bare FETCH/ACK loop")


def main() -> int:
    """Plain figures: ``python benchmarks/bench_worker.py``."""
    rows = []
    with ServerProcess(loop="uvloop") as srv:
        url = srv.url
        lt = LoopThread()
        try:
            for label, drain in [
                ("worker, compiled codec", lambda: drain_with_worker(lt, url, "cython")),
                ("worker, pure-Python codec", lambda: drain_with_worker(lt, url, "python")),
                ("bare FETCH/ACK loop", lambda: drain_bare(lt, url)),
            ]:
                if "cython" not in protocol.CODECS and "pure" not in label:
                    continue
                best = None
                for _ in range(ROUNDS + 1):
                    lt.tidy()
                    lt.call(prefill(url))
                    figures = lt.call(drain())
                    if best is None or figures["wall"] < best["wall"]:
                        best = figures
                rows.append((label, JOBS / best["wall"], best["cpu"] * 1e6 / JOBS))
        finally:
            lt.close()
    sys.stdout.write(f"{JOBS} no-op jobs, concurrency {CONCURRENCY}, embedded server in a child process\n")
    for label, rate, cpu_ms in rows:
        sys.stdout.write(f"  {label:<28} {rate:>9,.0f} jobs/s  {cpu_ms:>6.1f} ms CPU per 1,000 jobs\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
