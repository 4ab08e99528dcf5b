"""The embedded server in memory vs durable (``--storage``), through the library's client.

Each mode runs ``python -m faktory server --bind 127.0.0.1:PORT [--storage FILE]`` in a
child process (:class:`faktory.server.ServerProcess`, uvloop when installed), so the server
and the load generator (this process, uvloop, one :class:`faktory.client.Client` with a
pool of 20 connections, opened before any timing) each have a core.  Three loads of
``JOBS`` jobs each (the same count, so their times compare):

* ``push``: single PUSHes from 20 concurrent tasks (the server groups the replies of one
  event-loop pass behind one commit, so this is the group-commit case);
* ``pushb``: PUSHB batches of 1,000 (``client.push_bulk``);
* ``fetch_ack``: pre-filled jobs (not timed) fetched and acknowledged by 20 concurrent
  ``client.fetch``/``client.ack`` loops; each claims a job before its FETCH, so no FETCH
  finds the queue empty (which would block for the server's 2 s);
* ``push10``: the most common load of all, measured the way issue 13 measured it: 10
  connections, each sending one ``PUSH`` and waiting for its ``+OK`` before the next.  The
  load generator is a bare asyncio protocol writing pre-encoded lines (no client library in
  the way), so the figure is the server's;
* ``fetch_ack10``: the same 10 bare connections, each FETCHing a pre-filled job and ACKing
  it before the next: two commands per job, the same I/O per command as ``push10``.  The
  gate on ``push10`` against it is the regression check of the PUSH path: both are the
  server's own per-command cost in one run, so the machine's noise cancels.

* ``push_pipe``: single PUSHes pipelined on one bare connection, a chunk of 1,000 lines
  written at once and its 1,000 replies read before the next: the server reads and
  answers them by the hundred, so the machine's load cannot change how they batch, and the
  server's CPU per job is what a PUSH command itself costs (parse, store, reply).

Every paired comparison (``PAIRED``) also records the server process's own CPU per job
(``_server_cpu``: all its threads, the durable server's SQLite writer included), first
over second, median of the pairs: CPU is what the server spent, whatever the wall clock did
meanwhile, and the gates on it (pipelined PUSH against PUSHB, durable against in-memory)
catch a 25% regression where the jobs/s ratios of the same pairs cannot.

Every round starts from a FLUSHed server (not timed).  Absolute figures cannot be gated on a
shared, noisy machine, so the gates (``BENCHMARK_GATES``, see ``benchmarks/conftest.py``)
are ratios measured in the same run: durable throughput >= 0.4x in-memory throughput for
each load, and in memory one PUSHB of 1,000 jobs well under the cost of 1,000 PUSHes.  The
figures are printed after the module (jobs/s, best round) next to the real Faktory's (Go,
Redis, official Go client, same machine: 29,000 pushes/s, 30,000 jobs/s in PUSHB batches of
1,000, 7,000 fetch+ack/s with 20 workers) and the durable-mode targets (half of those).

Run: ``python -m pytest benchmarks/bench_server.py --benchmark-only`` (gates and table), or
``python benchmarks/bench_server.py`` for the table without pytest.  ``FAKTORY_BENCH_JOBS``
(default 20000) changes the job count.
"""
from __future__ import annotations

import asyncio
import glob
import json
import os
import statistics
import re
import tempfile
import time
from typing import Any, Callable, Coroutine

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
    uvloop = None

from faktory.client import Client
from faktory.job import Job
from faktory.server import ServerProcess
from pairs import PAIRS

JOBS = int(os.environ.get("FAKTORY_BENCH_JOBS", "20000"))
CONCURRENCY = 20
BATCH = 1000
ROUNDS = int(os.environ.get("FAKTORY_BENCH_ROUNDS", "3"))  # the table's rounds (the gates use pairs)
QUEUE = "bench"
MODES = ["memory", "durable"]
LOADS = ["push", "pushb", "fetch_ack", "push10", "fetch_ack10"]
#: the loads also measured durable (the two bare-connection loads are the in-memory PUSH
#: path's regression check: memory only)
DURABLE_LOADS = ["push", "pushb", "fetch_ack"]
PUSH_CONNECTIONS = 10
#: The real Faktory 1.10.0 on this machine (issue "Embedded Faktory server"; push10: issue 13,
#: official Go client, 10 connections).
REAL_FAKTORY = {"push": 29_000, "pushb": 30_000, "fetch_ack": 7_000, "push10": 29_000,
                "fetch_ack10": 7_000}
