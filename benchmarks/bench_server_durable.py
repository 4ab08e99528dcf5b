"""The embedded server in memory vs durable (``--storage``), through the library's client.

Each mode runs ``python -m faktory server --bind 127.0.0.1:PORT [--storage FILE]`` in a
child process (uvloop), so the server and the load generator (this process, uvloop, one
:class:`faktory.client.Client` with a pool of 20 connections, opened before any timing)
each have a core.  Three loads:

* ``push``: single PUSHes of ``PUSH_JOBS`` jobs from 20 concurrent tasks (the server groups
  the replies of one event-loop pass behind one commit, so this is the group-commit case);
* ``pushb``: ``BULK_JOBS`` jobs in PUSHB batches of 1,000 (``client.push_bulk``, 4 batches
  in flight);
* ``fetch_ack``: ``FETCH_JOBS`` pre-filled jobs (not timed) fetched and acknowledged by 20
  concurrent ``client.fetch``/``client.ack`` loops.

Every round starts from a FLUSHed server (not timed).  The gates (``BENCHMARK_GATES``, see
``benchmarks/conftest.py``) require durable throughput >= 0.5x in-memory throughput for
each load, measured in the same run; the absolute figures are printed after the module
(jobs/s, best round) next to the real Faktory's (Go, Redis, official Go client, same
machine: 29,000 pushes/s, 30,000 jobs/s in PUSHB batches of 1,000, 7,000 fetch+ack/s with
20 workers), for information only.

Run: ``python -m pytest benchmarks/bench_server_durable.py --benchmark-only`` (~30 s), or
``python benchmarks/bench_server_durable.py`` for the figures without pytest.
``FAKTORY_BENCH_SCALE`` (default 1.0) scales the job counts.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
    uvloop = None

from faktory.client import Client
from faktory.job import Job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE = float(os.environ.get("FAKTORY_BENCH_SCALE", "1.0"))
PUSH_JOBS = int(20_000 * SCALE)
BULK_JOBS = int(40_000 * SCALE)
FETCH_JOBS = int(10_000 * SCALE)
CONCURRENCY = 20
ROUNDS = 5
QUEUE = "bench"
MODES = ["memory", "durable"]
LOADS = {"push": PUSH_JOBS, "pushb": BULK_JOBS, "fetch_ack": FETCH_JOBS}
#: The real Faktory 1.10.0 on this machine (issue "Embedded Faktory server").
REAL_FAKTORY = {"push": 29_000, "pushb": 30_000, "fetch_ack": 7_000}
#: Durable-mode targets (half of the real Faktory's figures).
TARGETS = {"push": 14_500, "pushb": 15_000, "fetch_ack": 3_500}

BENCHMARK_GATES = [
    {
        "name": f"durable {load} >= 0.5x in-memory {load}",
        # durable must not take more than twice the in-memory time: t(mem)/t(dur) >= 0.5
        "slow": f"test_{load}[memory]",
        "fast": f"test_{load}[durable]",
        "min_ratio": 0.5,
    }
    for load in LOADS
]


# ----------------------------------------------------------------------------- plumbing


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    """``faktory server`` in a child process: ready when it logs the port it listens on."""

    def __init__(self, storage: str | None) -> None:
        self.port = _free_port()
        argv = [sys.executable, "-m", "faktory", "server", "--bind", f"127.0.0.1:{self.port}",
                "--loop", "uvloop" if uvloop is not None else "asyncio"]
        if storage:
            argv += ["--storage", storage]
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.output: list[str] = []
        self._ready = threading.Event()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(30) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.output))
        self.url = f"tcp://127.0.0.1:{self.port}"

    def _read(self) -> None:
        marker = f":{self.port}"
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:  # drain always, so the pipe never fills
            line = raw.decode("utf-8", "replace")
            if len(self.output) < 200:
                self.output.append(line)
            if marker in line:
                self._ready.set()
        self._ready.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:  # pragma: no cover
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Load:
    """One server (memory or durable) and a client on this process's own event loop."""

    def __init__(self, mode: str, directory: str) -> None:
        self.mode = mode
        self.storage = os.path.join(directory, f"bench-{mode}.db") if mode == "durable" else None
        self.server = _Server(self.storage)
        self.loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
        self.client = Client(self.server.url, pool_size=CONCURRENCY)
        self.run(self._warm())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _warm(self) -> None:
        # open every pooled connection before timing anything
        await asyncio.gather(*(self.client.send("INFO") for _ in range(CONCURRENCY)))
        await self.client.flush()

    def close(self) -> None:
        try:
            self.run(self.client.close())
        finally:
            self.loop.close()
            self.server.stop()

    # -- the loads -------------------------------------------------------------------------

    @staticmethod
    def jobs(n: int) -> list[Job]:
        return [Job("BenchJob", i, "payload-string", queue=QUEUE) for i in range(n)]

    async def push(self, jobs: list[Job]) -> None:
        client = self.client
        per = len(jobs) // CONCURRENCY

        async def pusher(part: list[Job]) -> None:
            for job in part:
                await client.push(job)
        await asyncio.gather(*(pusher(jobs[i * per:(i + 1) * per]) for i in range(CONCURRENCY)))

    async def pushb(self, jobs: list[Job]) -> None:
        rejected = await self.client.push_bulk(jobs, chunk_size=1000)
        assert not rejected, rejected

    async def fetch_ack(self, n: int) -> None:
        client = self.client
        per = n // CONCURRENCY

        async def worker() -> None:
            for _ in range(per):
                job = await client.fetch(QUEUE)
                assert job is not None
                await client.ack(job["jid"])
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    async def prefill(self, n: int) -> None:
        await self.client.flush()
        assert not await self.client.push_bulk(self.jobs(n), chunk_size=1000)

    async def info(self) -> dict:
        return await self.client.info()