#: Durable-mode targets (half of the real Faktory's figures).
TARGETS = {load: rate // 2 for load, rate in REAL_FAKTORY.items()}

#: Paired comparisons (round pairs, see ``pairs.py``): ``{name: ((mode, load), (mode, load))}``;
#: the figure is the median over the pairs of jobs/s of the first over jobs/s of the second.
PAIRED = {
    "durable push vs memory": (("durable", "push"), ("memory", "push")),
    "durable pushb vs memory": (("durable", "pushb"), ("memory", "pushb")),
    "durable fetch_ack vs memory": (("durable", "fetch_ack"), ("memory", "fetch_ack")),
    "memory PUSHB vs single PUSH": (("memory", "pushb"), ("memory", "push")),
    "memory 10-conn PUSH vs 10-conn fetch+ack": (("memory", "push10"), ("memory", "fetch_ack10")),
    "memory pipelined PUSH vs PUSHB": (("memory", "push_pipe"), ("memory", "pushb")),
    "durable pipelined PUSH vs memory": (("durable", "push_pipe"), ("memory", "push_pipe")),
}
#: Paired comparisons of the server process's own CPU per job (``_server_cpu``): the figure is
#: the median over the pairs of CPU/job of the first over CPU/job of the second.  CPU time is
#: what the server spent, whatever the wall clock did meanwhile on this shared machine.
#: more pairs for these (their rounds are short): their server CPU ratios are gated to 25%
#: (the durable PUSH pair read 3.46 against 3.6 with 5 pairs)
#: The durable/memory PUSHB pair gets 15: its pairs read 0.13-0.47 on a quiet machine (the
#: durable side's SQLite checkpoints), and its median of 9 read 0.165, under the 0.18
#: bound, in one CI run where runs alone read 0.212-0.252 (rounds of 5x the jobs spread no
#: less).  The 10-connection pair gets as many: its loads wait for each reply, so the server's CPU
#: per job follows how many connections each wake-up finds ready, which the machine moves
#: (one round pair ranges 0.30-0.95; 5-pair medians read 0.48-0.63 against a 0.52 middle).
PAIRED_PAIRS = {"memory pipelined PUSH vs PUSHB": 2 * PAIRS - 1, "durable pipelined PUSH vs memory": 2 * PAIRS - 1,
                "durable pushb vs memory": 3 * PAIRS, "durable push vs memory": 2 * PAIRS - 1,
                "memory 10-conn PUSH vs 10-conn fetch+ack": 3 * PAIRS}

BENCHMARK_GATES = [
    # Bounds from 5 runs of the merged tree (PUSH and PUSHB both on the server's fast path,
    # big lines and huge jobs worked in slices), load 1.4-3: a "max" bound sits above the
    # highest run and at or below 1.25x the median, a "min" bound below the lowest run and
    # above 0.75x the median, except where a note says what it catches instead
    # (spreads: benchmarks/README.md).
    {"name": "durable PUSH (20 tasks) >= 0.25x in-memory", "figure": "durable push vs memory",
     "by": "test_paired[durable push vs memory]", "min": 0.25,
     "note": "5 runs 0.30 / 0.37 / 0.66 (5 pairs; 0.29-0.30 in 3 runs of 9 pairs): wall-clock "
             "pairs, it catches a drop by a sixth; the server-CPU gate on the same pairs below "
             "catches 25%"},
    {"name": "durable PUSHB >= 0.18x in-memory", "figure": "durable pushb vs memory",
     "by": "test_paired[durable pushb vs memory]", "min": 0.18,
     "note": "5 runs 0.20 / 0.221 / 0.246 since PUSHB took the fast path in memory (0.53-0.67 "
             "before: the in-memory side got 5x cheaper; 0.75x median = 0.166)"},
    {"name": "durable FETCH+ACK (20 loops) >= 0.44x in-memory", "figure": "durable fetch_ack vs memory",
     "by": "test_paired[durable fetch_ack vs memory]", "min": 0.44,
     "note": "5 runs 0.53 / 0.61 / 0.65 (0.75x median = 0.46)"},
    # Batching pays again since PUSHB took the server's fast path too (codec scan_pushb):
    # a PUSHB of 1,000 moves 3.5-7x the jobs a second of single PUSHes from 20 tasks.  How
    # far single PUSHes from 20 tasks batch depends on the machine's load, so this wall-clock
    # ratio (and the server-CPU one of the same pairs: 0.19-0.22 under load, 0.26 quiet)
    # moves with it: the bound only catches batching that no longer pays.  The 25% gate on
    # the PUSHB path's cost is the pipelined-PUSH pair's, from PUSHB's side (below).
    {"name": "memory PUSHB >= 2.5x single PUSH (jobs/s)", "figure": "memory PUSHB vs single PUSH",
     "by": "test_paired[memory PUSHB vs single PUSH]", "min": 2.5,
     "note": "5 runs 4.46 / 5.04 / 6.67 at load 1.4-3, 3.50 in a quiet CI run (which failed the "
             "first bound, 4): wall-clock, it catches a PUSHB that no longer pays"},
    # The server process's own CPU per job (all its threads: the durable server's SQLite
    # writer too; user and system, the scheduler's nanosecond count), in round pairs, on
    # loads whose batching the machine's load cannot change: single PUSHes pipelined by
    # the thousand on one connection (so the server reads and answers them by the hundred,
    # and its CPU per job is the command's own cost, not a wake-up's) and PUSHB of 1,000.
    # Wall-clock noise does not move these.
    {"name": "memory server CPU/job, pipelined single PUSH <= 3x a PUSHB job",
     "figure": "memory pipelined PUSH vs PUSHB (server CPU)",
     "by": "test_paired[memory pipelined PUSH vs PUSHB]", "max": 3.0,
     "note": "the PUSH path's own cost (codec scan_push, the stored bytes, the reply): 5 runs "
             "2.33 / 2.43 / 2.56 (1.25x median = 3.04) since PUSHB took the fast path too "
             "(0.46 before); far higher with scan_push off"},
    {"name": "memory server CPU/job, a PUSHB job <= 0.53x a pipelined single PUSH",
     "figure": "memory pipelined PUSH vs PUSHB (server CPU)",
     "by": "test_paired[memory pipelined PUSH vs PUSHB]", "min": 1.9,
     "note": "the PUSHB path's cost per job, the same figure from the other side (1 / 1.9 = "
             "0.53; 0.75x median = 1.82)"},
    {"name": "durable server CPU/job, pipelined single PUSH <= 3.4x in-memory",
     "figure": "durable pipelined PUSH vs memory (server CPU)",
     "by": "test_paired[durable pipelined PUSH vs memory]", "max": 3.4,
     "note": "what persisting a pushed job costs the server, SQLite writer included: 5 runs "
             "2.54 / 2.73 / 3.13 (1.25x median = 3.41)"},
    {"name": "durable server CPU/job, PUSHB <= 6.6x in-memory",
     "figure": "durable pushb vs memory (server CPU)",
     "by": "test_paired[durable pushb vs memory]", "max": 6.6,
     "note": "5 runs 4.95 / 5.33 / 5.54 (1.25x median = 6.66); 1.46-1.73 while in-memory PUSHB "
             "took the general path"},
    {"name": "durable server CPU/job, PUSH from 20 tasks <= 3.6x in-memory",
     "figure": "durable push vs memory (server CPU)",
     "by": "test_paired[durable push vs memory]", "max": 3.6,
     "note": "the group-commit case (its jobs/s ratio, above, is wall-clock): 5 runs "
             "2.38 / 2.89 / 3.35 (1.25x median = 3.61) with 5 pairs, 3.16 and 3.46 in two runs "
             "later; with 9 pairs 3.05 / 3.07 / 3.10 (3 runs)"},
    # Issue 13's load: single PUSHes from 10 bare connections, each waiting for its reply,
    # against the same server's fetch+ack over 10 bare connections (the same I/O per
    # command, two commands a job): jobs/s, and the server's own CPU per job.
    {"name": "memory 10-conn PUSH >= 1.5x 10-conn fetch+ack", "figure": "memory 10-conn PUSH vs 10-conn fetch+ack",
     "by": "test_paired[memory 10-conn PUSH vs 10-conn fetch+ack]", "min": 1.5,
     "note": "5 runs 1.89 / 1.95 / 2.24 (0.75x median = 1.46; 1.32 / 1.55 / 1.92 before the "
             "PUSHB fast path merge, 0.77 / 1.11 / 1.24 before the PUSH fast path)"},
    {"name": "memory server CPU/job, 10-conn PUSH <= 0.6x 10-conn fetch+ack",
     "figure": "memory 10-conn PUSH vs 10-conn fetch+ack (server CPU)",
     "by": "test_paired[memory 10-conn PUSH vs 10-conn fetch+ack]", "max": 0.6,
     "note": "the per-command cost of a single PUSH, a read and a write each, against FETCH's "
             "and ACK's: 5 runs 0.44 / 0.49 / 0.53 (1.25x median = 0.61) with 5 pairs, which "
             "then read 0.627 in a quiet run; with 15 pairs 0.45 / 0.49 / 0.51"},
]


# ----------------------------------------------------------------------------- plumbing

#: ``FAKTORY_BENCH_INJECT=no-push-fast-path``: the server child processes start with
#: ``benchmarks/inject`` first on their path, whose ``sitecustomize`` turns the single PUSH
#: fast path off (see that module).  The gate tests (``tests/test_benchmark_gates.py``) check
#: that the server CPU gates then fail, naming the figure.
INJECT = os.environ.get("FAKTORY_BENCH_INJECT", "")


def _inject_env() -> dict[str, str]:
    if INJECT != "no-push-fast-path":
        return {}
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inject")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))}



#: the pipelined PUSH rounds' chunks of lines, by job count: (bytes, lines in it)
_PIPE_CHUNKS: dict[int, list[tuple[bytes, int]]] = {}


class Load:
    """One server (memory or durable) and a client on this process's own event loop."""

    def __init__(self, mode: str, directory: str) -> None:
        self.mode = mode
        storage = os.path.join(directory, f"bench-{mode}.db") if mode == "durable" else None
        self.server = ServerProcess(storage, env=_inject_env()).start()
        self.loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
        self.client = Client(self.server.url, pool_size=CONCURRENCY)
        self.run(self._warm())

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
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

    def prepare(self, load: str, n: int = JOBS) -> Callable[[], None]:
        """The untimed part of a round (FLUSH; jobs built, or the queue filled for
        ``fetch_ack``); returns the timed part."""
        self.run(self.client.flush())
        jobs = [Job("BenchJob", i, "payload-string", queue=QUEUE) for i in range(n)]
        if load == "fetch_ack":
            self.run(self.pushb(jobs))
            return lambda: self.run(self.fetch_ack(n))
        work = self.push if load == "push" else self.pushb
        return lambda: self.run(work(jobs))

    def prepare_push10(self, n: int = JOBS) -> Callable[[], None]:
        """Untimed: FLUSH, the PUSH lines encoded, 10 raw connections handshaken."""
        self.run(self.client.flush())
        lines = [b"PUSH " + json.dumps(Job("BenchJob", i, "payload-string", queue=QUEUE).to_dict(),
                                       separators=(",", ":")).encode() + b"\r\n" for i in range(n)]
        async def connect() -> list[_RawPusher]:
            return list(await asyncio.gather(*(_RawPusher.open(self.loop, self.server.host, self.server.port)
                                               for _ in range(PUSH_CONNECTIONS))))
        conns = self.run(connect())

        async def work() -> None:
            try:
                await asyncio.gather(*(c.push_all(lines[i::PUSH_CONNECTIONS]) for i, c in enumerate(conns)))
            finally:
                for c in conns:
                    c.close()
        return lambda: self.run(work())

    def prepare_push_pipe(self, n: int = JOBS) -> Callable[[], None]:
        """Untimed: FLUSH, the PUSH lines encoded in chunks of ``BATCH``, one raw connection
        handshaken.  Timed: each chunk written at once, its ``BATCH`` replies read, the next
        chunk: the server reads and answers single PUSHes by the hundred, so its CPU per job
        is the per-command cost of a PUSH (parse, store, reply), not the machine's wake-ups."""
        self.run(self.client.flush())
        if n not in _PIPE_CHUNKS:  # the same lines every round (the server was FLUSHed)
            lines = [b"PUSH " + json.dumps(Job("BenchJob", i, "payload-string", queue=QUEUE).to_dict(),
                                           separators=(",", ":")).encode() + b"\r\n" for i in range(n)]
            _PIPE_CHUNKS[n] = [(b"".join(lines[i:i + BATCH]), len(lines[i:i + BATCH])) for i in range(0, n, BATCH)]
        chunks = _PIPE_CHUNKS[n]

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection(self.server.host, self.server.port)
            assert (await reader.readline()).startswith(b"+HI")
            writer.write(b'HELLO {"v":2}\r\n')
            assert await reader.readline() == b"+OK\r\n"
            return reader, writer
        reader, writer = self.run(connect())

        async def work() -> None:
            try:
                for chunk, count in chunks:
                    writer.write(chunk)
                    replies = await reader.readexactly(5 * count)
                    assert replies == b"+OK\r\n" * count, replies[:200]
            finally:
                writer.write(b"END\r\n")
                writer.close()
        return lambda: self.run(work())

    def prepare_fetch_ack10(self, n: int = JOBS) -> Callable[[], None]:
        """Untimed: FLUSH, the queue filled, 10 raw connections handshaken."""
        self.run(self.client.flush())
        self.run(self.pushb([Job("BenchJob", i, "payload-string", queue=QUEUE) for i in range(n)]))

        async def connect() -> list[_RawWorker]:
            return list(await asyncio.gather(*(_RawWorker.open(self.loop, self.server.host, self.server.port)
                                               for _ in range(PUSH_CONNECTIONS))))
        conns = self.run(connect())
        share = [n // PUSH_CONNECTIONS + (i < n % PUSH_CONNECTIONS) for i in range(PUSH_CONNECTIONS)]

        async def work() -> None:
            try:
                await asyncio.gather(*(c.work(k) for c, k in zip(conns, share, strict=True)))
            finally:
                for c in conns:
                    c.close()
        return lambda: self.run(work())

    def queue_sizes(self) -> tuple[int, int]:
        """(jobs enqueued in QUEUE, jobs in progress)."""
        info = self.run(self.client.info())["faktory"]
        return info["queues"].get(QUEUE, 0), info["sets"]["working"]

    # -- the loads -------------------------------------------------------------------------

    async def push(self, jobs: list[Job]) -> None:
        client = self.client

        async def pusher(part: list[Job]) -> None:
            for job in part:
                await client.push(job)
        await asyncio.gather(*(pusher(jobs[i::CONCURRENCY]) for i in range(CONCURRENCY)))

    async def pushb(self, jobs: list[Job]) -> None:
        rejected = await self.client.push_bulk(jobs, chunk_size=BATCH)
        assert not rejected, rejected

    async def fetch_ack(self, n: int) -> None:
        client = self.client
        unclaimed = n

        async def worker() -> None:
            nonlocal unclaimed
            while unclaimed > 0:
                unclaimed -= 1
                job = await client.fetch(QUEUE)
                assert job is not None, "the queue ran dry"
                await client.ack(job["jid"])
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


class _RawPusher(asyncio.Protocol):
    """One connection that sends PUSH lines one at a time, each after the last one's reply."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future | None = None
        self.lines: list[bytes] = []
        self.next = 0

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop, host: str, port: int) -> "_RawPusher":
        _, proto = await loop.create_connection(cls, host, port)
        await proto._expect(b"+HI")
        proto.transport.write(b'HELLO {"v":2}\r\n')
        await proto._expect(b"+OK")
        return proto

    async def _expect(self, prefix: bytes) -> None:
        while b"\n" not in self.buf:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        line, _, self.buf = self.buf.partition(b"\n")
        assert line.startswith(prefix), line

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.lines:
            # one reply per line; "+OK\r\n" is 5 bytes
            assert data == b"+OK\r\n" * (len(data) // 5), data[:200]
            self.next += 1
            if self.next < len(self.lines):
                self.transport.write(self.lines[self.next])
            elif self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)
            return
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def push_all(self, lines: list[bytes]) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        self.lines, self.next = lines, 0
        self.transport.write(lines[0])
        await self.waiter

    def close(self) -> None:
        self.transport.write(b"END\r\n")
        self.transport.close()


_FETCH = f"FETCH {QUEUE}\r\n".encode()
_JID = re.compile(rb'"jid":"([^"]*)"')


class _RawWorker(_RawPusher):
    """One connection that FETCHes a job, ACKs it, and so on, ``count`` times."""

    def __init__(self) -> None:
        super().__init__()
        self.left = 0
        self.acking = False

    async def work(self, count: int) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        self.left = count
        self.lines = [b""]  # "working" (see data_received)
        self.transport.write(_FETCH)
        await self.waiter

    def data_received(self, data: bytes) -> None:
        if not self.lines:
            return super().data_received(data)
        self.buf += data
        if self.acking:
            if not self.buf.endswith(b"\r\n"):
                return
            assert self.buf == b"+OK\r\n", self.buf
            self.buf = b""
            self.acking = False
            self.left -= 1
            if self.left:
                self.transport.write(_FETCH)
            elif not self.waiter.done():
                self.waiter.set_result(None)
            return
        head, sep, rest = self.buf.partition(b"\r\n")
        if not sep or len(rest) < int(head[1:]) + 2:
            return  # the bulk reply is not complete yet
        assert head != b"$-1", "the queue ran dry"
        self.buf = b""
        self.acking = True
        self.transport.write(b'ACK {"jid":"' + _JID.search(rest).group(1) + b'"}\r\n')


_RESULTS: dict[tuple[str, str], float] = {}
_PAIRED_RESULTS: dict[str, list[float]] = {}


@pytest.fixture(scope="module")
def loads(tmp_path_factory) -> Any:
    directory = str(tmp_path_factory.mktemp("bench_server"))
    started: dict[str, Load] = {}

    def get(mode: str) -> Load:
        if mode not in started:
            started[mode] = Load(mode, directory)
        return started[mode]
    yield get
    for load in started.values():
        load.close()


def benchmark_report() -> list[str]:
    """The figures table, printed by benchmarks/conftest.py after the run."""
    lines = report_lines(_RESULTS) if _RESULTS else []
    for pair, ratios in _PAIRED_RESULTS.items():
        lines.append(f"{pair}: median {statistics.median(ratios):.2f}x over {len(ratios)} pairs "
                     f"({min(ratios):.2f}-{max(ratios):.2f})")
    return lines


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


def _preparer(load: Load, name: str) -> Callable[[], Callable[[], None]]:
    if name == "push10":
        return load.prepare_push10
    if name == "push_pipe":
        return load.prepare_push_pipe
    if name == "fetch_ack10":
        return load.prepare_fetch_ack10
    return lambda: load.prepare(name)


def _bench(benchmark: Any, load: Load, name: str, what: str) -> None:
    """Time ``ROUNDS`` rounds of one load, record its best jobs/s for the table."""
    benchmark.group = f"server: {JOBS} jobs, {what}"
    prepare = _preparer(load, name)
    benchmark.pedantic(lambda work: work(), setup=lambda: ((prepare(),), {}),
                       rounds=ROUNDS, iterations=1, warmup_rounds=1)
    best = benchmark.stats.stats.min
    _RESULTS[(name, load.mode)] = JOBS / best
    benchmark.extra_info["jobs"] = JOBS
    benchmark.extra_info["jobs_per_s"] = round(JOBS / best)


# ----------------------------------------------------------------------------- benchmarks


@pytest.mark.parametrize("mode", MODES)
def test_push(benchmark, loads, mode):
    load = loads(mode)
    _bench(benchmark, load, "push", f"single PUSHes, {CONCURRENCY} concurrent tasks")
    assert load.queue_sizes() == (JOBS, 0)


@pytest.mark.parametrize("mode", MODES)
def test_pushb(benchmark, loads, mode):
    load = loads(mode)
    _bench(benchmark, load, "pushb", f"PUSHB batches of {BATCH:,}")
    assert load.queue_sizes() == (JOBS, 0)


@pytest.mark.parametrize("mode", ["memory"])
def test_push10(benchmark, loads, mode):
    load = loads(mode)
    _bench(benchmark, load, "push10", f"single PUSHes, {PUSH_CONNECTIONS} raw connections, one at a time")
    assert load.queue_sizes() == (JOBS, 0)


@pytest.mark.parametrize("mode", ["memory"])
def test_fetch_ack10(benchmark, loads, mode):
    load = loads(mode)
    _bench(benchmark, load, "fetch_ack10", f"FETCH+ACK, {PUSH_CONNECTIONS} raw connections, one at a time")
    assert load.queue_sizes() == (0, 0)


@pytest.mark.parametrize("mode", MODES)
def test_fetch_ack(benchmark, loads, mode):
    load = loads(mode)
    _bench(benchmark, load, "fetch_ack", f"FETCH+ACK, {CONCURRENCY} concurrent loops")
    assert load.queue_sizes() == (0, 0)


# ----------------------------------------------------------------------------- script


def main() -> None:
    """Print the table without pytest (best of ROUNDS for each load and mode)."""
    results: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as directory:
        for mode in MODES:
            load = Load(mode, directory)
            try:
                for name in (LOADS if mode == "memory" else DURABLE_LOADS):
                    best = float("inf")
                    for _ in range(ROUNDS):
                        work = _preparer(load, name)()
                        start = time.perf_counter()
                        work()
                        best = min(best, time.perf_counter() - start)
                    results[(name, mode)] = JOBS / best
            finally:
                load.close()
    print("\n".join(report_lines(results)))


if __name__ == "__main__":
    main()


# ----------------------------------------------------------------------------- paired gates


def _server_cpu(pid: int) -> tuple[float, float] | None:
    """Seconds of CPU the process ``pid`` has used, all its threads: (user and system, from
    the scheduler's nanosecond count in ``/proc/PID/task/*/schedstat``; user only, from the
    clock-tick count of ``/proc/PID/stat``); None where these files are missing (not Linux)."""
    total = 0
    found = False
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path, "rb") as f:
                total += int(f.read().split()[0])
            found = True
        except (OSError, ValueError, IndexError):
            pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            user = int(f.read().rsplit(b")", 1)[1].split()[11]) / _TICKS
    except (OSError, ValueError, IndexError):
        return None
    return (total / 1e9, user) if found else None


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _round(load: Load, name: str, n: int = JOBS) -> tuple[float, tuple[float, float] | None]:
    """One round of ``n`` jobs of ``name`` on ``load`` (its untimed part done first): jobs/s,
    and the server process's CPU seconds per job, (all, user only); None when they cannot
    be read."""
    if name == "push10":
        work = load.prepare_push10(n)
    elif name == "push_pipe":
        work = load.prepare_push_pipe(n)
    elif name == "fetch_ack10":
        work = load.prepare_fetch_ack10(n)
    else:
        work = load.prepare(name, n)
    cpu = _server_cpu(load.server.pid)
    started = time.perf_counter()
    work()
    wall = time.perf_counter() - started
    after = _server_cpu(load.server.pid)
    if cpu is None or after is None:
        return n / wall, None
    return n / wall, ((after[0] - cpu[0]) / n, (after[1] - cpu[1]) / n)


def _paired(first: tuple[Load, str], second: tuple[Load, str], pairs: int = PAIRS,
            n: int = JOBS) -> dict[str, list[float]]:
    """Per-pair ratios after a warm-up pair, the two rounds of a pair back to back in
    alternating order: ``speed`` (jobs/s of ``first`` over ``second``) and ``cpu`` (the
    server process's CPU per job, all its threads, the durable server's SQLite writer
    included, ``first`` over ``second``; empty where it cannot be read)."""
    ratios: dict[str, list[float]] = {"speed": [], "cpu": []}
    for index in range(pairs + 1):
        if index % 2:
            a = _round(*first, n)
            b = _round(*second, n)
        else:
            b = _round(*second, n)
            a = _round(*first, n)
        if not index:
            continue
        ratios["speed"].append(a[0] / b[0])
        if a[1] is not None and b[1] is not None:
            ratios["cpu"].append(a[1][0] / b[1][0])
    return ratios


@pytest.mark.parametrize("pair", list(PAIRED))
def test_paired(benchmark, record_figure, loads, pair):
    """One paired comparison of ``PAIRED``: its median ratios are what the gates read:
    jobs/s (figure ``pair``) and the server's CPU per job (``pair + " (server CPU)"``)."""
    (mode_a, load_a), (mode_b, load_b) = PAIRED[pair]
    ratios: dict[str, list[float]] = {}
    benchmark.group = "server: paired comparisons"
    pairs = PAIRED_PAIRS.get(pair, PAIRS)
    benchmark.pedantic(lambda: ratios.update(_paired((loads(mode_a), load_a), (loads(mode_b), load_b), pairs)),
                       rounds=1, iterations=1)
    record_figure(pair, statistics.median(ratios["speed"]))
    benchmark.extra_info.update(ratios=[round(r, 3) for r in ratios["speed"]],
                                median=statistics.median(ratios["speed"]))
    _PAIRED_RESULTS[pair] = ratios["speed"]
    if ratios["cpu"]:
        record_figure(pair + " (server CPU)", statistics.median(ratios["cpu"]))
        benchmark.extra_info["cpu_ratios"] = [round(r, 3) for r in ratios["cpu"]]
        _PAIRED_RESULTS[pair + " (server CPU)"] = ratios["cpu"]