_RESULTS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module")
def loads(tmp_path_factory) -> Any:
    directory = str(tmp_path_factory.mktemp("bench_server_durable"))
    started: dict[str, Load] = {}

    def get(mode: str) -> Load:
        if mode not in started:
            started[mode] = Load(mode, directory)
        return started[mode]
    yield get
    for load in started.values():
        load.close()


@pytest.fixture(scope="module", autouse=True)
def _report(request) -> Any:
    yield
    if not _RESULTS:
        return
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    write: Callable[[str], None] = (reporter.write_line if reporter is not None
                                    else lambda s: sys.stderr.write(s + "\n"))
    # module teardown output is captured; the table is for the terminal
    with (capture.global_and_fixture_disabled() if capture is not None
          else contextlib.nullcontext()):
        write("")
        for line in report_lines(_RESULTS):
            write(line)


def report_lines(results: dict[tuple[str, str], float]) -> list[str]:
    """The figures as a table: jobs/s in memory and durable, their ratio, the real Faktory."""
    lines = [f"{'load':<11}{'memory':>12}{'durable':>12}{'ratio':>8}{'target':>10}"
             f"{'real Faktory':>14}"]
    for load in LOADS:
        mem, dur = results.get((load, "memory")), results.get((load, "durable"))
        ratio = f"{dur / mem:.2f}" if mem and dur else "-"
        lines.append(f"{load:<11}{_num(mem):>12}{_num(dur):>12}{ratio:>8}"
                     f"{_num(TARGETS[load]):>10}{_num(REAL_FAKTORY[load]):>14}")
    lines.append("(jobs/s, best round; target: durable >= half the real Faktory's figure)")
    return lines


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _record(benchmark: Any, load: str, mode: str, jobs: int) -> None:
    best = benchmark.stats.stats.min
    _RESULTS[(load, mode)] = jobs / best
    benchmark.extra_info["jobs"] = jobs
    benchmark.extra_info["jobs_per_s"] = round(jobs / best)


# ----------------------------------------------------------------------------- benchmarks


@pytest.mark.parametrize("mode", MODES)
def test_push(benchmark, loads, mode):
    benchmark.group = f"server: {PUSH_JOBS} single PUSHes, {CONCURRENCY} concurrent tasks"
    load = loads(mode)
    state: dict[str, Any] = {}

    def setup():
        load.run(load.client.flush())
        state["jobs"] = load.jobs(PUSH_JOBS)

    benchmark.pedantic(lambda: load.run(load.push(state["jobs"])), setup=setup,
                       rounds=ROUNDS, iterations=1)
    assert load.run(load.info())["faktory"]["queues"][QUEUE] == PUSH_JOBS
    _record(benchmark, "push", mode, PUSH_JOBS)


@pytest.mark.parametrize("mode", MODES)
def test_pushb(benchmark, loads, mode):
    benchmark.group = f"server: {BULK_JOBS} jobs in PUSHB batches of 1,000"
    load = loads(mode)
    state: dict[str, Any] = {}

    def setup():
        load.run(load.client.flush())
        state["jobs"] = load.jobs(BULK_JOBS)

    benchmark.pedantic(lambda: load.run(load.pushb(state["jobs"])), setup=setup,
                       rounds=ROUNDS, iterations=1)
    assert load.run(load.info())["faktory"]["queues"][QUEUE] == BULK_JOBS
    _record(benchmark, "pushb", mode, BULK_JOBS)


@pytest.mark.parametrize("mode", MODES)
def test_fetch_ack(benchmark, loads, mode):
    benchmark.group = f"server: {FETCH_JOBS} FETCH+ACK, {CONCURRENCY} concurrent loops"
    load = loads(mode)

    benchmark.pedantic(lambda: load.run(load.fetch_ack(FETCH_JOBS)),
                       setup=lambda: load.run(load.prefill(FETCH_JOBS)),
                       rounds=ROUNDS, iterations=1)
    info = load.run(load.info())["faktory"]
    assert info["queues"][QUEUE] == 0 and info["sets"]["working"] == 0
    _record(benchmark, "fetch_ack", mode, FETCH_JOBS)


# ----------------------------------------------------------------------------- script


def main() -> None:
    """Print the figures without pytest (best of ROUNDS for each load and mode)."""
    results: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as directory:
        for mode in MODES:
            load = Load(mode, directory)
            try:
                for name, n in LOADS.items():
                    best = float("inf")
                    for _ in range(ROUNDS):
                        if name == "fetch_ack":
                            load.run(load.prefill(n))
                            start = time.perf_counter()
                            load.run(load.fetch_ack(n))
                        else:
                            load.run(load.client.flush())
                            jobs = load.jobs(n)
                            start = time.perf_counter()
                            load.run(load.push(jobs) if name == "push" else load.pushb(jobs))
                        best = min(best, time.perf_counter() - start)
                    results[(name, mode)] = n / best
            finally:
                load.close()
    print("\n".join(report_lines(results)))


if __name__ == "__main__":
    main()
